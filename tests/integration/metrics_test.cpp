// GET /metrics as a scraper sees it: where it is served, the formats, the names and labels
// of what a mixed load produces, the series cap, and the status document's percentiles.
// The real Prometheus server and promtool check the same scrapes (prometheus_test.cpp).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <map>
#include <sstream>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

/// The samples of a text exposition: "name{labels}" -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

/// The sum of the samples of `name` whose labels include every one of `labels`
/// (`key="value"` pieces); nullopt when no sample matches.
std::optional<double> value(const std::map<std::string, double>& s, const std::string& name,
                            const std::vector<std::string>& labels = {}) {
  std::optional<double> sum;
  for (const auto& [series, v] : s) {
    if (series.rfind(name, 0) != 0) continue;
    const std::string rest = series.substr(name.size());
    if (!rest.empty() && rest[0] != '{') continue;
    bool all = true;
    for (const auto& l : labels) all = all && rest.find(l) != std::string::npos;
    if (!all) continue;
    sum = sum.value_or(0) + v;
  }
  return sum;
}

std::string gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return {};
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

/// A port no one listens on now (bound to 0 and released): for PROMETHEUS_PORT, which
/// takes a number.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class MetricsTest : public GatewayTest {
 protected:
  std::map<std::string, double> scrape(std::uint16_t port = 0) {
    HttpClient c(port != 0 ? port : sb_->port());
    const Response r = c.get("/metrics");
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    last_ = r.body;
    return samples(r.body);
  }
  /// A request is recorded after its answer went out (and maybe on another worker than the
  /// scrape): scrapes until the requests counted reach `n`, and returns that scrape.
  std::map<std::string, double> wait_recorded(double n, std::uint16_t port = 0) {
    std::map<std::string, double> s;
    EXPECT_TRUE(eventually([&] {
      s = scrape(port);
      return value(s, "http_server_request_duration_seconds_count").value_or(0) >= n;
    })) << last_;
    return s;
  }
  std::string last_;
};

// One of each kind of request, then the names and labels a dashboard would query.
TEST_F(MetricsTest, MixedTrafficIsMeasuredByServiceRouteMethodAndStatus) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "routes:\n  - {prefix: /api, service: x}\n"
      "services:\n  x:\n    retry: {max_retries: 1, backoff_base: 0ms, backoff_max: 0ms}\n"
      "  dead:\n    instances: [{url: \"http://127.0.0.1:1\"}]\n"
      "    retry: {max_retries: 0}\n"
      "    fallback: {status: 200, body: \"{}\"}\n",
      {"--threads", "2"}));
  HttpClient c = client();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.get("/svc/x/echo").status, 200);
  EXPECT_EQ(c.get("/api/echo").status, 200);
  EXPECT_EQ(c.request("POST", "/svc/x/echo-body", {}, std::string(1000, 'a')).status, 200);
  EXPECT_EQ(c.get("/svc/x/status/503").status, 503);  // retried once, then the 503
  EXPECT_EQ(c.get("/svc/dead/x").status, 200);        // the fallback
  EXPECT_EQ(client().get("/nowhere").status, 404);    // no route

  const auto s = wait_recorded(8);
  EXPECT_EQ(value(s, "http_server_request_duration_seconds_count",
                  {"service=\"x\"", "http_route=\"/svc/{service}\"", "http_request_method=\"GET\"",
                   "http_response_status_code=\"200\""}),
            3.0)
      << last_;
  EXPECT_EQ(value(s, "http_server_request_duration_seconds_count",
                  {"service=\"x\"", "http_route=\"/api\"", "http_response_status_code=\"200\""}),
            1.0);
  EXPECT_EQ(value(s, "http_server_request_duration_seconds_count",
                  {"service=\"\"", "http_route=\"\"", "http_response_status_code=\"404\""}),
            1.0);
  EXPECT_EQ(value(s, "http_server_request_body_size_bytes_sum",
                  {"service=\"x\"", "http_request_method=\"POST\""}),
            1000.0);
  // Two attempts for the 503: the first and its retry, each seen by the client histogram.
  EXPECT_EQ(value(s, "http_client_request_duration_seconds_count",
                  {"service=\"x\"", "http_response_status_code=\"503\"", "attempt=\"first\""}),
            1.0);
  EXPECT_EQ(value(s, "http_client_request_duration_seconds_count",
                  {"service=\"x\"", "http_response_status_code=\"503\"", "attempt=\"retry\""}),
            1.0);
  EXPECT_EQ(value(s, "switchboard_retries_total", {"service=\"x\""}), 1.0);
  EXPECT_EQ(value(s, "http_client_request_duration_seconds_count",
                  {"service=\"dead\"", "error_type=\"connect\""}),
            1.0);
  EXPECT_EQ(value(s, "switchboard_fallbacks_total", {"service=\"dead\"", "kind=\"failed\""}), 1.0);
  EXPECT_EQ(value(s, "http_server_active_requests", {"service=\"x\""}), 0.0);
  // The classic buckets end with +Inf, which holds every request.
  EXPECT_EQ(value(s, "http_server_request_duration_seconds_bucket",
                  {"service=\"x\"", "http_route=\"/svc/{service}\"", "http_request_method=\"GET\"",
                   "http_response_status_code=\"200\"", "le=\"+Inf\""}),
            3.0);
  // Pools (each worker publishes its pools' counts on its 100 ms tick), registry, breakers,
  // process.
  std::map<std::string, double> later;
  EXPECT_TRUE(eventually([&] {
    later = scrape();
    return value(later, "switchboard_pool_connections_created_total", {"service=\"x\""})
                   .value_or(0) >= 1 &&
           value(later, "switchboard_pool_connections_reused_total", {"service=\"x\""})
                   .value_or(0) >= 1;
  })) << last_;
  EXPECT_EQ(value(s, "switchboard_registry_instances", {"service=\"x\"", "state=\"unknown\""}),
            1.0);
  EXPECT_EQ(
      value(s, "switchboard_breaker_state", {"service=\"x\"", "instance=\"\"", "state=\"closed\""}),
      1.0);
  EXPECT_GT(value(s, "process_resident_memory_bytes").value_or(0), 1e6);
  EXPECT_GT(value(s, "process_start_time_seconds").value_or(0), 1.7e9);
  EXPECT_EQ(value(s, "switchboard_build_info"), 1.0);
  EXPECT_TRUE(value(s, "switchboard_worker_loop_lag_seconds_count", {"worker=\"1\""}));
}

// Like /health, /metrics is Switchboard's own, even with a route for "/".
TEST_F(MetricsTest, IsAnsweredBeforeRouting) {
  ASSERT_NO_FATAL_FAILURE(start_gateway("routes:\n  - {prefix: /, service: x}\n"));
  EXPECT_EQ(client().get("/echo").status, 200);
  wait_recorded(1);
  const Response r = client().get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("# TYPE http_server_request_duration_seconds histogram"), std::string::npos)
      << r.body.substr(0, 2000);
  EXPECT_EQ(up_->requests_logged("/metrics"), 0u);
  EXPECT_EQ(client().request("POST", "/metrics").status, 405);
  const Response head = client().request("HEAD", "/metrics");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
}

TEST_F(MetricsTest, OffWithTheExporterSwitch) {
  SwitchboardOptions o;
  o.env["OTEL_PROMETHEUS_EXPORTER"] = "false";
  ASSERT_NO_FATAL_FAILURE(start_gateway("routes:\n  - {prefix: /, service: x}\n", {}, o));
  const Response r = client().get("/metrics");  // routed: the upstream's answer (a 404)
  EXPECT_EQ(r.body.find("# TYPE"), std::string::npos) << r.body;
  EXPECT_EQ(up_->wait_logged("/metrics", 1), 1u);
}

TEST_F(MetricsTest, OnTheAdminListenerWhenThereIsOne) {
  SwitchboardOptions o;
  o.expect_admin = true;
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "server:\n  admin_listen: 127.0.0.1:0\nroutes:\n  - {prefix: /, service: x}\n", {}, o));
  EXPECT_EQ(client().get("/metrics").body.find("# TYPE"), std::string::npos);
  EXPECT_EQ(up_->wait_logged("/metrics", 1), 1u);  // the main listener routes it
  HttpClient admin(sb_->admin_port());
  const Response r = admin.get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("http_server_request_duration_seconds_bucket"), std::string::npos);
}

TEST_F(MetricsTest, OnPrometheusPortToo) {
  const std::uint16_t port = free_port();
  SwitchboardOptions o;
  o.env["PROMETHEUS_PORT"] = std::to_string(port);
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {}, o));
  EXPECT_EQ(client().get("/svc/x/echo").status, 200);
  const auto s = wait_recorded(1, port);
  EXPECT_EQ(value(s, "http_server_request_duration_seconds_count", {"service=\"x\""}), 1.0);
  HttpClient c(port);
  expect_problem(c.get("/health"), 404);  // that port serves /metrics only
  expect_problem(c.get("/api/services"), 404);
  EXPECT_EQ(client().get("/metrics").status, 200);  // and the main listener still does
}

TEST_F(MetricsTest, GzipAndOpenMetricsWhenAsked) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  EXPECT_EQ(client().get("/svc/x/echo").status, 200);
  wait_recorded(1);
  HttpClient c = client();
  const Response z = c.get("/metrics", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(z.status, 200);
  EXPECT_EQ(z.header("Content-Encoding"), "gzip");
  const std::string text = gunzip(z.body);
  EXPECT_NE(text.find("http_server_request_duration_seconds_count{service=\"x\""),
            std::string::npos)
      << text.substr(0, 1000);
  const Response id = c.get("/metrics", {{"Accept-Encoding", "gzip;q=0, identity"}});
  EXPECT_EQ(id.header("Content-Encoding"), "");

  const Response om = c.get("/metrics", {{"Accept",
                                          "application/openmetrics-text;version=1.0.0,"
                                          "application/openmetrics-text;version=0.0.1;q=0.75,"
                                          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}});
  EXPECT_EQ(om.status, 200);
  EXPECT_EQ(om.header("Content-Type").rfind("application/openmetrics-text; version=1.0.0", 0), 0u)
      << om.header("Content-Type");
  ASSERT_GE(om.body.size(), 6u);
  EXPECT_EQ(om.body.substr(om.body.size() - 6), "# EOF\n");
  EXPECT_NE(om.body.find("# TYPE switchboard_retries counter"), std::string::npos);
}

// Past telemetry.series_limit, new label sets share one overflow series, and the overflow
// is counted; what was there before keeps its own series.
TEST_F(MetricsTest, SeriesCapSendsNewLabelSetsToTheOverflowSeries) {
  ASSERT_NO_FATAL_FAILURE(start_gateway("telemetry:\n  series_limit: 3\n"));
  HttpClient c = client();
  for (int code : {200, 201, 202, 203, 204, 205}) c.get("/svc/x/status/" + std::to_string(code));
  const auto s = wait_recorded(6);
  EXPECT_EQ(
      value(s, "http_server_request_duration_seconds_count", {"http_response_status_code=\"200\""}),
      1.0)
      << last_;
  EXPECT_EQ(
      value(s, "http_server_request_duration_seconds_count", {"otel_metric_overflow=\"true\""}),
      3.0);
  EXPECT_EQ(value(s, "switchboard_metric_series_overflow_total",
                  {"metric=\"http_server_request_duration_seconds\""}),
            3.0);
}

// The status document's percentiles come from the same histograms: a 200 ms upstream reads
// as 200 ms (within the buckets' 1.1%, plus the proxy's own time).
TEST_F(MetricsTest, StatusPercentilesComeFromTheHistograms) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("/svc/x/slow/200").status, 200);
  // The control loop rotates the windows every 250 ms: the first turn after the requests
  // shows them.
  std::optional<double> p50, p99;
  std::optional<long long> n;
  ASSERT_TRUE(eventually([&] {
    const Response r = client().get("/api/services/status");
    const auto doc = parse_json(r.body);
    if (!doc) return false;
    for (const auto& svc : doc->at("services").as_array()) {
      if (svc.at("name").as_string() != "x") continue;
      const auto& lat = svc.at("latency");
      n = json_int(lat, "requests");
      p50 = json_double(lat, "p50_ms");
      p99 = json_double(lat, "p99_ms");
    }
    return n.value_or(0) == 5;
  })) << "requests: "
      << n.value_or(-1);
  ASSERT_TRUE(p50 && p99);
  EXPECT_GE(*p50, 200.0 * 0.99);
  EXPECT_LE(*p50, 200.0 * 1.15);
  EXPECT_GE(*p99, *p50);
}

}  // namespace
}  // namespace sb::testing
