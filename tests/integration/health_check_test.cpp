// Active health checks with real upstream processes: instances get traffic once their
// checks pass, and none once they fail.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using Clock = std::chrono::steady_clock;

class HealthCheckTest : public GatewayTest {
 protected:
  // Starts upstream.py, then Switchboard with checks every 100 ms, `--service x=<up>` and
  // the configuration `make_yaml(<up url>)`. Fatal on failure: ASSERT_NO_FATAL_FAILURE.
  void start_checked(const std::function<std::string(const std::string&)>& make_yaml) {
    up_ = std::make_unique<Upstream>("up");
    ASSERT_TRUE(up_->started()) << up_->error();
    SwitchboardOptions options;
    options.env["HEALTH_CHECK_INTERVAL"] = "100";
    options.args = {"--service", "x=" + up_->url(), "--config",
                    write_config(make_yaml(up_->url()))};
    sb_ = std::make_unique<Switchboard>(std::move(options));
    ASSERT_TRUE(sb_->started()) << sb_->error();
  }

  // Polls GET `target` until it answers `status` or the deadline passes; returns the last.
  int wait_for_status(const std::string& target, int status, std::chrono::milliseconds within) {
    const auto deadline = Clock::now() + scaled(within);
    int last = 0;
    while (Clock::now() < deadline) {
      Response r = client().get(target);
      last = r.ok() ? r.status : -1;
      if (last == status) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return last;
  }
};

// A healthy instance takes traffic, one whose checks fail gets none (503), a service
// without checks routes as before; killing the healthy upstream takes it out within
// fall x interval.
TEST_F(HealthCheckTest, FailingInstancesGetNoTraffic) {
  Upstream other("other");
  ASSERT_TRUE(other.started()) << other.error();
  ASSERT_NO_FATAL_FAILURE(start_checked([&](const std::string& u) {
    return std::string(
        "services:\n"
        "  good:\n"
        "    instances: [\"" +
        other.url() +
        "\"]\n"
        "    health_check: {path: /echo/health, timeout: 500ms}\n"
        "  failing:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {path: /status/503, timeout: 500ms}\n");
  }));

  EXPECT_EQ(wait_for_status("/svc/good/echo", 200, std::chrono::milliseconds(5000)), 200);
  EXPECT_EQ(wait_for_status("/svc/failing/echo", 503, std::chrono::milliseconds(5000)), 503);
  expect_problem(client().get("/svc/failing/echo"), 503);
  EXPECT_EQ(client().get("/svc/x/echo").status, 200) << "unchecked services are unaffected";

  // The registry shows why, once `fall` checks have failed (before that: not checked yet).
  const auto deadline = Clock::now() + scaled(std::chrono::milliseconds(5000));
  Response reg;
  do {
    reg = client().get("/api/services/failing");
    if (reg.body.find("\"state\":\"unhealthy\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (Clock::now() < deadline);
  ASSERT_EQ(reg.status, 200);
  EXPECT_NE(reg.body.find("\"state\":\"unhealthy\""), std::string::npos) << reg.body;
  EXPECT_NE(reg.body.find("HTTP 503"), std::string::npos) << reg.body;
  EXPECT_EQ(client().get("/svc/failing/echo").status, 503);

  // The status document: per service and instance, state, last check and traffic figures.
  Response status = client().get("/api/services/status");
  ASSERT_EQ(status.status, 200) << status.raw;
  auto doc = parse_json(status.body);
  ASSERT_TRUE(doc && doc->is_object()) << status.body;
  bool saw_failing = false, saw_good = false;
  for (const auto& svc : doc->as_object().at("services").as_array()) {
    const auto& o = svc.as_object();
    const auto& inst = o.at("instances").as_array().at(0).as_object();
    if (o.at("name") == "failing") {
      saw_failing = true;
      EXPECT_EQ(o.at("state"), "unavailable");
      EXPECT_EQ(inst.at("last_check").as_object().at("result"), "HTTP 503 (expected 200-399)");
    } else if (o.at("name") == "good") {
      saw_good = true;
      EXPECT_EQ(o.at("state"), "healthy");
      EXPECT_GE(inst.at("requests").to_number<double>(), 1.0);
      EXPECT_TRUE(inst.contains("p95_ms"));
      EXPECT_TRUE(inst.contains("in_flight"));
    }
  }
  EXPECT_TRUE(saw_failing && saw_good) << status.body;

  // Kill the healthy upstream: after `fall` (3) failed checks it gets no traffic.
  other.process().signal(SIGKILL);
  EXPECT_EQ(wait_for_status("/svc/good/echo", 503, std::chrono::milliseconds(5000)), 503);
}

// Check options: expected status lists, expected body text, method and headers, TCP checks.
TEST_F(HealthCheckTest, CheckOptions) {
  ASSERT_NO_FATAL_FAILURE(start_checked([&](const std::string& u) {
    return std::string(
        "services:\n"
        "  teapot:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {path: /status/418, expect_status: \"418,500-599\"}\n"
        "  body-ok:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {path: /echo, method: HEAD, expect_body: \"\"}\n"
        "  body-bad:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {path: /echo, expect_body: \"no such text\"}\n"
        "  header:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {path: /echo, expect_body: \"x-probe\", headers: {X-Probe: \"1\"}}\n"
        "  tcp:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {type: tcp}\n");
  }));
  for (const char* healthy : {"teapot", "body-ok", "header", "tcp"})
    EXPECT_EQ(wait_for_status(std::string("/svc/") + healthy + "/echo", 200,
                              std::chrono::milliseconds(5000)),
              200)
        << healthy;
  // Never healthy: the body lacks the text (its checks fail, so it gets no traffic).
  std::this_thread::sleep_for(scaled(std::chrono::milliseconds(500)));
  EXPECT_EQ(client().get("/svc/body-bad/echo").status, 503);
}

// panic_threshold: when fewer than that share of instances pass their checks, traffic goes
// to all of them instead of answering 503.
TEST_F(HealthCheckTest, PanicThresholdSpreadsOverAllInstances) {
  ASSERT_NO_FATAL_FAILURE(start_checked([&](const std::string& u) {
    return std::string(
        "services:\n"
        "  calm:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    health_check: {path: /status/503}\n"
        "  panicky:\n"
        "    instances: [\"" +
        u +
        "\"]\n"
        "    panic_threshold: 50\n"
        "    health_check: {path: /status/503}\n");
  }));
  EXPECT_EQ(client().get("/svc/calm/echo").status, 503);
  EXPECT_EQ(client().get("/svc/panicky/echo").status, 200);
}

}  // namespace
}  // namespace sb::testing
