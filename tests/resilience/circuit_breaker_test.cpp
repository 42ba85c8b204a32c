#include "resilience/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;
using core::BreakerConfig;
using core::SteadyTime;

// Aligned to the 1 s bucket step of the default window.
const SteadyTime t0 = SteadyTime{} + 1000s;

// Only the consecutive-failures rule, 5 in a row.
BreakerConfig consecutive_only(std::uint32_t n = 5) {
  return BreakerConfig{.consecutive_failures = n, .failure_rate = 0};
}

// Records `n` outcomes through allow() at `now`.
void feed(CircuitBreaker& b, SteadyTime now, int n, bool failure, core::Duration latency = 1ms) {
  for (int i = 0; i < n; ++i) {
    auto a = b.allow(now);
    ASSERT_TRUE(a.allowed());
    b.record(now, a.permit, failure, latency);
  }
}

// Trips `b` with consecutive failures and returns the open-until time.
SteadyTime trip(CircuitBreaker& b, SteadyTime now) {
  for (std::uint32_t i = 0; i < b.config().consecutive_failures; ++i) {
    auto a = b.allow(now);
    b.record(now, a.permit, true, 1ms);
  }
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  return *b.snapshot(now).open_until;
}

// Takes the breaker from open to half-open at `at` and returns the first probe permit.
Permit first_probe(CircuitBreaker& b, SteadyTime at) {
  auto a = b.allow(at);
  EXPECT_EQ(a.permit.kind, PermitKind::kProbe);
  EXPECT_TRUE(a.transition);
  return a.permit;
}

TEST(CircuitBreakerTest, ToStringNamesEveryState) {
  EXPECT_STREQ(to_string(BreakerState::kClosed), "closed");
  EXPECT_STREQ(to_string(BreakerState::kOpen), "open");
  EXPECT_STREQ(to_string(BreakerState::kHalfOpen), "half_open");
  EXPECT_STREQ(to_string(BreakerState::kForcedOpen), "forced_open");
  EXPECT_STREQ(to_string(BreakerState::kForcedClosed), "forced_closed");
}

// A new breaker is closed and admits.
TEST(CircuitBreakerTest, StartsClosed) {
  CircuitBreaker b(BreakerConfig{});
  auto a = b.allow(t0);
  EXPECT_TRUE(a.allowed());
  EXPECT_EQ(a.permit.kind, PermitKind::kAllowed);
  EXPECT_FALSE(a.transition);
  auto s = b.snapshot(t0);
  EXPECT_EQ(s.state, BreakerState::kClosed);
  EXPECT_EQ(s.times_opened, 0u);
  EXPECT_FALSE(s.open_until);
}

// Failures count by default for connect errors, resets, timeouts and 5xx; never for 4xx.
TEST(CircuitBreakerTest, FailureClassification) {
  CircuitBreaker b(BreakerConfig{});
  EXPECT_TRUE(b.is_failure(Outcome::failed(TransportError::kConnectFailure)));
  EXPECT_TRUE(b.is_failure(Outcome::failed(TransportError::kReset)));
  EXPECT_TRUE(b.is_failure(Outcome::failed(TransportError::kTimeout)));
  EXPECT_TRUE(b.is_failure(Outcome::response(500)));
  EXPECT_TRUE(b.is_failure(Outcome::response(503)));
  EXPECT_TRUE(b.is_failure(Outcome::response(599)));
  EXPECT_FALSE(b.is_failure(Outcome::response(200)));
  EXPECT_FALSE(b.is_failure(Outcome::response(404)));
  EXPECT_FALSE(b.is_failure(Outcome::response(429)));
  CircuitBreaker custom(BreakerConfig{.failure_status = "502-504,429"});
  EXPECT_TRUE(custom.is_failure(Outcome::response(429)));
  EXPECT_FALSE(custom.is_failure(Outcome::response(500)));
}

// 4 consecutive failures keep it closed; the 5th trips it, with its reason.
TEST(CircuitBreakerTest, TripsAtConsecutiveFailures) {
  CircuitBreaker b(consecutive_only(5));
  feed(b, t0, 4, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.snapshot(t0).consecutive_failures, 4u);
  auto a = b.allow(t0);
  auto tr = b.record(t0, a.permit, true, 1ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, BreakerState::kClosed);
  EXPECT_EQ(tr->to, BreakerState::kOpen);
  EXPECT_EQ(tr->reason, "5 consecutive failures");
  EXPECT_EQ(tr->at, t0);
  EXPECT_EQ(b.snapshot(t0).times_opened, 1u);
}

// A success in between restarts the count.
TEST(CircuitBreakerTest, SuccessResetsConsecutiveCount) {
  CircuitBreaker b(consecutive_only(5));
  feed(b, t0, 4, true);
  feed(b, t0, 1, false);
  feed(b, t0, 4, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.snapshot(t0).consecutive_failures, 4u);
}

// Failure rate: below minimum_calls nothing trips; at 50% with >= 20 calls it trips.
TEST(CircuitBreakerTest, TripsAtFailureRateOnceMinimumCallsReached) {
  CircuitBreaker b(
      BreakerConfig{.consecutive_failures = 0, .failure_rate = 50, .minimum_calls = 20});
  // 19 calls, alternating: 10 failures (>50%) but too few calls.
  for (int i = 0; i < 19; ++i) feed(b, t0, 1, i % 2 == 0);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  EXPECT_EQ(b.snapshot(t0).window_calls, 19u);
  EXPECT_EQ(b.snapshot(t0).window_failures, 10u);
  // The 20th call is a success: 10 of 20 = 50% but successes never trip.
  feed(b, t0, 1, false);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  auto a = b.allow(t0);
  auto tr = b.record(t0, a.permit, true, 1ms);  // 11 of 21 = 52%
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->reason, "failure rate 52% over 10 s (11 of 21 calls)");
}

// Just below the rate: 9 of 20 failing (45%) stays closed; exactly at it trips.
TEST(CircuitBreakerTest, FailureRateEdge) {
  BreakerConfig c{.consecutive_failures = 0, .failure_rate = 50, .minimum_calls = 20};
  CircuitBreaker below(c);
  feed(below, t0, 11, false);
  feed(below, t0, 9, true);
  EXPECT_EQ(below.state(), BreakerState::kClosed);
  EXPECT_DOUBLE_EQ(below.snapshot(t0).failure_rate, 45.0);
  CircuitBreaker at(c);
  feed(at, t0, 10, false);
  feed(at, t0, 9, true);
  auto a = at.allow(t0);
  auto tr = at.record(t0, a.permit, true, 1ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->reason, "failure rate 50% over 10 s (10 of 20 calls)");
}

// The window slides: failures older than the window drop out bucket by bucket.
TEST(CircuitBreakerTest, WindowRollsOver) {
  CircuitBreaker b(
      BreakerConfig{.consecutive_failures = 0, .failure_rate = 50, .minimum_calls = 20});
  feed(b, t0, 10, true);  // bucket of t0
  EXPECT_EQ(b.snapshot(t0 + 9999ms).window_calls, 10u);
  EXPECT_EQ(b.snapshot(t0 + 10s).window_calls, 0u);  // the bucket left the window
  feed(b, t0 + 9s, 10, false);
  // At t0 + 10 s only the 10 successes remain; 10 failures more make 50% of 20.
  feed(b, t0 + 10s, 9, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  auto a = b.allow(t0 + 10s);
  EXPECT_TRUE(b.record(t0 + 10s, a.permit, true, 1ms));
}

// Slow-call rate: calls slower than slow_call_duration (strictly) count.
TEST(CircuitBreakerTest, TripsAtSlowCallRate) {
  CircuitBreaker b(BreakerConfig{.consecutive_failures = 0,
                                 .failure_rate = 0,
                                 .slow_call_rate = 50,
                                 .slow_call_duration = 100ms,
                                 .minimum_calls = 4});
  feed(b, t0, 2, false, 100ms);  // exactly at the duration: not slow
  feed(b, t0, 1, false, 101ms);
  EXPECT_EQ(b.snapshot(t0).window_slow_calls, 1u);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  auto a = b.allow(t0);
  auto tr = b.record(t0, a.permit, false, 2s);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->reason, "slow-call rate 50% over 10 s (2 of 4 calls slower than 100 ms)");
}

// Open refuses with Retry-After = remaining time rounded up to seconds, at least 1.
TEST(CircuitBreakerTest, OpenRefusesWithRetryAfter) {
  CircuitBreaker b(consecutive_only());
  const SteadyTime until = trip(b, t0);
  auto a = b.allow(t0);
  EXPECT_FALSE(a.allowed());
  EXPECT_FALSE(a.transition);
  const auto remaining = until - t0;
  EXPECT_EQ(a.retry_after, std::chrono::ceil<std::chrono::seconds>(remaining));
  auto late = b.allow(until - 1ms);
  EXPECT_FALSE(late.allowed());
  EXPECT_EQ(late.retry_after, 1s);
  auto s = b.snapshot(t0 + 1s);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.open_remaining, until - (t0 + 1s));
}

// The first open time is open_duration with +-10% jitter; never out of bounds, per seed.
TEST(CircuitBreakerTest, OpenTimeJitterBounds) {
  bool differ = false;
  core::Duration first{};
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    CircuitBreaker b(consecutive_only(), seed);
    const auto d = trip(b, t0) - t0;
    EXPECT_GE(d, 4500ms) << seed;
    EXPECT_LE(d, 5500ms) << seed;
    if (seed == 0) first = d;
    differ |= d != first;
  }
  EXPECT_TRUE(differ);
  // Deterministic: the same seed gives the same open time.
  CircuitBreaker x(consecutive_only(), 7), y(consecutive_only(), 7);
  EXPECT_EQ(trip(x, t0), trip(y, t0));
}

// Just before the open time it refuses; at it, the first caller moves it to half-open and
// gets a probe.
TEST(CircuitBreakerTest, HalfOpenAfterOpenTime) {
  CircuitBreaker b(consecutive_only());
  const SteadyTime until = trip(b, t0);
  EXPECT_FALSE(b.allow(until - 1ns).allowed());
  auto a = b.allow(until);
  EXPECT_EQ(a.permit.kind, PermitKind::kProbe);
  ASSERT_TRUE(a.transition);
  EXPECT_EQ(a.transition->from, BreakerState::kOpen);
  EXPECT_EQ(a.transition->to, BreakerState::kHalfOpen);
  EXPECT_EQ(a.transition->reason, "open time elapsed");
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
}

// Half-open admits half_open_probes (3) probes, refuses the 4th, and closes on the 3rd
// success with counters cleared.
TEST(CircuitBreakerTest, HalfOpenClosesAfterProbesSucceed) {
  CircuitBreaker b(consecutive_only());
  const SteadyTime at = trip(b, t0);
  Permit p1 = first_probe(b, at);
  auto a2 = b.allow(at);
  auto a3 = b.allow(at);
  EXPECT_EQ(a2.permit.kind, PermitKind::kProbe);
  EXPECT_EQ(a3.permit.kind, PermitKind::kProbe);
  EXPECT_FALSE(a2.transition);
  auto a4 = b.allow(at);
  EXPECT_FALSE(a4.allowed());
  EXPECT_EQ(a4.retry_after, 1s);
  EXPECT_EQ(b.snapshot(at).probes_in_flight, 3u);
  EXPECT_FALSE(b.record(at + 1ms, p1, false, 1ms));
  EXPECT_FALSE(b.record(at + 1ms, a2.permit, false, 1ms));
  EXPECT_EQ(b.snapshot(at).probes_succeeded, 2u);
  auto tr = b.record(at + 2ms, a3.permit, false, 1ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, BreakerState::kHalfOpen);
  EXPECT_EQ(tr->to, BreakerState::kClosed);
  EXPECT_EQ(tr->reason, "3 probes succeeded");
  auto s = b.snapshot(at + 2ms);
  EXPECT_EQ(s.state, BreakerState::kClosed);
  EXPECT_EQ(s.consecutive_failures, 0u);
  EXPECT_EQ(s.window_calls, 0u);
  EXPECT_EQ(s.backoff_level, 0u);
}

// A probe failure reopens with the doubled open time.
TEST(CircuitBreakerTest, ProbeFailureReopensWithDoubledOpenTime) {
  CircuitBreaker b(consecutive_only(), 3);
  const SteadyTime at = trip(b, t0);
  Permit p = first_probe(b, at);
  auto tr = b.record(at, p, true, 1ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, BreakerState::kHalfOpen);
  EXPECT_EQ(tr->to, BreakerState::kOpen);
  EXPECT_EQ(tr->reason, "half-open probe failed");
  auto s = b.snapshot(at);
  EXPECT_EQ(s.backoff_level, 1u);
  EXPECT_EQ(s.times_opened, 2u);
  EXPECT_GE(s.open_remaining, 9000ms);
  EXPECT_LE(s.open_remaining, 11000ms);
}

// Re-opens double 5, 10, 20, 40 s and then stay capped at 60 s (jitter never exceeds the cap).
TEST(CircuitBreakerTest, OpenTimeDoublesUpToCap) {
  CircuitBreaker b(consecutive_only(), 11);
  SteadyTime now = t0;
  SteadyTime until = trip(b, now);
  const double bases[] = {10, 20, 40, 60, 60, 60};
  for (double base : bases) {
    now = until;
    Permit p = first_probe(b, now);
    ASSERT_TRUE(b.record(now, p, true, 1ms));
    const auto d = b.snapshot(now).open_remaining;
    EXPECT_GE(d, core::Duration(static_cast<std::int64_t>(base * 0.9e9))) << base;
    EXPECT_LE(
        d, std::min<core::Duration>(60s, core::Duration(static_cast<std::int64_t>(base * 1.1e9))))
        << base;
    until = *b.snapshot(now).open_until;
  }
  // A close resets the backoff: the next trip opens for ~5 s again.
  now = until;
  Permit p1 = first_probe(b, now);
  auto p2 = b.allow(now).permit;
  auto p3 = b.allow(now).permit;
  b.record(now, p1, false, 1ms);
  b.record(now, p2, false, 1ms);
  ASSERT_TRUE(b.record(now, p3, false, 1ms));
  const auto d = trip(b, now) - now;
  EXPECT_GE(d, 4500ms);
  EXPECT_LE(d, 5500ms);
}

// Half-open longer than half_open_timeout without closing: the next allow() reopens it.
TEST(CircuitBreakerTest, HalfOpenTimeoutReopens) {
  CircuitBreaker b(consecutive_only());
  const SteadyTime at = trip(b, t0);
  first_probe(b, at);  // sent, never answered
  EXPECT_EQ(b.allow(at + 10s - 1ms).permit.kind, PermitKind::kProbe);
  auto a = b.allow(at + 10s);
  EXPECT_FALSE(a.allowed());
  ASSERT_TRUE(a.transition);
  EXPECT_EQ(a.transition->from, BreakerState::kHalfOpen);
  EXPECT_EQ(a.transition->to, BreakerState::kOpen);
  EXPECT_EQ(a.transition->reason, "half-open for 10 s without closing");
  EXPECT_EQ(b.snapshot(at + 10s).backoff_level, 1u);
}

// may_allow() answers like allow() without taking probes or moving the state.
TEST(CircuitBreakerTest, MayAllowHasNoSideEffects) {
  CircuitBreaker b(
      BreakerConfig{.consecutive_failures = 5, .failure_rate = 0, .half_open_probes = 1});
  EXPECT_TRUE(b.may_allow(t0));
  const SteadyTime at = trip(b, t0);
  EXPECT_FALSE(b.may_allow(at - 1ms));
  EXPECT_TRUE(b.may_allow(at));
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  first_probe(b, at);
  EXPECT_FALSE(b.may_allow(at));        // the only probe is out
  EXPECT_FALSE(b.may_allow(at + 10s));  // half-open timeout
  b.force_open(at);
  EXPECT_FALSE(b.may_allow(at));
  b.force_close(at);
  EXPECT_TRUE(b.may_allow(at));
}

// A probe given back frees its slot; releasing twice or a normal permit changes nothing.
TEST(CircuitBreakerTest, ReleasedProbeFreesSlot) {
  CircuitBreaker b(
      BreakerConfig{.consecutive_failures = 5, .failure_rate = 0, .half_open_probes = 1});
  const SteadyTime at = trip(b, t0);
  Permit p = first_probe(b, at);
  EXPECT_FALSE(b.allow(at).allowed());
  b.release(p);
  EXPECT_EQ(b.snapshot(at).probes_in_flight, 0u);
  b.release(p);
  EXPECT_EQ(b.snapshot(at).probes_in_flight, 0u);
  auto again = b.allow(at);
  EXPECT_EQ(again.permit.kind, PermitKind::kProbe);
  auto tr = b.record(at, again.permit, false, 1ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->reason, "1 probe succeeded");
}

// A probe from an earlier half-open period cannot close a later one.
TEST(CircuitBreakerTest, StaleProbeIsIgnored) {
  CircuitBreaker b(
      BreakerConfig{.consecutive_failures = 5, .failure_rate = 0, .half_open_probes = 1});
  SteadyTime at = trip(b, t0);
  Permit old = first_probe(b, at);
  auto a = b.allow(at + 10s);  // half-open timeout: reopened
  ASSERT_TRUE(a.transition);
  at = *b.snapshot(at + 10s).open_until;
  first_probe(b, at);
  EXPECT_FALSE(b.record(at, old, false, 1ms));
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
}

// Outcomes of requests admitted before the trip that finish while open are not counted.
TEST(CircuitBreakerTest, LateOutcomesWhileOpenAreIgnored) {
  CircuitBreaker b(consecutive_only());
  auto straggler = b.allow(t0);
  trip(b, t0);
  EXPECT_FALSE(b.record(t0 + 1ms, straggler.permit, true, 1ms));
  EXPECT_EQ(b.snapshot(t0).times_opened, 1u);
  // Still ignored once the breaker has closed again: it belongs to the earlier period.
  b.reset(t0 + 1s);
  EXPECT_FALSE(b.record(t0 + 1s, straggler.permit, true, 1ms));
  EXPECT_EQ(b.snapshot(t0 + 1s).consecutive_failures, 0u);
}

// Forced open refuses until reset; forced closed never trips; both are visible as such.
TEST(CircuitBreakerTest, ForcedStates) {
  CircuitBreaker b(consecutive_only());
  auto tr = b.force_open(t0);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, BreakerState::kForcedOpen);
  EXPECT_EQ(tr->reason, "forced open by operator");
  EXPECT_FALSE(b.force_open(t0));
  auto a = b.allow(t0 + 1h);
  EXPECT_FALSE(a.allowed());
  EXPECT_EQ(a.retry_after, 5s);
  EXPECT_EQ(b.snapshot(t0).state, BreakerState::kForcedOpen);

  tr = b.force_close(t0);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, BreakerState::kForcedOpen);
  EXPECT_EQ(tr->to, BreakerState::kForcedClosed);
  feed(b, t0, 50, true);
  EXPECT_EQ(b.state(), BreakerState::kForcedClosed);
  EXPECT_EQ(b.snapshot(t0).consecutive_failures, 50u);

  tr = b.reset(t0);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, BreakerState::kClosed);
  EXPECT_EQ(tr->reason, "reset by operator");
  EXPECT_EQ(b.snapshot(t0).consecutive_failures, 0u);
  EXPECT_EQ(b.snapshot(t0).window_calls, 0u);
}

// Reset of an open breaker closes it at once and resets the backoff.
TEST(CircuitBreakerTest, ResetFromOpen) {
  CircuitBreaker b(consecutive_only());
  trip(b, t0);
  auto tr = b.reset(t0 + 1s);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, BreakerState::kOpen);
  EXPECT_TRUE(b.allow(t0 + 1s).allowed());
  EXPECT_FALSE(b.reset(t0 + 1s));  // already closed: no transition
  const auto d = trip(b, t0 + 2s) - (t0 + 2s);
  EXPECT_LE(d, 5500ms);
}

// A disabled breaker admits everything and never trips.
TEST(CircuitBreakerTest, DisabledAlwaysAllows) {
  CircuitBreaker b(BreakerConfig{.enabled = false});
  feed(b, t0, 100, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

}  // namespace
}  // namespace sb::resilience
