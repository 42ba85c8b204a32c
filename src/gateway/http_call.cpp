#include "gateway/http_call.hpp"

#include <fmt/format.h>

#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <optional>
#include <tuple>

#include "http/parser.hpp"
#include "http/upstream.hpp"

namespace sb::gateway {

namespace asio = http::asio;
namespace ssl = asio::ssl;
using http::error_code;
using http::kUse;
using http::Timer;

Deadline::Deadline(const http::Executor& ex, core::Duration timeout, http::Socket& socket)
    : state_(std::make_shared<State>()), timer_(ex) {
  state_->socket = &socket;
  timer_.expires_after(timeout);
  timer_.async_wait([state = state_](error_code ec) {
    if (ec || state->done) return;  // cancelled, or the operations finished first
    state->fired = true;
    error_code ignored;
    state->socket->close(ignored);  // also ends a TLS operation on top of it
  });
}

void Deadline::disarm() {
  if (state_->done) return;
  state_->done = true;
  timer_.cancel();
}

http::Task<std::string> open_connection(const core::UpstreamUrl& url,
                                        http::UpstreamConnection& conn,
                                        const http::UpstreamTarget& tls) {
  const auto ex = co_await asio::this_coro::executor;
  error_code ec;
  asio::ip::tcp::endpoint ep;
  const auto addr = asio::ip::make_address(url.host, ec);
  if (!ec) {
    ep = asio::ip::tcp::endpoint(addr, url.port);
  } else {
    http::Resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(url.host, std::to_string(url.port), kUse);
    if (rec || results.empty()) co_return "resolve: " + rec.message();
    ep = results.begin()->endpoint();
  }
  auto [cec] = co_await conn.socket().async_connect(ep, kUse);
  if (cec) co_return "connect: " + cec.message();
  if (url.tls) {
    if (!tls.tls_context) co_return std::string("TLS handshake: no TLS context");
    std::string why = co_await conn.handshake(tls);
    if (!why.empty()) co_return "TLS handshake: " + why;
  }
  co_return std::string();
}

http::Task<CallResult> http_call(const core::UpstreamUrl& url, std::string_view request,
                                 const CallOptions& options) {
  const auto ex = co_await asio::this_coro::executor;
  // The proxy's connection type: TLS with the same SNI and verification, and a lent buffer.
  http::UpstreamConnection conn(ex);
  http::Socket& socket = conn.socket();
  Deadline deadline(ex, options.timeout, socket);
  CallResult result;
  auto finish = [&](std::string error) {
    deadline.disarm();
    result.error = deadline.fired() ? fmt::format("timeout after {} ms", options.timeout.count())
                                    : std::move(error);
    return std::move(result);
  };

  if (url.tls && options.tls == nullptr) co_return finish("TLS: no client context");
  // A non-owning pointer to the TLS context: the caller keeps it alive for the call.
  const http::UpstreamTarget tls{
      url.host,
      url.port,
      url.tls,
      std::string(options.server_name),
      options.tls_verify,
      std::shared_ptr<ssl::context>(std::shared_ptr<void>(), options.tls)};
  if (std::string why = co_await open_connection(url, conn, tls); !why.empty())
    co_return finish(std::move(why));
  for (std::size_t sent = 0; sent < request.size();) {
    const asio::const_buffer piece(request.data() + sent, request.size() - sent);
    auto [wec, wn] = co_await conn.write_some(http::Buffers(&piece, 1));
    if (wec) co_return finish("write: " + wec.message());
    sent += wn;
  }

  constexpr std::size_t kBuf = 4096;  // of the connection's buffer: the head, a little body
  char* const buf = conn.buf();
  http::ResponseHead& head = conn.head();
  std::size_t len = 0, scan = 0;
  for (;;) {
    auto [rec, n] = co_await conn.read_some(buf + len, kBuf - len);
    if (rec) co_return finish(len == 0 ? "read: " + rec.message() : "truncated response");
    len += n;
    const auto r = http::parse_response_head(buf, len, kBuf, scan, head);
    if (r.status == http::ParseStatus::kError) co_return finish("malformed response");
    if (r.status == http::ParseStatus::kComplete) break;
  }
  deadline.disarm();
  if (deadline.fired()) co_return finish("");
  result.status = head.status;
  for (std::size_t i = 0; i < head.field_count; ++i)
    if (http::iequals(head.fields[i].name, "retry-after") && head.fields[i].value.size() <= 64)
      result.retry_after = std::string(head.fields[i].value);
  co_return std::move(result);
}

}  // namespace sb::gateway
