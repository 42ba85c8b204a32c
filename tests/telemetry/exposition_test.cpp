// The scrape formats: text 0.0.4 and OpenMetrics against golden files, promtool's verdict on
// the text, the protobuf stream decoded with the generated classes (native histogram fields
// included), Accept negotiation, gzip and the process metrics.
#include <google/protobuf/io/coded_stream.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "metrics.pb.h"
#include "telemetry/metrics.hpp"

namespace sb::telemetry {
namespace {

namespace pb = io::prometheus::client;

// Every kind, labels and help that need escaping, special values, an empty histogram, an
// overflow series and a family without series (not written).
void fill(Registry& r) {
  auto& requests = r.counter({.name = "t_http_requests",
                              .help = "Requests by route and code.\nA backslash: \\ \"quoted\".",
                              .labels = {"route", "code"}});
  requests.with({"/a\"b\\c\nd", "200"}).add(3);
  requests.with({"/users", "503"}).add(1);
  r.gauge({.name = "t_in_flight_requests", .help = "Requests in flight."}).with({}).add(2);
  auto& sensors = r.gauge({.name = "t_sensor", .help = "Values.", .labels = {"sensor"}});
  sensors.with({"a"}).set(0.1);
  sensors.with({"b"}).set(1e21);
  sensors.with({"c"}).set(std::numeric_limits<double>::quiet_NaN());
  sensors.with({"d"}).set(-std::numeric_limits<double>::infinity());
  auto& durations = r.histogram({.name = "t_request_duration_seconds",
                                 .help = "Request duration.",
                                 .labels = {"route"},
                                 .bounds = {0.1, 1, 10}});
  Histogram a = durations.with({"/a"});
  for (double v : {0.05, 0.5, 0.5, 20.0}) a.observe(v);
  (void)durations.with({"/b"});
  r.counter({.name = "t_response_bytes", .help = "Bytes sent."}).with({}).add(1024);
  auto& capped =
      r.counter({.name = "t_capped", .help = "Capped.", .labels = {"k"}, .series_limit = 1});
  capped.with({"a"}).inc();
  capped.with({"b"}).add(5);
  r.gauge({.name = "t_unused", .help = "Never given a series."});
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// SB_UPDATE_GOLDEN=1 rewrites the golden file (then review the diff).
void expect_golden(const std::string& got, const std::string& name) {
  std::string path = std::string(SB_TELEMETRY_GOLDEN_DIR) + "/" + name;
  if (std::getenv("SB_UPDATE_GOLDEN") != nullptr) std::ofstream(path, std::ios::binary) << got;
  EXPECT_EQ(got, read_file(path)) << "golden " << path;
}

TEST(ExpositionTest, TextMatchesGolden) {
  Registry r;
  fill(r);
  expect_golden(r.expose(Format::kText), "text.txt");
}

TEST(ExpositionTest, OpenMetricsMatchesGolden) {
  Registry r;
  fill(r);
  expect_golden(r.expose(Format::kOpenMetrics), "openmetrics.txt");
}

std::string promtool_path() {
  for (const char* p : {"/usr/bin/promtool", "/usr/local/bin/promtool"})
    if (access(p, X_OK) == 0) return p;
  return {};
}

// `promtool check metrics` exits 0 on the text format: parses, and lint finds nothing.
TEST(ExpositionTest, PromtoolCheckMetricsIsClean) {
  std::string promtool = promtool_path();
  if (promtool.empty()) GTEST_SKIP() << "promtool is not installed";
  Registry r({.shards = 3});
  fill(r);
  register_process_metrics(r, "0.1.0", "abc123");
  std::string dir = ::testing::TempDir();
  std::string in = dir + "/exposition.txt", err = dir + "/promtool.err";
  std::ofstream(in, std::ios::binary) << r.expose(Format::kText);
  std::string cmd = promtool + " check metrics < " + in + " 2> " + err;
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_file(err);
}

std::vector<pb::MetricFamily> decode(const std::string& bytes) {
  std::vector<pb::MetricFamily> out;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  std::uint32_t size = 0;
  while (in.ReadVarint32(&size)) {
    auto limit = in.PushLimit(static_cast<int>(size));
    pb::MetricFamily mf;
    EXPECT_TRUE(mf.ParseFromCodedStream(&in));
    EXPECT_TRUE(in.ConsumedEntireMessage());
    in.PopLimit(limit);
    out.push_back(std::move(mf));
  }
  EXPECT_EQ(in.CurrentPosition(), static_cast<int>(bytes.size()));
  return out;
}

const pb::MetricFamily& family(const std::vector<pb::MetricFamily>& all, const std::string& n) {
  for (const auto& f : all)
    if (f.name() == n) return f;
  ADD_FAILURE() << "no family " << n;
  static pb::MetricFamily none;
  return none;
}

// The native buckets the spans and deltas describe, in the snapshot's shape.
std::vector<std::pair<std::int32_t, std::uint64_t>> native_of(const pb::Histogram& h) {
  std::vector<std::pair<std::int32_t, std::uint64_t>> out;
  std::int32_t index = 0;
  std::int64_t count = 0;
  int d = 0;
  for (int s = 0; s < h.positive_span_size(); ++s) {
    index += h.positive_span(s).offset();
    for (std::uint32_t j = 0; j < h.positive_span(s).length(); ++j, ++index) {
      count += h.positive_delta(d++);
      EXPECT_GE(count, 0);
      if (count != 0) out.emplace_back(index, static_cast<std::uint64_t>(count));
    }
  }
  EXPECT_EQ(d, h.positive_delta_size());
  return out;
}

TEST(ExpositionTest, ProtobufRoundTrip) {
  Registry r({.shards = 2});
  fill(r);
  // Buckets 0, 2 and 5 (gaps of one and two: zero deltas in one span), then 38 (a new span).
  Histogram near = r.histogram({.name = "t_near_seconds", .help = "Near."}).with({});
  for (double v : {1.0, 1.02, 1.02, 1.05, 1.5, 0.0}) near.observe(v);

  std::vector<pb::MetricFamily> all = decode(r.expose(Format::kProtobuf));
  ASSERT_EQ(all.size(), 8u);  // t_unused has no series
  EXPECT_EQ(all[0].name(), "switchboard_metric_series_overflow_total");

  const pb::MetricFamily& req = family(all, "t_http_requests_total");
  EXPECT_EQ(req.type(), pb::COUNTER);
  EXPECT_EQ(req.help(), "Requests by route and code.\nA backslash: \\ \"quoted\".");
  ASSERT_EQ(req.metric_size(), 2);
  EXPECT_EQ(req.metric(0).label(0).name(), "route");
  EXPECT_EQ(req.metric(0).label(0).value(), "/a\"b\\c\nd");
  EXPECT_EQ(req.metric(0).label(1).value(), "200");
  EXPECT_EQ(req.metric(0).counter().value(), 3);

  const pb::MetricFamily& capped = family(all, "t_capped_total");
  ASSERT_EQ(capped.metric_size(), 2);
  ASSERT_EQ(capped.metric(1).label_size(), 2);
  EXPECT_EQ(capped.metric(1).label(0).value(), "");
  EXPECT_EQ(capped.metric(1).label(1).name(), "otel_metric_overflow");
  EXPECT_EQ(capped.metric(1).label(1).value(), "true");
  EXPECT_EQ(capped.metric(1).counter().value(), 5);

  const pb::MetricFamily& sensors = family(all, "t_sensor");
  EXPECT_EQ(sensors.type(), pb::GAUGE);
  EXPECT_EQ(sensors.metric(1).gauge().value(), 1e21);
  EXPECT_TRUE(std::isnan(sensors.metric(2).gauge().value()));

  const pb::MetricFamily& dur = family(all, "t_request_duration_seconds");
  EXPECT_EQ(dur.type(), pb::HISTOGRAM);
  ASSERT_EQ(dur.metric_size(), 2);
  const pb::Histogram& h = dur.metric(0).histogram();
  EXPECT_EQ(h.sample_count(), 4u);
  EXPECT_DOUBLE_EQ(h.sample_sum(), 21.05);
  ASSERT_EQ(h.bucket_size(), 3);  // +Inf is sample_count
  EXPECT_EQ(h.bucket(0).upper_bound(), 0.1);
  EXPECT_EQ(h.bucket(0).cumulative_count(), 1u);
  EXPECT_EQ(h.bucket(1).cumulative_count(), 3u);
  EXPECT_EQ(h.bucket(2).upper_bound(), 10);
  EXPECT_EQ(h.bucket(2).cumulative_count(), 3u);
  EXPECT_EQ(h.schema(), 6);
  EXPECT_EQ(h.zero_threshold(), 1e-9);
  EXPECT_TRUE(h.has_zero_count());
  EXPECT_EQ(h.zero_count(), 0u);
  EXPECT_EQ(h.positive_span_size(), 3);  // three buckets far apart
  Histogram a = r.histogram({.name = "t_request_duration_seconds",
                             .help = "Request duration.",
                             .labels = {"route"},
                             .bounds = {0.1, 1, 10}})
                    .with({"/a"});
  EXPECT_EQ(native_of(h), a.snapshot().native);
  const pb::Histogram& empty = dur.metric(1).histogram();
  EXPECT_EQ(empty.sample_count(), 0u);
  EXPECT_EQ(empty.schema(), 6);
  EXPECT_EQ(empty.zero_threshold(), 1e-9);
  EXPECT_EQ(empty.positive_span_size(), 0);

  const pb::Histogram& n = family(all, "t_near_seconds").metric(0).histogram();
  EXPECT_EQ(n.zero_count(), 1u);
  ASSERT_EQ(n.positive_span_size(), 2);
  EXPECT_EQ(n.positive_span(0).offset(), 0);
  EXPECT_EQ(n.positive_span(0).length(), 6u);  // 0 1 2 3 4 5
  EXPECT_EQ(n.positive_span(1).offset(), 32);  // 6 .. 37 empty
  EXPECT_EQ(n.positive_span(1).length(), 1u);
  using P = std::pair<std::int32_t, std::uint64_t>;
  EXPECT_EQ(native_of(n), (std::vector<P>{{0, 1}, {2, 2}, {5, 1}, {38, 1}}));
  EXPECT_EQ(n.positive_delta(0), 1);
  EXPECT_EQ(n.positive_delta(1), -1);
  EXPECT_EQ(n.positive_delta(2), 2);
}

// The headers Prometheus 2.42 sends, with and without native histograms.
TEST(NegotiateTest, PrometheusAcceptHeaders) {
  EXPECT_EQ(negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                      "encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"),
            Format::kProtobuf);
  // What 2.42 with --enable-feature=native-histograms sent to a test server.
  EXPECT_EQ(negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                      "encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,"
                      "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;"
                      "version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::kProtobuf);
  EXPECT_EQ(negotiate("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                      "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::kOpenMetrics);
  EXPECT_EQ(negotiate("text/plain;version=0.0.4;q=0.5,application/openmetrics-text; "
                      "version=1.0.0; q=0.9"),
            Format::kOpenMetrics);
}

TEST(NegotiateTest, FallsBackToText) {
  EXPECT_EQ(negotiate(""), Format::kText);
  EXPECT_EQ(negotiate("*/*"), Format::kText);
  EXPECT_EQ(negotiate("application/json"), Format::kText);
  EXPECT_EQ(negotiate("garbage;;;,=,"), Format::kText);
  // Protobuf of another message, or not delimited: not ours.
  EXPECT_EQ(negotiate("application/vnd.google.protobuf;proto=other.Message;encoding=delimited"),
            Format::kText);
  EXPECT_EQ(negotiate("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"),
            Format::kText);
  // q=0 means "not acceptable".
  EXPECT_EQ(negotiate("application/openmetrics-text;q=0,text/plain;q=0.1"), Format::kText);
  // Equal q: the first listed.
  EXPECT_EQ(negotiate("application/openmetrics-text,text/plain"), Format::kOpenMetrics);
}

TEST(NegotiateTest, ContentTypes) {
  EXPECT_EQ(content_type(Format::kText), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(content_type(Format::kOpenMetrics),
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_EQ(content_type(Format::kProtobuf),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
            "encoding=delimited");
}

TEST(GzipTest, InflatesBack) {
  Registry r;
  fill(r);
  std::string text = r.expose(Format::kText);
  std::string gz = gzip(text);
  ASSERT_GE(gz.size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);  // RFC 1952 magic
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_LT(gz.size(), text.size());
  z_stream zs{};
  ASSERT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string back(text.size() + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(back.data());
  zs.avail_out = static_cast<uInt>(back.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  back.resize(zs.total_out);
  inflateEnd(&zs);
  EXPECT_EQ(back, text);
  EXPECT_EQ(gzip("").size(), 20u);  // header, empty deflate block, trailer
}

double sample(const std::string& text, const std::string& name) {
  std::size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no sample " << name;
    return -1;
  }
  return std::stod(text.substr(at + name.size() + 2));
}

// The names Prometheus' client libraries use, with values read from /proc.
TEST(ProcessMetricsTest, NamesAndPlausibleValues) {
  Registry r;
  register_process_metrics(r, "0.1.0", "abc123");
  std::string text = r.expose(Format::kText);
  EXPECT_GT(sample(text, "process_resident_memory_bytes"), 1 << 20) << text;
  EXPECT_GE(sample(text, "process_virtual_memory_bytes"),
            sample(text, "process_resident_memory_bytes"));
  EXPECT_GE(sample(text, "process_cpu_seconds_total"), 0);
  EXPECT_GE(sample(text, "process_open_fds"), 3);
  EXPECT_GE(sample(text, "process_max_fds"), sample(text, "process_open_fds"));
  EXPECT_GT(sample(text, "process_start_time_seconds"), 1.6e9);
  EXPECT_NE(text.find("\nswitchboard_build_info{version=\"0.1.0\",commit=\"abc123\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
  std::string om = r.expose(Format::kOpenMetrics);
  EXPECT_NE(om.find("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n"),
            std::string::npos)
      << om;
}

}  // namespace
}  // namespace sb::telemetry
