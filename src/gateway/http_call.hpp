// One HTTP/1.1 exchange on a connection of its own, for clients off the request path
// (webhook deliveries): resolve, connect, TLS, write, read the status line, all bounded by
// one timeout. Not for the request path (which
// has pools and per-stage deadlines). Internal to src/gateway .cpp files: includes Asio.
#pragma once

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

struct CallOptions {
  core::Millis timeout{5'000};  // the whole exchange
  /// https URLs: the TLS client context for the handshake (required).
  boost::asio::ssl::context* tls = nullptr;
  bool tls_verify = true;
  std::string_view server_name{};  // SNI and verified name; empty: the URL's host
};

struct CallResult {
  int status = 0;  // the response status; 0 when there was no valid response head
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
