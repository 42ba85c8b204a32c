// The resilience state every worker shares: one circuit breaker and outlier record per
// instance, one breaker, retry budget and outlier detector per service. The policies live in
// src/resilience; this is where they are kept, found by workers, ticked by the control loop,
// shown in the status document and reported as registry events. Internal to the gateway.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "resilience/circuit_breaker.hpp"
#include "resilience/outlier.hpp"
#include "resilience/retry.hpp"

namespace boost::json {
class object;
}

namespace sb::registry {
class Registry;
}

namespace sb::gateway {

class Guards;

/// What protects one instance. Workers hold it through their view of the instance; the
/// breaker and outlier record are lock-free.
struct InstanceGuard {
  InstanceGuard(Guards& guards, std::string service, std::string id, const core::BreakerConfig& b,
                std::uint64_t seed, std::shared_ptr<resilience::OutlierHost> outlier);
  Guards& guards;
  const std::string service;
  const std::string id;
  resilience::CircuitBreaker breaker;
  std::shared_ptr<resilience::OutlierHost> outlier;  // null when outlier detection is off

  /// Reports a transition of this instance's breaker or outlier record as an event.
  void report(const std::optional<resilience::BreakerTransition>& t) const;
  void report(const std::optional<resilience::OutlierTransition>& t) const;
};

/// What protects one service: its breaker (fed with each request's final outcome), its
/// retry budget and its outlier detector.
struct ServiceGuard {
  ServiceGuard(Guards& guards, const core::ServiceConfig& config);
  Guards& guards;
  const std::string name;
  resilience::CircuitBreaker breaker;
  resilience::RetryBudget budget;
  const core::Duration outlier_interval;
  std::unique_ptr<resilience::OutlierDetector> outlier;  // null when off

  void report(const std::optional<resilience::BreakerTransition>& t) const;

 private:
  friend class Guards;
  // Under Guards::mu_: the instances by "id url" (a new URL is a new instance), the
  // outlier hosts' ids, and when the next success-rate analysis is due.
  std::map<std::string, std::weak_ptr<InstanceGuard>, std::less<>> instances_;
  std::map<std::uint64_t, std::string> host_names_;
  core::SteadyTime next_evaluation_{};
};

class Guards {
 public:
  explicit Guards(registry::Registry& registry);

  /// The guard of a service, made on first sight. Thread-safe; takes a lock, so workers
  /// call it when they take a new registry snapshot, never per request.
  std::shared_ptr<ServiceGuard> service(const core::ServiceConfig& config);
  /// The guard of one of its instances ("id" at "url"), made on first sight. Thread-safe.
  std::shared_ptr<InstanceGuard> instance(ServiceGuard& service, const core::ServiceConfig& config,
                                          const std::string& id, const std::string& url);

  /// The control loop's turn: each service's outlier analysis when its interval is due
  /// (ejections and returns become events), and guards no worker holds any more are dropped.
  void tick(core::SteadyTime now);

  /// `POST /api/services/{service}[/instances/{id}]/breaker` with action "open", "close"
  /// or "reset". Returns the HTTP status (200, or 404 when there is no such service or
  /// instance) and a JSON body (the breaker afterwards, or a problem detail).
  struct ActionResult {
    int status = 200;
    std::string detail;  // for 404: what was not found
    std::string body;    // for 200: the breaker as JSON
  };
  ActionResult breaker_action(std::string_view service, std::string_view instance,
                              std::string_view action, core::SteadyTime now);

  /// Adds "breaker", "retry_budget", "outlier" (services) and "breaker", "outlier"
  /// (instances) to the registry's status document.
  void annotate_status(boost::json::object& status, core::SteadyTime now) const;
  /// The breaker state of each service that has a guard ("closed", "open", ...).
  std::map<std::string, std::string> service_breakers() const;
  /// Every breaker: each service's (instance empty) and each of its instances'.
  struct BreakerStateOf {
    std::string service;
    std::string instance;
    resilience::BreakerState state;
  };
  std::vector<BreakerStateOf> breaker_states() const;

  /// Records an event in the registry's log (SSE, webhooks).
  void event(std::string_view type, std::string_view service, std::string_view instance,
             std::string reason, std::string data_json);

 private:
  registry::Registry& registry_;
  mutable std::mutex mu_;
  std::map<std::string, std::weak_ptr<ServiceGuard>, std::less<>> services_;
  std::uint64_t next_host_ = 1;
};

}  // namespace sb::gateway
