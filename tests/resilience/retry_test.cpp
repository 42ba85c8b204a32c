#include "resilience/retry.hpp"

#include <gtest/gtest.h>

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;
using core::RetryConfig;
using core::SteadyTime;

const SteadyTime t0 = SteadyTime{} + 1000s;

// ---------------------------------------------------------------------------------------------
// RetryBudget

// With no requests, only the floor grants: 10 retries in a second, then none until the next.
TEST(RetryBudgetTest, FloorGrantsPerSecond) {
  RetryBudget b(RetryConfig{});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.try_acquire(t0 + 500ms)) << i;
  EXPECT_FALSE(b.try_acquire(t0 + 999ms));
  EXPECT_EQ(b.snapshot(t0 + 999ms).second_retries, 10u);
  EXPECT_TRUE(b.try_acquire(t0 + 1s));
  EXPECT_EQ(b.snapshot(t0 + 1s).second_retries, 1u);
}

// Percent rule: with 100 requests and no floor, 19 retries pass, the 20th passes (19 < 20),
// the 21st does not (20 of 100 is not below 20%).
TEST(RetryBudgetTest, PercentOfRequests) {
  RetryBudget b(RetryConfig{.budget_percent = 20, .budget_min_per_second = 0});
  for (int i = 0; i < 100; ++i) b.record_request(t0);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(b.try_acquire(t0)) << i;
  EXPECT_FALSE(b.try_acquire(t0));
  auto s = b.snapshot(t0);
  EXPECT_EQ(s.window_requests, 100u);
  EXPECT_EQ(s.window_retries, 20u);
  // 5 more requests make room for exactly one more retry (21 < 21 is false, 20 < 21 true).
  for (int i = 0; i < 5; ++i) b.record_request(t0);
  EXPECT_TRUE(b.try_acquire(t0));
  EXPECT_FALSE(b.try_acquire(t0));
}

// The window slides: requests and retries leave it after budget_window.
TEST(RetryBudgetTest, WindowSlides) {
  RetryBudget b(
      RetryConfig{.budget_percent = 20, .budget_window = 10s, .budget_min_per_second = 0});
  for (int i = 0; i < 10; ++i) b.record_request(t0);
  EXPECT_TRUE(b.try_acquire(t0));
  EXPECT_TRUE(b.try_acquire(t0));
  EXPECT_FALSE(b.try_acquire(t0));
  EXPECT_EQ(b.snapshot(t0 + 9999ms).window_requests, 10u);
  EXPECT_EQ(b.snapshot(t0 + 10s).window_requests, 0u);
  EXPECT_FALSE(b.try_acquire(t0 + 10s));  // no requests left in the window, no floor
}

// Floor retries count against the percent rule as well.
TEST(RetryBudgetTest, FloorRetriesCountInWindow) {
  RetryBudget b(RetryConfig{.budget_percent = 20, .budget_min_per_second = 5});
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.try_acquire(t0));  // floor
  for (int i = 0; i < 25; ++i) b.record_request(t0 + 1s);
  // 5 retries of 25 requests = 20%: no percent room; the new second's floor still grants.
  EXPECT_TRUE(b.try_acquire(t0 + 1s));
  EXPECT_EQ(b.snapshot(t0 + 1s).window_retries, 6u);
}

// A total outage: every request fails and asks for 2 retries. Over 200 s at 1000 requests/s
// retries stay within 20% of requests: the floor (a minimum, not an addition) only adds what
// it granted before the window filled (at most budget_min_per_second x the window).
TEST(RetryBudgetTest, LongRunOutageIsBounded) {
  RetryBudget b(RetryConfig{});
  std::uint64_t requests = 0, retries = 0;
  const int seconds = 200;
  for (int ms = 0; ms < seconds * 1000; ++ms) {
    const SteadyTime now = t0 + std::chrono::milliseconds(ms);
    b.record_request(now);
    ++requests;
    for (int r = 0; r < 2; ++r) retries += b.try_acquire(now) ? 1 : 0;
  }
  EXPECT_LE(retries, requests / 5 + 10u * 10u);
  EXPECT_GE(retries, requests / 5);  // and the budget is actually used
}

// The floor is a minimum: a quiet service retries up to budget_min_per_second, but a window
// that already holds budget_min_per_second x window retries gets only the percentage.
TEST(RetryBudgetTest, FloorIsAMinimumNotAnAddition) {
  RetryBudget b(
      RetryConfig{.budget_percent = 20, .budget_window = 10s, .budget_min_per_second = 2});
  // Quiet: no requests recorded, the floor grants 2 per second.
  EXPECT_TRUE(b.try_acquire(t0));
  EXPECT_TRUE(b.try_acquire(t0));
  EXPECT_FALSE(b.try_acquire(t0));
  // Busy: 1000 requests and 200 retries (20%) in the window; the floor's share (2 x 10 s =
  // 20) is long used up, so a new second grants nothing more.
  for (int i = 0; i < 1000; ++i) b.record_request(t0 + 1s);
  int granted = 0;
  while (b.try_acquire(t0 + 1s)) ++granted;
  EXPECT_EQ(granted, 198);  // 2 + 198 = 200 = 20% of 1000
  EXPECT_FALSE(b.try_acquire(t0 + 2s));
}

// ---------------------------------------------------------------------------------------------
// RetryPolicy

TEST(RetryPolicyTest, IdempotentMethods) {
  for (auto m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}) {
    EXPECT_TRUE(RetryPolicy::is_idempotent(m, false)) << m;
  }
  for (auto m : {"POST", "PATCH", "CONNECT", "get", ""}) {
    EXPECT_FALSE(RetryPolicy::is_idempotent(m, false)) << m;
  }
  EXPECT_TRUE(RetryPolicy::is_idempotent("POST", true));
}

TEST(RetryPolicyTest, RetryableOutcomes) {
  RetryPolicy p(RetryConfig{});
  EXPECT_TRUE(p.retryable(Outcome::failed(TransportError::kConnectFailure)));
  EXPECT_TRUE(p.retryable(Outcome::failed(TransportError::kReset)));
  EXPECT_FALSE(p.retryable(Outcome::failed(TransportError::kTimeout)));
  EXPECT_FALSE(p.retryable(Outcome::response(501)));
  EXPECT_TRUE(p.retryable(Outcome::response(502)));
  EXPECT_TRUE(p.retryable(Outcome::response(504)));
  EXPECT_FALSE(p.retryable(Outcome::response(505)));
  EXPECT_FALSE(p.retryable(Outcome::response(429)));
  RetryPolicy q(RetryConfig{.retry_on_status = "429,503",
                            .retry_on_connect_failure = false,
                            .retry_on_reset = false,
                            .per_try_timeout = 500ms});
  EXPECT_FALSE(q.retryable(Outcome::failed(TransportError::kConnectFailure)));
  EXPECT_FALSE(q.retryable(Outcome::failed(TransportError::kReset)));
  EXPECT_TRUE(q.retryable(Outcome::failed(TransportError::kTimeout)));
  EXPECT_TRUE(q.retryable(Outcome::response(429)));
  EXPECT_FALSE(q.retryable(Outcome::response(502)));
}

TEST(RetryPolicyTest, AttemptsAndBody) {
  RetryPolicy p(RetryConfig{.max_retries = 2, .max_replay_body = 100});
  EXPECT_TRUE(p.attempts_left(0));
  EXPECT_TRUE(p.attempts_left(1));
  EXPECT_FALSE(p.attempts_left(2));
  EXPECT_TRUE(p.body_replayable(100));
  EXPECT_FALSE(p.body_replayable(101));
  EXPECT_FALSE(RetryPolicy(RetryConfig{.max_retries = 0}).attempts_left(0));
}

// Full jitter: retry n waits uniform in [0, min(250 ms, 25 ms x 2^n)]; spread over the range.
TEST(RetryPolicyTest, BackoffFullJitterBounds) {
  RetryPolicy p(RetryConfig{.backoff_base = 25ms, .backoff_max = 250ms});
  Rng rng(1);
  const core::Duration caps[] = {25ms, 50ms, 100ms, 200ms, 250ms, 250ms, 250ms};
  for (std::uint32_t n = 0; n < 7; ++n) {
    core::Duration lo = core::Duration::max(), hi = core::Duration::zero();
    for (int i = 0; i < 2000; ++i) {
      const auto d = p.backoff(n, rng);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    EXPECT_GE(lo, core::Duration::zero());
    EXPECT_LE(hi, caps[n]) << n;
    EXPECT_LT(lo, caps[n] / 10) << n;
    EXPECT_GT(hi, caps[n] * 9 / 10) << n;
  }
  EXPECT_LE(p.backoff(1000, rng), 250ms);  // no overflow on large attempt numbers
}

// Retry-After is honoured up to backoff_max; longer ones fall back to the jittered backoff.
TEST(RetryPolicyTest, RetryAfterHonouredUpToMax) {
  RetryPolicy p(RetryConfig{.backoff_base = 25ms, .backoff_max = 250ms});
  Rng rng(2);
  EXPECT_EQ(p.delay(0, rng, 200ms), 200ms);
  EXPECT_EQ(p.delay(0, rng, 250ms), 250ms);
  EXPECT_LE(p.delay(0, rng, 1s), 25ms);
  EXPECT_LE(p.delay(0, rng, std::nullopt), 25ms);
}

TEST(RetryPolicyTest, ParseRetryAfterStrict) {
  EXPECT_EQ(parse_retry_after("0"), 0s);
  EXPECT_EQ(parse_retry_after("120"), 120s);
  EXPECT_EQ(parse_retry_after("999999999"), 999999999s);
  for (auto bad :
       {"", " 1", "1 ", "+1", "-1", "1.5", "1s", "1000000000", "Wed, 21 Oct 2015 07:28:00 GMT"}) {
    EXPECT_FALSE(parse_retry_after(bad)) << bad;
  }
}

TEST(RetryPolicyTest, WorthRetryingAgainstMedian) {
  EXPECT_TRUE(worth_retrying(100ms, 100ms));
  EXPECT_FALSE(worth_retrying(99ms, 100ms));
  EXPECT_TRUE(worth_retrying(1ms, 0ms));
  EXPECT_FALSE(worth_retrying(0ms, 0ms));
}

}  // namespace
}  // namespace sb::resilience
