// The gateway: composes configuration, routing, the HTTP server and its per-worker proxy
// handlers, the operations endpoints and graceful drain into one running Switchboard.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "gateway/router.hpp"

namespace boost::asio {
class thread_pool;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace sb::http {
class Server;
}

namespace sb::registry {
class Registry;
class RegistryStore;
}  // namespace sb::registry

namespace sb::telemetry {
class Registry;
}

namespace sb::gateway {

class Gateway {
 public:
  /// `data_dir` holds the registry database (API registrations survive restarts); empty
  /// keeps registrations in memory only.
  Gateway(core::Config config, core::Clock& clock, std::string data_dir = {});
  ~Gateway();

  /// Builds what configuration alone cannot check (TLS contexts, CA files, the registry
  /// database). Returns a message naming the key or file on error.
  std::optional<std::string> prepare();
  /// Binds the listeners ("server.listen: 127.0.0.1:8080: address already in use").
  std::optional<std::string> bind();
  /// After bind(): builds the registry (configured services, Switchboard itself) and loads
  /// the registrations kept in the data directory, dropping those outside
  /// api.allowed_networks. Returns a startup error or nullopt.
  std::optional<std::string> open_registry();
  /// Starts the workers. Blocks SIGTERM/SIGINT in them so run_until_signalled() gets them.
  void start();
  /// Waits for SIGTERM or SIGINT, drains (see DrainConfig) and stops. Returns the exit
  /// status: 0 when every request finished, 1 when the drain timeout cut some. A second
  /// signal exits at once.
  int run_until_signalled();
  /// Drains and stops without a signal (tests).
  int drain_and_stop();

  const core::Config& config() const { return config_; }
  const Router& router() const { return router_; }
  http::Server& server() { return *server_; }
  core::Clock& clock() { return clock_; }
  core::SteadyTime started_at() const { return started_at_; }
  /// The TLS client context for a service's https instances: its own when configured,
  /// else the one built from upstream.tls (services registered through the API).
  const std::shared_ptr<boost::asio::ssl::context>& tls_context_for(std::string_view service) const;
  registry::Registry& registry() { return *registry_; }
  /// Who may call the registry API and where registrations may point (api.* keys).
  const class ApiAccess& api_access() const { return *api_access_; }
  /// Breakers, outlier records and retry budgets shared by the workers (after open_registry).
  class Guards& guards() {
    return *guards_;
  }
  /// The webhook sinks (after start(); nullptr before).
  const class WebhookDispatcher* webhooks() const { return webhooks_.get(); }
  /// Where API calls that change the registry run (after start()): one thread, so they
  /// keep their order. Their store commits wait for the disk (fsync), which on a worker
  /// would stall every connection of that worker meanwhile.
  boost::asio::thread_pool& registry_writer() { return *registry_writer_; }
  /// Every metric of the process, and the gateway's families on it.
  telemetry::Registry& telemetry() { return *telemetry_; }
  const struct GatewayMetrics& metrics() const { return *metrics_; }
  struct GatewayMetrics& metrics() {
    return *metrics_;
  }
  /// Registry events as counters, gauges read at scrape time, the status windows (after
  /// open_registry()).
  class ControlMetrics& control_metrics() {
    return *control_metrics_;
  }
  /// Where scrapes are written (after start()): one thread, never a worker.
  boost::asio::thread_pool& scraper() { return *scraper_; }

 private:
  void stop_registry_writer();
  /// Removes the API registrations loaded from the store whose URL api.allowed_networks no
  /// longer allows (at start, before the workers run: a name may be resolved here).
  void drop_disallowed_registrations();

  core::Config config_;
  core::Clock& clock_;
  Router router_;
  std::string data_dir_;
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>, std::less<>> tls_contexts_;
  std::shared_ptr<boost::asio::ssl::context> default_tls_;
  std::unique_ptr<class ApiAccess> api_access_;
  std::unique_ptr<registry::RegistryStore> store_;
  std::unique_ptr<registry::Registry> registry_;
  std::unique_ptr<class Guards> guards_;
  std::unique_ptr<telemetry::Registry> telemetry_;
  std::unique_ptr<struct GatewayMetrics> metrics_;
  std::unique_ptr<class ControlMetrics> control_metrics_;
  std::unique_ptr<class HealthChecker> checker_;
  std::unique_ptr<class WebhookDispatcher> webhooks_;
  std::unique_ptr<http::Server> server_;
  // Stopped and destroyed after the workers have stopped and before server_: a call it
  // still holds resumes (or destroys) a worker's coroutine, which needs that worker's
  // io_context.
  std::unique_ptr<boost::asio::thread_pool> registry_writer_;
  std::unique_ptr<boost::asio::thread_pool> scraper_;
  core::SteadyTime started_at_;
};

}  // namespace sb::gateway
