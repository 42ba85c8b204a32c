// Switchboard's /metrics against the real peers: promtool accepts a scrape taken after
// mixed traffic, and a real Prometheus 2.42 server scrapes it and answers queries with the
// request counts and a latency percentile close to a slow upstream's known latency, from
// the classic buckets and (with native histograms on) from the native ones.
#include <gtest/gtest.h>

#include <string>

#include "testing/gateway_fixture.hpp"
#include "testing/prometheus.hpp"

namespace sb::testing {
namespace {

class PrometheusTest : public GatewayTest {
 protected:
  // Success, retries, an open breaker, a fallback and a 404, before the scrape.
  void mixed_traffic() {
    HttpClient c = client();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(c.get("/svc/x/echo").status, 200);
    EXPECT_EQ(c.get("/svc/x/status/503").status, 503);  // retried
    EXPECT_EQ(c.get("/svc/dead/a").status, 200);        // fallback (connect refused)
    EXPECT_EQ(c.get("/svc/dead/b").status, 200);        // the breaker opens after 2 failures
    EXPECT_EQ(c.get("/svc/dead/c").status, 200);        // fallback: breaker open
    EXPECT_EQ(client().get("/nowhere").status, 404);
  }
};

constexpr std::string_view kMixed =
    "services:\n"
    "  x:\n    retry: {max_retries: 1, backoff_base: 0ms, backoff_max: 0ms}\n"
    "  dead:\n    instances: [{url: \"http://127.0.0.1:1\"}]\n"
    "    retry: {max_retries: 0}\n"
    "    breaker: {consecutive_failures: 2}\n"
    "    fallback: {status: 200, body: \"{}\"}\n";

TEST_F(PrometheusTest, PromtoolAcceptsAScrapeAfterMixedTraffic) {
  if (promtool_binary().empty()) GTEST_SKIP() << "promtool not found";
  ASSERT_NO_FATAL_FAILURE(start_gateway(kMixed));
  mixed_traffic();
  // A request is recorded after its answer went out: wait for the last one (the 404).
  Response r;
  EXPECT_TRUE(eventually([&] {
    r = client().get("/metrics");
    return r.body.find("http_response_status_code=\"404\"} 1") != std::string::npos;
  })) << r.body;
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("switchboard_fallbacks_total{service=\"dead\",kind=\"breaker_open\"} 1"),
            std::string::npos)
      << r.body;
  EXPECT_NE(
      r.body.find("switchboard_breaker_state{service=\"dead\",instance=\"\",state=\"open\"} 1"),
      std::string::npos);
  const PromtoolResult p = promtool_check_metrics(r.body);
  EXPECT_EQ(p.exit_code, 0) << p.output;
}

// A real server scrapes Switchboard (it negotiates OpenMetrics) and its queries see the
// requests and, from the classic buckets, the latency of a 300 ms upstream.
TEST_F(PrometheusTest, ServerScrapesAndQueriesCountsAndPercentiles) {
  PrometheusServer probe("127.0.0.1:1");
  if (!probe.binary_found()) GTEST_SKIP() << probe.error();
  ASSERT_NO_FATAL_FAILURE(start_gateway(kMixed));
  mixed_traffic();
  HttpClient c = client();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.get("/svc/x/slow/300").status, 200);
  PrometheusServer prom("127.0.0.1:" + std::to_string(sb_->port()));
  ASSERT_TRUE(prom.started()) << prom.error();
  ASSERT_TRUE(prom.wait_for_target_up()) << prom.last_error();
  const auto n = prom.wait_for_value(
      "sum(http_server_request_duration_seconds_count{service=\"x\",http_route=\"/svc/"
      "{service}\"})",
      [](double v) { return v == 8; });
  EXPECT_EQ(n, 8.0) << prom.last_error();
  EXPECT_EQ(prom.query("switchboard_retries_total{service=\"x\"}"), 1.0) << prom.last_error();
  EXPECT_EQ(prom.query("sum(switchboard_fallbacks_total{service=\"dead\"})"), 3.0)
      << prom.last_error();
  // The 300 ms requests are 4 of 8 and all in the (0.25, 0.5] bucket: the p99 lies in it
  // (histogram_quantile interpolates inside the bucket).
  const auto slow = prom.query(
      "histogram_quantile(0.99, sum by (le) (http_server_request_duration_seconds_bucket{"
      "service=\"x\"}))");
  ASSERT_TRUE(slow) << prom.last_error();
  EXPECT_GT(*slow, 0.25);
  EXPECT_LE(*slow, 0.5);
}

// With native histograms, Prometheus asks for the protobuf exposition; histogram_quantile
// over the native series is within 2% of the upstream's known latency.
TEST_F(PrometheusTest, NativeHistogramQuantileIsWithinTwoPercent) {
  PrometheusServer probe("127.0.0.1:1");
  if (!probe.binary_found()) GTEST_SKIP() << probe.error();
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("/svc/x/slow/300").status, 200);
  PrometheusOptions o;
  o.target = "127.0.0.1:" + std::to_string(sb_->port());
  o.native_histograms = true;
  PrometheusServer prom(o);
  ASSERT_TRUE(prom.started()) << prom.error();
  ASSERT_TRUE(prom.wait_for_target_up()) << prom.last_error();
  // The attempt to the upstream: the 300 ms it waits, plus loopback and python's time.
  const auto q = prom.wait_for_value(
      "histogram_quantile(0.5, http_client_request_duration_seconds{service=\"x\","
      "http_response_status_code=\"200\"})",
      [](double v) { return v > 0; });
  ASSERT_TRUE(q) << prom.last_error();
  EXPECT_GE(*q, 0.300 * 0.98);
  EXPECT_LE(*q, 0.300 * 1.02 + 0.005);  // + what python and loopback add to the 300 ms
  // The scrape was the protobuf one.
  const Response m = client().get("/metrics");
  EXPECT_NE(m.body.find("switchboard_metrics_scrapes_total{format=\"protobuf\"}"),
            std::string::npos);
}

}  // namespace
}  // namespace sb::testing
