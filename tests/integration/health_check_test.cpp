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

  // Polls GET /api/services/<service> until its first instance is in `state` (and its
  // reason holds `reason`) or the deadline passes; returns the last document.
  std::string wait_for_state(const std::string& service, const std::string& state,
                             const std::string& reason, std::chrono::milliseconds within) {
    std::string doc;
    eventually(
        [&] {
          doc = client().get("/api/services/" + service).body;
          return doc.find("\"state\":\"" + state + "\"") != std::string::npos &&
                 doc.find(reason) != std::string::npos;
        },
        scaled(within));
    return doc;
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

// A killed instance goes unhealthy and gets no traffic; started again on the same port, it
// takes traffic again once `rise` checks have passed.
TEST_F(HealthCheckTest, RestartedInstanceComesBackAfterRise) {
  auto first = std::make_unique<Upstream>("first");
  ASSERT_TRUE(first->started()) << first->error();
  const std::uint16_t port = first->port();
  ASSERT_NO_FATAL_FAILURE(start_checked([&](const std::string&) {
    return "services:\n  back:\n    instances: [\"" + first->url() +
           "\"]\n    health_check: {path: /echo/hc, timeout: 500ms}\n";
  }));
  EXPECT_EQ(wait_for_status("/svc/back/echo", 200, std::chrono::milliseconds(5000)), 200);
  first->process().signal(SIGKILL);
  first->process().wait_exit(scaled(std::chrono::milliseconds(2000)));
  EXPECT_EQ(wait_for_status("/svc/back/echo", 503, std::chrono::milliseconds(5000)), 503);

  UpstreamOptions again;
  again.name = "again";
  again.port = port;
  Upstream second(again);
  ASSERT_TRUE(second.started()) << second.error();
  EXPECT_EQ(wait_for_status("/svc/back/echo", 200, std::chrono::milliseconds(5000)), 200);
  // It came back through its checks: at least `rise` (2) of them reached the new process
  // before the first request did.
  EXPECT_GE(second.wait_logged("/echo/hc", 2), 2u);
  const Response events = client().get("/api/services/back");
  EXPECT_NE(events.body.find("\"state\":\"healthy\""), std::string::npos) << events.body;
}

// Of three instances, the one that answers slowly turns degraded and its share of traffic
// falls (healthy instances weigh four times a degraded one).
TEST_F(HealthCheckTest, SlowInstanceLosesShare) {
  Upstream fast1("fast1"), fast2("fast2");
  UpstreamOptions slow_options;
  slow_options.name = "slow";
  slow_options.delay_ms = 80;
  Upstream slow(slow_options);
  for (auto* u : {&fast1, &fast2, &slow}) ASSERT_TRUE(u->started()) << u->error();
  ASSERT_NO_FATAL_FAILURE(start_checked([&](const std::string&) {
    return "health: {degraded_latency: 40ms, degraded_min_samples: 5}\n"
           "services:\n  three:\n    instances: [\"" +
           fast1.url() + "\", \"" + fast2.url() + "\", \"" + slow.url() +
           "\"]\n    balancer: {kind: weighted_round_robin}\n"
           "    health_check: {path: /echo/hc, timeout: 1s}\n";
  }));
  // All three healthy first, then traffic until the slow one is degraded.
  const auto deadline = Clock::now() + scaled(std::chrono::milliseconds(15000));
  bool degraded = false;
  while (!degraded && Clock::now() < deadline) {
    client().get("/svc/three/echo");
    degraded = client().get("/api/services/three").body.find("\"state\":\"degraded\"") !=
               std::string::npos;
  }
  ASSERT_TRUE(degraded) << client().get("/api/services/status").body;
  const std::size_t slow_before = slow.requests_logged("/echo/x");
  constexpr int kRequests = 90;
  for (int i = 0; i < kRequests; ++i) ASSERT_EQ(client().get("/svc/three/echo/x").status, 200);
  const std::size_t slow_share = slow.requests_logged("/echo/x") - slow_before;
  EXPECT_LT(slow_share, static_cast<std::size_t>(kRequests / 5))
      << "a third would be " << kRequests / 3 << "; weights 4:4:1 give a ninth";
  EXPECT_GT(fast1.requests_logged("/echo/x") + fast2.requests_logged("/echo/x"),
            static_cast<std::size_t>(kRequests * 3 / 4));
}

// HTTP checks keep their connection between checks (one TCP handshake, not one per check).
TEST_F(HealthCheckTest, ChecksReuseTheirConnection) {
  ASSERT_NO_FATAL_FAILURE(start_checked([&](const std::string& u) {
    // No default TCP checks: they would add connections of their own to the count.
    return "health: {default_check: none}\nservices:\n  kept:\n    instances: [\"" + u +
           "\"]\n    health_check: {path: /echo/hc}\n";
  }));
  ASSERT_GE(up_->wait_logged("/echo/hc", 8), 8u);
  const auto stats = up_->stats();
  ASSERT_TRUE(stats.has_value());
  EXPECT_LE(stats->connections_accepted, 2) << "one for the checks, one for this /stats";
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
  // Never healthy: the body lacks the text (its checks fail, so it gets no traffic). Wait
  // for the registry to say so, then see the effect.
  const std::string doc = wait_for_state("body-bad", "unhealthy", "without the expected body text",
                                         std::chrono::milliseconds(5000));
  EXPECT_NE(doc.find("without the expected body text"), std::string::npos) << doc;
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
  // Both instances fail their checks: wait until the registry has judged them, so that the
  // answers below come from that decision, not from "not checked yet".
  for (const char* service : {"calm", "panicky"}) {
    const std::string doc =
        wait_for_state(service, "unhealthy", "HTTP 503", std::chrono::milliseconds(5000));
    EXPECT_NE(doc.find("\"state\":\"unhealthy\""), std::string::npos) << doc;
  }
  EXPECT_EQ(client().get("/svc/calm/echo").status, 503);
  EXPECT_EQ(client().get("/svc/panicky/echo").status, 200);
}

// Issue 10: an instance registered through the API without a check gets the default TCP
// check: when its process dies, the check finds it (before any client request does), and
// the registry says why.
TEST_F(HealthCheckTest, DefaultTcpCheckFindsADeadApiInstance) {
  ASSERT_NO_FATAL_FAILURE(
      start_checked([&](const std::string&) { return std::string("health: {fall: 3}\n"); }));
  Upstream doomed("doomed");
  ASSERT_TRUE(doomed.started()) << doomed.error();
  Response put = client().request("PUT", "/api/services/plain/instances/a",
                                  {{"Content-Type", "application/json"}},
                                  "{\"url\":\"" + doomed.url() + "\"}");
  ASSERT_EQ(put.status, 201) << put.raw;
  ASSERT_TRUE(doomed.process().signal(SIGKILL));
  doomed.process().wait_exit(scaled(std::chrono::milliseconds(2000)));
  const std::string doc =
      wait_for_state("plain", "unhealthy", "TCP connect", std::chrono::milliseconds(5000));
  EXPECT_NE(doc.find("\"takes_traffic\":false"), std::string::npos) << doc;
  EXPECT_NE(doc.find("check failed: TCP connect: Connection refused (3 consecutive failures)"),
            std::string::npos)
      << doc;
  EXPECT_EQ(doomed.requests_logged("/"), 0u) << "no client request was needed";
  expect_problem(client().get("/svc/plain/echo"), 503);
}

}  // namespace
}  // namespace sb::testing
