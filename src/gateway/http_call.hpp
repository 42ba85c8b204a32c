// One HTTP/1.1 exchange on a connection of its own, for clients off the request path
// (webhook deliveries): resolve, connect, TLS, write, read the status line, all bounded by
// one timeout. Not for the request path (which
// has pools and per-stage deadlines). Internal to src/gateway .cpp files: includes Asio.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "http/io.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::http {
class UpstreamConnection;
struct UpstreamTarget;
}  // namespace sb::http

namespace sb::gateway {

/// A timeout over a sequence of operations on one socket: when it fires, the socket is
/// closed, which ends whatever operation is pending on it (TLS included).
///
/// Its handler owns what it touches (a shared State), never the frame of the coroutine that
/// armed it: when the timer expires in the same io_context turn as the last operation
/// completes, both handlers are already queued; the coroutine may then finish and free its
/// frame before the timer's handler runs, and cancel() can no longer stop that handler. So
/// the handler checks `done` (set by disarm() and the destructor) before it closes anything.
/// Single-threaded: arm, disarm and the handler run on the socket's io_context.
class Deadline {
 public:
  /// Arms a timer of `timeout` that closes `socket` (see retarget()).
  Deadline(const http::Executor& ex, core::Duration timeout, http::Socket& socket);
  ~Deadline() { disarm(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  /// The socket to close when the timer fires from now on (a retry on a new connection).
  void retarget(http::Socket& socket) { state_->socket = &socket; }
  /// Stops it: the socket is never touched afterwards, even by a handler already queued.
  void disarm();
  /// Whether it fired (and closed the socket) before disarm().
  bool fired() const { return state_->fired; }

 private:
  struct State {
    http::Socket* socket = nullptr;  // valid while !done
    bool done = false;
    bool fired = false;
  };
  std::shared_ptr<State> state_;
  http::Timer timer_;
};

struct CallOptions {
  core::Millis timeout{5'000};  // the whole exchange
  /// https URLs: the TLS client context for the handshake (required).
  boost::asio::ssl::context* tls = nullptr;
  bool tls_verify = true;
  std::string_view server_name{};  // SNI and verified name; empty: the URL's host
};

struct CallResult {
  int status = 0;  // the response status; 0 when there was no valid response head
  /// The response's Retry-After value as sent (at most 64 bytes), empty when absent; the
  /// caller's policy reads it (WebhookPolicy::parse_retry_after).
  std::string retry_after{};
  /// Why the call failed ("connect: Connection refused", "timeout after 500 ms", ...);
  /// empty when a response head arrived.
  std::string error{};
};

/// Resolves `url`, connects `conn` and, for an https URL, completes the TLS handshake with
/// `tls` (SNI, verification, context). Returns "" on success, else why it failed
/// ("resolve: ...", "connect: ...", "TLS handshake: ..."). Cancel it by closing the socket.
http::Task<std::string> open_connection(const core::UpstreamUrl& url,
                                        http::UpstreamConnection& conn,
                                        const http::UpstreamTarget& tls);

/// Sends `request` (a whole HTTP/1.1 request, which should say `Connection: close`) to
/// `url` and reads the answer. Never throws; cancelled when the io_context stops.
http::Task<CallResult> http_call(const core::UpstreamUrl& url, std::string_view request,
                                 const CallOptions& options);

}  // namespace sb::gateway
