// The gateway's metrics stage on a manual clock: which series a finished request, an
// attempt and a fallback bump (by name and labels), and the status document's windows.
#include "gateway/metrics.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/config_load.hpp"
#include "gateway/guards.hpp"
#include "gateway/plan.hpp"
#include "http/message.hpp"
#include "registry/registry.hpp"
#include "testing/manual_clock.hpp"

namespace sb::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

core::Config one_service() {
  core::Config c;
  core::ServiceConfig s;
  s.name = "s";
  core::InstanceConfig i;
  std::string why;
  i.url = *core::parse_upstream_url("http://127.0.0.1:20001", &why);
  s.instances.push_back(i);
  c.services.push_back(s);
  return c;
}

class GatewayMetricsTest : public ::testing::Test {
 protected:
  explicit GatewayMetricsTest(core::TelemetryConfig t = {})
      : telemetry_(telemetry::RegistryOptions{2, 100, seconds(600)}), metrics_(telemetry_, t) {}

  /// The count of a request-duration series.
  std::uint64_t requests(std::string_view service, std::string_view route, std::string_view method,
                         std::string_view status) {
    return metrics_.server_duration.with({service, route, method, status}).snapshot().count;
  }

  static RequestMetrics::Finished finished(int status, core::Duration took,
                                           http::Method m = http::Method::kGet) {
    return RequestMetrics::Finished{"/api", 1, m, status, took, 10, 200};
  }

  testing::ManualClock clock_;
  telemetry::Registry telemetry_;
  GatewayMetrics metrics_;
};

TEST_F(GatewayMetricsTest, AFinishedRequestCountsByServiceRouteMethodAndStatus) {
  RequestMetrics r(metrics_);
  auto* s = r.started("s");
  EXPECT_EQ(metrics_.server_active.with({"s"}).value(), 1.0);
  r.finished(s, finished(200, milliseconds(5)));
  r.finished(r.started("s"), finished(200, milliseconds(7)));
  r.finished(r.started("s"), finished(503, milliseconds(9)));
  r.finished(r.started("s"), finished(200, milliseconds(1), http::Method::kOther));
  r.finished(nullptr,
             RequestMetrics::Finished{"", 0, http::Method::kGet, 404, milliseconds(1), 0, 100});
  EXPECT_EQ(metrics_.server_active.with({"s"}).value(), 0.0);
  EXPECT_EQ(requests("s", "/api", "GET", "200"), 2u);
  EXPECT_EQ(requests("s", "/api", "GET", "503"), 1u);
  EXPECT_EQ(requests("s", "/api", "_OTHER", "200"), 1u);
  EXPECT_EQ(requests("", "", "GET", "404"), 1u);
  const auto d = metrics_.server_duration.with({"s", "/api", "GET", "200"}).snapshot();
  EXPECT_NEAR(d.sum, 0.012, 1e-9);
  EXPECT_EQ(metrics_.server_request_size.with({"s", "/api", "GET"}).snapshot().sum,
            30.0);  // the three GETs
  EXPECT_EQ(metrics_.server_response_size.with({"s", "/api", "GET"}).snapshot().sum, 600.0);
}

TEST_F(GatewayMetricsTest, RetriesBudgetHedgesDeadlinesAndFallbacks) {
  RequestMetrics r(metrics_);
  auto f = finished(200, milliseconds(5));
  f.retries = 2;
  f.budget_exhausted = true;
  f.hedged = true;
  f.hedge_won = true;
  r.finished(r.started("s"), f);
  f = finished(504, milliseconds(5));
  f.hedged = true;
  f.deadline_expired = true;
  auto* s = r.started("s");
  r.fallback(s, FallbackKind::kBreakerOpen);
  r.fallback(s, FallbackKind::kBreakerOpen);
  r.fallback(s, FallbackKind::kStatus);
  r.finished(s, f);
  EXPECT_EQ(metrics_.retries.with({"s"}).value(), 2u);
  EXPECT_EQ(metrics_.retry_budget_exhausted.with({"s"}).value(), 1u);
  EXPECT_EQ(metrics_.hedges.with({"s", "won"}).value(), 1u);
  EXPECT_EQ(metrics_.hedges.with({"s", "lost"}).value(), 1u);
  EXPECT_EQ(metrics_.deadline_expired.with({"s"}).value(), 1u);
  EXPECT_EQ(metrics_.fallbacks.with({"s", "breaker_open"}).value(), 2u);
  EXPECT_EQ(metrics_.fallbacks.with({"s", "status"}).value(), 1u);
}

TEST_F(GatewayMetricsTest, AttemptsCountByOutcomeAndRole) {
  InstanceMetrics m(metrics_, "s", "a");
  m.attempt(http::Method::kGet, AttemptKind::kResponse, 200, AttemptRole::kFirst, milliseconds(3));
  m.attempt(http::Method::kGet, AttemptKind::kResponse, 200, AttemptRole::kFirst, milliseconds(4));
  m.attempt(http::Method::kGet, AttemptKind::kConnectFailed, 0, AttemptRole::kRetry,
            milliseconds(1));
  m.attempt(http::Method::kGet, AttemptKind::kTimeout, 0, AttemptRole::kHedge, seconds(1));
  m.attempt(http::Method::kGet, AttemptKind::kClient, 0, AttemptRole::kFirst, seconds(1));
  auto count = [&](std::string_view status, std::string_view error, std::string_view role) {
    return metrics_.client_duration.with({"s", "a", "GET", status, error, role}).snapshot().count;
  };
  EXPECT_EQ(count("200", "", "first"), 2u);
  EXPECT_EQ(count("", "connect", "retry"), 1u);
  EXPECT_EQ(count("", "timeout", "hedge"), 1u);
  EXPECT_EQ(count("", "client", "first"), 0u);  // the client's side: says nothing upstream
}

class StatusClassTest : public GatewayMetricsTest {
 protected:
  static core::TelemetryConfig by_class() {
    core::TelemetryConfig t;
    t.status_code_label = core::TelemetryConfig::StatusLabel::kClass;
    return t;
  }
  StatusClassTest() : GatewayMetricsTest(by_class()) {}
};

TEST_F(StatusClassTest, StatusesAreLabelledByClass) {
  RequestMetrics r(metrics_);
  r.finished(r.started("s"), finished(200, milliseconds(1)));
  r.finished(r.started("s"), finished(204, milliseconds(1)));
  r.finished(r.started("s"), finished(503, milliseconds(1)));
  EXPECT_EQ(requests("s", "/api", "GET", "2xx"), 2u);
  EXPECT_EQ(requests("s", "/api", "GET", "5xx"), 1u);
  EXPECT_EQ(status_class(99), "");
  EXPECT_EQ(status_class(599), "5xx");
}

// The status document's percentiles: the histograms minus their snapshot of `window` ago.
TEST_F(GatewayMetricsTest, StatusFiguresCoverTheWindow) {
  const core::Config config = one_service();
  registry::Registry reg(config, clock_, nullptr, std::nullopt);
  Guards guards(reg);
  ControlMetrics control(metrics_, reg, guards, seconds(60));
  RequestMetrics r(metrics_);
  auto status_of_s = [&] {
    boost::json::object doc;
    boost::json::array services;
    boost::json::object s;
    s["name"] = "s";
    s["instances"] = boost::json::array();
    services.push_back(s);
    doc["services"] = services;
    control.annotate_status(doc, clock_.steady_now());
    return doc["services"].as_array()[0].as_object()["latency"].as_object();
  };
  control.tick(clock_.steady_now());
  for (int i = 0; i < 10; ++i) r.finished(r.started("s"), finished(200, milliseconds(100)));
  control.tick(clock_.steady_now());
  auto lat = status_of_s();
  EXPECT_EQ(lat["requests"].as_uint64(), 10u);
  EXPECT_NEAR(lat["p50_ms"].as_double(), 100.0, 0.6);
  EXPECT_NEAR(lat["p99_ms"].as_double(), 100.0, 0.6);
  // Slower requests later; after a full window the fast ones are out of it.
  for (int step = 0; step < 7; ++step) {
    clock_.advance(seconds(10));
    r.finished(r.started("s"), finished(200, milliseconds(400)));
    control.tick(clock_.steady_now());
  }
  lat = status_of_s();
  EXPECT_EQ(lat["requests"].as_uint64(), 6u);
  EXPECT_NEAR(lat["p50_ms"].as_double(), 400.0, 2.5);
  EXPECT_NEAR(lat["request_rate"].as_double(), 6.0 / 60.0, 1e-9);
}

}  // namespace
}  // namespace sb::gateway
