// One HTTP/1.1 exchange on a connection of its own, for clients off the request path
// (webhook deliveries): resolve, connect, TLS, write, read the status line and
// optionally part of the body, all bounded by one timeout. Not for the request path (which
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

namespace sb::gateway {

struct CallOptions {
  core::Millis timeout{5'000};  // the whole exchange
  /// Stop once a TCP connection opens.
  bool connect_only = false;
  /// https URLs: the TLS client context for the handshake (required).
  boost::asio::ssl::context* tls = nullptr;
  bool tls_verify = true;
  std::string_view server_name{};  // SNI and verified name; empty: the URL's host
  /// Read the body (up to about 4 KiB, until the peer closes) until it holds this text;
  /// empty: stop after the response head.
  std::string_view read_body_until{};
};

struct CallResult {
  bool connected = false;  // a connection opened (the whole result for connect_only)
  int status = 0;          // the response status; 0 when there was no valid response head
  std::string body{};      // what was read of the body (read_body_until only)
  /// Why the call failed ("connect: Connection refused", "timeout after 500 ms", ...);
  /// empty when a response head arrived or a connect_only call connected.
  std::string error{};
};

/// Sends `request` (a whole HTTP/1.1 request, which should say `Connection: close`) to
/// `url` and reads the answer. Never throws; cancelled when the io_context stops.
http::Task<CallResult> http_call(const core::UpstreamUrl& url, std::string_view request,
                                 const CallOptions& options);

}  // namespace sb::gateway
