#include "resilience/circuit_breaker.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/text.hpp"
#include "resilience/random.hpp"

namespace sb::resilience {
namespace {

using core::human;

using Rep = core::Duration::rep;
constexpr Rep kNsPerMs = 1'000'000;

// The state word. Packing state, timing, backoff level and generation into one atomic is
// what makes a transition a single CAS: a reader never sees a new state with an old time.
// 40 bits of milliseconds cover 34 years of steady-clock uptime.
constexpr int kLevelShift = 3;
constexpr int kGenShift = 8;
constexpr int kTimeShift = 24;
constexpr std::uint32_t kMaxLevel = 31;

constexpr BreakerState state_of(std::uint64_t w) { return static_cast<BreakerState>(w & 7u); }
constexpr std::uint32_t level_of(std::uint64_t w) {
  return static_cast<std::uint32_t>((w >> kLevelShift) & 31u);
}
constexpr std::uint16_t gen_of(std::uint64_t w) {
  return static_cast<std::uint16_t>((w >> kGenShift) & 0xffffu);
}
constexpr std::int64_t ms_of(std::uint64_t w) { return static_cast<std::int64_t>(w >> kTimeShift); }
constexpr std::uint64_t make_word(BreakerState s, std::uint32_t level, std::uint16_t gen,
                                  std::int64_t ms) {
  return static_cast<std::uint64_t>(s) | (std::uint64_t{level} << kLevelShift) |
         (std::uint64_t{gen} << kGenShift) |
         (static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 0)) << kTimeShift);
}

std::int64_t ms_floor(core::SteadyTime t) {
  const Rep ns = t.time_since_epoch().count();
  return ns <= 0 ? 0 : ns / kNsPerMs;
}
std::int64_t ms_ceil(core::SteadyTime t) {
  const Rep ns = t.time_since_epoch().count();
  return ns <= 0 ? 0 : (ns + kNsPerMs - 1) / kNsPerMs;
}
core::SteadyTime time_of_ms(std::int64_t ms) {
  return core::SteadyTime(core::Duration(ms * kNsPerMs));
}

// Probe word: generation 16 | issued 16 | succeeded 16.
constexpr std::uint16_t pgen(std::uint64_t p) { return static_cast<std::uint16_t>(p & 0xffffu); }
constexpr std::uint32_t pissued(std::uint64_t p) {
  return static_cast<std::uint32_t>((p >> 16) & 0xffffu);
}
constexpr std::uint32_t psucceeded(std::uint64_t p) {
  return static_cast<std::uint32_t>((p >> 32) & 0xffffu);
}
constexpr std::uint64_t make_probes(std::uint16_t gen, std::uint32_t issued, std::uint32_t ok) {
  return std::uint64_t{gen} | (std::uint64_t{issued} << 16) | (std::uint64_t{ok} << 32);
}

std::chrono::seconds ceil_seconds_at_least_1(core::Duration d) {
  auto s = std::chrono::ceil<std::chrono::seconds>(d);
  return std::max(s, std::chrono::seconds(1));
}

}  // namespace

const char* to_string(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
    case BreakerState::kForcedOpen:
      return "forced_open";
    case BreakerState::kForcedClosed:
      return "forced_closed";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(const core::BreakerConfig& config, std::uint64_t seed)
    : config_(config),
      failure_status_(core::StatusSet::parse(config.failure_status)),
      seed_(seed),
      window_(config.window, config.window_buckets),
      word_(make_word(BreakerState::kClosed, 0, 0, 0)) {
  // Zero probes could never close it; one is the least that can.
  config_.half_open_probes = std::clamp<std::uint32_t>(config_.half_open_probes, 1, 0xffff);
}

CircuitBreaker::~CircuitBreaker() = default;

BreakerState CircuitBreaker::state() const {
  return state_of(word_.load(std::memory_order_acquire));
}

void CircuitBreaker::add_to_window(std::int64_t epoch, bool failure, bool slow) {
  if (!window_.add(epoch, kCalls)) return;  // a sample for a window that has moved on
  if (failure) window_.add(epoch, kFailures);
  if (slow) window_.add(epoch, kSlow);
}

CircuitBreaker::WindowTotals CircuitBreaker::window_totals(std::int64_t epoch) const {
  const auto c = window_.totals(epoch);
  return {c[kCalls], c[kFailures], c[kSlow]};
}

void CircuitBreaker::clear_counters() {
  window_.clear();
  consecutive_.store(0, std::memory_order_relaxed);
}

core::Duration CircuitBreaker::open_time(std::uint32_t level, std::uint16_t generation) const {
  const core::Duration cap = config_.max_open_duration;
  core::Duration base = config_.open_duration;
  for (std::uint32_t i = 0; i < level && base < cap; ++i) base *= 2;
  base = std::min(base, cap);
  const double factor = 0.9 + 0.2 * unit_from(mix64(seed_ ^ (std::uint64_t{generation} << 32)));
  const auto jittered =
      core::Duration(static_cast<Rep>(static_cast<double>(base.count()) * factor));
  return std::min(jittered, cap);
}

std::optional<BreakerTransition> CircuitBreaker::transit(std::uint64_t expected, BreakerState to,
                                                         std::uint32_t level, core::SteadyTime now,
                                                         std::string reason) {
  const std::uint16_t gen = static_cast<std::uint16_t>(gen_of(expected) + 1);
  std::int64_t ms = ms_floor(now);
  if (to == BreakerState::kOpen) {
    ms = ms_ceil(now + open_time(level, gen));
  } else if (to == BreakerState::kHalfOpen) {
    ms = ms_ceil(now + config_.half_open_timeout);
  }
  const std::uint64_t next = make_word(to, level, gen, ms);
  if (!word_.compare_exchange_strong(expected, next, std::memory_order_acq_rel))
    return std::nullopt;
  if (to == BreakerState::kOpen) times_opened_.fetch_add(1, std::memory_order_relaxed);
  if (to == BreakerState::kClosed) clear_counters();
  return BreakerTransition{state_of(expected), to, std::move(reason), now};
}

Admission CircuitBreaker::allow(core::SteadyTime now) {
  Admission a;
  if (!config_.enabled) {
    a.permit.kind = PermitKind::kAllowed;
    return a;
  }
  for (;;) {
    const std::uint64_t w = word_.load(std::memory_order_acquire);
    switch (state_of(w)) {
      case BreakerState::kClosed:
      case BreakerState::kForcedClosed:
        a.permit = Permit{PermitKind::kAllowed, gen_of(w)};
        return a;
      case BreakerState::kForcedOpen:
        a.permit = Permit{PermitKind::kRejected, gen_of(w)};
        a.retry_after = ceil_seconds_at_least_1(config_.open_duration);
        return a;
      case BreakerState::kOpen: {
        const core::SteadyTime until = time_of_ms(ms_of(w));
        if (now < until || a.transition) {
          a.permit = Permit{PermitKind::kRejected, gen_of(w)};
          a.retry_after = ceil_seconds_at_least_1(until - now);
          return a;
        }
        a.transition = transit(w, BreakerState::kHalfOpen, level_of(w), now, "open time elapsed");
        continue;  // whoever won, look again: take a probe or be refused
      }
      case BreakerState::kHalfOpen: {
        const core::SteadyTime deadline = time_of_ms(ms_of(w));
        if (now >= deadline) {
          if (!a.transition) {
            a.transition = transit(
                w, BreakerState::kOpen, std::min(level_of(w) + 1, kMaxLevel), now,
                fmt::format("half-open for {} without closing", human(config_.half_open_timeout)));
            continue;  // won: now open, so refused below; lost: someone else moved it
          }
          a.permit = Permit{PermitKind::kRejected, gen_of(w)};
          a.retry_after = std::chrono::seconds(1);
          return a;
        }
        const std::uint16_t g = gen_of(w);
        std::uint64_t p = probes_.load(std::memory_order_acquire);
        for (;;) {
          const bool current = pgen(p) == g;
          const std::uint32_t issued = current ? pissued(p) : 0;
          const std::uint32_t ok = current ? psucceeded(p) : 0;
          if (issued >= config_.half_open_probes) {
            // Every probe slot is taken: come back when a probe may have answered.
            a.permit = Permit{PermitKind::kRejected, g};
            a.retry_after = std::chrono::seconds(1);
            return a;
          }
          if (probes_.compare_exchange_weak(p, make_probes(g, issued + 1, ok),
                                            std::memory_order_acq_rel)) {
            break;
          }
        }
        // The period may have ended between the two loads; a probe of an old generation is
        // harmless (record() ignores it), so hand it out.
        a.permit = Permit{PermitKind::kProbe, g};
        return a;
      }
    }
  }
}

bool CircuitBreaker::may_allow(core::SteadyTime now) const {
  if (!config_.enabled) return true;
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  switch (state_of(w)) {
    case BreakerState::kClosed:
    case BreakerState::kForcedClosed:
      return true;
    case BreakerState::kForcedOpen:
      return false;
    case BreakerState::kOpen:
      return now >= time_of_ms(ms_of(w));
    case BreakerState::kHalfOpen: {
      if (now >= time_of_ms(ms_of(w))) return false;
      const std::uint64_t p = probes_.load(std::memory_order_acquire);
      return pgen(p) != gen_of(w) || pissued(p) < config_.half_open_probes;
    }
  }
  return false;
}

void CircuitBreaker::release(Permit permit) {
  if (permit.kind != PermitKind::kProbe) return;
  std::uint64_t p = probes_.load(std::memory_order_acquire);
  while (pgen(p) == permit.generation && pissued(p) > psucceeded(p)) {
    if (probes_.compare_exchange_weak(p, make_probes(pgen(p), pissued(p) - 1, psucceeded(p)),
                                      std::memory_order_acq_rel)) {
      return;
    }
  }
}

std::optional<BreakerTransition> CircuitBreaker::trip_check(core::SteadyTime now, std::uint64_t w,
                                                            std::uint32_t consecutive,
                                                            std::int64_t epoch) {
  if (config_.consecutive_failures != 0 && consecutive >= config_.consecutive_failures) {
    return transit(w, BreakerState::kOpen, 0, now,
                   fmt::format("{} consecutive failures", consecutive));
  }
  if (config_.failure_rate == 0 && config_.slow_call_rate == 0) return std::nullopt;
  const WindowTotals t = window_totals(epoch);
  if (t.calls == 0 || t.calls < config_.minimum_calls) return std::nullopt;
  if (config_.failure_rate != 0 &&
      t.failures * 100 >= std::uint64_t{config_.failure_rate} * t.calls) {
    return transit(
        w, BreakerState::kOpen, 0, now,
        fmt::format("failure rate {}% over {} ({} of {} calls)", t.failures * 100 / t.calls,
                    human(config_.window), t.failures, t.calls));
  }
  if (config_.slow_call_rate != 0 &&
      t.slow * 100 >= std::uint64_t{config_.slow_call_rate} * t.calls) {
    return transit(w, BreakerState::kOpen, 0, now,
                   fmt::format("slow-call rate {}% over {} ({} of {} calls slower than {})",
                               t.slow * 100 / t.calls, human(config_.window), t.slow, t.calls,
                               human(config_.slow_call_duration)));
  }
  return std::nullopt;
}

std::optional<BreakerTransition> CircuitBreaker::record(core::SteadyTime now, Permit permit,
                                                        bool failure, core::Duration latency) {
  if (!config_.enabled || permit.kind == PermitKind::kRejected) return std::nullopt;
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  const BreakerState s = state_of(w);

  if (permit.kind == PermitKind::kProbe) {
    if (s != BreakerState::kHalfOpen || gen_of(w) != permit.generation) return std::nullopt;
    if (failure) {
      return transit(w, BreakerState::kOpen, std::min(level_of(w) + 1, kMaxLevel), now,
                     "half-open probe failed");
    }
    std::uint64_t p = probes_.load(std::memory_order_acquire);
    std::uint32_t ok = 0;
    for (;;) {
      if (pgen(p) != permit.generation) return std::nullopt;
      ok = psucceeded(p) + 1;
      if (probes_.compare_exchange_weak(p, make_probes(pgen(p), pissued(p), ok),
                                        std::memory_order_acq_rel)) {
        break;
      }
    }
    if (ok < config_.half_open_probes) return std::nullopt;
    return transit(w, BreakerState::kClosed, 0, now,
                   fmt::format("{} probe{} succeeded", ok, ok == 1 ? "" : "s"));
  }

  // A normal request: counted only while closed (forced or not). Outcomes of requests that
  // were admitted before a trip and finish later say nothing about the next period.
  if (s != BreakerState::kClosed && s != BreakerState::kForcedClosed) return std::nullopt;
  if (permit.generation != gen_of(w)) return std::nullopt;  // admitted in an earlier period
  const bool slow = latency > config_.slow_call_duration;
  const std::int64_t epoch = window_.epoch_of(now);
  add_to_window(epoch, failure, slow);
  std::uint32_t consecutive = 0;
  if (failure) {
    consecutive = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
  } else if (consecutive_.load(std::memory_order_relaxed) != 0) {
    // Only write when needed: a store per success would bounce the cache line between
    // workers even when nothing fails.
    consecutive_.store(0, std::memory_order_relaxed);
  }
  if (s == BreakerState::kForcedClosed) return std::nullopt;
  if (!failure && !slow) return std::nullopt;  // a fast success can only lower the rates
  return trip_check(now, w, consecutive, epoch);
}

std::optional<BreakerTransition> CircuitBreaker::operator_set(core::SteadyTime now, BreakerState to,
                                                              const char* reason) {
  for (;;) {
    std::uint64_t w = word_.load(std::memory_order_acquire);
    if (state_of(w) == to && to != BreakerState::kClosed) return std::nullopt;
    const std::uint64_t next =
        make_word(to, 0, static_cast<std::uint16_t>(gen_of(w) + 1), ms_floor(now));
    if (!word_.compare_exchange_weak(w, next, std::memory_order_acq_rel)) continue;
    if (to != BreakerState::kForcedOpen) clear_counters();
    if (state_of(w) == to) return std::nullopt;  // reset() of a closed breaker
    return BreakerTransition{state_of(w), to, reason, now};
  }
}

std::optional<BreakerTransition> CircuitBreaker::force_open(core::SteadyTime now) {
  return operator_set(now, BreakerState::kForcedOpen, "forced open by operator");
}
std::optional<BreakerTransition> CircuitBreaker::force_close(core::SteadyTime now) {
  return operator_set(now, BreakerState::kForcedClosed, "forced closed by operator");
}
std::optional<BreakerTransition> CircuitBreaker::reset(core::SteadyTime now) {
  return operator_set(now, BreakerState::kClosed, "reset by operator");
}

BreakerSnapshot CircuitBreaker::snapshot(core::SteadyTime now) const {
  BreakerSnapshot s;
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  s.state = state_of(w);
  s.backoff_level = level_of(w);
  s.consecutive_failures = consecutive_.load(std::memory_order_relaxed);
  s.times_opened = times_opened_.load(std::memory_order_relaxed);
  const WindowTotals t = window_totals(window_.epoch_of(now));
  s.window_calls = t.calls;
  s.window_failures = t.failures;
  s.window_slow_calls = t.slow;
  if (t.calls != 0) {
    s.failure_rate = 100.0 * static_cast<double>(t.failures) / static_cast<double>(t.calls);
    s.slow_call_rate = 100.0 * static_cast<double>(t.slow) / static_cast<double>(t.calls);
  }
  if (s.state == BreakerState::kOpen) {
    s.open_until = time_of_ms(ms_of(w));
    s.open_remaining = std::max(core::Duration::zero(), *s.open_until - now);
  } else if (s.state == BreakerState::kHalfOpen) {
    s.half_open_deadline = time_of_ms(ms_of(w));
    const std::uint64_t p = probes_.load(std::memory_order_acquire);
    if (pgen(p) == gen_of(w)) {
      s.probes_succeeded = psucceeded(p);
      s.probes_in_flight = pissued(p) - psucceeded(p);
    }
  }
  return s;
}

}  // namespace sb::resilience
