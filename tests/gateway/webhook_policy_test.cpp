#include "gateway/webhook_policy.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string_view>

#include "core/config.hpp"
#include "testing/manual_clock.hpp"

namespace sb::gateway {
namespace {

using namespace std::chrono_literals;
using Decision = WebhookPolicy::Decision;

registry::Event event(std::uint64_t id, std::string type = "registered",
                      std::string service = "svc") {
  registry::Event e;
  e.id = id;
  e.type = std::move(type);
  e.service = std::move(service);
  e.instance = "i";
  return e;
}

class WebhookPolicyTest : public ::testing::Test {
 protected:
  // Attempts the head now and records `status`; returns the outcome.
  WebhookPolicy::Outcome attempt(WebhookPolicy& p, int status, std::uint64_t expect_id) {
    const registry::Event* e = p.next(clock_.steady_now());
    EXPECT_NE(e, nullptr);
    if (e == nullptr) return {};
    EXPECT_EQ(e->id, expect_id);
    return p.record(clock_.steady_now(), clock_.wall_now(), status,
                    status == 0 ? "connect: refused" : "HTTP " + std::to_string(status));
  }

  testing::ManualClock clock_;
};

// 2xx is delivered; 5xx, 429 and no answer are retried; other 4xx, 1xx and 3xx are not.
TEST_F(WebhookPolicyTest, RetryDecisionPerStatus) {
  for (int s : {0, 429, 500, 502, 503, 504, 599}) EXPECT_TRUE(WebhookPolicy::retryable(s)) << s;
  for (int s : {200, 204, 301, 304, 400, 401, 403, 404, 408, 410, 422, 499, 100})
    EXPECT_FALSE(WebhookPolicy::retryable(s)) << s;

  for (int status : {200, 201, 204, 299}) {
    WebhookPolicy p({});
    p.offer(event(1));
    EXPECT_EQ(attempt(p, status, 1).decision, Decision::kDelivered) << status;
    EXPECT_EQ(p.stats().delivered, 1u);
    EXPECT_EQ(p.pending(), 0u);
  }
  for (int status : {400, 404, 410, 302}) {
    WebhookPolicy p({});
    p.offer(event(1));
    EXPECT_EQ(attempt(p, status, 1).decision, Decision::kFailed) << status;
    EXPECT_EQ(p.stats().failed, 1u);
    EXPECT_EQ(p.stats().retries, 0u);
    EXPECT_EQ(p.stats().last_error, "HTTP " + std::to_string(status));
    EXPECT_EQ(p.pending(), 0u);
  }
  for (int status : {0, 429, 500, 503}) {
    WebhookPolicy p({});
    p.offer(event(1));
    EXPECT_EQ(attempt(p, status, 1).decision, Decision::kRetry) << status;
    EXPECT_EQ(p.pending(), 1u);
  }
}

// max_retries retries, then the event fails and the next one is attempted.
TEST_F(WebhookPolicyTest, GivesUpAfterMaxRetries) {
  WebhookPolicy p({.max_retries = 2, .backoff = 100ms, .max_backoff = 1s});
  p.offer(event(1));
  p.offer(event(2));
  for (std::uint32_t n = 1; n <= 2; ++n) {
    const auto o = attempt(p, 503, 1);
    ASSERT_EQ(o.decision, Decision::kRetry) << n;
    EXPECT_EQ(o.attempt, n);
    clock_.advance(o.retry_at - clock_.steady_now());
  }
  const auto last = attempt(p, 503, 1);
  EXPECT_EQ(last.decision, Decision::kFailed);
  EXPECT_EQ(last.attempt, 3u);
  EXPECT_EQ(p.stats().failed, 1u);
  EXPECT_EQ(p.stats().retries, 2u);
  EXPECT_TRUE(p.stats().last_failure.has_value());
  EXPECT_EQ(attempt(p, 200, 2).decision, Decision::kDelivered);
  EXPECT_EQ(p.stats().last_success, clock_.wall_now());
}

// max_retries 0: one attempt only.
TEST_F(WebhookPolicyTest, ZeroRetries) {
  WebhookPolicy p({.max_retries = 0});
  p.offer(event(1));
  EXPECT_EQ(attempt(p, 500, 1).decision, Decision::kFailed);
}

// The cap doubles from the base and stops at max_backoff; each wait is within [0, cap].
TEST_F(WebhookPolicyTest, BackoffBoundsWithFullJitter) {
  WebhookPolicy p({.max_retries = 100, .backoff = 500ms, .max_backoff = 30s, .seed = 7});
  EXPECT_EQ(p.backoff_cap(1), 500ms);
  EXPECT_EQ(p.backoff_cap(2), 1s);
  EXPECT_EQ(p.backoff_cap(3), 2s);
  EXPECT_EQ(p.backoff_cap(6), 16s);
  EXPECT_EQ(p.backoff_cap(7), 30s);
  EXPECT_EQ(p.backoff_cap(100), 30s) << "no overflow";
  p.offer(event(1));
  core::Duration smallest = 1h, largest = 0s;
  for (std::uint32_t n = 1; n <= 60; ++n) {
    const auto o = attempt(p, 500, 1);
    ASSERT_EQ(o.decision, Decision::kRetry);
    const auto wait = o.retry_at - clock_.steady_now();
    EXPECT_GE(wait, 0s) << n;
    EXPECT_LE(wait, p.backoff_cap(n)) << n;
    if (n >= 7) {
      smallest = std::min(smallest, wait);
      largest = std::max(largest, wait);
    }
    clock_.advance(wait);
  }
  // Jitter spreads the capped waits over [0, 30s] rather than repeating one value.
  EXPECT_LT(smallest, 10s);
  EXPECT_GT(largest, 20s);
}

// The head waits out its backoff: next() is empty just before retry_at, ready at it.
TEST_F(WebhookPolicyTest, RetryWaitsForBackoffEdge) {
  WebhookPolicy p({.backoff = 1s, .max_backoff = 1s, .seed = 3});
  p.offer(event(1));
  const auto o = attempt(p, 500, 1);
  ASSERT_EQ(o.decision, Decision::kRetry);
  EXPECT_EQ(p.due(), o.retry_at);
  const auto wait = o.retry_at - clock_.steady_now();
  if (wait > 0ns) {
    clock_.advance(wait - 1ns);
    EXPECT_EQ(p.next(clock_.steady_now()), nullptr);
    clock_.advance(1ns);
  }
  const auto* e = p.next(clock_.steady_now());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->id, 1u);
  EXPECT_EQ(p.stats().retries, 1u);
}

// One attempt at a time, in order: a retried event blocks the later ones.
TEST_F(WebhookPolicyTest, OrderIsKept) {
  WebhookPolicy p({.backoff = 10ms, .max_backoff = 10ms});
  for (std::uint64_t id = 1; id <= 3; ++id) p.offer(event(id));
  ASSERT_NE(p.next(clock_.steady_now()), nullptr);
  EXPECT_EQ(p.next(clock_.steady_now()), nullptr) << "one in flight";
  EXPECT_EQ(p.due(), std::nullopt);
  p.record(clock_.steady_now(), clock_.wall_now(), 500, "HTTP 500");
  clock_.advance(10ms);
  EXPECT_EQ(attempt(p, 200, 1).decision, Decision::kDelivered) << "the retried one first";
  EXPECT_EQ(attempt(p, 200, 2).decision, Decision::kDelivered);
  EXPECT_EQ(attempt(p, 200, 3).decision, Decision::kDelivered);
  EXPECT_EQ(p.next(clock_.steady_now()), nullptr);
  EXPECT_EQ(p.due(), std::nullopt);
}

// A full queue drops the oldest waiting event, never the one being attempted; every drop
// is counted and queued counts what got in.
TEST_F(WebhookPolicyTest, QueueOverflowDropsOldestWaiting) {
  WebhookPolicy p({.queue_size = 3});
  for (std::uint64_t id = 1; id <= 3; ++id) p.offer(event(id));
  p.offer(event(4));  // nothing attempted yet: 1 goes
  EXPECT_EQ(p.stats().dropped, 1u);
  EXPECT_EQ(p.pending(), 3u);
  const auto* head = p.next(clock_.steady_now());
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(head->id, 2u);
  p.offer(event(5));  // 2 is in flight: 3 goes
  EXPECT_EQ(p.stats().dropped, 2u);
  p.record(clock_.steady_now(), clock_.wall_now(), 200, "");
  EXPECT_EQ(attempt(p, 200, 4).decision, Decision::kDelivered);
  EXPECT_EQ(attempt(p, 200, 5).decision, Decision::kDelivered);
  EXPECT_EQ(p.stats().queued, 5u);
  EXPECT_EQ(p.stats().delivered, 3u);
  EXPECT_EQ(p.stats().queued, p.stats().delivered + p.stats().dropped);
}

// An event waiting for its retry is kept too; with queue_size 1 the new event is dropped.
TEST_F(WebhookPolicyTest, QueueOfOneKeepsTheRetriedEvent) {
  WebhookPolicy p({.queue_size = 1});
  p.offer(event(1));
  ASSERT_EQ(attempt(p, 500, 1).decision, Decision::kRetry);
  p.offer(event(2));
  EXPECT_EQ(p.stats().dropped, 1u);
  EXPECT_EQ(p.stats().queued, 1u);
  EXPECT_EQ(p.pending(), 1u);
}

// Events the registry's log lost count as dropped.
TEST_F(WebhookPolicyTest, LostEventsAreDropped) {
  WebhookPolicy p({});
  p.lost(4);
  EXPECT_EQ(p.stats().dropped, 4u);
  EXPECT_EQ(p.pending(), 0u);
}

// Filters: by event type and by service; empty lists take everything.
TEST_F(WebhookPolicyTest, Filters) {
  WebhookPolicy all({});
  EXPECT_TRUE(all.wants(event(1, "health_changed", "any")));
  WebhookPolicy some({.events = {"registered", "expired"}, .services = {"a"}});
  EXPECT_TRUE(some.wants(event(1, "registered", "a")));
  EXPECT_TRUE(some.wants(event(1, "expired", "a")));
  EXPECT_FALSE(some.wants(event(1, "deregistered", "a")));
  EXPECT_FALSE(some.wants(event(1, "registered", "b")));
}

// Settings name the bad field.
TEST_F(WebhookPolicyTest, SettingsValidate) {
  EXPECT_EQ(WebhookSettings{}.validate(), std::nullopt);
  EXPECT_EQ(WebhookSettings{.queue_size = 0}.validate(), "queue_size: must be at least 1");
  EXPECT_EQ((WebhookSettings{.backoff = 2s, .max_backoff = 1s}.validate()),
            "max_backoff: must be at least backoff");
}

// Every event type the registry emits can be asked for in the config.
TEST(WebhookEventTypesTest, RegistryTypesAreKnownToTheConfig) {
  for (std::string_view t :
       {registry::kEventRegistered, registry::kEventReplaced, registry::kEventDeregistered,
        registry::kEventExpired, registry::kEventHealthChanged}) {
    EXPECT_NE(
        std::find(std::begin(core::kWebhookEventTypes), std::end(core::kWebhookEventTypes), t),
        std::end(core::kWebhookEventTypes))
        << t;
  }
}

}  // namespace
}  // namespace sb::gateway

namespace sb::gateway {
namespace {

// Retry-After on a 503 or 429 delays the retry to at least that long (the jittered backoff
// alone would retry within 10 ms), never past max_backoff; on a 500 it is ignored.
TEST(WebhookRetryAfterTest, HonouredOn429And503AndBoundedByMaxBackoff) {
  testing::ManualClock clock;
  for (int status : {503, 429}) {
    WebhookPolicy p({.backoff = 10ms, .max_backoff = 5s, .seed = 1});
    p.offer(event(1));
    ASSERT_NE(p.next(clock.steady_now()), nullptr);
    const auto o = p.record(clock.steady_now(), clock.wall_now(), status, "HTTP", 2s);
    ASSERT_EQ(o.decision, Decision::kRetry);
    EXPECT_EQ(o.retry_at, clock.steady_now() + 2s) << status;
    clock.advance(2s - 1ms);
    EXPECT_EQ(p.next(clock.steady_now()), nullptr) << "1 ms before Retry-After";
    clock.advance(1ms);
    EXPECT_NE(p.next(clock.steady_now()), nullptr) << "at Retry-After";
  }
  {
    WebhookPolicy p({.backoff = 10ms, .max_backoff = 300ms, .seed = 1});
    p.offer(event(1));
    ASSERT_NE(p.next(clock.steady_now()), nullptr);
    const auto o = p.record(clock.steady_now(), clock.wall_now(), 503, "HTTP 503", 3600s);
    EXPECT_EQ(o.retry_at, clock.steady_now() + 300ms) << "bounded by max_backoff";
  }
  {
    WebhookPolicy p({.backoff = 10ms, .max_backoff = 5s, .seed = 1});
    p.offer(event(1));
    ASSERT_NE(p.next(clock.steady_now()), nullptr);
    const auto o = p.record(clock.steady_now(), clock.wall_now(), 500, "HTTP 500", 2s);
    EXPECT_LE(o.retry_at, clock.steady_now() + 10ms) << "a 500's Retry-After is not taken";
  }
}

// delay-seconds and IMF-fixdate; anything else is no Retry-After.
TEST(WebhookRetryAfterTest, ParsesSecondsAndHttpDates) {
  // 2023-11-14T22:13:20Z, the manual clock's wall start (1.7e9 s).
  const core::WallTime now{std::chrono::seconds(1'700'000'000)};
  EXPECT_EQ(WebhookPolicy::parse_retry_after("0", now), core::Duration::zero());
  EXPECT_EQ(WebhookPolicy::parse_retry_after("120", now), core::Duration(120s));
  EXPECT_EQ(WebhookPolicy::parse_retry_after("99999999999", now), core::Duration(24h));
  EXPECT_EQ(WebhookPolicy::parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now),
            core::Duration(30s));
  EXPECT_EQ(WebhookPolicy::parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now),
            core::Duration::zero())
      << "a date in the past: at once";
  for (std::string_view bad : {"", "-1", "1.5", " 5", "5 ", "abc", "Tue, 14 Nov 2023 22:13:50 UTC",
                               "Tue, 31 Feb 2023 22:13:50 GMT", "Xyz, 14 Nov 2023 22:13:50 GMT",
                               "Tue, 14 Foo 2023 22:13:50 GMT", "Tue, 14 Nov 2023 25:13:50 GMT"})
    EXPECT_EQ(WebhookPolicy::parse_retry_after(bad, now), std::nullopt) << bad;
}

}  // namespace
}  // namespace sb::gateway
