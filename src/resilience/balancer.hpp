// Load balancing over one service's instances: round robin, smooth weighted round robin,
// random, least request (P2C over in-flight) and peak-EWMA (P2C over latency x load), with
// availability supplied by the caller, exclusion of instances already tried, slow start,
// zone awareness and Retry-After avoidance.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "resilience/random.hpp"

namespace sb::resilience {

/// One instance as the balancer needs it; built by the caller from a registry snapshot.
struct BalancerEndpoint {
  std::uint64_t id = 0;      // stable key: state (EWMA, in-flight, ...) follows the id across
                             // set_endpoints() calls
  std::uint32_t weight = 1;  // from the registry (e.g. lower while degraded); 0 counts as 1
  std::string_view zone{};   // compared with the balancer's local zone
  /// When it last became available (healthy again, back from ejection, new): slow start
  /// ramps it from there. nullopt: keep what the balancer knows (no ramp for a new id).
  std::optional<core::SteadyTime> available_since{};
};

/// A non-owning reference to the caller's availability predicate `bool(std::size_t index)`.
/// Only valid during the pick() call it is made for.
class AvailableRef {
 public:
  template <class F>
  AvailableRef(F& f)  // NOLINT(google-explicit-constructor): built implicitly by pick()
      : obj_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, std::size_t i) -> bool { return (*static_cast<F*>(o))(i); }) {}
  bool operator()(std::size_t i) const { return call_(obj_, i); }

 private:
  void* obj_;
  bool (*call_)(void*, std::size_t);
};

/// The balancer of one service on one worker thread. Not thread-safe and needs no atomics:
/// each worker has its own (its in-flight counts are the worker's own requests, which is
/// what P2C needs to spread that worker's load).
///
/// pick() considers an instance only if the caller's predicate says it is available
/// (breaker allows, not ejected, healthy or degraded). For the P2C kinds the predicate runs
/// only on sampled candidates: up to kSampleTries random draws to find two acceptable
/// instances, then (if none was found) one scan. Preference order, each step used only when
/// the one before finds nothing:
///   1. local-zone instances (while the local zone is preferred, see below), not excluded,
///      not avoided for Retry-After;
///   2. all instances, not excluded, not avoided;
///   3. all instances, not excluded (Retry-After is ignored rather than failing);
///   4. all instances (a retry goes back to a tried instance only if nothing else is there).
///
/// Zone awareness (local zone non-empty and at least one local instance): the local zone is
/// preferred while at least `zone_min_available`% of its instances are available. That share
/// is measured with the predicate at most once per kZoneRecheck (a scan of the local
/// instances), so the decision may be up to 1 s stale; step 2 covers the gap.
///
/// Costs (P2C picks the lower; ties go to the first draw). effective weight = weight x slow
/// start factor, where the factor ramps linearly from 0.1 to 1 over `slow_start` after
/// available_since (1 when slow_start is 0).
///   - kLeastRequest: (in_flight + 1) / effective weight
///   - kPeakEwma: ewma x (in_flight + 1) / effective weight. The EWMA jumps to any sample
///     above it (peak) and otherwise moves toward samples with weight 1 - exp(-dt / decay);
///     without new samples it decays toward 0 (so an idle instance is tried again, as in
///     Finagle and Linkerd). Before the first sample it is `default_rtt`, except that an
///     unmeasured instance with nothing in flight costs 0: new instances are probed at once,
///     one request at a time, instead of starving next to faster measured ones. The decay uses
///     a fast exp approximation (relative error < 2e-5).
///   - kWeightedRoundRobin: nginx's smooth WRR over the acceptable instances (O(n) per pick).
///   - kRoundRobin and kRandom ignore weights and slow start.
///
/// No allocation in pick(), on_start(), on_finish(), avoid_until().
class Balancer {
 public:
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  static constexpr int kSampleTries = 8;
  static constexpr core::Duration kZoneRecheck = std::chrono::seconds(1);

  /// `local_zone` empty turns zone awareness off. `seed` makes sampling reproducible.
  Balancer(const core::BalancerConfig& config, std::string local_zone, std::uint64_t seed);

  /// Replaces the instance list; index i of later calls is endpoints[i]. State of ids that
  /// stay is kept; new ids start fresh. Allocates; call it when the registry snapshot changes.
  void set_endpoints(std::span<const BalancerEndpoint> endpoints, core::SteadyTime now);
  std::size_t size() const { return nodes_.size(); }

  /// The index of the instance to use, or kNone when none is available. `available(i)` is
  /// the caller's predicate; `exclude` lists indices already tried by this request.
  template <class F>
  std::size_t pick(core::SteadyTime now, F&& available, std::span<const std::size_t> exclude = {}) {
    return pick_impl(now, AvailableRef(available), exclude);
  }

  /// A request was sent to `index` (in-flight + 1).
  void on_start(std::size_t index);
  /// It finished with a response (any status) after `latency`: in-flight - 1, EWMA sample.
  void on_finish(std::size_t index, core::SteadyTime now, core::Duration latency);
  /// It ended without a meaningful latency (cancelled, connect refused at once): in-flight
  /// - 1 only.
  void on_abandon(std::size_t index);
  /// The instance answered 429/503 with Retry-After: avoid it until `until` unless nothing
  /// else is available. A later `until` wins over an earlier one.
  void avoid_until(std::size_t index, core::SteadyTime until);
  /// It became available at `since` (slow start ramps from there).
  void set_available_since(std::size_t index, core::SteadyTime since);

  // Introspection, for tests and status pages.
  std::uint64_t id(std::size_t index) const { return nodes_[index].id; }
  std::uint32_t in_flight(std::size_t index) const { return nodes_[index].in_flight; }
  /// The current (decayed) peak-EWMA latency estimate.
  core::Duration ewma(std::size_t index, core::SteadyTime now) const;
  /// weight x slow-start factor.
  double effective_weight(std::size_t index, core::SteadyTime now) const;
  /// The P2C cost of the configured kind (lower is better).
  double cost(std::size_t index, core::SteadyTime now) const;
  /// Whether picks currently prefer the local zone (as of the last zone check).
  bool prefers_local_zone() const { return local_preferred_; }

 private:
  struct Node {
    std::uint64_t id = 0;
    double weight = 1;
    double inv_weight = 1;
    bool local = false;
    std::uint32_t in_flight = 0;
    bool has_sample = false;
    double ewma_ns = 0;
    core::SteadyTime stamp{};
    std::optional<core::SteadyTime> since{};
    core::SteadyTime avoid_until{};
    double wrr_current = 0;
  };
  enum class Pass { kZone, kAll, kIgnoreAvoid, kAnything };
  struct Filter;

  std::size_t pick_impl(core::SteadyTime now, AvailableRef available,
                        std::span<const std::size_t> exclude);
  std::size_t pick_in(const Filter& f, core::SteadyTime now);
  std::size_t p2c(const Filter& f, core::SteadyTime now);
  std::size_t scan_first(const Filter& f, std::size_t start);
  std::size_t wrr(const Filter& f, core::SteadyTime now);
  void recheck_zone(core::SteadyTime now, AvailableRef available);
  double decayed_ewma(const Node& n, core::SteadyTime now) const;
  double ramp_factor(const Node& n, core::SteadyTime now) const;

  core::BalancerConfig config_;
  std::string local_zone_;
  Rng rng_;
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> local_;  // indices of local-zone instances
  std::size_t rr_next_ = 0;
  bool local_preferred_ = false;
  std::optional<core::SteadyTime> zone_checked_{};
  double inv_tau_ns_;
  double default_rtt_ns_;
};

}  // namespace sb::resilience
