// The gateway: composes configuration, routing, the HTTP server and its per-worker proxy
// handlers, the operations endpoints and graceful drain into one running Switchboard.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "gateway/router.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::http {
class Server;
}

namespace sb::gateway {

class Gateway {
 public:
  Gateway(core::Config config, core::Clock& clock);
  ~Gateway();

  /// Builds what configuration alone cannot check (TLS contexts, CA files). Returns a
  /// message naming the key on error.
  std::optional<std::string> prepare();
  /// Binds the listeners ("server.listen: 127.0.0.1:8080: address already in use").
  std::optional<std::string> bind();
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
  const std::shared_ptr<boost::asio::ssl::context>& tls_context(std::size_t service) const {
    return tls_contexts_[service];
  }

 private:
  core::Config config_;
  core::Clock& clock_;
  Router router_;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> tls_contexts_;
  std::unique_ptr<http::Server> server_;
  core::SteadyTime started_at_;
};

}  // namespace sb::gateway
