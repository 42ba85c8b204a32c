// Circuit breaker for one upstream instance or one whole service: stops sending traffic to
// a target that keeps failing, probes it after a backoff, and closes once probes succeed.
// A policy: every call takes `now`; it never reads a clock, sleeps or does I/O.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "resilience/epoch_window.hpp"
#include "resilience/outcome.hpp"

namespace sb::resilience {

enum class BreakerState : std::uint8_t {
  kClosed,        // traffic flows; outcomes are counted
  kOpen,          // traffic refused until the open time is over
  kHalfOpen,      // a few probe requests decide between closed and open
  kForcedOpen,    // an operator opened it; stays open until reset()
  kForcedClosed,  // an operator closed it; stays closed (no trips) until reset()
};

/// "closed", "open", "half_open", "forced_open", "forced_closed".
const char* to_string(BreakerState s);

/// One state change, returned to exactly one caller so it can be reported as an event.
/// `reason` is for humans: "5 consecutive failures", "failure rate 60% over 10 s (24 of
/// 40 calls)", "half-open probe failed", "3 probes succeeded", "forced open by operator".
struct BreakerTransition {
  BreakerState from = BreakerState::kClosed;
  BreakerState to = BreakerState::kClosed;
  std::string reason;
  core::SteadyTime at{};
};

enum class PermitKind : std::uint8_t {
  kRejected,  // do not send; answer 503 with Retry-After
  kAllowed,   // a normal request
  kProbe,     // a half-open probe: record() its outcome, or release() it if never sent
};

/// What allow() granted. Pass it back unchanged to record() or release(); it remembers which
/// half-open period a probe belongs to, so a late outcome cannot affect a later period.
struct Permit {
  PermitKind kind = PermitKind::kRejected;
  std::uint16_t generation = 0;
};

struct Admission {
  Permit permit;
  /// When refused: how long until the breaker may admit again, rounded up to whole seconds,
  /// at least 1 s (the Retry-After value). Zero when admitted.
  std::chrono::seconds retry_after{0};
  /// Set when this call moved the breaker (open -> half_open, or half-open timeout ->
  /// open). Allocates only then.
  std::optional<BreakerTransition> transition;

  bool allowed() const { return permit.kind != PermitKind::kRejected; }
};

/// A consistent-enough view for status pages and metrics. Under concurrent use the window
/// counts may lag by in-flight updates; the state and timing fields are read atomically.
struct BreakerSnapshot {
  BreakerState state = BreakerState::kClosed;
  std::uint32_t consecutive_failures = 0;
  std::uint64_t window_calls = 0;
  std::uint64_t window_failures = 0;
  std::uint64_t window_slow_calls = 0;
  double failure_rate = 0.0;       // percent of window_calls; 0 when the window is empty
  double slow_call_rate = 0.0;     // percent of window_calls
  std::uint64_t times_opened = 0;  // transitions into kOpen since construction
  std::optional<core::SteadyTime> open_until;          // while kOpen
  core::Duration open_remaining{};                     // while kOpen: open_until - now, >= 0
  std::optional<core::SteadyTime> half_open_deadline;  // while kHalfOpen: reopens at this time
  std::uint32_t probes_in_flight = 0;                  // while kHalfOpen: issued, not yet succeeded
  std::uint32_t probes_succeeded = 0;                  // while kHalfOpen
  std::uint32_t backoff_level = 0;  // re-opens without a close: open time x 2^level
};

/// A lock-free circuit breaker, shared by all worker threads (hold it by shared_ptr or
/// unique_ptr: it is neither copyable nor movable).
///
/// Closed: each outcome is recorded into a sliding window of `window` split into
/// `window_buckets` buckets, and into a consecutive-failures counter. It trips to open when
/// any enabled condition holds: `consecutive_failures` failures in a row; or, once the window
/// holds at least `minimum_calls` calls, failures >= `failure_rate`% of them; or slow calls
/// (latency > `slow_call_duration`) >= `slow_call_rate`% of them (0 turns a rule off).
///
/// Open: allow() refuses. The open time is `open_duration` x 2^(re-opens since the last
/// close), capped at `max_open_duration`, then scaled by a jitter factor in [0.9, 1.1)
/// drawn deterministically from the seed and the transition (and capped again, so it never
/// exceeds `max_open_duration`). Times are kept with millisecond resolution (rounded up).
///
/// Half-open: the first allow() after the open time moves it to half-open; up to
/// `half_open_probes` probes are admitted at once. It closes when that many probes have
/// succeeded, reopens (with the doubled open time) on any probe failure, and reopens when it
/// has been half-open for `half_open_timeout` without closing (noticed by the next allow()).
/// A closed breaker starts with an empty window and no consecutive failures.
///
/// Thread-safety: every method may be called from any thread. The state, its timing, the
/// backoff level and a generation number live in one 64-bit atomic word changed only by
/// CAS, so each transition is made by exactly one thread and returned to exactly one caller.
/// Window counts are approximate under concurrency (a bucket being recycled by one thread
/// may drop a concurrent increment); single-threaded behaviour is exact.
///
/// Cost: allow() on a closed breaker is one atomic load; record() of a success is a division
/// and one or two relaxed RMWs. No allocation except when a transition is returned.
class CircuitBreaker {
 public:
  /// `config` is copied. `seed` drives the open-time jitter (use a different seed per
  /// instance so that breakers tripped together do not probe together). A disabled config
  /// gives a breaker that always allows and never records.
  explicit CircuitBreaker(const core::BreakerConfig& config, std::uint64_t seed = 0);
  ~CircuitBreaker();
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  /// May a request go now? See Admission. A kProbe permit must end in exactly one record()
  /// or release().
  Admission allow(core::SteadyTime now);

  /// Whether allow(now) would admit, without taking a probe or moving the state: for the
  /// balancer's availability predicate (one atomic load, two when half-open). A true answer
  /// can still turn into a refusal from allow() when another thread takes the last probe
  /// first; pick again with that instance excluded.
  bool may_allow(core::SteadyTime now) const;

  /// Records the outcome of a request admitted by `permit`. `failure` is the caller's
  /// classification (see is_failure()); `latency` decides slow calls. Returns the
  /// transition this outcome caused, if any (closed -> open, half_open -> closed/open).
  /// Outcomes of requests admitted in an earlier period (before the breaker last changed
  /// state) are ignored, as are probes of an earlier half-open period.
  std::optional<BreakerTransition> record(core::SteadyTime now, Permit permit, bool failure,
                                          core::Duration latency);

  /// Gives back a probe permit that was never sent (the request was cancelled, or another
  /// policy refused it), so another request can probe. No effect for other permits.
  void release(Permit permit);

  /// The failure classification: connect failures, resets and timeouts always fail; a
  /// response fails when its status is in `failure_status` (default 500-599: 4xx never).
  bool is_failure(Outcome outcome) const {
    return outcome.error != TransportError::kNone || failure_status_.contains(outcome.status);
  }

  // Operator actions. Each returns the transition, or nullopt when already in that state.
  /// Refuses all traffic until reset() (allow() answers retry_after = open_duration).
  std::optional<BreakerTransition> force_open(core::SteadyTime now);
  /// Admits all traffic and never trips until reset(); outcomes still feed the window.
  std::optional<BreakerTransition> force_close(core::SteadyTime now);
  /// Back to closed with counters cleared and the backoff reset ("reset by operator").
  /// Clears the counters of a closed breaker too, but then returns nullopt.
  std::optional<BreakerTransition> reset(core::SteadyTime now);

  BreakerSnapshot snapshot(core::SteadyTime now) const;
  /// The current state (one atomic load).
  BreakerState state() const;
  const core::BreakerConfig& config() const { return config_; }

 private:
  struct WindowTotals {
    std::uint64_t calls = 0, failures = 0, slow = 0;
  };

  void add_to_window(std::int64_t epoch, bool failure, bool slow);
  WindowTotals window_totals(std::int64_t epoch) const;
  void clear_counters();
  core::Duration open_time(std::uint32_t level, std::uint16_t generation) const;
  /// CAS `expected` -> a word for `to`; on success builds the transition.
  std::optional<BreakerTransition> transit(std::uint64_t expected, BreakerState to,
                                           std::uint32_t level, core::SteadyTime now,
                                           std::string reason);
  std::optional<BreakerTransition> trip_check(core::SteadyTime now, std::uint64_t word,
                                              std::uint32_t consecutive, std::int64_t epoch);
  std::optional<BreakerTransition> operator_set(core::SteadyTime now, BreakerState to,
                                                const char* reason);

  core::BreakerConfig config_;
  core::StatusSet failure_status_;
  std::uint64_t seed_;
  // calls, failures, slow calls over the last `window`.
  static constexpr std::size_t kCalls = 0, kFailures = 1, kSlow = 2;
  EpochWindow<3> window_;

  // state 3 bits | backoff level 5 | generation 16 | time in ms 40 (see the .cpp).
  alignas(64) std::atomic<std::uint64_t> word_;
  // generation 16 | probes issued 16 | probes succeeded 16, valid for the half-open period
  // whose generation it carries; a stale generation reads as zero.
  std::atomic<std::uint64_t> probes_{0};
  alignas(64) std::atomic<std::uint32_t> consecutive_{0};
  std::atomic<std::uint64_t> times_opened_{0};
};

}  // namespace sb::resilience
