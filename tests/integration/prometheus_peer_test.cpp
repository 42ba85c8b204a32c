// The Prometheus harness (testing/prometheus.hpp) proven against the real peers, a
// Prometheus 2.42 server and promtool, without Switchboard: the scrape target is
// static_metrics.py serving a fixed exposition.
#include "testing/prometheus.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <string>

#include "testing/switchboard.hpp"

#ifndef SB_SOURCE_DIR
#error "SB_SOURCE_DIR must name the source tree"
#endif

namespace sb::testing {
namespace {

using std::chrono::milliseconds;

// A counter and a classic histogram, promtool-clean. The median of the histogram's 10
// observations is rank 5, in the (0.25, 0.5] bucket holding ranks 4..8: Prometheus
// interpolates linearly, 0.25 + 0.25 * (5 - 3) / 5 = 0.35.
constexpr std::string_view kExposition =
    "# HELP demo_requests_total Requests served.\n"
    "# TYPE demo_requests_total counter\n"
    "demo_requests_total{code=\"200\"} 7\n"
    "# HELP demo_latency_seconds Request latency.\n"
    "# TYPE demo_latency_seconds histogram\n"
    "demo_latency_seconds_bucket{le=\"0.1\"} 1\n"
    "demo_latency_seconds_bucket{le=\"0.25\"} 3\n"
    "demo_latency_seconds_bucket{le=\"0.5\"} 8\n"
    "demo_latency_seconds_bucket{le=\"1\"} 10\n"
    "demo_latency_seconds_bucket{le=\"+Inf\"} 10\n"
    "demo_latency_seconds_sum 3.7\n"
    "demo_latency_seconds_count 10\n";

// static_metrics.py serving the file `metrics.txt` of its own temporary directory.
class StaticTarget {
 public:
  explicit StaticTarget(std::string_view exposition) {
    file_ = dir_.write_file("metrics.txt", exposition);
    ProcessOptions p;
    p.args = {python_binary(), std::string(SB_SOURCE_DIR) + "/tests/integration/static_metrics.py",
              file_};
    p.env = base_environment();
    p.env["PYTHONUNBUFFERED"] = "1";
    process_ = std::make_unique<Process>(std::move(p));
    static const std::regex kPort(R"(^PORT ([0-9]+)$)");
    if (auto m = process_->wait_for_line(Stream::kStdout, kPort, default_timeout())) {
      port_ = static_cast<std::uint16_t>(std::stoi(m->groups[1]));
    }
  }
  ~StaticTarget() {
    if (::testing::Test::HasFailure()) std::cerr << "=== static_metrics.py ===\n" << describe();
    if (process_->signal(SIGTERM)) process_->wait_exit(scaled(milliseconds(2'000)));
  }

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  void serve(std::string_view exposition) { dir_.write_file("metrics.txt", exposition); }
  Process& process() { return *process_; }
  std::string describe() const { return process_->describe(); }

 private:
  TempDir dir_;
  std::string file_;
  std::unique_ptr<Process> process_;
  std::uint16_t port_ = 0;
};

bool near(double a, double b) { return a > b - 1e-9 && a < b + 1e-9; }

// A scrape end to end: the target comes up, its samples and labels are queryable,
// histogram_quantile interpolates inside the right bucket, query errors are reported, and
// a target that starts serving garbage goes down with the scrape error.
TEST(PrometheusPeerTest, ScrapesAndQueriesAStaticTarget) {
  StaticTarget target(kExposition);
  ASSERT_NE(target.port(), 0) << target.describe();
  PrometheusServer prom(target.address());
  if (!prom.binary_found()) GTEST_SKIP() << prom.error();
  ASSERT_TRUE(prom.started()) << prom.error();

  ASSERT_TRUE(prom.wait_for_target_up()) << prom.last_error();
  auto t = prom.target();
  ASSERT_TRUE(t) << prom.last_error();
  EXPECT_EQ(t->scrape_url, "http://" + target.address() + "/metrics");
  EXPECT_EQ(t->last_error, "");

  EXPECT_EQ(prom.wait_for_value("up", [](double v) { return v == 1; }), 1.0) << prom.last_error();
  EXPECT_EQ(prom.wait_for_value("demo_requests_total{code=\"200\"}"), 7.0) << prom.last_error();

  auto labels = prom.series("demo_requests_total");
  ASSERT_EQ(labels.size(), 1u) << prom.last_error();
  const std::map<std::string, std::string> want = {{"__name__", "demo_requests_total"},
                                                   {"code", "200"},
                                                   {"instance", target.address()},
                                                   {"job", "switchboard"}};
  EXPECT_EQ(labels[0], want);
  EXPECT_EQ(prom.series("sum by (le) (demo_latency_seconds_bucket)").size(), 5u)
      << prom.last_error();

  auto p50 = prom.query("histogram_quantile(0.5, demo_latency_seconds_bucket)");
  ASSERT_TRUE(p50) << prom.last_error();
  EXPECT_GT(*p50, 0.25);
  EXPECT_LE(*p50, 0.5);
  EXPECT_TRUE(near(*p50, 0.35)) << *p50;
  auto scalar = prom.query("scalar(demo_latency_seconds_count) * 2");
  ASSERT_TRUE(scalar) << prom.last_error();
  EXPECT_EQ(*scalar, 20.0);

  EXPECT_FALSE(prom.query("sum(")) << "a syntax error gives no value";
  EXPECT_NE(prom.last_error().find("errorType=bad_data"), std::string::npos) << prom.last_error();
  EXPECT_NE(prom.last_error().find("parse error"), std::string::npos) << prom.last_error();
  EXPECT_FALSE(prom.query("demo_no_such_metric"));
  EXPECT_NE(prom.last_error().find("empty result"), std::string::npos) << prom.last_error();
  EXPECT_TRUE(prom.series("demo_no_such_metric").empty());

  target.serve("demo_broken notanumber\n");
  std::optional<PrometheusTarget> down;
  EXPECT_TRUE(eventually([&] {
    down = prom.target();
    return down && down->health == "down";
  })) << prom.last_error();
  ASSERT_TRUE(down);
  EXPECT_NE(down->last_error.find("ParseFloat"), std::string::npos) << down->last_error;
  EXPECT_EQ(prom.wait_for_value("up", [](double v) { return v == 0; }), 0.0) << prom.last_error();
}

// With native_histograms, the server asks for the protobuf exposition first and still
// takes the text one from a target that only speaks text.
TEST(PrometheusPeerTest, NativeHistogramsNegotiateProtobuf) {
  StaticTarget target(kExposition);
  ASSERT_NE(target.port(), 0) << target.describe();
  PrometheusOptions options;
  options.target = target.address();
  options.native_histograms = true;
  PrometheusServer prom(options);
  if (!prom.binary_found()) GTEST_SKIP() << prom.error();
  ASSERT_TRUE(prom.started()) << prom.error();

  static const std::regex kScrape(R"(^SCRAPE accept=(.*)$)");
  auto scrape =
      target.process().wait_for_line(Stream::kStdout, kScrape, scaled(milliseconds(15'000)));
  ASSERT_TRUE(scrape) << target.describe();
  EXPECT_EQ(scrape->groups[1].rfind(
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", 0),
            0u)
      << scrape->groups[1];
  EXPECT_EQ(prom.wait_for_value("demo_requests_total"), 7.0) << prom.last_error();
}

// promtool on stdin: a clean exposition exits 0 silently; lint problems exit 3 and a parse
// error exits 1, each with its message.
TEST(PrometheusPeerTest, PromtoolChecksExpositions) {
  if (promtool_binary().empty()) GTEST_SKIP() << "promtool not found on PATH (nor $SB_PROMTOOL)";
  PromtoolResult good = promtool_check_metrics(kExposition);
  EXPECT_EQ(good.exit_code, 0) << good.output;
  EXPECT_EQ(good.output, "");

  PromtoolResult lint = promtool_check_metrics(
      "# HELP demo_requests Requests served.\n# TYPE demo_requests counter\ndemo_requests 7\n");
  EXPECT_EQ(lint.exit_code, 3) << lint.output;
  EXPECT_NE(lint.output.find("demo_requests counter metrics should have \"_total\" suffix"),
            std::string::npos)
      << lint.output;

  PromtoolResult parse = promtool_check_metrics("x{route=\"users\" code=\"503\"} 3\n");
  EXPECT_EQ(parse.exit_code, 1) << parse.output;
  EXPECT_NE(parse.output.find("text format parsing error in line 1"), std::string::npos)
      << parse.output;

  PromtoolResult no_newline = promtool_check_metrics("# HELP a A.\n# TYPE a gauge\na 1");
  EXPECT_NE(no_newline.exit_code, 0) << no_newline.output;
  EXPECT_NE(no_newline.output.find("unexpected end of input stream"), std::string::npos)
      << no_newline.output;
}

}  // namespace
}  // namespace sb::testing
