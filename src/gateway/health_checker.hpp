// Active health checks: a thread of its own (never a worker) that runs the registry's due
// checks concurrently, each bounded by its timeout, and reports the results back.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>

#include "core/clock.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::registry {
class Registry;
}

namespace sb::gateway {

class HealthChecker {
 public:
  /// The TLS client context for a service's https instances.
  using TlsContextFor =
      std::function<std::shared_ptr<boost::asio::ssl::context>(std::string_view service)>;
  /// `max_concurrent` bounds the checks in flight at once.
  /// Each check's result and time go to `metrics` when it is set.
  HealthChecker(registry::Registry& registry, core::Clock& clock, TlsContextFor tls_context_for,
                std::size_t max_concurrent = 64, const struct GatewayMetrics* metrics = nullptr);
  ~HealthChecker();
  void start();
  /// Stops the thread; checks in flight are abandoned.
  void stop();
  /// When the loop looks again after a turn: the next harvest of live samples, the next
  /// sweep of kept connections, or the next due check (nullopt while the concurrency cap
  /// is reached: a check's end wakes it then). Nothing else: an idle loop does not tick.
  static core::SteadyTime next_wake(core::SteadyTime harvest, core::SteadyTime sweep,
                                    std::optional<core::SteadyTime> check);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace sb::gateway
