#include "gateway/webhooks.hpp"

#include <fmt/format.h>

#include <atomic>
#include <bit>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <mutex>

#include "core/logging.hpp"
#include "gateway/http_call.hpp"
#include "gateway/webhook_policy.hpp"
#include "http/io.hpp"
#include "registry/events.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {

namespace asio = http::asio;
namespace json = boost::json;
using http::kUse;
using http::Task;
using http::Timer;

namespace {

// How often the log is polled for new events (one atomic load when nothing changed): the
// most an event waits before its first attempt starts.
constexpr auto kTick = std::chrono::milliseconds(50);

WebhookSettings settings_of(const core::WebhookConfig& c, std::uint64_t seed) {
  return WebhookSettings{.events = c.events,
                         .services = c.services,
                         .max_retries = c.max_retries,
                         .backoff = c.backoff,
                         .max_backoff = c.max_backoff,
                         .queue_size = c.queue_size,
                         .seed = seed};
}

// The request target: the URL's path as written ("http://h/hooks/x/" keeps its slash), and
// its query as written.
std::string target_of(const core::UpstreamUrl& url) {
  std::string path = url.base_path;
  const std::string_view before_query =
      std::string_view(url.text).substr(0, std::string_view(url.text).find('?'));
  if (path.empty() || (!before_query.empty() && before_query.back() == '/')) path += '/';
  if (!url.query.empty()) path += '?' + url.query;
  return path;
}

}  // namespace

// Its own thread rather than the health checker's: a sink that answers slowly or a burst of
// events can then never delay a health check, whose timing decides routing; and the checker
// stays free of webhook state. The cost is one mostly idle thread, and only when webhooks
// are configured.
struct WebhookDispatcher::Impl {
  struct Sink {
    Sink(core::WebhookConfig c, std::uint64_t seed)
        : config(std::move(c)), target(target_of(config.url)), policy(settings_of(config, seed)) {}
    core::WebhookConfig config;
    std::string target;
    WebhookPolicy policy;  // under Impl::mu: the status document reads it from workers
    bool sending = false;  // a run_sink() coroutine owns the sink (dispatcher thread only)
  };

  Impl(registry::Registry& r, core::Clock& c, std::shared_ptr<asio::ssl::context> t,
       core::TlsConfig ts, std::string v)
      : registry(r),
        clock(c),
        tls(std::move(t)),
        tls_settings(std::move(ts)),
        user_agent("switchboard/" + std::move(v)) {}

  registry::Registry& registry;
  core::Clock& clock;
  std::shared_ptr<asio::ssl::context> tls;
  core::TlsConfig tls_settings;
  std::string user_agent;
  std::vector<std::unique_ptr<Sink>> sinks;
  mutable std::mutex mu;
  // The last event id read from the registry (dispatcher thread); from the log's origin, so
  // that events of start-up are sent too.
  std::uint64_t cursor = registry.event_origin();
  std::atomic<bool> stopping{false};
  // Last: destroyed first, so that coroutine frames it still holds go before the sinks.
  asio::io_context ctx{1};

  std::string request_for(const Sink& s, const registry::Event& e) const {
    const std::string body = registry::to_json(e);
    std::string out = fmt::format(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nX-Switchboard-Event-Id: {}\r\nX-Switchboard-Event: {}\r\n",
        s.target, s.config.url.authority(), user_agent, body.size(),
        registry::format_event_id(e.id), e.type);
    for (const auto& [name, value] : s.config.headers) out += name + ": " + value + "\r\n";
    out += "Connection: close\r\n\r\n";
    return out + body;
  }

  // New events from the registry's log into each sink's queue.
  void pull() {
    if (registry.last_event_id() == cursor) return;
    std::uint64_t missed = 0;
    auto events = registry.events_after(cursor, &missed);
    cursor += missed;
    if (!events.empty()) cursor = events.back().id;
    std::lock_guard lock(mu);
    if (missed > 0)
      spdlog::warn("webhooks: the event log dropped {} event(s) before they were read", missed);
    for (auto& s : sinks) {
      if (missed > 0) s->policy.lost(missed);
      for (const auto& e : events) {
        if (!s->policy.wants(e)) continue;
        const auto dropped = s->policy.stats().dropped;
        s->policy.offer(e);
        const auto now_dropped = s->policy.stats().dropped;
        // Logged at 1, 2, 4, 8, ... drops: visible, but a flood cannot fill the log.
        if (now_dropped != dropped && std::has_single_bit(now_dropped))
          spdlog::warn("webhook {}: queue full ({} events): {} event(s) dropped so far",
                       s->config.url.text, s->config.queue_size, now_dropped);
      }
    }
  }

  // Delivers a sink's queue in order until it is empty; waits out retry backoffs itself.
  Task<void> run_sink(Sink& s) {
    Timer wait(ctx.get_executor());
    CallOptions options;
    options.timeout = s.config.timeout;
    options.tls = tls.get();
    options.tls_verify = tls_settings.verify;
    options.server_name = tls_settings.server_name;
    for (;;) {
      std::string request;
      std::string id;
      {
        std::lock_guard lock(mu);
        const registry::Event* e = s.policy.next(clock.steady_now());
        if (e == nullptr) {
          s.sending = false;
          co_return;
        }
        request = request_for(s, *e);
        id = registry::format_event_id(e->id);
      }
      const CallResult r = co_await http_call(s.config.url, request, options);
      if (stopping.load()) co_return;
      const int status = r.error.empty() ? r.status : 0;
      const std::string error = r.error.empty() ? fmt::format("HTTP {}", r.status) : r.error;
      WebhookPolicy::Outcome o;
      {
        std::lock_guard lock(mu);
        const auto wall = clock.wall_now();
        o = s.policy.record(clock.steady_now(), wall, status, error,
                            WebhookPolicy::parse_retry_after(r.retry_after, wall));
      }
      if (o.decision == WebhookPolicy::Decision::kDelivered) continue;
      const auto in =
          std::chrono::duration_cast<std::chrono::milliseconds>(o.retry_at - clock.steady_now());
      if (o.decision == WebhookPolicy::Decision::kRetry) {
        spdlog::warn("webhook {}: event {} attempt {} failed: {}; retrying in {} ms",
                     s.config.url.text, id, o.attempt, error, std::max<long>(0, in.count()));
        if (in.count() > 0) {
          wait.expires_after(in);
          co_await wait.async_wait(kUse);
          if (stopping.load()) co_return;
        }
      } else {
        spdlog::warn("webhook {}: event {} not delivered after {} attempt(s): {}",
                     s.config.url.text, id, o.attempt, error);
      }
    }
  }

  Task<void> loop() {
    Timer tick(ctx.get_executor());
    while (!stopping.load()) {
      pull();
      for (auto& s : sinks) {
        bool start = false;
        {
          std::lock_guard lock(mu);
          start = !s->sending && s->policy.pending() > 0;
          s->sending = s->sending || start;
        }
        if (start) asio::co_spawn(ctx, run_sink(*s), asio::detached);
      }
      tick.expires_after(kTick);
      co_await tick.async_wait(kUse);
    }
  }
};

WebhookDispatcher::WebhookDispatcher(registry::Registry& registry, core::Clock& clock,
                                     std::vector<core::WebhookConfig> sinks,
                                     std::shared_ptr<asio::ssl::context> tls,
                                     core::TlsConfig tls_settings, std::string version)
    : impl_(std::make_unique<Impl>(registry, clock, std::move(tls), std::move(tls_settings),
                                   std::move(version))) {
  // Each sink's jitter gets its own seed, from the time: replicas must not retry in step.
  auto seed = static_cast<std::uint64_t>(clock.steady_now().time_since_epoch().count());
  for (auto& c : sinks) impl_->sinks.push_back(std::make_unique<Impl::Sink>(std::move(c), ++seed));
}

WebhookDispatcher::~WebhookDispatcher() { stop(); }

void WebhookDispatcher::start() {
  if (impl_->sinks.empty() || thread_.joinable()) return;  // no thread without sinks
  asio::co_spawn(impl_->ctx, impl_->loop(), asio::detached);
  thread_ = std::thread([this] { impl_->ctx.run(); });
}

void WebhookDispatcher::stop() {
  impl_->stopping.store(true);
  // Not waiting for the loop to notice: an attempt on a dead sink may be seconds from its
  // timeout, and shutdown must not wait for it.
  impl_->ctx.stop();
  if (thread_.joinable()) thread_.join();
}

void WebhookDispatcher::add_status(json::object& root) const {
  const auto wall = [](const std::optional<core::WallTime>& t) -> json::value {
    if (!t) return nullptr;
    return json::value(registry::format_rfc3339_ms(*t));
  };
  json::array out;
  std::lock_guard lock(impl_->mu);
  for (const auto& s : impl_->sinks) {
    const auto& st = s->policy.stats();
    json::object o;
    o["url"] = s->config.url.text;
    o["queued"] = st.queued;
    o["pending"] = s->policy.pending();
    o["delivered"] = st.delivered;
    o["failed"] = st.failed;
    o["dropped"] = st.dropped;
    o["retries"] = st.retries;
    o["last_error"] = st.last_error;
    o["last_success"] = wall(st.last_success);
    o["last_failure"] = wall(st.last_failure);
    out.push_back(std::move(o));
  }
  root["webhooks"] = std::move(out);
}

}  // namespace sb::gateway
