// Delivery policy of one webhook sink: which events it takes, its bounded queue, and what to
// do after each attempt (delivered, retry after a backoff with full jitter, or give up).
// A plain object: it takes `now` and returns decisions; gateway/webhooks.cpp drives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "registry/events.hpp"

namespace sb::gateway {

struct WebhookSettings {
  std::vector<std::string> events{};    // event types taken; empty: every type
  std::vector<std::string> services{};  // services whose events are taken; empty: every service
  std::uint32_t max_retries = 5;        // attempts after the first, for retryable outcomes
  core::Duration backoff = std::chrono::milliseconds(500);         // base of the exponential
  core::Duration max_backoff = std::chrono::milliseconds(30'000);  // cap of the exponential
  std::size_t queue_size = 1'000;  // events held, the one being attempted included
  std::uint64_t seed = 0;          // of the jitter's random source (tests pin it)

  /// The first bad field with the reason, or nullopt.
  std::optional<std::string> validate() const;
};

/// Not thread-safe: the driver serializes calls (it reads stats() from other threads
/// under its own lock).
///
/// Order is kept: only the head of the queue is ever attempted, and it stays the head while
/// it waits for a retry, so a later event never overtakes an earlier one.
///
/// Overflow: when the queue is full, the oldest event that is not being attempted is dropped
/// (the new one only when the queue holds nothing else, queue_size 1). A sink that was down
/// for long thus gets the most recent events when it comes back, which describe the current
/// state; the gap shows in `dropped` and in the event ids.
class WebhookPolicy {
 public:
  explicit WebhookPolicy(WebhookSettings settings);

  /// Whether the filters take `e` (its type and its service).
  bool wants(const registry::Event& e) const;
  /// Queues an event (call wants() first). May drop one (see the class comment).
  void offer(registry::Event e);
  /// Counts `n` events as dropped that never reached this sink (the registry's bounded log
  /// lost them before the driver read them).
  void lost(std::uint64_t n);

  /// The event to attempt now: the head of the queue, unless an attempt is in flight or its
  /// retry time has not come. Marks it in flight until record(). The pointer is valid until
  /// the next call of any other member.
  const registry::Event* next(core::SteadyTime now);
  /// When next() will have an event: nullopt while an attempt is in flight or the queue is
  /// empty; a time <= now when one is ready.
  std::optional<core::SteadyTime> due() const;

  enum class Decision : std::uint8_t { kDelivered, kRetry, kFailed };
  struct Outcome {
    Decision decision = Decision::kDelivered;
    core::SteadyTime retry_at{};  // kRetry only
    std::uint32_t attempt = 0;    // 1 for the first attempt of this event
  };
  /// The answer to the attempt next() returned: the HTTP status, or 0 when there was none
  /// (connect error, timeout, malformed response), and a short reason for failures.
  /// 2xx is delivered; 5xx, 429 and 0 are retried up to max_retries; anything else (other
  /// 4xx, 1xx, 3xx: redirects are not followed) fails at once. A failed event is dropped.
  /// `retry_after` is the answer's Retry-After (parse_retry_after()): on a 429 or 503 the
  /// retry waits at least that long, but never longer than max_backoff.
  Outcome record(core::SteadyTime now, core::WallTime wall, int status, std::string_view error,
                 std::optional<core::Duration> retry_after = std::nullopt);

  /// A Retry-After value as a delay from `now`: delay-seconds ("120") or an IMF-fixdate
  /// ("Sun, 06 Nov 1994 08:49:37 GMT"; one in the past is zero). nullopt when empty or
  /// malformed (then the backoff alone decides).
  static std::optional<core::Duration> parse_retry_after(std::string_view value,
                                                         core::WallTime now);

  /// Whether an attempt that ended with `status` (0: no HTTP answer) is worth repeating.
  static bool retryable(int status);
  /// The largest wait before retry `n` (1-based): min(max_backoff, backoff x 2^(n-1)).
  core::Duration backoff_cap(std::uint32_t n) const;

  struct Stats {
    std::uint64_t queued = 0;     // events accepted into the queue
    std::uint64_t delivered = 0;  // answered 2xx
    std::uint64_t failed = 0;     // given up: non-retryable answer or retries exhausted
    std::uint64_t dropped = 0;    // never attempted: queue overflow or lost by the log
    std::uint64_t retries = 0;    // attempts after the first
    std::string last_error{};     // "HTTP 500", "connect: Connection refused", ...
    std::optional<core::WallTime> last_success{};
    std::optional<core::WallTime> last_failure{};
  };
  const Stats& stats() const { return stats_; }
  /// Events held, the one being attempted included.
  std::size_t pending() const { return queue_.size(); }
  bool in_flight() const { return in_flight_; }

 private:
  WebhookSettings settings_;
  std::deque<registry::Event> queue_;  // front: the event being attempted or next
  bool in_flight_ = false;
  std::uint32_t attempts_ = 0;  // attempts made on the front event
  std::optional<core::SteadyTime> retry_at_;
  std::mt19937_64 random_;
  Stats stats_;
};

}  // namespace sb::gateway
