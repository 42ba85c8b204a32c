// A worker's view of the services and instances it routes to, rebuilt from each registry
// snapshot: which instances take traffic (health, panic threshold, degraded weights), each
// instance's keep-alive pool and latency record (kept across snapshots while its URL stays),
// and each service's balancer. Internal to the gateway (includes Asio through the pools).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "gateway/guards.hpp"
#include "gateway/metrics.hpp"
#include "http/upstream.hpp"
#include "resilience/balancer.hpp"
#include "resilience/latency.hpp"
#include "resilience/retry.hpp"

namespace sb::registry {
struct Snapshot;
}

namespace sb::gateway {

/// An instance as a worker sees it: its own keep-alive pool and latency record, and the
/// guard (breaker, outlier record) every worker shares. Kept across registry snapshots
/// while the instance keeps its URL, so pools survive unrelated registry changes.
struct Instance {
  core::InstanceConfig config;
  std::unique_ptr<http::UpstreamPool> pool;
  std::string authority;  // the Host the upstream gets
  std::uint64_t uid = 0;  // the registry's id for live samples
  std::shared_ptr<std::atomic<std::int32_t>> in_flight;
  std::shared_ptr<InstanceGuard> guard;
  resilience::LatencyEstimator latency;  // this worker's recent answers (retries, hedging)
  std::uint64_t ejections_seen = 0;      // the outlier record's times_ejected() as last seen
  InstanceMetrics metrics{};             // this worker's handles for it (none in unit tests)
};

/// A service's balancer on this worker. It outlives registry snapshots (EWMA and in-flight
/// counts follow instances by id); `generation` says which snapshot's order it uses.
struct Lb {
  resilience::Balancer balancer;
  std::uint64_t generation = 0;
};

/// A service as a worker sees it, rebuilt with each registry snapshot. Requests in flight
/// hold it (and so the snapshot its config points into, and its instances' pools) until
/// they finish: a removed instance drains instead of vanishing under a request.
struct Service {
  std::shared_ptr<const registry::Snapshot> snapshot;
  const core::ServiceConfig* config;
  std::vector<std::shared_ptr<Instance>> instances;  // the balancer's order (when current)
  std::shared_ptr<ServiceGuard> guard;
  std::shared_ptr<Lb> lb;
  std::uint64_t generation = 0;  // lb->generation when this view was built
  resilience::RetryPolicy retry;

  /// Whether the balancer still uses this view's order (no newer view was built since).
  bool current() const { return lb->generation == generation; }
  /// The balancer's index of instances[i] now (kNone when the balancer no longer has it).
  std::size_t lb_index(std::size_t i) const {
    if (current()) return i;
    const auto id = reinterpret_cast<std::uintptr_t>(instances[i].get());
    for (std::size_t j = 0; j < lb->balancer.size(); ++j)
      if (lb->balancer.id(j) == id) return j;
    return resilience::Balancer::kNone;
  }
};

/// What a view needs from its worker and the gateway.
struct ViewContext {
  http::Executor executor;  // the worker's: pools connect on it
  Guards& guards;
  std::string zone;    // server.zone, for zone-aware balancing
  std::uint64_t seed;  // the worker's balancer seed (mixed with each service's name)
  /// The TLS client context for a service's https instances (null for none).
  std::function<std::shared_ptr<boost::asio::ssl::context>(std::string_view service)> tls_for;
  const GatewayMetrics* metrics = nullptr;  // null: no metrics (unit tests)
};

class View {
 public:
  explicit View(ViewContext context) : ctx_(std::move(context)) {}

  /// Rebuilds every service's view from `snap`. Instances (pools, latency) and balancers
  /// (EWMA, in-flight) are kept for what stays; an instance that starts taking traffic
  /// again, or is new, ramps up (balancer.slow_start) except in the very first view.
  void rebuild(std::shared_ptr<const registry::Snapshot> snap, core::SteadyTime now);
  /// The snapshot version the view was built from.
  std::uint64_t version() const { return version_; }

  /// The service's current view, or null. The last service found is remembered (a
  /// worker's requests mostly go to few services): a string compare instead of a walk down
  /// the map.
  const std::shared_ptr<Service>* find(std::string_view name) const {
    if (last_ != nullptr && last_->first == name) return &last_->second;
    const auto it = services_.find(name);
    if (it == services_.end()) return nullptr;
    last_ = &*it;
    return &it->second;
  }
  /// `svc` if its balancer still uses its order, else the newest view of its service (a
  /// request's pick must index the order its balancer uses). A service removed since keeps
  /// its old view: its balancer is no longer rebuilt, so that view stays current.
  const std::shared_ptr<Service>& current(const std::shared_ptr<Service>& svc) const {
    if (svc->current()) return svc;
    const auto* now = find(svc->config->name);
    return now != nullptr && (*now)->lb == svc->lb ? *now : svc;
  }

  /// The worker's periodic turn: idle pools swept; an instance back from an outlier
  /// ejection ramps up again like a new one.
  void tick(core::SteadyTime now);

  /// Every instance the view holds (for tests and sweeps).
  std::size_t instance_count() const { return instances_.size(); }

 private:
  ViewContext ctx_;
  std::uint64_t version_ = 0;
  std::map<std::string, std::shared_ptr<Service>, std::less<>> services_;
  // find()'s last hit, a node of services_ (stable until rebuild() replaces the map).
  mutable const std::pair<const std::string, std::shared_ptr<Service>>* last_ = nullptr;
  std::unordered_map<std::string, std::shared_ptr<Instance>> instances_;
  std::map<std::string, std::shared_ptr<Lb>, std::less<>> balancers_;  // by service
};

}  // namespace sb::gateway
