// Retries: which requests and outcomes may be retried, how long to wait, and a retry budget
// that caps retries (and hedges) to a share of the traffic, so that retries cannot multiply
// the load on a service that is already failing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "resilience/epoch_window.hpp"
#include "resilience/outcome.hpp"
#include "resilience/random.hpp"

namespace sb::resilience {

/// Counts in a retry budget at one moment (approximate under concurrency).
struct BudgetSnapshot {
  std::uint64_t window_requests = 0;  // requests recorded in the last budget_window
  std::uint64_t window_retries = 0;   // retries granted in the last budget_window
  std::uint32_t second_retries = 0;   // retries granted in the current 1 s (floor counter)
};

/// A retry budget for one service, shared by all worker threads, lock-free.
///
/// record_request() once per original request (not per attempt); try_acquire() before each
/// retry or hedge. A retry is granted when either
///  - percent rule: the retries granted in the last `budget_window`, this one included, are
///    at most `budget_percent`% of the requests recorded in it, or
///  - floor rule: while the window holds fewer than budget_min_per_second x its seconds
///    retries, fewer than `budget_min_per_second` were granted in the current wall-aligned
///    second (steady time divided into whole seconds).
/// The floor is a minimum for quiet services, not an addition: per window, retries <=
/// max(percent% of requests, budget_min_per_second x window seconds). A total outage under
/// load cannot multiply traffic by more than 1 + percent/100.
///
/// The window is 10 buckets of budget_window / 10; the oldest bucket leaves as a whole.
/// Thread-safety: any thread. A retry is counted before it is checked and taken back when
/// refused, so racing threads never over-grant (a racing claim may make another refuse); a
/// recycled bucket may drop a racing increment; the floor rule is exact (one CAS). No
/// allocation.
class RetryBudget {
 public:
  explicit RetryBudget(const core::RetryConfig& config);
  ~RetryBudget();
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  /// Counts one original request.
  void record_request(core::SteadyTime now);
  /// Asks for one retry (or hedge); true, and counted, when the budget allows it.
  bool try_acquire(core::SteadyTime now);
  BudgetSnapshot snapshot(core::SteadyTime now) const;

 private:
  bool take_floor(std::int64_t second, bool force);

  static constexpr std::uint32_t kBuckets = 10;
  std::uint32_t percent_;
  std::uint32_t min_per_second_;
  static constexpr std::size_t kRequests = 0, kRetries = 1;
  EpochWindow<2> window_;
  // second 40 bits | retries granted in it 24 bits.
  alignas(64) std::atomic<std::uint64_t> floor_{0};
};

/// Retry decisions for one service or route. Immutable after construction: share it freely.
class RetryPolicy {
 public:
  explicit RetryPolicy(const core::RetryConfig& config);

  /// GET, HEAD, OPTIONS, PUT and DELETE (exact, case-sensitive as HTTP methods are), or any
  /// request that carries an Idempotency-Key header. POST and PATCH are not.
  static bool is_idempotent(std::string_view method, bool has_idempotency_key);

  /// Whether this outcome is worth another attempt: connect failures and resets (unless
  /// turned off), statuses in retry_on_status. Timeouts only when per_try_timeout is set:
  /// then the operator asked for a bounded try and another one; without it, a timeout is the
  /// whole response timeout and a retry would mostly double the wait.
  bool retryable(Outcome outcome) const;

  /// Whether attempt number `retries_done` + 1 is allowed by max_retries.
  bool attempts_left(std::uint32_t retries_done) const { return retries_done < max_retries_; }

  /// Whether a request body of `bytes` may be replayed (<= max_replay_body).
  bool body_replayable(std::uint64_t bytes) const { return bytes <= max_replay_body_; }

  /// Full-jitter backoff before retry number `retry` (0 for the first retry): uniform in
  /// [0, min(backoff_max, backoff_base x 2^retry)], nanosecond granularity.
  core::Duration backoff(std::uint32_t retry, Rng& rng) const;

  /// The wait before retry number `retry`, honouring a Retry-After of the failed answer when
  /// it is at most backoff_max (then exactly that long). A longer Retry-After is not waited
  /// for: the balancer avoids that instance until then, so the retry goes to another one
  /// after the normal jittered backoff.
  core::Duration delay(std::uint32_t retry, Rng& rng,
                       std::optional<core::Duration> retry_after) const;

  const core::StatusSet& retry_on_status() const { return retry_on_status_; }
  /// Each attempt's own timeout; zero when unset (the service's timeouts.response applies).
  core::Duration per_try_timeout() const { return per_try_timeout_; }

 private:
  std::uint32_t max_retries_;
  core::StatusSet retry_on_status_;
  bool on_connect_failure_;
  bool on_reset_;
  bool on_timeout_;
  core::Duration per_try_timeout_;
  core::Duration backoff_base_;
  core::Duration backoff_max_;
  std::uint64_t max_replay_body_;
};

/// Parses a Retry-After value in its delta-seconds form: 1 to 9 ASCII digits, nothing else
/// (no sign, space or fraction). The HTTP-date form and anything malformed give nullopt, and
/// callers then ignore the header (a date needs the wall clock and is rare from services).
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

/// Skip a retry when the deadline's remaining time is below the instance's recent median
/// latency: the retry would most likely not answer in time. True when a retry is worth it
/// (remaining >= median). Pass the remaining time after the backoff wait. With no latency
/// history pass zero: then only an expired deadline (remaining <= 0) stops it.
constexpr bool worth_retrying(core::Duration remaining, core::Duration median_latency) {
  return remaining > core::Duration::zero() && remaining >= median_latency;
}

}  // namespace sb::resilience
