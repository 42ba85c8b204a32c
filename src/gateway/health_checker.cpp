#include "gateway/health_checker.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/logging.hpp"
#include "gateway/http_call.hpp"
#include "http/io.hpp"
#include "registry/registry.hpp"

// GCC 12 at -O2 inlines check()'s coroutine ramp into run_one() and then reports a bogus
// -Wmismatched-new-delete on Asio's own frame allocator (operator new and delete are the
// awaitable frame's pair).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace sb::gateway {

namespace asio = http::asio;
using http::kUse;
using http::Task;
using Timer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, http::Executor>;

struct HealthChecker::Impl {
  Impl(registry::Registry& r, core::Clock& c, std::size_t max)
      : registry(r), clock(c), max_concurrent(max) {}
  registry::Registry& registry;
  core::Clock& clock;
  std::size_t max_concurrent;
  asio::io_context ctx{1};
  std::size_t running = 0;
  std::atomic<bool> stopping{false};

  struct Result {
    bool ok = false;
    std::string reason;
  };

  // One HTTP check: connect, send the request, read the status line (and the body when
  // a text is expected). HTTPS instances get a TCP connect check (the TLS handshake is the
  // proxy's business; see the notes).
  Task<Result> check(const registry::DueCheck& c) {
    CallOptions options;
    options.timeout = c.check.timeout;
    options.read_body_until = c.check.expect_body;
    if (c.url.tls || c.check.type == core::HealthCheckConfig::Type::kTcp) {
      options.connect_only = true;
      const CallResult r = co_await http_call(c.url, {}, options);
      co_return r.connected && r.error.empty() ? Result{true, "TCP connect"}
                                               : Result{false, r.error};
    }
    std::string request = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}\r\n", c.check.method,
                                      c.url.base_path, c.check.path, c.url.authority());
    for (const auto& [name, value] : c.check.headers) request += name + ": " + value + "\r\n";
    request += "User-Agent: switchboard-health-check\r\nConnection: close\r\n\r\n";
    const CallResult r = co_await http_call(c.url, request, options);
    if (!r.error.empty()) co_return Result{false, r.error};
    if (!core::status_matches(c.check.expect_status, r.status))
      co_return Result{false, fmt::format("HTTP {} (expected {})", r.status, c.check.expect_status)};
    if (!c.check.expect_body.empty() && r.body.find(c.check.expect_body) == std::string::npos)
      co_return Result{false, fmt::format("HTTP {} without the expected body text", r.status)};
    co_return Result{true, fmt::format("HTTP {}", r.status)};
  }

  Task<void> run_one(registry::DueCheck c) {
    const auto began = clock.steady_now();
    Result r = co_await check(c);
    --running;
    if (!stopping.load())
      registry.record_check(c.service, c.id, r.ok, clock.steady_now() - began, r.reason);
  }

  Task<void> loop() {
    Timer tick(ctx.get_executor());
    while (!stopping.load()) {
      registry.harvest();  // live request outcomes from the workers
      if (running < max_concurrent) {
        for (auto& c : registry.due_checks(max_concurrent - running)) {
          ++running;
          asio::co_spawn(ctx, run_one(std::move(c)), asio::detached);
        }
      }
      tick.expires_after(std::chrono::milliseconds(50));
      co_await tick.async_wait(kUse);
    }
    ctx.stop();
  }
};

HealthChecker::HealthChecker(registry::Registry& registry, core::Clock& clock,
                             std::size_t max_concurrent)
    : impl_(std::make_unique<Impl>(registry, clock, max_concurrent)) {}

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
