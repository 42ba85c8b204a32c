// Health-state policies for one instance: rise/fall thresholds over checks and live traffic,
// degradation from a rolling latency/error window, check scheduling with jitter, and TTLs.
// Plain objects: no I/O, no timers, no clock reads; every call takes `now`.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"

namespace sb::registry {

/// Health of one instance. Only kHealthy and kDegraded take traffic (kUnknown too when
/// HealthSettings::traffic_before_first_check is set).
enum class InstanceState { kUnknown, kHealthy, kDegraded, kUnhealthy, kDraining };

/// "unknown", "healthy", "degraded", "unhealthy", "draining".
const char* to_string(InstanceState state);

struct HealthSettings {
  int rise = 2;  // consecutive successes (checks or live) that make an instance healthy
  int fall = 3;  // consecutive failures (checks or live) that make it unhealthy
  core::Duration interval = std::chrono::seconds(30);           // HEALTH_CHECK_INTERVAL
  core::Duration unhealthy_interval = std::chrono::seconds(5);  // while unknown or unhealthy
  double jitter = 0.1;  // each check interval is scaled by a uniform draw in [1 - j, 1 + j)
  bool traffic_before_first_check = false;  // kUnknown takes traffic (services without checks)
  double stretch_on_live_success = 1.0;     // interval factor while live traffic succeeds; 1 = off

  // Degradation, from live traffic and checks over a rolling window.
  core::Duration window = std::chrono::seconds(60);  // METRICS_COLLECTION_INTERVAL
  int window_buckets = 6;                            // the window rotates in window/buckets steps
  core::Duration degraded_p95 = std::chrono::seconds(1);  // p95 at or above: degraded; 0 = off
  double degraded_error_rate = 0.25;  // error rate at or above: degraded; 0 = off
  double recover_factor = 0.8;        // healthy again when both are below factor x their threshold
  std::size_t min_samples = 20;       // no degradation decision on fewer samples in the window

  /// The first invalid field as "health.<field>: <reason>", or nullopt when all are valid.
  std::optional<std::string> validate() const;
};

/// A state change, for the registry to turn into an event.
struct Transition {
  InstanceState from = InstanceState::kUnknown;
  InstanceState to = InstanceState::kUnknown;
  std::string reason;
  core::SteadyTime at{};
};

/// The outcome of the latest active check.
struct CheckResult {
  core::SteadyTime at{};
  bool ok = false;
  core::Duration latency{};
  std::string reason;
};

/// Live traffic and checks over the window. Percentiles are nearest-rank, estimated from a
/// log-spaced histogram (4 bins per octave from 16 us to 137 s): within 12.5% of the true
/// value; below 16 us reads as 8 us. All zero when the window is empty.
struct WindowStats {
  std::uint64_t count = 0;
  std::uint64_t errors = 0;
  double error_rate = 0.0;  // errors / count
  core::Duration p50{};
  core::Duration p95{};
  core::Duration p99{};
};

/// Fixed-size latency histogram: 4 log-spaced bins per octave, no allocation per sample.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 2;     // 2^kSubBits bins per octave: <= 25% wide
  static constexpr int kMinOctave = 14;  // 2^14 ns = 16.4 us; faster samples share bin 0
  static constexpr int kMaxOctave = 36;  // up to 2^37 ns = 137 s; slower ones share the last
  static constexpr int kBins = 1 + (kMaxOctave - kMinOctave + 1) * (1 << kSubBits);

  /// The bin that holds `latency` (negative counts as zero).
  static int bin_of(core::Duration latency);
  /// The value reported for a bin: the middle of its range.
  static core::Duration bin_value(int bin);

  void add(core::Duration latency) { ++bins_[static_cast<std::size_t>(bin_of(latency))]; }
  void add(const LatencyHistogram& other);
  void clear() { bins_.fill(0); }
  /// Nearest-rank `rank`-th smallest sample (1-based) in bin terms; zero when empty.
  core::Duration value_at_rank(std::uint64_t rank) const;

 private:
  std::array<std::uint32_t, kBins> bins_{};
};

/// Health of one instance from active checks and live traffic. Not thread-safe: one owner
/// (the control thread) feeds it; workers hand their live results over.
///
/// Rise/fall: `rise` consecutive successes make an unknown or unhealthy instance healthy,
/// `fall` consecutive failures make an unknown, healthy or degraded one unhealthy. Checks and
/// live requests feed the same counters. kDraining is final: later results only feed stats.
///
/// Degradation: a healthy instance whose window holds at least `min_samples` samples turns
/// degraded when its p95 or its error rate reaches its threshold, and healthy again (again
/// with at least `min_samples`) only when both are below `recover_factor` x threshold. The
/// decision counts samples at or above the thresholds exactly, so it does not depend on the
/// histogram's resolution (the reported p95 may differ from it by up to 12.5%). With fewer
/// samples the state stays as it is: sparse data neither degrades nor clears an instance.
class HealthTracker {
 public:
  /// A new instance, kUnknown since `now`. `settings` must be valid.
  HealthTracker(const HealthSettings& settings, core::SteadyTime now);

  /// Records an active check. `reason` says what happened ("HTTP 200", "connect: refused")
  /// and is kept in last_check(); a transition caused by this check carries it.
  std::optional<Transition> record_check(core::SteadyTime now, bool ok, core::Duration latency,
                                         std::string_view reason);
  /// Records a live request: `ok` false for connect errors, resets, timeouts and 5xx.
  /// Allocates only when the state changes. With `judge_window` false the sample counts
  /// toward rise, fall and the window, but the window is not judged: a caller recording a
  /// batch of samples judges it once afterwards with update().
  std::optional<Transition> record_live(core::SteadyTime now, bool ok, core::Duration latency,
                                        std::string_view reason = {}, bool judge_window = true);
  /// Re-evaluates degradation as the window rotates without new samples; call it each
  /// metrics interval.
  std::optional<Transition> update(core::SteadyTime now);
  /// Marks the instance draining (final); nullopt when it already was.
  std::optional<Transition> set_draining(core::SteadyTime now,
                                         std::string_view reason = "draining");

  InstanceState state() const { return state_; }
  /// Why the instance is in its state ("" while unknown).
  const std::string& reason() const { return reason_; }
  /// When the current state began.
  core::SteadyTime since() const { return since_; }
  /// Healthy or degraded; unknown too when traffic_before_first_check.
  bool takes_traffic() const;
  /// The latest active check, nullopt before the first.
  const std::optional<CheckResult>& last_check() const { return last_check_; }
  /// True when a live request succeeded since the last check and none failed after it.
  bool live_ok_since_last_check() const { return live_ok_since_check_; }
  int consecutive_successes() const { return successes_; }
  int consecutive_failures() const { return failures_; }
  /// Count, errors, error rate and p50/p95/p99 over the window ending at `now`.
  WindowStats stats(core::SteadyTime now) const;

 private:
  struct Bucket {
    std::int64_t epoch = std::numeric_limits<std::int64_t>::min();  // window step held
    std::uint32_t count = 0;
    std::uint32_t errors = 0;
    std::uint32_t slow = 0;          // latency >= degraded_p95
    std::uint32_t slow_recover = 0;  // latency >= recover_factor x degraded_p95
    LatencyHistogram latency;
  };
  struct Totals {
    std::uint64_t count = 0, errors = 0, slow = 0, slow_recover = 0;
  };

  std::optional<Transition> record(core::SteadyTime now, bool ok, core::Duration latency,
                                   std::string_view reason, std::string_view source,
                                   bool judge_window = true);
  void add_sample(core::SteadyTime now, bool ok, core::Duration latency);
  std::int64_t epoch_of(core::SteadyTime now) const;
  Totals totals(core::SteadyTime now) const;
  /// Why the window says degraded at the entry thresholds, "" when it does not.
  std::string degraded_reason(const Totals& t) const;
  bool recovered(const Totals& t) const;
  std::optional<Transition> evaluate_window(core::SteadyTime now);
  Transition change(core::SteadyTime now, InstanceState to, std::string reason);

  HealthSettings settings_;
  core::Duration bucket_width_;
  core::Duration slow_recover_threshold_;
  InstanceState state_ = InstanceState::kUnknown;
  std::string reason_;
  core::SteadyTime since_;
  int successes_ = 0;
  int failures_ = 0;
  bool live_ok_since_check_ = false;
  std::optional<CheckResult> last_check_;
  std::vector<Bucket> buckets_;  // ring, indexed by epoch % size; sized once
};

/// When to check an instance next: at once when new, every `unhealthy_interval` while unknown
/// or unhealthy, every `interval` (x stretch_on_live_success while live traffic succeeds)
/// otherwise; each interval scaled by a uniform draw in [1 - jitter, 1 + jitter) so that
/// checks of many instances spread out. Not thread-safe (the random source has state).
class CheckScheduler {
 public:
  /// Returns a uniform double in [0, 1).
  using RandomSource = std::function<double()>;

  /// Draws from a built-in xorshift64* generator seeded with `seed`.
  CheckScheduler(const HealthSettings& settings, std::uint64_t seed);
  /// Draws from `random` (tests pass fixed values).
  CheckScheduler(const HealthSettings& settings, RandomSource random);

  /// A new instance is checked at once: returns `now`.
  core::SteadyTime first_check(core::SteadyTime now) const { return now; }
  /// The next check after one that completed (or was due) at `now`.
  core::SteadyTime next_check(core::SteadyTime now, InstanceState state,
                              bool live_ok_since_last_check = false);
  /// The same, from a tracker: `now` when it has never been checked.
  core::SteadyTime next_check(core::SteadyTime now, const HealthTracker& tracker);
  /// The interval next_check() adds, before jitter.
  core::Duration base_interval(InstanceState state, bool live_ok_since_last_check) const;

 private:
  double draw();

  HealthSettings settings_;
  RandomSource random_;
  std::uint64_t state_ = 0;
};

/// A registration's time to live: it expires at its deadline unless renewed before. A zero
/// (or negative) TTL means no TTL: it never expires.
class TtlTracker {
 public:
  /// No TTL.
  TtlTracker() = default;
  /// (Re)starts the TTL at `now` (the register call; `register` is a keyword).
  void start(core::SteadyTime now, core::Duration ttl);
  /// Restores a persisted deadline (on startup); a deadline in the past is expired.
  void restore(core::Duration ttl, core::SteadyTime deadline);
  /// Moves the deadline to now + ttl. Returns false, changing nothing, when the TTL has
  /// already expired (the sweep will remove the instance); true without a TTL.
  bool renew(core::SteadyTime now);
  /// True from the deadline on (exactly at it, not one ns before); never without a TTL.
  bool expired(core::SteadyTime now) const { return deadline_ && now >= *deadline_; }
  /// nullopt without a TTL.
  std::optional<core::SteadyTime> deadline() const { return deadline_; }
  core::Duration ttl() const { return ttl_; }

 private:
  core::Duration ttl_{};
  std::optional<core::SteadyTime> deadline_;
};

}  // namespace sb::registry
