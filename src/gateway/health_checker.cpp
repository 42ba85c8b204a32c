#include "gateway/health_checker.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "core/logging.hpp"
#include "http/io.hpp"
#include "http/parser.hpp"
#include "http/upstream.hpp"
#include "registry/registry.hpp"

// GCC 12 at -O2 inlines check()'s coroutine ramp into run_one() and then reports a bogus
// -Wmismatched-new-delete on Asio's own frame allocator (operator new and delete are the
// awaitable frame's pair).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace sb::gateway {

namespace asio = http::asio;
using http::error_code;
using http::kUse;
using http::Task;
using Timer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, http::Executor>;
using Resolver = asio::ip::basic_resolver<asio::ip::tcp, http::Executor>;

struct HealthChecker::Impl {
  Impl(registry::Registry& r, core::Clock& c, TlsContextFor t, std::size_t max)
      : registry(r), clock(c), tls_context_for(std::move(t)), max_concurrent(max) {}
  registry::Registry& registry;
  core::Clock& clock;
  TlsContextFor tls_context_for;
  std::size_t max_concurrent;
  asio::io_context ctx{1};
  std::size_t running = 0;
  std::atomic<bool> stopping{false};

  struct Result {
    bool ok = false;
    std::string reason;
  };

  // One check: connect (and, for https instances, the TLS handshake with the service's
  // verification settings), then for HTTP checks send the request and read the status line.
  Task<Result> check(const registry::DueCheck& c) {
    http::UpstreamConnection conn(ctx.get_executor());
    http::Socket& socket = conn.socket();
    Timer deadline(ctx.get_executor());
    bool timed_out = false;
    deadline.expires_after(c.check.timeout);
    deadline.async_wait([&](error_code ec) {
      if (ec) return;  // cancelled: the check finished first
      timed_out = true;
      error_code ignored;
      socket.close(ignored);
    });
    auto finish = [&](bool ok, std::string reason) {
      deadline.cancel();
      return Result{ok, timed_out ? fmt::format("timeout after {} ms", c.check.timeout.count())
                                  : std::move(reason)};
    };

    error_code ec;
    asio::ip::tcp::endpoint ep;
    const auto addr = asio::ip::make_address(c.url.host, ec);
    if (!ec) {
      ep = asio::ip::tcp::endpoint(addr, c.url.port);
    } else {
      Resolver resolver(ctx.get_executor());
      auto [rec, results] =
          co_await resolver.async_resolve(c.url.host, std::to_string(c.url.port), kUse);
      if (rec || results.empty()) co_return finish(false, "resolve: " + rec.message());
      ep = results.begin()->endpoint();
    }
    auto [cec] = co_await socket.async_connect(ep, kUse);
    if (cec) co_return finish(false, "connect: " + cec.message());
    const bool tcp = c.check.type == core::HealthCheckConfig::Type::kTcp;
    if (tcp && !c.url.tls) co_return finish(true, "TCP connect");
    if (c.url.tls) {
      http::UpstreamTarget target{c.url.host, c.url.port, true, c.tls.server_name, c.tls.verify,
                                  tls_context_for(c.service)};
      if (!target.tls_context) co_return finish(false, "no TLS context for the service");
      std::string why = co_await conn.handshake(target);
      if (!why.empty()) co_return finish(false, "TLS handshake: " + why);
      if (tcp) co_return finish(true, "TCP connect and TLS handshake");
    }

    std::string request = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}\r\n", c.check.method,
                                      c.url.base_path, c.check.path, c.url.authority());
    for (const auto& [name, value] : c.check.headers) request += name + ": " + value + "\r\n";
    request += "User-Agent: switchboard-health-check\r\nConnection: close\r\n\r\n";
    for (std::size_t sent = 0; sent < request.size();) {
      const asio::const_buffer piece(request.data() + sent, request.size() - sent);
      auto [wec, wn] = co_await conn.write_some(http::Buffers(&piece, 1));
      if (wec) co_return finish(false, "write: " + wec.message());
      sent += wn;
    }

    // The connection's lent buffer holds the response; the body check reads at most 4 KiB.
    constexpr std::size_t kBuf = 4096;
    char* const buf = conn.buf();
    http::ResponseHead& head = conn.head();
    std::size_t len = 0, scan = 0;
    for (;;) {
      auto [rec, n] = co_await conn.read_some(buf + len, kBuf - len);
      if (rec) co_return finish(false, len == 0 ? "read: " + rec.message() : "truncated response");
      len += n;
      const auto r = http::parse_response_head(buf, len, kBuf, scan, head);
      if (r.status == http::ParseStatus::kError) co_return finish(false, "malformed response");
      if (r.status == http::ParseStatus::kComplete) break;
    }
    if (!core::status_matches(c.check.expect_status, head.status))
      co_return finish(false,
                       fmt::format("HTTP {} (expected {})", head.status, c.check.expect_status));
    if (!c.check.expect_body.empty()) {
      // The body (up to the buffer) must hold the expected text; Connection: close ends it.
      std::string_view body(buf + head.head_size, len - head.head_size);
      while (body.find(c.check.expect_body) == std::string_view::npos && len < kBuf) {
        auto [rec, n] = co_await conn.read_some(buf + len, kBuf - len);
        if (rec || n == 0) break;
        len += n;
        body = std::string_view(buf + head.head_size, len - head.head_size);
      }
      if (body.find(c.check.expect_body) == std::string_view::npos)
        co_return finish(false, fmt::format("HTTP {} without the expected body text", head.status));
    }
    co_return finish(true, fmt::format("HTTP {}", head.status));
  }

  Task<void> run_one(registry::DueCheck c) {
    const auto began = clock.steady_now();
    Result r = co_await check(c);
    --running;
    if (!stopping.load())
      registry.record_check(c.service, c.id, r.ok, clock.steady_now() - began, r.reason);
  }

  // Due checks start within 10 ms of their time (while under the cap); live samples are
  // harvested every 50 ms.
  Task<void> loop() {
    Timer tick(ctx.get_executor());
    for (unsigned turn = 0; !stopping.load(); ++turn) {
      if (turn % 5 == 0) registry.harvest();  // live request outcomes from the workers
      if (running < max_concurrent) {
        for (auto& c : registry.due_checks(max_concurrent - running)) {
          ++running;
          asio::co_spawn(ctx, run_one(std::move(c)), asio::detached);
        }
      }
      registry.publish_pending();  // this turn's health changes, as one snapshot
      tick.expires_after(std::chrono::milliseconds(10));
      co_await tick.async_wait(kUse);
    }
    ctx.stop();
  }
};

HealthChecker::HealthChecker(registry::Registry& registry, core::Clock& clock,
                             TlsContextFor tls_context_for, std::size_t max_concurrent)
    : impl_(std::make_unique<Impl>(registry, clock, std::move(tls_context_for), max_concurrent)) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  asio::co_spawn(impl_->ctx, impl_->loop(), asio::detached);
  thread_ = std::thread([this] { impl_->ctx.run(); });
}

void HealthChecker::stop() {
  impl_->stopping.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace sb::gateway
