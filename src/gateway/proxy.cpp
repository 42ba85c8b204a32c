// The request path's driver: it sequences the stages and does nothing else.
//
//   route (router.hpp, view.hpp) -> begin: deadline, service breaker (plan.hpp)
//   -> [buffer a small body] -> choose an instance (plan.hpp) -> [hedge (hedge.hpp)]
//   -> one upstream exchange (upstream_exchange.hpp) -> what the outcome means (plan.hpp)
//   -> relay (relay.hpp) | retry | answer (answers.hpp) -> record (plan.hpp, access log)
//
// The API (/api/...) goes to api_bridge.hpp. Coroutines here keep few and small locals:
// GCC keeps every local (and every temporary that lives across a co_await) on the frame,
// which is allocated per coroutine call; so answers are prepared by plain functions into
// the exchange's scratch buffers and only sent by a coroutine.
#include "gateway/proxy.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/logging.hpp"
#include "gateway/access_log.hpp"
#include "gateway/admin.hpp"
#include "gateway/answers.hpp"
#include "gateway/api.hpp"
#include "gateway/api_bridge.hpp"
#include "gateway/flush.hpp"
#include "gateway/gateway.hpp"
#include "gateway/hedge.hpp"
#include "gateway/metrics.hpp"
#include "gateway/metrics_endpoint.hpp"
#include "gateway/plan.hpp"
#include "gateway/relay.hpp"
#include "gateway/upstream_exchange.hpp"
#include "gateway/view.hpp"
#include "http/server.hpp"
#include "registry/registry.hpp"
#include "resilience/random.hpp"
#include "telemetry/metrics.hpp"

namespace sb::gateway {
namespace {

using http::Exchange;
using http::Framing;
using http::Task;
namespace asio = http::asio;
using http::kUse;
using BodyError = http::BodyPiece::Error;

/// Response bodies up to this size that came with their head are copied after it, so that
/// head and body leave in one single-buffer write.
constexpr std::size_t kCoalesceBody = 1024;

RequestFacts facts_of(const Exchange& ex) {
  const auto& info = ex.info();
  return RequestFacts{ex.head().method,        info.idempotency_key,  info.has_request_timeout,
                      info.request_timeout_ms, info.has_grpc_timeout, info.grpc_timeout,
                      ex.body_done(),          ex.body_fits(),        info.content_length};
}

class ProxyHandler final : public http::Handler {
 public:
  ProxyHandler(Gateway& gw, http::Worker& worker)
      : gw_(gw),
        worker_(worker),
        log_(gw.config().logging.format, gw.config().logging.access_log, gw.clock()),
        feed_(gw.registry().make_feed()),
        view_(ViewContext{worker.context().get_executor(), gw.guards(), gw.config().server.zone,
                          resilience::mix64(worker.index() + 1),
                          [&gw](std::string_view service) { return gw.tls_context_for(service); },
                          &gw.metrics()}),
        planner_(feed_.get(), resilience::mix64(reinterpret_cast<std::uintptr_t>(this))),
        metrics_(gw.metrics()),
        loop_lag_(gw.metrics().loop_lag.with({std::to_string(worker.index())})) {
    view_.rebuild(gw_.registry().snapshot(), gw_.clock().steady_now());
  }

  ~ProxyHandler() override { log_.flush(gw_.clock().wall_now()); }

  // Not a coroutine itself: it hands back the one that answers, so a proxied request costs
  // one coroutine frame (an allocation, a resumption) fewer.
  Task<void> handle(Exchange& ex) override {
    if (serves_metrics(gw_, ex)) return metrics(ex);
    if (is_api_path(ex.info().path) && ex.listener() != http::ListenerKind::kMetrics)
      return api(ex);
    return proxy(ex);
  }

  void on_tick(core::SteadyTime now) override {
    // The tick is due every 100 ms: what it comes later than that, the loop was busy.
    if (last_tick_ != core::SteadyTime{})
      loop_lag_.observe(std::max(core::Duration::zero(), now - last_tick_ - http::kTickPeriod));
    last_tick_ = now;
    view_.tick(now);
    log_.flush(gw_.clock().wall_now());
  }

  void on_thread_start() override { telemetry::set_thread_shard(worker_.index() + 1); }

 private:
  /// Takes the registry's new snapshot when there is one: one atomic load per request.
  bool refresh_if_changed() {
    if (gw_.registry().version() == view_.version()) return false;
    view_.rebuild(gw_.registry().snapshot(), gw_.clock().steady_now());
    return true;
  }

  /// Decides where a request goes: true with out.service set and the route in `m`, or false
  /// with the answer prepared in scratch.
  bool route(Exchange& ex, RequestOutcome& out, RouteMatch& m) {
    const auto& info = ex.info();
    if (ex.listener() == http::ListenerKind::kMetrics) {
      prepare_problem(ex, out, 404, "not-found", "telemetry.prometheus_port serves /metrics only");
      return false;
    }
    if (is_admin_path(info.path)) {
      prepare_admin(gw_, ex, out, worker_.now());
      return false;
    }
    if (ex.listener() == http::ListenerKind::kAdmin) {
      prepare_problem(ex, out, 404, "not-found",
                      "the admin listener serves /health, /health/live, /health/ready, /metrics "
                      "and /api/services");
      return false;
    }
    m = gw_.router().match(info.host, info.path);
    if (m.kind == RouteMatch::Kind::kNoRoute) {
      prepare_problem(ex, out, 404, "no-route",
                      "no route matches this path; use /svc/<service>/... or a routes entry");
      return false;
    }
    // The router knows the configured services; the registry also has those registered
    // through the API.
    refresh_if_changed();
    const auto* svc = view_.find(m.service_name);
    if (svc == nullptr) {
      prepare_problem(ex, out, 404, "unknown-service",
                      "no service named \"" + std::string(m.service_name) + "\"");
      return false;
    }
    out.service = *svc;
    return true;
  }

  /// The plan's start (deadline, service breaker); false with the answer (400, 504, 503 or
  /// the fallback) prepared in scratch.
  bool begin(Exchange& ex, RequestOutcome& out, const RouteMatch& m, core::SteadyTime start,
             Plan& plan, RequestMetrics::PerService* svc_metrics) {
    Service& svc = *out.service;
    const core::RequestPolicy& policy = m.policy ? *m.policy : svc.config->policy;
    const resilience::RetryPolicy& retry = m.policy ? route_retry(*m.policy) : svc.retry;
    const Start s = planner_.begin(facts_of(ex), svc, policy, retry, start, plan);
    if (s) return true;
    const auto& fb = policy.fallback;
    switch (s.refusal) {
      case Refusal::kBadTimeout:
        prepare_problem(ex, out, 400, "bad-timeout",
                        std::string(s.header) + ": " + std::string(s.error));
        break;
      case Refusal::kExpired:
        plan.last_kind = AttemptKind::kTimeout;  // for the metrics: the deadline expired
        if (fb.enabled()) metrics_.fallback(svc_metrics, FallbackKind::kDeadline);
        if (fb.enabled())
          prepare_fallback(ex, out, fb, "deadline expired");
        else
          prepare_problem(ex, out, 504, "deadline-expired",
                          "the request's deadline expired before an upstream was called");
        break;
      case Refusal::kBreakerOpen:
      case Refusal::kNone:
        if (fb.enabled()) metrics_.fallback(svc_metrics, FallbackKind::kBreakerOpen);
        if (fb.enabled())
          prepare_fallback(ex, out, fb, "circuit breaker open");
        else
          prepare_problem(ex, out, 503, "circuit-open",
                          "the circuit breaker of \"" + svc.config->name +
                              "\" is open after repeated failures; retry after " +
                              std::to_string(s.retry_after.count()) + " s",
                          "Retry-After: " + std::to_string(s.retry_after.count()) + "\r\n");
        break;
    }
    return false;
  }

  /// The RetryPolicy of a route's own request policy (built once per worker).
  const resilience::RetryPolicy& route_retry(const core::RequestPolicy& p) {
    auto it = route_retry_.find(&p);
    if (it == route_retry_.end())
      it = route_retry_.emplace(&p, resilience::RetryPolicy(p.retry)).first;
    return it->second;
  }

  /// The answer when no instance can take the next attempt.
  void prepare_no_instance(Exchange& ex, RequestOutcome& out, Plan& plan, const Try& t,
                           core::SteadyTime now, RequestMetrics::PerService* svc_metrics) {
    const Service& svc = *out.service;
    const auto& fb = plan.policy->fallback;
    if (plan.n_tried > 0 && out.instance) {
      // Retrying, but every instance is refusing now: answer with the last failure.
      if (fb.enabled()) metrics_.fallback(svc_metrics, FallbackKind::kFailed);
      if (fb.enabled())
        prepare_fallback(ex, out, fb, "every attempt failed");
      else if (plan.last_kind == AttemptKind::kResponse)  // its answer was let go for the retry
        prepare_problem(ex, out, plan.last_status, "upstream-error",
                        "instance of \"" + svc.config->name + "\" answered " +
                            std::to_string(plan.last_status) +
                            " and no instance was left to retry on",
                        plan.last_status == 503 ? "Retry-After: 1\r\n" : "");
      else
        prepare_failure(ex, out, svc, *out.instance, t.failure(), now - plan.began);
      return;
    }
    // Nothing was sent: the service's breaker learns nothing from this request (its
    // instances' breakers and health already said no).
    plan.sent = false;
    if (fb.enabled()) metrics_.fallback(svc_metrics, FallbackKind::kNoInstance);
    if (fb.enabled())
      prepare_fallback(ex, out, fb, "no instance available");
    else
      prepare_problem(ex, out, 503, "no-instance",
                      "service \"" + svc.config->name +
                          "\" has no instance to send to (none healthy, or every one's "
                          "circuit breaker is open or it is ejected)",
                      "Retry-After: 1\r\n");
  }

  Task<void> metrics(Exchange& ex) {
    const auto start = gw_.clock().steady_now();
    RequestOutcome out;
    co_await answer_metrics(gw_, worker_, ex, out);
    if (log_.enabled()) record(ex, out, start, gw_.clock().steady_now());
  }

  Task<void> api(Exchange& ex) {
    const auto start = gw_.clock().steady_now();
    RequestOutcome out;
    co_await answer_api(gw_, worker_, ex, out);
    if (log_.enabled()) record(ex, out, start, gw_.clock().steady_now());
  }

  /// Routes the request and answers it: from an instance (with retries, hedges and
  /// fallbacks as its plan says), or with the problem that kept it from one. Every way out
  /// writes the access-log line.
  Task<void> proxy(Exchange& ex) {
    const auto start = gw_.clock().steady_now();
    RequestOutcome out;
    RouteMatch m;
    Plan plan;
    RequestMetrics::PerService* svc_metrics = nullptr;
    if (!route(ex, out, m)) {
      co_await send_scratch(ex);
      finish(ex, out, m, plan, svc_metrics, start);
      co_return;
    }
    svc_metrics = metrics_.started(out.service->config->name);
    if (!begin(ex, out, m, start, plan, svc_metrics)) {
      co_await send_scratch(ex);
      finish(ex, out, m, plan, svc_metrics, start);
      co_return;
    }
    // A body that fits the request buffer is read whole first: it can then be resent (a
    // retry), and a body that turns out malformed or too slow never reaches an upstream.
    if (!ex.body_done() && (plan.may_retry || (plan.policy->request_buffering && ex.body_fits()))) {
      const BodyError e = co_await ex.buffer_body();
      if (e != BodyError::kNone) {
        prepare_body_error(ex, out, e);
        out.service->guard->breaker.release(plan.service_permit);
        co_await send_scratch(ex);
        finish(ex, out, m, plan, svc_metrics, start);
        co_return;
      }
      plan.began = gw_.clock().steady_now();
      if (!ex.body_fits() || !plan.retry->body_replayable(ex.buffered_body_bytes()))
        plan.may_retry = false;  // a chunked body too long to keep streams, or over the limit
    }
    Try t;
    ExchangeWatch watch(ex);
    Next next = Next::kPrepared;
    bool hedged = false, hedge_won = false;
    for (bool first = true;; first = false) {
      // The newest view of the service: a retry after a registry change sees the change,
      // and a pick indexes the order the balancer uses now.
      if (!first) refresh_if_changed();
      if (const auto& cur = view_.current(out.service); cur != out.service) {
        out.service = cur;  // the old view (and what plan points into) may go now
        if (m.policy == nullptr) {
          plan.policy = &cur->config->policy;
          plan.retry = &cur->retry;
        }
      }
      Service& svc = *out.service;
      const auto now = first ? plan.began : gw_.clock().steady_now();
      Instance* inst = planner_.choose(svc, plan, now);
      if (inst == nullptr) {
        prepare_no_instance(ex, out, plan, t, now, svc_metrics);
        next = Next::kPrepared;
        break;
      }
      out.instance = svc.instances[plan.index];
      prepare_upstream_head(ex, m, svc, *inst, plan.deadline, now, ex.scratch());
      planner_.start_attempt(plan, now);
      std::shared_ptr<HedgeRace> race;
      const bool get_without_body =
          ex.info().method == http::Method::kGet && ex.info().framing == Framing::kNone;
      if (const auto delay = planner_.hedge_delay(get_without_body, plan, now)) {
        race = std::make_shared<HedgeRace>(worker_.context().get_executor());
        asio::co_spawn(worker_.context(),
                       run_hedge(HedgeContext{planner_, view_, gw_.clock()}, ex, m, out.service,
                                 plan, race, *delay, inst),
                       asio::detached);
      }
      // The attempt: a kept connection (or a new one), the request, the response head, all
      // within the attempt's time. A kept connection that the instance closed meanwhile
      // fails before any byte of an answer; then a request that is safe to send twice goes
      // once more on a new connection (not a retry: the instance did nothing wrong). Inline
      // rather than a coroutine of its own: one frame fewer per request.
      if (!first) t = Try{};  // the first attempt's is fresh
      for (bool kept = true;; kept = false) {
        std::unique_ptr<http::UpstreamConnection> conn;
        if (kept) conn = inst->pool->take_idle();
        if (!conn) {
          const auto connect_start = gw_.clock().steady_now();
          auto lease = co_await inst->pool->connect(ex);
          if (lease.conn) inst->metrics.connected(gw_.clock().steady_now() - connect_start);
          if (!lease.conn) {
            t.kind = AttemptKind::kConnectFailed;
            t.acquire = lease.error;
            t.detail = std::move(lease.detail);
            break;
          }
          conn = std::move(lease.conn);
        }
        if (race) race->primary = conn.get();  // so that a winning hedge can cut it
        t.kind = co_await exchange(ex, out, *conn,
                                   ExchangeRequest{ex.scratch(), true, now,
                                                   Planner::per_try(plan, svc), plan.deadline.at()},
                                   watch, gw_.clock(), t.why, t.info);
        if (race) race->primary = nullptr;
        if (t.kind == AttemptKind::kResponse) {
          t.conn = std::move(conn);
          break;
        }
        // Only a request that is safe to send twice goes again (RFC 9110 9.2.2): the
        // instance may have acted on it before it closed.
        const bool stale = t.kind == AttemptKind::kReset && conn->reused && conn->len == 0 &&
                           kept && plan.idempotent && ex.body_replayable() && !(race && race->won);
        inst->pool->discard(std::move(conn));
        if (!stale) break;
        ex.rewind_body();
      }
      const auto attempt_end = gw_.clock().steady_now();
      inst->metrics.attempt(ex.info().method, t.kind, t.status(),
                            plan.retries == 0 ? AttemptRole::kFirst : AttemptRole::kRetry,
                            attempt_end - now);
      if (race) {
        co_await settle(*race, t.kind == AttemptKind::kResponse);
        hedged = race->started;
        hedge_won = race->won;
        if (race->won) take_hedge(ex, out, m, plan, *race, t);
      }
      next = planner_.finish_attempt(plan, t.end(), gw_.clock().steady_now());
      if (next == Next::kRelay) break;
      if (t.conn) plan.instance->pool->discard(std::move(t.conn));
      if (next != Next::kRetry) break;
      SB_REQ_LOG(debug, ex.correlation_id(), "retry {} of {} after {} ({})", plan.retries,
                 out.service->config->name, resilience::to_string(outcome_of(t.end()).error),
                 plan.last_status);
      if (plan.wait > core::Duration::zero()) co_await pause(plan.wait);
      if (ex.closed()) break;
      ex.rewind_body();
    }
    switch (next) {
      case Next::kRelay:
        if (whole_in_buffer(*t.conn, t.info)) {
          // The common case, in this frame: head and body leave in one write, and a small
          // body is copied after the head so that the write is one buffer (send(), which
          // the kernel takes cheaper than sendmsg() with an iovec array).
          start_relay(ex, out, *t.conn, t.info);
          const std::size_t end = t.conn->head().head_size + t.info.content_length;
          const std::string_view body(t.conn->buf() + t.conn->head().head_size,
                                      end - t.conn->head().head_size);
          if (body.size() <= kCoalesceBody) {
            ex.scratch2().append(body);
            ex.batch().add(ex.scratch2());
          } else {
            ex.batch().add(ex.scratch2());
            ex.batch().add(body);
          }
          bool ok = true;
          SB_FLUSH(ex, ok);
          const bool reusable = t.info.keep_alive && t.conn->len == end;
          end_relay(ex, *plan.view, *plan.instance, std::move(t.conn), ok, reusable, worker_.now());
        } else {
          co_await relay(worker_, ex, out, *plan.view, *plan.instance, std::move(t.conn), t.info);
        }
        planner_.end_relay(plan);
        break;
      case Next::kFallback:
        metrics_.fallback(svc_metrics, t.kind == AttemptKind::kResponse ? FallbackKind::kStatus
                                                                        : FallbackKind::kFailed);
        prepare_fallback(ex, out, plan.policy->fallback,
                         t.kind == AttemptKind::kResponse
                             ? "the upstream answered " + std::to_string(plan.last_status)
                             : std::string("every attempt failed"));
        break;
      case Next::kFail:
        prepare_failure(ex, out, *plan.view, *plan.instance, t.failure(), plan.ended - plan.began);
        break;
      case Next::kRetry:  // the client went away while waiting to retry
      case Next::kPrepared:
        break;
    }
    planner_.finish_request(*out.service, plan, out.status, ex.closed() && out.status == 0, start,
                            gw_.clock().steady_now());
    if (next != Next::kRelay) co_await send_scratch(ex);
    finish(ex, out, m, plan, svc_metrics, start, hedged, hedge_won);
  }

  /// The hedge won: its attempt becomes the request's (the primary was cut, which says
  /// nothing of its instance, or it failed).
  void take_hedge(Exchange& ex, RequestOutcome& out, const RouteMatch& m, Plan& plan,
                  HedgeRace& race, Try& t) {
    if (race.primary_cut)
      planner_.abandon_attempt(plan);
    else
      planner_.record_only(plan, t.end(), gw_.clock().steady_now());
    if (t.conn) plan.instance->pool->discard(std::move(t.conn));
    if (race.view != out.service) {  // the hedge picked from a newer view
      out.service = race.view;       // the old one (and what plan points into) may go now
      if (m.policy == nullptr) {
        plan.policy = &race.view->config->policy;
        plan.retry = &race.view->retry;
      }
    }
    out.instance = race.inst;
    plan.view = race.attempt.view;
    plan.instance = race.attempt.instance;  // its in_flight was counted when the hedge started
    plan.permit = race.attempt.permit;
    plan.index = race.attempt.index;
    plan.began = race.attempt.began;
    t = std::move(race.result);
    SB_REQ_LOG(debug, ex.correlation_id(), "hedge to {} won", plan.instance->config.url.text);
  }

  /// Waits on this worker (retry backoff).
  Task<void> pause(core::Duration d) {
    http::Timer timer(worker_.context().get_executor());
    timer.expires_after(d);
    co_await timer.async_wait(kUse);
  }

  /// Every way out of proxy(): the metrics stage, then the access log.
  void finish(Exchange& ex, const RequestOutcome& out, const RouteMatch& m, const Plan& plan,
              RequestMetrics::PerService* svc_metrics, core::SteadyTime start, bool hedged = false,
              bool hedge_won = false) {
    const auto end = gw_.clock().steady_now();
    RequestMetrics::Finished f{m.route,     m.route_id,           ex.info().method, out.status,
                               end - start, ex.body_bytes_read(), ex.bytes_sent()};
    f.retries = plan.retries;
    f.budget_exhausted = plan.budget_refused;
    f.hedged = hedged;
    f.hedge_won = hedge_won;
    f.deadline_expired = plan.last_kind == AttemptKind::kTimeout && plan.policy != nullptr &&
                         plan.deadline.expired(end);
    metrics_.finished(svc_metrics, f);
    if (log_.enabled()) record(ex, out, start, end);
  }

  void record(Exchange& ex, const RequestOutcome& out, core::SteadyTime start,
              core::SteadyTime end) {
    log_.record(AccessRecord{
        ex.head().method, ex.head().target, out.status,
        std::chrono::duration<double, std::milli>(end - start).count(),
        out.service ? std::string_view(out.service->config->name) : std::string_view{},
        out.instance ? std::string_view(out.instance->config.url.text) : std::string_view{},
        ex.bytes_sent(), ex.correlation_id(), ex.peer_address()});
  }

  Gateway& gw_;
  http::Worker& worker_;
  AccessLog log_;
  std::shared_ptr<registry::LiveFeed> feed_;  // this worker's live samples for the registry
  View view_;
  Planner planner_;
  std::unordered_map<const core::RequestPolicy*, resilience::RetryPolicy> route_retry_;
  RequestMetrics metrics_;
  telemetry::Histogram loop_lag_;
  core::SteadyTime last_tick_{};
};

}  // namespace

std::unique_ptr<http::Handler> make_proxy_handler(Gateway& gateway, http::Worker& worker) {
  return std::make_unique<ProxyHandler>(gateway, worker);
}

}  // namespace sb::gateway
