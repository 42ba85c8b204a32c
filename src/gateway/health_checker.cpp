#include "gateway/health_checker.hpp"

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <unordered_map>

#include "core/logging.hpp"
#include "gateway/http_call.hpp"
#include "gateway/metrics.hpp"
#include "http/io.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"
#include "http/upstream.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {

namespace asio = http::asio;
using http::error_code;
using http::kUse;
using http::Task;
using http::Timer;

struct HealthChecker::Impl {
  Impl(registry::Registry& r, core::Clock& c, TlsContextFor t, std::size_t max,
       const GatewayMetrics* m)
      : registry(r), clock(c), tls_context_for(std::move(t)), max_concurrent(max), metrics(m) {}
  registry::Registry& registry;
  core::Clock& clock;
  TlsContextFor tls_context_for;
  std::size_t max_concurrent;
  const GatewayMetrics* metrics;
  asio::io_context ctx{1};
  std::size_t running = 0;
  std::atomic<bool> stopping{false};

  struct Result {
    bool ok = false;
    std::string reason;
  };

  // Connections kept between HTTP checks of an instance (keyed "service/id url"), as most
  // health checkers do: a check is then one request on an open connection instead of a TCP
  // handshake and teardown, which on loopback cost the checker both ends' kernel work.
  struct Idle {
    std::unique_ptr<http::UpstreamConnection> conn;
    core::SteadyTime since;
  };
  std::unordered_map<std::string, Idle> idle;
  static constexpr std::size_t kMaxKeptBody = 64 * 1024;  // longer answers close the connection

  // Connects (and, for https instances, completes the TLS handshake with the service's
  // verification settings). Returns "" or why it failed.
  Task<std::string> open(const registry::DueCheck& c, http::UpstreamConnection& conn) {
    const http::UpstreamTarget tls{c.url.host,        c.url.port,   c.url.tls,
                                   c.tls.server_name, c.tls.verify, tls_context_for(c.service)};
    co_return co_await open_connection(c.url, conn, tls);
  }

  // One check, bounded by its timeout: a TCP check connects; an HTTP check sends its request
  // (on a kept connection when there is one) and checks status and body.
  Task<Result> check(const registry::DueCheck& c) {
    const bool tcp = c.check.type == core::HealthCheckConfig::Type::kTcp;
    std::string key = c.service + '/' + c.id + ' ' + c.url.text;
    std::unique_ptr<http::UpstreamConnection> conn;
    if (auto it = idle.find(key); it != idle.end() && !tcp) {
      conn = std::move(it->second.conn);
      idle.erase(it);
      conn->lend();
    }
    const bool reused = conn != nullptr;
    if (!conn) conn = std::make_unique<http::UpstreamConnection>(ctx.get_executor());
    // Owns what its handler touches: see Deadline (a timer firing in the same turn as the
    // last read would otherwise run after this frame is gone).
    Deadline deadline(ctx.get_executor(), c.check.timeout, conn->socket());
    auto finish = [&](bool ok, std::string reason) {
      deadline.disarm();
      return Result{ok, deadline.fired()
                            ? fmt::format("timeout after {} ms", c.check.timeout.count())
                            : std::move(reason)};
    };

    if (!reused) {
      std::string why = co_await open(c, *conn);
      // "TCP connect: Connection refused": a TCP check says what kind of check failed (a
      // TLS handshake's failure already does).
      if (!why.empty())
        co_return finish(false, tcp && why.rfind("TLS", 0) != 0 ? "TCP " + why : std::move(why));
      if (tcp) co_return finish(true, c.url.tls ? "TCP connect and TLS handshake" : "TCP connect");
    }

    std::string request = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}\r\n", c.check.method,
                                      c.url.base_path, c.check.path, c.url.authority());
    for (const auto& [name, value] : c.check.headers) request += name + ": " + value + "\r\n";
    request += "User-Agent: switchboard-health-check\r\n\r\n";
    constexpr std::size_t kBuf = 4096;  // of the lent buffer: the head and the body's start
    std::size_t len = 0, scan = 0;
    for (int attempt = 0;; ++attempt) {
      bool failed = false;
      std::string error;
      for (std::size_t sent = 0; sent < request.size() && !failed;) {
        const asio::const_buffer piece(request.data() + sent, request.size() - sent);
        auto [wec, wn] = co_await conn->write_some(http::Buffers(&piece, 1));
        if (wec) {
          failed = true;
          error = "write: " + wec.message();
        }
        sent += wn;
      }
      for (len = 0, scan = 0; !failed;) {
        auto [rec, n] = co_await conn->read_some(conn->buf() + len, kBuf - len);
        if (rec || n == 0) {
          failed = true;
          error = len == 0 ? "read: " + (rec ? rec.message() : std::string("closed"))
                           : "truncated response";
          break;
        }
        len += n;
        const auto r = http::parse_response_head(conn->buf(), len, kBuf, scan, conn->head());
        if (r.status == http::ParseStatus::kError) co_return finish(false, "malformed response");
        if (r.status == http::ParseStatus::kComplete) break;
      }
      if (!failed) break;
      // A kept connection the instance closed meanwhile fails before any byte of an answer:
      // that says nothing about the instance, so try once more on a new connection.
      if (deadline.fired() || !reused || attempt > 0 || len > 0) co_return finish(false, error);
      conn = std::make_unique<http::UpstreamConnection>(ctx.get_executor());
      deadline.retarget(conn->socket());
      std::string why = co_await open(c, *conn);
      if (!why.empty()) co_return finish(false, std::move(why));
    }

    char* const buf = conn->buf();
    const http::ResponseHead& head = conn->head();
    http::ResponseInfo info;
    const http::Method method = c.check.method == "HEAD" ? http::Method::kHead : http::Method::kGet;
    if (http::analyze_response(head, method, info) != http::ResponseError::kNone)
      co_return finish(false, "malformed response");
    const int status = head.status;
    if (!core::status_matches(c.check.expect_status, status))
      co_return finish(false, fmt::format("HTTP {} (expected {})", status, c.check.expect_status));
    // Read what the body check needs (up to the buffer), and for a connection that can be
    // kept, the whole body (up to kMaxKeptBody).
    const bool keep = info.keep_alive && info.framing != http::Framing::kChunked &&
                      info.framing != http::Framing::kUntilClose &&
                      info.content_length <= kMaxKeptBody;
    const bool delimited =
        info.framing == http::Framing::kLength || info.framing == http::Framing::kNone;
    std::uint64_t body_left = info.framing == http::Framing::kLength ? info.content_length : 0;
    const std::size_t have = len - head.head_size;
    const std::size_t first = delimited ? std::min<std::uint64_t>(have, body_left) : have;
    std::string body(buf + head.head_size, first);
    body_left -= first;
    const bool want_text = !c.check.expect_body.empty();
    bool clean = first == have;  // nothing follows the body
    while ((keep && body_left > 0) ||
           (want_text && body.find(c.check.expect_body) == std::string::npos &&
            body.size() < kBuf &&
            (body_left > 0 || info.framing == http::Framing::kUntilClose ||
             info.framing == http::Framing::kChunked))) {
      auto [rec, n] = co_await conn->read_some(buf, kBuf);
      if (rec || n == 0) {
        clean = false;
        break;
      }
      const std::size_t take =
          info.framing == http::Framing::kLength ? std::min<std::uint64_t>(n, body_left) : n;
      if (body.size() < kBuf) body.append(buf, std::min(take, kBuf - body.size()));
      body_left -= std::min<std::uint64_t>(body_left, take);
      if (take < n) clean = false;  // bytes after the body: do not reuse
    }
    if (want_text && body.find(c.check.expect_body) == std::string::npos)
      co_return finish(false, fmt::format("HTTP {} without the expected body text", status));
    deadline.disarm();
    if (deadline.fired()) co_return finish(false, "");
    if (keep && clean && body_left == 0) {
      conn->give_back();
      idle[std::move(key)] = Idle{std::move(conn), clock.steady_now()};
    }
    co_return finish(true, fmt::format("HTTP {}", status));
  }

  // Closes kept connections unused for a minute (their instance is gone, or checks stopped).
  void sweep_idle(core::SteadyTime now) {
    std::erase_if(idle,
                  [&](const auto& kv) { return now - kv.second.since > std::chrono::minutes(1); });
  }

  Task<void> run_one(registry::DueCheck c) {
    const auto began = clock.steady_now();
    Result r = co_await check(c);
    --running;
    if (!stopping.load()) {
      const core::Duration took = clock.steady_now() - began;
      registry.record_check(c.service, c.id, r.ok, took, r.reason);
      if (metrics != nullptr) {
        metrics->checks.with({c.service, c.id, r.ok ? "ok" : "failed"}).inc();
        metrics->check_duration.with({c.service, c.id}).observe(took);
      }
      tick.cancel();  // its next check (or one held back by the cap) may be due sooner
    }
  }

  static constexpr auto kHarvestEvery = std::chrono::milliseconds(50);
  static constexpr auto kSweepEvery = std::chrono::seconds(10);
  Timer tick{ctx.get_executor()};

  // Sleeps until the next thing it services is due: the next harvest of live samples (every
  // 50 ms), the next check (unless the cap is reached: then a check's end wakes it), the
  // next sweep of kept connections. A registry change (a new instance's check) wakes it
  // early (Registry::set_on_change, see start()).
  Task<void> loop() {
    auto now = clock.steady_now();
    auto next_harvest = now;
    auto next_sweep = now + kSweepEvery;
    while (!stopping.load()) {
      now = clock.steady_now();
      if (now >= next_harvest) {
        registry.harvest();  // live request outcomes from the workers
        next_harvest = now + kHarvestEvery;
      }
      if (now >= next_sweep) {
        sweep_idle(now);
        next_sweep = now + kSweepEvery;
      }
      if (running < max_concurrent) {
        for (auto& c : registry.due_checks(max_concurrent - running)) {
          ++running;
          asio::co_spawn(ctx, run_one(std::move(c)), asio::detached);
        }
      }
      registry.publish_pending();  // this turn's health changes, as one snapshot
      const auto wake =
          next_wake(next_harvest, next_sweep,
                    running < max_concurrent ? registry.next_check_due() : std::nullopt);
      now = clock.steady_now();
      if (wake > now) {
        tick.expires_after(wake - now);
        co_await tick.async_wait(kUse);  // expiry, or cancel(): both mean "look again"
      }
    }
    ctx.stop();
  }
};

HealthChecker::HealthChecker(registry::Registry& registry, core::Clock& clock,
                             TlsContextFor tls_context_for, std::size_t max_concurrent,
                             const GatewayMetrics* metrics)
    : impl_(std::make_unique<Impl>(registry, clock, std::move(tls_context_for), max_concurrent,
                                   metrics)) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  // A change of the registry (a registration with its first check due) wakes the loop.
  impl_->registry.set_on_change(
      [impl = impl_.get()] { asio::post(impl->ctx, [impl] { impl->tick.cancel(); }); });
  asio::co_spawn(impl_->ctx, impl_->loop(), asio::detached);
  thread_ = std::thread([this] { impl_->ctx.run(); });
}

void HealthChecker::stop() {
  impl_->stopping.store(true);
  if (!thread_.joinable()) return;  // never started, or stopped already
  impl_->registry.set_on_change(nullptr);
  asio::post(impl_->ctx, [impl = impl_.get()] { impl->tick.cancel(); });  // stop sleeping
  if (thread_.joinable()) thread_.join();
}

core::SteadyTime HealthChecker::next_wake(core::SteadyTime harvest, core::SteadyTime sweep,
                                          std::optional<core::SteadyTime> check) {
  const core::SteadyTime wake = std::min(harvest, sweep);
  return check ? std::min(wake, *check) : wake;
}

}  // namespace sb::gateway
