// Upstream connections (plain TCP or TLS) and the per-worker, per-instance keep-alive pool
// that lends them out. Internal (includes Asio); TLS details stay in upstream.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "http/io.hpp"
#include "http/parser.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::http {

class Exchange;

/// Makes the TLS client context for a service's upstreams (verification, CA file).
/// Shared by all workers (an SSL_CTX is safe to share once configured). On error returns
/// nullptr and sets `error`.
std::shared_ptr<asio::ssl::context> make_client_tls_context(const core::TlsConfig& tls,
                                                            std::string* error);

/// Where a pool connects.
struct UpstreamTarget {
  std::string host;
  std::uint16_t port = 80;
  bool tls = false;
  std::string server_name;  // SNI and verified name (TLS only)
  bool verify = true;
  std::shared_ptr<asio::ssl::context> tls_context;
};

class UpstreamConnection {
 public:
  static constexpr std::size_t kBufferSize = 16 * 1024;

  explicit UpstreamConnection(Executor ex);
  ~UpstreamConnection();

  /// The TCP socket (the lowest layer, also under TLS): deadlines cancel it.
  Socket& socket();
  Task<error_code> write(Buffers buffers);
  Task<std::pair<error_code, std::size_t>> read_some(char* data, std::size_t size);

  // Response parsing state; the head's views point into buf.
  std::unique_ptr<char[]> buf;
  std::size_t len = 0;
  ResponseHead head;
  bool reused = false;              // came from the idle pool
  core::SteadyTime idle_since{};

 private:
  friend class UpstreamPool;
  struct Tls;
  Socket socket_;
  std::unique_ptr<Tls> tls_;
};

/// Why acquire() gave no connection.
enum class AcquireError : std::uint8_t { kNone, kRefused, kTimeout, kTls, kResolve, kLimit };
const char* describe(AcquireError e);

/// Keep-alive connections to one instance, for one worker. Not thread-safe (one worker).
class UpstreamPool {
 public:
  UpstreamPool(Executor ex, UpstreamTarget target, core::PoolConfig pool,
               core::Millis connect_timeout);
  ~UpstreamPool();

  struct Lease {
    std::unique_ptr<UpstreamConnection> conn{};
    AcquireError error = AcquireError::kNone;
    std::string detail{};  // for logs and problem details
  };
  /// An idle connection (most recently used first) or a new one. Deadlines for connecting
  /// are armed on `ex`. `fresh` skips the idle ones.
  Task<Lease> acquire(Exchange& ex, bool fresh = false);
  /// Returns a connection after a complete exchange; kept when there is idle room.
  void release(std::unique_ptr<UpstreamConnection> conn, core::SteadyTime now);
  /// Drops a connection that cannot be reused.
  void discard(std::unique_ptr<UpstreamConnection> conn);
  /// Closes idle connections older than the idle timeout.
  void sweep(core::SteadyTime now);
  void close_idle();

  std::size_t idle_count() const { return idle_.size(); }
  std::size_t busy_count() const { return busy_; }
  std::uint64_t connects_total() const { return connects_; }
  const UpstreamTarget& target() const { return target_; }

 private:
  Executor ex_;
  UpstreamTarget target_;
  core::PoolConfig pool_;
  core::Millis connect_timeout_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // back = most recent
  std::size_t busy_ = 0;
  std::uint64_t connects_ = 0;
  std::vector<asio::ip::tcp::endpoint> endpoints_;  // resolved once, refreshed on failure
};

}  // namespace sb::http
