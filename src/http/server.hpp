// The HTTP/1.1 server: N workers, each an io_context on its own thread with its own
// SO_REUSEPORT listening sockets, its own connections and its own Handler (and so its own
// upstream pools). Nothing on the per-request path takes a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"

namespace boost::asio {
class io_context;
}

namespace sb::http {

class Handler;
class Exchange;
class NameResolver;

struct ServerSettings {
  core::HostPort listen;
  std::optional<core::HostPort> admin_listen;
  unsigned threads = 1;
  core::LimitsConfig limits;
  /// Request bodies with Content-Length up to this many bytes, on requests that may be
  /// retried (idempotent methods, Idempotency-Key), get room in the exchange's buffer so
  /// that Exchange::buffer_body() can keep them whole for a replay. 0: none.
  std::size_t replay_body_max = 0;
  /// Request paths have runs of '/' merged into one when normalised (server.merge_slashes).
  bool merge_slashes = false;
  /// A third listener (telemetry.prometheus_port): its connections are ListenerKind::kMetrics.
  std::optional<core::HostPort> metrics_listen{};
};

class Server;

/// One worker thread. Public for handlers (per-worker state) and tests.
class Worker {
 public:
  Worker(Server& server, unsigned index);
  ~Worker();

  /// The worker whose thread calls this, or nullptr off the workers' threads.
  static Worker* current();

  unsigned index() const { return index_; }
  boost::asio::io_context& context() { return *ctx_; }
  Server& server() { return server_; }
  /// Coarse time, refreshed every tick (~100 ms) and when a connection starts.
  core::SteadyTime now() const { return now_; }
  core::SteadyTime refresh_now();
  inline const core::LimitsConfig& limits() const;  // the server's (inline: per request)
  inline bool draining() const;
  Handler& handler() { return *handler_; }
  /// Runs `fn` on this worker's thread soon; callable from any thread. The worker's
  /// io_context has no locks (only its thread touches it), so other threads leave work in
  /// this mailbox and wake the worker through an eventfd. What is still in the mailbox
  /// when the worker stops is destroyed, not run.
  void deliver(std::function<void()> fn);

  // Connection bookkeeping (worker thread only).
  void add(Exchange* ex);
  void remove(Exchange* ex);
  std::uint32_t connections() const { return connections_.load(std::memory_order_relaxed); }
  /// Nanoseconds since the epoch of the steady clock at the worker's last tick.
  std::int64_t heartbeat() const { return heartbeat_.load(std::memory_order_relaxed); }
  /// Requests being handled right now (read by other threads for status and drain).
  std::atomic<std::uint32_t> in_flight{0};

 private:
  friend class Server;
  struct Impl;
  Server& server_;
  unsigned index_;
  std::unique_ptr<boost::asio::io_context> ctx_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Handler> handler_;
  Exchange* head_ = nullptr;
  core::SteadyTime now_{};
  std::atomic<std::uint32_t> connections_{0};
  std::atomic<std::int64_t> heartbeat_{0};
  bool listeners_closed_ = false;
  unsigned ticks_ = 0;
  std::thread thread_;

  void tick();
  void accept_loop(int which);
  void close_listeners();
  void close_idle();
};

class Server {
 public:
  using HandlerFactory = std::function<std::unique_ptr<Handler>(Worker&)>;

  Server(ServerSettings settings, core::Clock& clock, HandlerFactory factory);
  ~Server();

  /// Binds every worker's sockets. On failure returns a message ("127.0.0.1:8080: address
  /// already in use") and binds nothing.
  std::optional<std::string> bind();
  /// The bound addresses (after bind), with the real port when 0 was asked.
  core::HostPort proxy_address() const { return bound_proxy_; }
  std::optional<core::HostPort> admin_address() const { return bound_admin_; }
  std::optional<core::HostPort> metrics_address() const { return bound_metrics_; }
  /// Starts the worker threads.
  void start();
  /// Readiness fails from now on; responses carry "Connection: close".
  void begin_drain();
  /// Stops accepting and closes the connections with no request in flight: idle keep-alive
  /// ones and those still sending a head (repeated while draining). Takes effect
  /// on each worker's next tick (within ~100 ms): nothing is posted across threads.
  void stop_accepting();
  /// Client connections open now, over all workers.
  std::uint32_t connections() const;
  std::uint32_t in_flight() const;
  /// Stops every worker loop (on its next tick) and joins the threads.
  void stop();

  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  bool accepting() const { return accepting_.load(std::memory_order_relaxed); }
  /// True when every worker turned within `stall` of `now`.
  bool workers_alive(core::SteadyTime now, std::chrono::nanoseconds stall) const;
  const ServerSettings& settings() const { return settings_; }
  core::Clock& clock() { return clock_; }
  /// Resolves upstream host names off the workers (http/upstream.hpp).
  NameResolver& resolver() { return *resolver_; }
  std::vector<std::unique_ptr<Worker>>& workers() { return workers_; }
  /// Process-wide connection count, for limits.max_connections.
  std::atomic<std::uint32_t> total_connections{0};

 private:
  friend class Worker;
  ServerSettings settings_;
  core::Clock& clock_;
  HandlerFactory factory_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<NameResolver> resolver_;  // stopped after the workers, before they go
  core::HostPort bound_proxy_;
  std::optional<core::HostPort> bound_admin_;
  std::optional<core::HostPort> bound_metrics_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> accepting_{true};
  std::atomic<bool> stop_requested_{false};
};

inline const core::LimitsConfig& Worker::limits() const { return server_.settings().limits; }
inline bool Worker::draining() const { return server_.draining(); }

}  // namespace sb::http
