// The gateway's metrics: the families (registered once, at start), the handles a worker
// keeps per service and per instance, the request-path stage that bumps them, and the
// control thread's part (registry events, windows for the status document, gauges read at
// scrape time). Internal to the gateway. Names follow OpenTelemetry's HTTP semantic
// conventions as Prometheus names where they exist (docs/metrics.md lists every one).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "telemetry/metrics.hpp"

namespace boost::json {
class object;
}
namespace sb::http {
class UpstreamPool;
enum class Method : std::uint8_t;
}  // namespace sb::http
namespace sb::registry {
class Registry;
}

namespace sb::gateway {

class Guards;
struct Instance;

/// Why the route's fallback answered (switchboard_fallbacks_total{kind}).
enum class FallbackKind : std::uint8_t {
  kBreakerOpen,  // the service's breaker refused
  kDeadline,     // the deadline expired before an upstream was called
  kNoInstance,   // no instance could take the request
  kFailed,       // every attempt failed (errors)
  kStatus,       // the upstream answered with a failure status
};
const char* to_string(FallbackKind k);

enum class AttemptKind : std::uint8_t;  // plan.hpp
/// The attempt's place in its request (the attempt label).
enum class AttemptRole : std::uint8_t { kFirst, kRetry, kHedge };

/// "2xx" for 200..299 and so on; "" for 0.
std::string_view status_class(int status);
/// The http_request_method label: the method, or "_OTHER" (OpenTelemetry's convention).
std::string_view method_label(http::Method m);

/// Every family, registered once on the process's telemetry registry.
struct GatewayMetrics {
  GatewayMetrics(telemetry::Registry& registry, const core::TelemetryConfig& config);

  telemetry::Registry& registry;
  const bool status_as_class;  // telemetry.status_code_label: class

  // Requests, as the client saw them.
  telemetry::Family<telemetry::Histogram>& server_duration;
  telemetry::Family<telemetry::Gauge>& server_active;
  telemetry::Family<telemetry::Histogram>& server_request_size;
  telemetry::Family<telemetry::Histogram>& server_response_size;
  // Attempts, as an upstream saw them.
  telemetry::Family<telemetry::Histogram>& client_duration;
  // Pools.
  telemetry::Family<telemetry::Gauge>& pool_connections;
  telemetry::Family<telemetry::Counter>& pool_created;
  telemetry::Family<telemetry::Counter>& pool_reused;
  telemetry::Family<telemetry::Counter>& pool_closed;
  telemetry::Family<telemetry::Histogram>& pool_connect_duration;
  // Resilience.
  telemetry::Family<telemetry::Counter>& retries;
  telemetry::Family<telemetry::Counter>& retry_budget_exhausted;
  telemetry::Family<telemetry::Counter>& hedges;
  telemetry::Family<telemetry::Counter>& fallbacks;
  telemetry::Family<telemetry::Counter>& deadline_expired;
  telemetry::Family<telemetry::Gauge>& breaker_state;
  telemetry::Family<telemetry::Counter>& breaker_transitions;
  telemetry::Family<telemetry::Counter>& outlier_ejections;
  // Registry and health checks.
  telemetry::Family<telemetry::Gauge>& instances;
  telemetry::Family<telemetry::Counter>& state_changes;
  telemetry::Family<telemetry::Counter>& expirations;
  telemetry::Family<telemetry::Counter>& registrations;
  telemetry::Family<telemetry::Counter>& events_missed;
  telemetry::Family<telemetry::Counter>& checks;
  telemetry::Family<telemetry::Histogram>& check_duration;
  // Workers.
  telemetry::Family<telemetry::Histogram>& loop_lag;
  telemetry::Family<telemetry::Counter>& scrapes;
};

/// One instance's handles on one worker: made with the instance, so an instance that goes
/// takes its series with it (they are dropped telemetry.series_idle_ttl later).
class InstanceMetrics {
 public:
  InstanceMetrics() = default;
  InstanceMetrics(const GatewayMetrics& m, std::string service, std::string instance);
  InstanceMetrics(InstanceMetrics&&) noexcept = default;
  InstanceMetrics& operator=(InstanceMetrics&&) noexcept = default;
  ~InstanceMetrics();

  /// One attempt to this instance: how it ended is the error_type label ("" for a
  /// response). An attempt the client's side ended (AttemptKind::kClient) is not counted.
  void attempt(http::Method method, AttemptKind kind, int status, AttemptRole role,
               core::Duration took);
  /// The pool's counters since the last call (the worker's tick), as deltas.
  void publish(const http::UpstreamPool& pool);
  /// A new connection's connect (and TLS handshake) time.
  void connected(core::Duration took) const { connect_.observe(took); }

 private:
  struct Entry {
    std::uint32_t key;
    telemetry::Histogram h;
  };
  const GatewayMetrics* m_ = nullptr;
  std::string service_;
  std::string instance_;
  std::vector<Entry> attempts_;  // by (method, result, status, role): a few per instance
  telemetry::Gauge open_, idle_;
  telemetry::Counter created_, reused_, closed_;
  telemetry::Histogram connect_;
  std::int64_t open_seen_ = 0, idle_seen_ = 0;
  std::uint64_t created_seen_ = 0, reused_seen_ = 0, closed_seen_ = 0;
};

/// The request-path stage on one worker: what a finished request adds. Handles are found in
/// a small per-service table (one per worker), made on first sight of a (route, method,
/// status) and kept for the worker's life.
class RequestMetrics {
 public:
  explicit RequestMetrics(const GatewayMetrics& m) : m_(m) {}

  struct PerService;
  struct Finished {
    std::string_view route;  // the route's prefix, "/svc/{service}" for direct calls
    std::uint16_t route_id;  // 0 for direct calls, else 1 + the route's index
    http::Method method;
    int status;
    core::Duration took;
    std::uint64_t request_bytes;
    std::uint64_t response_bytes;
    std::uint32_t retries = 0;
    bool budget_exhausted = false;
    bool hedged = false;
    bool hedge_won = false;
    bool deadline_expired = false;
  };
  /// A request to `service` starts (http_server_active_requests); the handle for the rest.
  PerService* started(std::string_view service);
  /// It ended: `s` from started(), or null for a request that found no service.
  void finished(PerService* s, const Finished& f);
  void fallback(PerService* s, FallbackKind kind);

  struct Entry {
    std::uint32_t key;
    telemetry::Histogram duration, request_size, response_size;
  };
  struct PerService {
    std::string name;
    telemetry::Gauge active;
    telemetry::Counter retries, budget_exhausted, hedge_won, hedge_lost, deadline;
    std::vector<Entry> entries;
    std::map<FallbackKind, telemetry::Counter> fallbacks;
  };

 private:
  PerService& service_entry(std::string_view service);
  Entry& entry(PerService& s, const Finished& f);

  const GatewayMetrics& m_;
  std::map<std::string, PerService, std::less<>> services_;
  PerService* last_ = nullptr;  // the service of the previous request (most traffic repeats)
};

/// The control thread's part: registry events into counters, the scrape-time gauges
/// (instances by state, breaker states), and the sliding windows the status document's
/// p50/p95/p99 are read from.
class ControlMetrics {
 public:
  ControlMetrics(GatewayMetrics& m, registry::Registry& registry, Guards& guards,
                 core::Duration window);

  /// The control loop's turn: new registry events counted, windows rotated, idle series
  /// swept.
  void tick(core::SteadyTime now);
  /// Adds p50_ms/p95_ms/p99_ms/requests/request_rate from the windows to each instance of
  /// the status document, and the same per service ("latency").
  void annotate_status(boost::json::object& status, core::SteadyTime now);
  /// Sets the gauges that are read, not counted (called at the start of a scrape).
  void collect();

 private:
  struct Window {
    telemetry::SlidingWindow window;
    telemetry::HistogramSnapshot last;
  };
  /// The cumulative histogram of each window's key, summed over its series.
  std::map<std::string, telemetry::HistogramSnapshot, std::less<>> merged() const;
  void count_events();

  GatewayMetrics& m_;
  registry::Registry& registry_;
  Guards& guards_;
  core::Duration window_;
  std::mutex mu_;  // the windows: the control thread rotates, the API thread reads
  std::map<std::string, Window, std::less<>> windows_;  // "service" and "service/instance"
  std::uint64_t cursor_ = 0;
  bool cursor_set_ = false;
};

}  // namespace sb::gateway
