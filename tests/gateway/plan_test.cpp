// The request plan and the worker's view, on a manual clock: every decision the driver
// takes from them (deadline, breaker refusal, retries, fallbacks, hedging, instance
// choice across view rebuilds, slow start) without a socket or a timer.
#include "gateway/plan.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "core/config_load.hpp"
#include "gateway/guards.hpp"
#include "gateway/view.hpp"
#include "registry/registry.hpp"
#include "testing/manual_clock.hpp"

namespace sb::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class PlanTest : public ::testing::Test {
 protected:
  PlanTest()
      : registry_(config_, clock_, nullptr, std::nullopt),
        guards_(registry_),
        view_(ViewContext{io_.get_executor(), guards_, "", 1,
                          [](std::string_view) { return nullptr; }}),
        planner_(nullptr, 7) {}

  /// A snapshot of service "s" with instances named by `ids` (all taking traffic unless
  /// listed in `down`).
  std::shared_ptr<registry::Snapshot> snapshot(const std::vector<std::string>& ids,
                                               const std::vector<std::string>& down = {}) {
    auto snap = std::make_shared<registry::Snapshot>();
    snap->version = ++version_;
    registry::Service s;
    s.name = "s";
    s.config = service_;
    s.config.name = "s";
    for (const auto& id : ids) {
      registry::Instance i;
      i.id = id;
      std::string why;
      i.config.url =
          *core::parse_upstream_url("http://127.0.0.1:" + std::to_string(port(id)), &why);
      i.takes_traffic = std::find(down.begin(), down.end(), id) == down.end();
      i.uid = port(id);
      s.instances.push_back(std::move(i));
    }
    snap->services.push_back(std::move(s));
    return snap;
  }
  static int port(const std::string& id) { return 20000 + id[0]; }

  std::shared_ptr<Service> rebuild(const std::vector<std::string>& ids,
                                   const std::vector<std::string>& down = {}) {
    view_.rebuild(snapshot(ids, down), clock_.steady_now());
    return *view_.find("s");
  }

  Start begin(Service& svc, Plan& plan, const RequestFacts& f) {
    return planner_.begin(f, svc, svc.config->policy, svc.retry, clock_.steady_now(), plan);
  }
  Start begin(Service& svc, Plan& plan) { return begin(svc, plan, facts("GET")); }

  /// A request's facts: `method`, an Idempotency-Key or not, and the deadline headers
  /// (nullptr: absent).
  static RequestFacts facts(std::string_view method, bool key = false, const char* ms = nullptr,
                            const char* grpc = nullptr) {
    RequestFacts f;
    f.method = method;
    f.idempotency_key = key;
    f.has_request_timeout = ms != nullptr;
    if (ms != nullptr) f.request_timeout_ms = ms;
    f.has_grpc_timeout = grpc != nullptr;
    if (grpc != nullptr) f.grpc_timeout = grpc;
    return f;
  }

  static AttemptEnd response(int status) { return AttemptEnd{AttemptKind::kResponse, status, {}}; }

  testing::ManualClock clock_;
  core::Config config_;
  core::ServiceConfig service_;
  registry::Registry registry_;
  Guards guards_;
  boost::asio::io_context io_;
  View view_;
  Planner planner_;
  std::uint64_t version_ = 0;
};

TEST_F(PlanTest, DeadlineIsTheRouteTimeoutShortenedByTheSmallerHeader) {
  auto svc = rebuild({"a"});
  Plan plan;
  ASSERT_TRUE(begin(*svc, plan));
  EXPECT_EQ(plan.deadline.remaining(clock_.steady_now()), milliseconds(15'000));

  Plan both;
  ASSERT_TRUE(begin(*svc, both, facts("GET", false, "5000", "800m")));
  EXPECT_EQ(both.deadline.remaining(clock_.steady_now()), milliseconds(800));
  Plan both2;
  ASSERT_TRUE(begin(*svc, both2, facts("GET", false, "300", "2S")));
  EXPECT_EQ(both2.deadline.remaining(clock_.steady_now()), milliseconds(300));
  Plan longer;  // a client never lengthens the route's timeout
  ASSERT_TRUE(begin(*svc, longer, facts("GET", false, "60000")));
  EXPECT_EQ(longer.deadline.remaining(clock_.steady_now()), milliseconds(15'000));
}

TEST_F(PlanTest, MalformedOrExpiredDeadlinesAreRefused) {
  auto svc = rebuild({"a"});
  Plan plan;
  Start s = begin(*svc, plan, facts("GET", false, "100", "10x"));
  EXPECT_EQ(s.refusal, Refusal::kBadTimeout);
  EXPECT_EQ(s.header, "grpc-timeout");
  s = begin(*svc, plan, facts("GET", false, "1.5"));
  EXPECT_EQ(s.refusal, Refusal::kBadTimeout);
  EXPECT_EQ(s.header, "X-Request-Timeout-Ms");
  EXPECT_EQ(begin(*svc, plan, facts("GET", false, "0")).refusal, Refusal::kExpired);
}

TEST_F(PlanTest, OpenServiceBreakerRefusesWithRetryAfter) {
  auto svc = rebuild({"a"});
  svc->guard->breaker.force_open(clock_.steady_now());
  Plan plan;
  const Start s = begin(*svc, plan);
  EXPECT_EQ(s.refusal, Refusal::kBreakerOpen);
  EXPECT_GE(s.retry_after, seconds(1));
}

TEST_F(PlanTest, OnlyIdempotentRequestsWithReplayableBodiesMayBeRetried) {
  auto svc = rebuild({"a"});
  Plan get, post, keyed, big;
  ASSERT_TRUE(begin(*svc, get, facts("GET")));
  EXPECT_TRUE(get.may_retry);
  EXPECT_TRUE(get.idempotent);
  ASSERT_TRUE(begin(*svc, post, facts("POST")));
  EXPECT_FALSE(post.may_retry);
  EXPECT_FALSE(post.idempotent);
  ASSERT_TRUE(begin(*svc, keyed, facts("POST", true)));
  EXPECT_TRUE(keyed.may_retry);
  RequestFacts f = facts("PUT");
  f.body_done = false;
  f.body_fits = true;
  f.content_length = 65 * 1024;  // past retry.max_replay_body
  ASSERT_TRUE(begin(*svc, big, f));
  EXPECT_TRUE(big.idempotent);
  EXPECT_FALSE(big.may_retry);
}

TEST_F(PlanTest, ResponsesRelayRetryableOnesRetryAndOthersFail) {
  auto svc = rebuild({"a", "b"});
  Plan plan;
  ASSERT_TRUE(begin(*svc, plan));
  Instance* first = planner_.choose(*svc, plan, clock_.steady_now());
  ASSERT_NE(first, nullptr);
  planner_.start_attempt(plan, clock_.steady_now());
  clock_.advance(milliseconds(5));
  // 503 is retryable: another attempt, after a backoff no longer than backoff_base (25 ms).
  EXPECT_EQ(planner_.finish_attempt(plan, response(503), clock_.steady_now()), Next::kRetry);
  EXPECT_LE(plan.wait, milliseconds(25));
  EXPECT_EQ(plan.retries, 1u);
  // The retry avoids the instance just tried.
  Instance* second = planner_.choose(*svc, plan, clock_.steady_now());
  ASSERT_NE(second, nullptr);
  EXPECT_NE(second, first);
  planner_.start_attempt(plan, clock_.steady_now());
  EXPECT_EQ(planner_.finish_attempt(plan, response(200), clock_.steady_now()), Next::kRelay);
  planner_.end_relay(plan);

  // A POST is never retried: a reset is its failure.
  Plan post;
  ASSERT_TRUE(begin(*svc, post, facts("POST")));
  ASSERT_NE(planner_.choose(*svc, post, clock_.steady_now()), nullptr);
  planner_.start_attempt(post, clock_.steady_now());
  EXPECT_EQ(
      planner_.finish_attempt(post, AttemptEnd{AttemptKind::kReset, 0, {}}, clock_.steady_now()),
      Next::kFail);
  // A 404 is an answer, relayed.
  Plan nf;
  ASSERT_TRUE(begin(*svc, nf));
  ASSERT_NE(planner_.choose(*svc, nf, clock_.steady_now()), nullptr);
  planner_.start_attempt(nf, clock_.steady_now());
  EXPECT_EQ(planner_.finish_attempt(nf, response(404), clock_.steady_now()), Next::kRelay);
}

TEST_F(PlanTest, NoRetryPastTheDeadlineOrTheAttempts) {
  auto svc = rebuild({"a", "b", "c"});
  Plan plan;
  ASSERT_TRUE(begin(*svc, plan, facts("GET", false, "20")));  // 20 ms to live
  ASSERT_NE(planner_.choose(*svc, plan, clock_.steady_now()), nullptr);
  planner_.start_attempt(plan, clock_.steady_now());
  clock_.advance(milliseconds(19));
  EXPECT_EQ(
      planner_.finish_attempt(plan, AttemptEnd{AttemptKind::kTimeout, 0, {}}, clock_.steady_now()),
      Next::kFail);

  Plan many;
  ASSERT_TRUE(begin(*svc, many));
  for (int i = 0; i < 2; ++i) {
    ASSERT_NE(planner_.choose(*svc, many, clock_.steady_now()), nullptr);
    planner_.start_attempt(many, clock_.steady_now());
    ASSERT_EQ(planner_.finish_attempt(many, response(502), clock_.steady_now()), Next::kRetry);
  }
  ASSERT_NE(planner_.choose(*svc, many, clock_.steady_now()), nullptr);
  planner_.start_attempt(many, clock_.steady_now());
  // max_retries (2) spent: the last 502 is relayed as it came.
  EXPECT_EQ(planner_.finish_attempt(many, response(502), clock_.steady_now()), Next::kRelay);
}

TEST_F(PlanTest, FallbackReplacesFailuresAndFailedResponses) {
  service_.policy.fallback.status = 200;
  service_.policy.retry.max_retries = 0;
  auto svc = rebuild({"a"});
  Plan plan;
  ASSERT_TRUE(begin(*svc, plan));
  ASSERT_NE(planner_.choose(*svc, plan, clock_.steady_now()), nullptr);
  planner_.start_attempt(plan, clock_.steady_now());
  EXPECT_EQ(planner_.finish_attempt(plan, response(503), clock_.steady_now()), Next::kFallback);
  Plan reset;
  ASSERT_TRUE(begin(*svc, reset));
  ASSERT_NE(planner_.choose(*svc, reset, clock_.steady_now()), nullptr);
  planner_.start_attempt(reset, clock_.steady_now());
  EXPECT_EQ(
      planner_.finish_attempt(reset, AttemptEnd{AttemptKind::kReset, 0, {}}, clock_.steady_now()),
      Next::kFallback);
}

// What the client's side ends says nothing of the instance or the service: five client
// failures in a row leave both breakers closed where five resets open the instance's.
TEST_F(PlanTest, ClientFailuresNeverCountAgainstInstanceOrService) {
  service_.breaker.consecutive_failures = 5;
  auto svc = rebuild({"a"});
  for (int i = 0; i < 10; ++i) {
    Plan plan;
    ASSERT_TRUE(begin(*svc, plan, facts("POST")));
    ASSERT_NE(planner_.choose(*svc, plan, clock_.steady_now()), nullptr) << i;
    planner_.start_attempt(plan, clock_.steady_now());
    clock_.advance(seconds(6));  // slow, too
    EXPECT_EQ(
        planner_.finish_attempt(plan, AttemptEnd{AttemptKind::kClient, 0, {}}, clock_.steady_now()),
        Next::kPrepared);
    planner_.finish_request(*svc, plan, 408, false, clock_.steady_now() - seconds(6),
                            clock_.steady_now());
  }
  EXPECT_EQ(svc->guard->breaker.state(), resilience::BreakerState::kClosed);
  EXPECT_EQ(svc->instances[0]->guard->breaker.state(), resilience::BreakerState::kClosed);
  for (int i = 0; i < 5; ++i) {
    Plan plan;
    ASSERT_TRUE(begin(*svc, plan, facts("POST")));
    ASSERT_NE(planner_.choose(*svc, plan, clock_.steady_now()), nullptr) << i;
    planner_.start_attempt(plan, clock_.steady_now());
    EXPECT_EQ(
        planner_.finish_attempt(plan, AttemptEnd{AttemptKind::kReset, 0, {}}, clock_.steady_now()),
        Next::kFail);
    planner_.finish_request(*svc, plan, 502, false, clock_.steady_now(), clock_.steady_now());
  }
  EXPECT_EQ(svc->instances[0]->guard->breaker.state(), resilience::BreakerState::kOpen);
}

TEST_F(PlanTest, HedgeOnlyFirstGetAttemptsWithAnotherInstanceAndTimeLeft) {
  service_.policy.hedge.enabled = true;
  service_.policy.hedge.delay = core::Millis(50);
  auto svc = rebuild({"a", "b"});
  const RequestFacts get = facts("GET");
  Plan plan;
  ASSERT_TRUE(begin(*svc, plan, get));
  ASSERT_NE(planner_.choose(*svc, plan, clock_.steady_now()), nullptr);
  EXPECT_EQ(planner_.hedge_delay(true, plan, clock_.steady_now()), milliseconds(50));
  EXPECT_EQ(planner_.hedge_delay(false, plan, clock_.steady_now()), std::nullopt);  // not a GET
  Plan short_lived;  // 40 ms left: not worth a hedge after 50 ms
  RequestFacts hurried = get;
  hurried.has_request_timeout = true;
  hurried.request_timeout_ms = "40";
  ASSERT_TRUE(begin(*svc, short_lived, hurried));
  ASSERT_NE(planner_.choose(*svc, short_lived, clock_.steady_now()), nullptr);
  EXPECT_EQ(planner_.hedge_delay(true, short_lived, clock_.steady_now()), std::nullopt);
  auto one = rebuild({"a"});
  Plan alone;
  ASSERT_TRUE(begin(*one, alone, get));
  ASSERT_NE(planner_.choose(*one, alone, clock_.steady_now()), nullptr);
  EXPECT_EQ(planner_.hedge_delay(true, alone, clock_.steady_now()), std::nullopt);
}

TEST_F(PlanTest, EveryBreakerOpenMeansNoInstance) {
  auto svc = rebuild({"a", "b"});
  for (auto& i : svc->instances) i->guard->breaker.force_open(clock_.steady_now());
  Plan plan;
  ASSERT_TRUE(begin(*svc, plan));
  EXPECT_EQ(planner_.choose(*svc, plan, clock_.steady_now()), nullptr);
}

// A request that started on an older view picks from the view its balancer uses now: the
// pick names the instance it means, never one by a stale index (or past the end).
// find() remembers its last hit; a rebuild forgets it: each find after a rebuild names
// that rebuild's view, and a service the snapshot no longer has is not found.
TEST_F(PlanTest, FindAfterARebuildNamesTheNewView) {
  const auto first = rebuild({"a"});
  EXPECT_EQ(*view_.find("s"), first);
  EXPECT_EQ(*view_.find("s"), first);  // the remembered hit
  EXPECT_EQ(view_.find("t"), nullptr);
  EXPECT_EQ(*view_.find("s"), first);
  const auto second = rebuild({"a", "b"});
  EXPECT_NE(second, first);
  EXPECT_EQ(*view_.find("s"), second);
  EXPECT_EQ((*view_.find("s"))->instances.size(), 2u);
  auto empty = std::make_shared<registry::Snapshot>();
  empty->version = ++version_;
  view_.rebuild(empty, clock_.steady_now());
  EXPECT_EQ(view_.find("s"), nullptr);
}

TEST_F(PlanTest, PickFromANewerViewNamesTheInstanceItMeans) {
  auto old_view = rebuild({"a", "b", "c"});
  auto now_view = rebuild({"c"});  // another request refreshed: a and b are gone
  EXPECT_FALSE(old_view->current());
  const auto& cur = view_.current(old_view);
  ASSERT_EQ(cur, now_view);
  for (int i = 0; i < 20; ++i) {
    Plan plan;
    ASSERT_TRUE(begin(*cur, plan));
    Instance* inst = planner_.choose(*cur, plan, clock_.steady_now());
    ASSERT_NE(inst, nullptr);
    EXPECT_EQ(inst->config.url.port, port("c"));
    EXPECT_EQ(plan.instance, inst);
    EXPECT_EQ(plan.view, cur.get());
  }
  // A removed service keeps its last view, which stays current.
  view_.rebuild(std::make_shared<registry::Snapshot>(), clock_.steady_now());
  EXPECT_EQ(view_.current(now_view), now_view);
  EXPECT_TRUE(now_view->current());
}

TEST_F(PlanTest, InstancesBackFromFailingChecksOrEjectionRampUp) {
  service_.balancer.slow_start = core::Millis(10'000);
  service_.outlier.consecutive_gateway_errors = 1;
  auto v1 = rebuild({"a", "b"});
  const auto full = v1->lb->balancer.effective_weight(0, clock_.steady_now());
  // b fails its checks, then passes again: it ramps up from then.
  rebuild({"a", "b"}, {"b"});
  clock_.advance(seconds(1));
  auto v3 = rebuild({"a", "b"});
  EXPECT_LT(v3->lb->balancer.effective_weight(1, clock_.steady_now()), full / 2);
  EXPECT_EQ(v3->lb->balancer.effective_weight(0, clock_.steady_now()), full);
  clock_.advance(seconds(10));
  EXPECT_EQ(v3->lb->balancer.effective_weight(1, clock_.steady_now()), full);

  // a is ejected (one gateway error), then its ejection ends: it ramps up too.
  Instance& a = *v3->instances[0];
  ASSERT_TRUE(a.guard->outlier);
  a.guard->report(
      a.guard->outlier->record(clock_.steady_now(), resilience::Outcome::response(503)));
  ASSERT_TRUE(a.guard->outlier->ejected(clock_.steady_now()));
  view_.tick(clock_.steady_now());  // still ejected: nothing to ramp yet
  clock_.advance(seconds(31));      // base_ejection_time is 30 s
  ASSERT_FALSE(a.guard->outlier->ejected(clock_.steady_now()));
  view_.tick(clock_.steady_now());
  EXPECT_LT(v3->lb->balancer.effective_weight(0, clock_.steady_now()), full / 2);
}

}  // namespace
}  // namespace sb::gateway
