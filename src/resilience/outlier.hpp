// Outlier detection for one service (Envoy-style): instances whose gateway errors come in a
// row, or whose success rate falls far below their peers', leave the rotation for a while.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "resilience/outcome.hpp"

namespace sb::resilience {

enum class OutlierState : std::uint8_t { kActive, kEjected };
/// "active", "ejected".
const char* to_string(OutlierState s);

/// An ejection or a return, for the caller to report as an event.
struct OutlierTransition {
  std::uint64_t host_id = 0;
  OutlierState from = OutlierState::kActive;
  OutlierState to = OutlierState::kActive;
  /// "5 consecutive gateway errors (ejected for 30 s)", "success rate 61.0% below threshold
  /// 88.6% (mean 95.2%, stdev 3.4%, 200 requests) (ejected for 60 s)", "ejection time of
  /// 30 s elapsed".
  std::string reason;
  core::SteadyTime at{};
};

namespace detail {
struct OutlierShared;
}

/// The outlier state of one instance. Created by OutlierDetector::add_host() and owned by
/// the caller through shared_ptr (it follows the instance across registry snapshots, and may
/// outlive the detector). Thread-safe and lock-free: workers call record() and ejected()
/// concurrently; the control thread calls OutlierDetector::evaluate().
class OutlierHost {
 public:
  ~OutlierHost();  // an ejected host gives its ejection slot back
  OutlierHost(const OutlierHost&) = delete;
  OutlierHost& operator=(const OutlierHost&) = delete;

  std::uint64_t id() const { return id_; }

  /// Records one attempt's outcome (request path: a few relaxed atomics, no allocation
  /// unless it ejects). Gateway errors (see is_gateway_error) in a row eject the host once
  /// they reach consecutive_gateway_errors, if the service's ejection cap allows; any other
  /// outcome resets the run. Every outcome feeds the success-rate counters (success = no
  /// transport error and a status below 500).
  std::optional<OutlierTransition> record(core::SteadyTime now, Outcome outcome);

  /// True while ejected: from the ejection until its time is up (exactly then it takes
  /// traffic again, even before evaluate() reports the return). One relaxed load.
  bool ejected(core::SteadyTime now) const;
  /// The end of the current ejection; nullopt when not ejected (or returned).
  std::optional<core::SteadyTime> ejected_until() const;
  /// The multiplier of the next ejection time minus one: raised by each ejection, lowered by
  /// one for each evaluate() interval spent active.
  std::uint32_t ejection_level() const { return level_.load(std::memory_order_relaxed); }
  std::uint64_t times_ejected() const { return times_ejected_.load(std::memory_order_relaxed); }
  std::uint32_t consecutive_gateway_errors() const {
    return consecutive_.load(std::memory_order_relaxed);
  }

 private:
  friend class OutlierDetector;
  OutlierHost(std::shared_ptr<detail::OutlierShared> shared, std::uint64_t id);
  std::optional<OutlierTransition> try_eject(core::SteadyTime now, std::string why);

  std::shared_ptr<detail::OutlierShared> shared_;
  std::uint64_t id_;
  std::atomic<std::uint32_t> consecutive_{0};
  std::atomic<std::uint32_t> requests_{0};   // this interval
  std::atomic<std::uint32_t> successes_{0};  // this interval
  std::atomic<std::int64_t> until_ns_;       // kNotEjected, or the ejection's end
  std::atomic<std::uint32_t> level_{0};
  std::atomic<std::uint64_t> times_ejected_{0};
  std::atomic<std::int64_t> active_since_ns_;  // for the decay of level_
};

/// Outlier detection for one service.
///
/// Ejection time = base_ejection_time x (level + 1), capped at max_ejection_time; level
/// counts ejections and decays by one for each full `interval` the host stays active (so a
/// host that keeps failing is ejected for longer and longer, and one that recovered is
/// forgiven step by step, as in Envoy).
///
/// Cap: at most max(1, floor(hosts x max_ejection_percent / 100)) hosts are ejected at
/// once, and none when the service has fewer than 2 hosts or max_ejection_percent is 0. At
/// least one, because with the plain floor a small service (2 to 9 hosts at 10%) could never
/// eject anything; none with one host, because ejecting the only instance helps nobody (its
/// breaker decides instead). A host counts as ejected until evaluate() reports its return.
///
/// Success rate: on each evaluate(), hosts with at least success_rate_request_volume
/// requests since the previous evaluate() are compared, when there are at least
/// success_rate_minimum_hosts of them; a host whose rate is below mean - stdev_factor x
/// stdev (population stdev) is ejected.
class OutlierDetector {
 public:
  explicit OutlierDetector(const core::OutlierConfig& config);
  ~OutlierDetector();

  /// A new host of this service. Not on the request path (allocates).
  std::shared_ptr<OutlierHost> add_host(std::uint64_t id);

  /// The periodic analysis; call it every `interval` from one (control) thread with the
  /// service's current hosts. Returns hosts whose ejection time is up, decays levels, runs
  /// the success-rate analysis and starts a new interval. Transitions in that order.
  std::vector<OutlierTransition> evaluate(core::SteadyTime now,
                                          std::span<const std::shared_ptr<OutlierHost>> hosts);

  /// Live hosts of this service (those not yet destroyed).
  std::uint32_t host_count() const;
  /// Hosts ejected and not yet returned by evaluate().
  std::uint32_t ejected_count() const;
  /// The cap for the current host count.
  std::uint32_t max_ejected() const;

 private:
  std::shared_ptr<detail::OutlierShared> shared_;
};

}  // namespace sb::resilience
