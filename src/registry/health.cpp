#include "registry/health.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <utility>

namespace sb::registry {
namespace {

using Rep = core::Duration::rep;

double to_ms(core::Duration d) { return static_cast<double>(d.count()) / 1e6; }

// Nearest-rank position of quantile `percent`/100 among n samples: ceil(percent * n / 100).
std::uint64_t rank_of(std::uint64_t percent, std::uint64_t n) { return (percent * n + 99) / 100; }

std::int64_t floor_div(Rep a, Rep b) {
  Rep q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

const char* to_string(InstanceState state) {
  switch (state) {
    case InstanceState::kUnknown:
      return "unknown";
    case InstanceState::kHealthy:
      return "healthy";
    case InstanceState::kDegraded:
      return "degraded";
    case InstanceState::kUnhealthy:
      return "unhealthy";
    case InstanceState::kDraining:
      return "draining";
  }
  return "unknown";
}

std::optional<std::string> HealthSettings::validate() const {
  using std::chrono::milliseconds;
  if (rise < 1) return "health.rise: must be at least 1";
  if (fall < 1) return "health.fall: must be at least 1";
  if (interval <= core::Duration::zero()) return "health.interval: must be positive";
  if (unhealthy_interval <= core::Duration::zero())
    return "health.unhealthy_interval: must be positive";
  if (!(jitter >= 0.0 && jitter < 1.0)) return "health.jitter: must be at least 0 and below 1";
  if (!(stretch_on_live_success >= 1.0 && stretch_on_live_success <= 100.0))
    return "health.stretch_on_live_success: must be between 1 (off) and 100";
  if (window < milliseconds(1)) return "health.window: must be at least 1ms";
  if (window_buckets < 1 || window_buckets > 60)
    return "health.window_buckets: must be between 1 and 60";
  if (degraded_p95 < core::Duration::zero())
    return "health.degraded_p95: must not be negative (0 turns it off)";
  if (!(degraded_error_rate >= 0.0 && degraded_error_rate <= 1.0))
    return "health.degraded_error_rate: must be between 0 (off) and 1";
  if (!(recover_factor > 0.0 && recover_factor <= 1.0))
    return "health.recover_factor: must be above 0 and at most 1";
  if (min_samples < 1) return "health.min_samples: must be at least 1";
  return std::nullopt;
}

// --- LatencyHistogram ----------------------------------------------------------------------

int LatencyHistogram::bin_of(core::Duration latency) {
  const Rep ns = latency.count();
  if (ns < (Rep{1} << kMinOctave)) return 0;
  if (ns >= (Rep{1} << (kMaxOctave + 1))) return kBins - 1;
  const auto u = static_cast<std::uint64_t>(ns);
  const int msb = static_cast<int>(std::bit_width(u)) - 1;
  const int sub = static_cast<int>((u >> (msb - kSubBits)) & ((1u << kSubBits) - 1));
  return 1 + ((msb - kMinOctave) << kSubBits) + sub;
}

core::Duration LatencyHistogram::bin_value(int bin) {
  if (bin <= 0) return core::Duration(Rep{1} << (kMinOctave - 1));
  const int octave = (bin - 1) / (1 << kSubBits) + kMinOctave;
  const int sub = (bin - 1) % (1 << kSubBits);
  const Rep width = Rep{1} << (octave - kSubBits);
  const Rep lower = ((Rep{1} << kSubBits) + sub) * width;
  return core::Duration(lower + width / 2);
}

void LatencyHistogram::add(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < bins_.size(); ++i) bins_[i] += other.bins_[i];
}

core::Duration LatencyHistogram::value_at_rank(std::uint64_t rank) const {
  if (rank == 0) return core::Duration::zero();
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bins_.size(); ++i) {
    seen += bins_[i];
    if (seen >= rank) return bin_value(static_cast<int>(i));
  }
  return core::Duration::zero();
}

// --- HealthTracker -------------------------------------------------------------------------

HealthTracker::HealthTracker(const HealthSettings& settings, core::SteadyTime now)
    : settings_(settings),
      bucket_width_(settings.window / std::max(settings.window_buckets, 1)),
      slow_recover_threshold_(static_cast<Rep>(
          std::ceil(static_cast<double>(settings.degraded_p95.count()) * settings.recover_factor))),
      since_(now),
      buckets_(static_cast<std::size_t>(std::max(settings.window_buckets, 1))) {
  if (bucket_width_ <= core::Duration::zero()) bucket_width_ = core::Duration(1);
}

bool HealthTracker::takes_traffic() const {
  switch (state_) {
    case InstanceState::kHealthy:
    case InstanceState::kDegraded:
      return true;
    case InstanceState::kUnknown:
      return settings_.traffic_before_first_check;
    case InstanceState::kUnhealthy:
    case InstanceState::kDraining:
      return false;
  }
  return false;
}

std::optional<Transition> HealthTracker::record_check(core::SteadyTime now, bool ok,
                                                      core::Duration latency,
                                                      std::string_view reason) {
  if (last_check_) {
    last_check_->at = now;
    last_check_->ok = ok;
    last_check_->latency = latency;
    last_check_->reason.assign(reason);
  } else {
    last_check_ = CheckResult{now, ok, latency, std::string(reason)};
  }
  live_ok_since_check_ = false;
  return record(now, ok, latency, reason, "check");
}

std::optional<Transition> HealthTracker::record_live(core::SteadyTime now, bool ok,
                                                     core::Duration latency,
                                                     std::string_view reason, bool judge_window) {
  live_ok_since_check_ = ok;
  return record(now, ok, latency, reason, "live request", judge_window);
}

std::optional<Transition> HealthTracker::record(core::SteadyTime now, bool ok,
                                                core::Duration latency, std::string_view reason,
                                                std::string_view source, bool judge_window) {
  add_sample(now, ok, latency);
  if (ok) {
    failures_ = 0;
    if (successes_ < INT_MAX) ++successes_;
  } else {
    successes_ = 0;
    if (failures_ < INT_MAX) ++failures_;
  }

  switch (state_) {
    case InstanceState::kDraining:
      return std::nullopt;
    case InstanceState::kUnknown:
    case InstanceState::kUnhealthy:
      if (ok && successes_ >= settings_.rise) {
        // Proven again; a window that still says degraded (recent live errors, say) makes it
        // degraded rather than healthy, so it ramps up with less traffic.
        const Totals t = totals(now);
        std::string why = fmt::format("{} consecutive successes", successes_);
        if (t.count >= settings_.min_samples) {
          std::string degraded = degraded_reason(t);
          if (!degraded.empty())
            return change(now, InstanceState::kDegraded, fmt::format("{}, but {}", why, degraded));
        }
        return change(now, InstanceState::kHealthy, std::move(why));
      }
      if (!ok && state_ == InstanceState::kUnknown && failures_ >= settings_.fall)
        break;  // to the fall below
      return std::nullopt;
    case InstanceState::kHealthy:
    case InstanceState::kDegraded:
      if (!ok && failures_ >= settings_.fall) break;
      if (!judge_window) return std::nullopt;
      return evaluate_window(now);
  }

  if (reason.empty())
    return change(now, InstanceState::kUnhealthy,
                  fmt::format("{} failed ({} consecutive failures)", source, failures_));
  return change(now, InstanceState::kUnhealthy,
                fmt::format("{} failed: {} ({} consecutive failures)", source, reason, failures_));
}

std::optional<Transition> HealthTracker::update(core::SteadyTime now) {
  if (state_ != InstanceState::kHealthy && state_ != InstanceState::kDegraded) return std::nullopt;
  return evaluate_window(now);
}

std::optional<Transition> HealthTracker::set_draining(core::SteadyTime now,
                                                      std::string_view reason) {
  if (state_ == InstanceState::kDraining) return std::nullopt;
  return change(now, InstanceState::kDraining, std::string(reason));
}

std::int64_t HealthTracker::epoch_of(core::SteadyTime now) const {
  return floor_div(now.time_since_epoch().count(), bucket_width_.count());
}

void HealthTracker::add_sample(core::SteadyTime now, bool ok, core::Duration latency) {
  const std::int64_t epoch = epoch_of(now);
  const auto n = static_cast<std::int64_t>(buckets_.size());
  Bucket& b = buckets_[static_cast<std::size_t>(((epoch % n) + n) % n)];
  if (b.epoch > epoch) return;  // a late sample whose slot a newer step already reuses
  if (b.epoch != epoch) {
    b.epoch = epoch;
    b.count = b.errors = b.slow = b.slow_recover = 0;
    b.latency.clear();
  }
  ++b.count;
  if (!ok) ++b.errors;
  if (settings_.degraded_p95 > core::Duration::zero()) {
    if (latency >= settings_.degraded_p95) ++b.slow;
    if (latency >= slow_recover_threshold_) ++b.slow_recover;
  }
  b.latency.add(latency);
}

HealthTracker::Totals HealthTracker::totals(core::SteadyTime now) const {
  const std::int64_t epoch = epoch_of(now);
  const auto n = static_cast<std::int64_t>(buckets_.size());
  Totals t;
  for (const Bucket& b : buckets_) {
    if (b.epoch > epoch - n && b.epoch <= epoch) {
      t.count += b.count;
      t.errors += b.errors;
      t.slow += b.slow;
      t.slow_recover += b.slow_recover;
    }
  }
  return t;
}

std::string HealthTracker::degraded_reason(const Totals& t) const {
  if (t.count == 0) return {};
  // Nearest-rank p95 is at or above the threshold exactly when more than n - rank samples are.
  const std::uint64_t above_p95 = t.count - rank_of(95, t.count);
  if (settings_.degraded_p95 > core::Duration::zero() && t.slow > above_p95)
    return fmt::format("p95 latency at or above {:g}ms ({} of {} samples)",
                       to_ms(settings_.degraded_p95), t.slow, t.count);
  const double rate = static_cast<double>(t.errors) / static_cast<double>(t.count);
  if (settings_.degraded_error_rate > 0.0 && rate >= settings_.degraded_error_rate)
    return fmt::format("error rate {:.1f}% at or above {:g}% ({} of {} samples)", rate * 100,
                       settings_.degraded_error_rate * 100, t.errors, t.count);
  return {};
}

bool HealthTracker::recovered(const Totals& t) const {
  if (t.count == 0) return false;
  const std::uint64_t above_p95 = t.count - rank_of(95, t.count);
  const bool fast = settings_.degraded_p95 <= core::Duration::zero() || t.slow_recover <= above_p95;
  const double rate = static_cast<double>(t.errors) / static_cast<double>(t.count);
  const bool clean = settings_.degraded_error_rate <= 0.0 ||
                     rate < settings_.recover_factor * settings_.degraded_error_rate;
  return fast && clean;
}

std::optional<Transition> HealthTracker::evaluate_window(core::SteadyTime now) {
  const Totals t = totals(now);
  if (t.count < settings_.min_samples) return std::nullopt;  // too sparse to judge either way
  if (state_ == InstanceState::kHealthy) {
    std::string degraded = degraded_reason(t);
    if (degraded.empty()) return std::nullopt;
    return change(now, InstanceState::kDegraded, std::move(degraded));
  }
  if (state_ == InstanceState::kDegraded && recovered(t))
    return change(now, InstanceState::kHealthy,
                  fmt::format("p95 latency and error rate below {:g}x their thresholds ({} "
                              "samples)",
                              settings_.recover_factor, t.count));
  return std::nullopt;
}

Transition HealthTracker::change(core::SteadyTime now, InstanceState to, std::string reason) {
  Transition t{state_, to, std::move(reason), now};
  state_ = to;
  reason_ = t.reason;
  since_ = now;
  return t;
}

WindowStats HealthTracker::stats(core::SteadyTime now) const {
  const std::int64_t epoch = epoch_of(now);
  const auto n = static_cast<std::int64_t>(buckets_.size());
  WindowStats s;
  LatencyHistogram merged;
  for (const Bucket& b : buckets_) {
    if (b.epoch > epoch - n && b.epoch <= epoch) {
      s.count += b.count;
      s.errors += b.errors;
      merged.add(b.latency);
    }
  }
  if (s.count == 0) return s;
  s.error_rate = static_cast<double>(s.errors) / static_cast<double>(s.count);
  s.p50 = merged.value_at_rank(rank_of(50, s.count));
  s.p95 = merged.value_at_rank(rank_of(95, s.count));
  s.p99 = merged.value_at_rank(rank_of(99, s.count));
  return s;
}

// --- CheckScheduler ------------------------------------------------------------------------

CheckScheduler::CheckScheduler(const HealthSettings& settings, std::uint64_t seed)
    : settings_(settings), state_(seed != 0 ? seed : 0x9e3779b97f4a7c15ull) {}

CheckScheduler::CheckScheduler(const HealthSettings& settings, RandomSource random)
    : settings_(settings), random_(std::move(random)) {}

double CheckScheduler::draw() {
  if (random_) return std::clamp(random_(), 0.0, 1.0);
  // xorshift64*: plenty for spreading check times, and no allocation or locking.
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  const std::uint64_t x = state_ * 0x2545f4914f6cdd1dull;
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

core::Duration CheckScheduler::base_interval(InstanceState state,
                                             bool live_ok_since_last_check) const {
  switch (state) {
    case InstanceState::kUnknown:
    case InstanceState::kUnhealthy:
      return settings_.unhealthy_interval;
    case InstanceState::kHealthy:
    case InstanceState::kDegraded:
      if (live_ok_since_last_check && settings_.stretch_on_live_success > 1.0)
        return core::Duration(static_cast<Rep>(std::llround(
            static_cast<double>(settings_.interval.count()) * settings_.stretch_on_live_success)));
      return settings_.interval;
    case InstanceState::kDraining:
      return settings_.interval;
  }
  return settings_.interval;
}

core::SteadyTime CheckScheduler::next_check(core::SteadyTime now, InstanceState state,
                                            bool live_ok_since_last_check) {
  const core::Duration base = base_interval(state, live_ok_since_last_check);
  const double factor = 1.0 + settings_.jitter * (2.0 * draw() - 1.0);
  return now +
         core::Duration(static_cast<Rep>(std::llround(static_cast<double>(base.count()) * factor)));
}

core::SteadyTime CheckScheduler::next_check(core::SteadyTime now, const HealthTracker& tracker) {
  if (!tracker.last_check()) return first_check(now);
  return next_check(now, tracker.state(), tracker.live_ok_since_last_check());
}

// --- TtlTracker ----------------------------------------------------------------------------

void TtlTracker::start(core::SteadyTime now, core::Duration ttl) {
  ttl_ = ttl;
  if (ttl > core::Duration::zero())
    deadline_ = now + ttl;
  else
    deadline_.reset();
}

void TtlTracker::restore(core::Duration ttl, core::SteadyTime deadline) {
  ttl_ = ttl;
  if (ttl > core::Duration::zero())
    deadline_ = deadline;
  else
    deadline_.reset();
}

bool TtlTracker::renew(core::SteadyTime now) {
  if (!deadline_) return true;
  if (expired(now)) return false;
  deadline_ = now + ttl_;
  return true;
}

}  // namespace sb::registry
