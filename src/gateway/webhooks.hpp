// Webhook sinks: registry events POSTed as JSON to the configured URLs (webhooks: in the
// config), each sink with its own bounded queue, retries and counters, on a thread of its
// own. The decisions are WebhookPolicy's (webhook_policy.hpp); this is the driver.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"

namespace boost::asio::ssl {
class context;
}
namespace boost::json {
class object;
}
namespace sb::registry {
class Registry;
}

namespace sb::gateway {

class WebhookDispatcher {
 public:
  /// `tls` is the client context for https sinks (upstream.tls), `tls_settings` its
  /// verification settings; `version` goes into the User-Agent.
  WebhookDispatcher(registry::Registry& registry, core::Clock& clock,
                    std::vector<core::WebhookConfig> sinks,
                    std::shared_ptr<boost::asio::ssl::context> tls, core::TlsConfig tls_settings,
                    std::string version);
  ~WebhookDispatcher();

  /// Starts the thread. Events from the registry's log are read from id 1 on, so events of
  /// start-up (registrations lapsed while Switchboard was down) are sent too.
  void start();
  /// Stops promptly: attempts in flight are abandoned and queued events are not sent.
  void stop();

  /// Adds "webhooks": [{url, queued, pending, delivered, failed, dropped, retries,
  /// last_error, last_success, last_failure}, ...] to the status document. Thread-safe.
  void add_status(boost::json::object& root) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace sb::gateway
