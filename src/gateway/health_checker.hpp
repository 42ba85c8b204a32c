// Active health checks: a thread of its own (never a worker) that runs the registry's due
// checks concurrently, each bounded by its timeout, and reports the results back.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
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
  HealthChecker(registry::Registry& registry, core::Clock& clock, TlsContextFor tls_context_for,
                std::size_t max_concurrent = 64);
  ~HealthChecker();
  void start();
  /// Stops the thread; checks in flight are abandoned.
  void stop();
  /// How many times the loop woke up (it sleeps until its next deadline). Thread-safe.
  std::uint64_t wakeups_for_test() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace sb::gateway
