#include "gateway/http_call.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <optional>
#include <tuple>

#include "http/parser.hpp"

// GCC 12 at -O2 inlines coroutine ramps into their callers and then reports a bogus
// -Wmismatched-new-delete on Asio's own frame allocator (see health_checker.cpp).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace sb::gateway {

namespace asio = http::asio;
namespace ssl = asio::ssl;
using http::error_code;
using http::kUse;
using Timer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, http::Executor>;
using Resolver = asio::ip::basic_resolver<asio::ip::tcp, http::Executor>;

namespace {

// SNI and the name (or address) the certificate must carry, as the proxy's pools do.
void set_peer_name(SSL* handle, const std::string& name, bool verify) {
  error_code ip_ec;
  asio::ip::make_address(name, ip_ec);
  X509_VERIFY_PARAM* param = SSL_get0_param(handle);
  if (ip_ec) {
    SSL_set_tlsext_host_name(handle, name.c_str());
    if (verify) X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  } else if (verify) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  }
}

using TlsStream = ssl::stream<http::Socket&>;
using IoResult = std::tuple<error_code, std::size_t>;

// Plain TCP or TLS, chosen at run time.
http::Task<IoResult> write_all(http::Socket& socket, TlsStream* tls, asio::const_buffer b) {
  if (tls != nullptr) co_return co_await asio::async_write(*tls, b, kUse);
  co_return co_await asio::async_write(socket, b, kUse);
}

http::Task<IoResult> read_some(http::Socket& socket, TlsStream* tls, asio::mutable_buffer b) {
  if (tls != nullptr) co_return co_await tls->async_read_some(b, kUse);
  co_return co_await socket.async_read_some(b, kUse);
}

}  // namespace

http::Task<CallResult> http_call(const core::UpstreamUrl& url, std::string_view request,
                                 const CallOptions& options) {
  const auto ex = co_await asio::this_coro::executor;
  http::Socket socket(ex);
  Timer deadline(ex);
  bool timed_out = false;
  deadline.expires_after(options.timeout);
  deadline.async_wait([&](error_code ec) {
    if (ec) return;  // cancelled: the call finished first
    timed_out = true;
    error_code ignored;
    socket.close(ignored);  // also ends a TLS operation on top of it
  });
  CallResult result;
  auto finish = [&](std::string error) {
    deadline.cancel();
    result.error = timed_out ? fmt::format("timeout after {} ms", options.timeout.count())
                             : std::move(error);
    return std::move(result);
  };

  error_code ec;
  asio::ip::tcp::endpoint ep;
  const auto addr = asio::ip::make_address(url.host, ec);
  if (!ec) {
    ep = asio::ip::tcp::endpoint(addr, url.port);
  } else {
    Resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(url.host, std::to_string(url.port), kUse);
    if (rec || results.empty()) co_return finish("resolve: " + rec.message());
    ep = results.begin()->endpoint();
  }
  auto [cec] = co_await socket.async_connect(ep, kUse);
  if (cec) co_return finish("connect: " + cec.message());
  result.connected = true;
  if (options.connect_only) co_return finish("");
  if (url.tls && options.tls == nullptr) co_return finish("TLS: no client context");

  std::optional<TlsStream> tls;
  if (url.tls) {
    tls.emplace(socket, *options.tls);
    const std::string name =
        options.server_name.empty() ? url.host : std::string(options.server_name);
    set_peer_name(tls->native_handle(), name, options.tls_verify);
    auto [hec] = co_await tls->async_handshake(ssl::stream_base::client, kUse);
    if (hec) {
      const long verify = SSL_get_verify_result(tls->native_handle());
      co_return finish(verify != X509_V_OK ? std::string("TLS: certificate verification failed: ") +
                                                 X509_verify_cert_error_string(verify)
                                           : "TLS: " + hec.message());
    }
  }
  auto [wec, wn] =
      co_await write_all(socket, tls ? &*tls : nullptr, asio::buffer(request.data(), request.size()));
  if (wec) co_return finish("write: " + wec.message());

  // The read buffer and parsed head live on the heap: coroutine frames stay small.
  struct Read {
    char buf[4096];
    http::ResponseHead head;
  };
  auto rd = std::make_unique<Read>();
  char* const buf = rd->buf;
  http::ResponseHead& head = rd->head;
  constexpr std::size_t kBuf = sizeof(Read::buf);
  std::size_t len = 0, scan = 0;
  for (;;) {
    auto [rec, n] = co_await read_some(socket, tls ? &*tls : nullptr, asio::buffer(buf + len, kBuf - len));
    if (rec) co_return finish(len == 0 ? "read: " + rec.message() : "truncated response");
    len += n;
    const auto r = http::parse_response_head(buf, len, kBuf, scan, head);
    if (r.status == http::ParseStatus::kError) co_return finish("malformed response");
    if (r.status == http::ParseStatus::kComplete) break;
  }
  result.status = head.status;
  if (!options.read_body_until.empty()) {
    // The body up to the buffer's end must hold the text; Connection: close ends it.
    std::string_view body(buf + head.head_size, len - head.head_size);
    while (body.find(options.read_body_until) == std::string_view::npos && len < kBuf) {
      auto [rec, n] = co_await read_some(socket, tls ? &*tls : nullptr, asio::buffer(buf + len, kBuf - len));
      if (rec || n == 0) break;
      len += n;
      body = std::string_view(buf + head.head_size, len - head.head_size);
    }
    result.body = std::string(body);
  }
  deadline.cancel();
  if (timed_out) result.error = fmt::format("timeout after {} ms", options.timeout.count());
  co_return std::move(result);
}

}  // namespace sb::gateway
