#include "gateway/proxy.hpp"

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "core/logging.hpp"
#include "gateway/access_log.hpp"
#include "gateway/admin.hpp"
#include "gateway/api.hpp"
#include "gateway/gateway.hpp"
#include "gateway/guards.hpp"
#include "http/exchange.hpp"
#include "http/problem.hpp"
#include "http/server.hpp"
#include "http/upstream.hpp"
#include "registry/registry.hpp"
#include "resilience/balancer.hpp"
#include "resilience/deadline.hpp"
#include "resilience/latency.hpp"
#include "resilience/random.hpp"
#include "resilience/retry.hpp"

// A note on shape: every coroutine here keeps few and small locals. Asio recycles coroutine
// frames of up to ~1 KiB per thread and mallocs larger ones, and GCC keeps every local (and
// every temporary that lives across a co_await) on the frame. So error answers are prepared
// by plain functions into the exchange's scratch buffer and only sent by a coroutine, and
// write batches live in the Exchange.

namespace sb::gateway {
namespace {

using http::Exchange;
using http::Framing;
using http::Task;
namespace asio = http::asio;
using http::kUse;
using BodyError = http::BodyPiece::Error;
using http::Timer;

/// Writes the whole batch to the client (one writev unless the socket takes less);
/// `ok` becomes false when the client is gone. A macro rather than a coroutine: one
/// frame fewer per write on the hot path.
#define SB_FLUSH(ex, ok)                                                                  \
  do {                                                                                    \
    http::WriteBatch& flush_batch_ = (ex).batch();                                        \
    bool flush_failed_ = false;                                                           \
    const std::size_t flush_now_ = (ex).write_now(flush_batch_.buffers(), flush_failed_); \
    (ex).count_sent(flush_now_);                                                          \
    flush_batch_.consume(flush_now_);                                                     \
    if (flush_failed_) ok = false;                                                        \
    while (ok && !flush_batch_.empty()) {                                                 \
      auto [flush_ec_, flush_n_] = co_await (ex).write_some(flush_batch_.buffers());      \
      (ex).count_sent(flush_n_);                                                          \
      if (flush_ec_) {                                                                    \
        ok = false;                                                                       \
        break;                                                                            \
      }                                                                                   \
      flush_batch_.consume(flush_n_);                                                     \
    }                                                                                     \
    flush_batch_.clear();                                                                 \
  } while (0)

/// Response bodies up to this size that came with their head are copied after it, so that
/// head and body leave in one single-buffer write.
constexpr std::size_t kCoalesceBody = 1024;

/// An instance as a worker sees it: its own keep-alive pool and latency record, and the
/// guard (breaker, outlier record) every worker shares. Kept across registry snapshots
/// while the instance keeps its URL, so pools survive unrelated registry changes.
struct Instance {
  core::InstanceConfig config;
  std::unique_ptr<http::UpstreamPool> pool;
  std::string authority;  // the Host the upstream gets
  std::uint64_t uid = 0;  // the registry's id for live samples
  std::shared_ptr<std::atomic<std::int32_t>> in_flight;
  std::shared_ptr<InstanceGuard> guard;
  resilience::LatencyEstimator latency;  // this worker's recent answers (retries, hedging)
};

/// A service's balancer on this worker. It outlives registry snapshots (EWMA and in-flight
/// counts follow instances by id); `generation` says which snapshot's order it uses.
struct Lb {
  resilience::Balancer balancer;
  std::uint64_t generation = 0;
};

/// A service as a worker sees it, rebuilt with each registry snapshot. Requests in flight
/// hold it (and so the snapshot its config points into, and its instances' pools) until
/// they finish: a removed instance drains instead of vanishing under a request.
struct Service {
  std::shared_ptr<const registry::Snapshot> snapshot;
  const core::ServiceConfig* config;
  std::vector<std::shared_ptr<Instance>> instances;  // the balancer's order
  std::shared_ptr<ServiceGuard> guard;
  std::shared_ptr<Lb> lb;
  std::uint64_t generation = 0;  // lb->generation when this view was built
  resilience::RetryPolicy retry;

  /// The balancer's index of instances[i] now (npos when the balancer no longer has it).
  std::size_t lb_index(std::size_t i) const {
    if (lb->generation == generation) return i;
    const auto id = reinterpret_cast<std::uintptr_t>(instances[i].get());
    for (std::size_t j = 0; j < lb->balancer.size(); ++j)
      if (lb->balancer.id(j) == id) return j;
    return resilience::Balancer::kNone;
  }
};

/// Runs `job` on `where` and resumes the awaiting coroutine on its worker `home` with what
/// `job` returned: `auto [r] = co_await run_on(pool, worker, job)`. `job` must own what it
/// uses: the coroutine's frame may go (its worker stopping) while `job` runs. The answer
/// goes back through the worker's mailbox (its io_context takes no posts from other
/// threads).
template <class Job>
auto run_on(asio::thread_pool& where, http::Worker& home, Job job) {
  using Result = std::invoke_result_t<Job&>;
  return asio::async_initiate<decltype(kUse), void(Result)>(
      [&where, &home](auto handler, Job work) {
        asio::post(where, [handler = std::move(handler), work = std::move(work), &home]() mutable {
          // std::function wants a copyable letter; the handler is move-only.
          auto resume = std::make_shared<decltype(handler)>(std::move(handler));
          home.deliver([resume, r = work()]() mutable { std::move (*resume)(std::move(r)); });
        });
      },
      kUse, std::move(job));
}

/// What the access log says about one exchange (and what keeps its service alive).
struct Outcome {
  int status = 0;
  std::shared_ptr<Service> service;
  std::shared_ptr<Instance> instance;
};

/// One request's resilience decisions, across its attempts.
struct Plan {
  const core::RequestPolicy* policy = nullptr;
  const resilience::RetryPolicy* retry = nullptr;
  resilience::Deadline deadline{core::SteadyTime{}, core::Duration{}};
  resilience::Permit service_permit{};
  resilience::Permit permit{};  // the current attempt's, from its instance's breaker
  std::size_t index = 0;        // the current attempt's instance in the service's order
  core::SteadyTime began{};     // the current attempt's start
  core::Duration wait{};        // backoff before the next attempt
  std::array<const Instance*, 4> tried{};
  std::uint8_t n_tried = 0;
  std::uint32_t retries = 0;
  bool may_retry = false;
  bool failed = false;       // the last attempt failed (breaker classification)
  bool sent = true;          // an attempt reached an instance
  int last_status = 0;       // the last attempt's response status
  core::SteadyTime ended{};  // when the last attempt ended
};

/// How one attempt on an upstream ended.
struct Try {
  enum class Kind : std::uint8_t {
    kResponse,       // a complete, valid response head is in conn's buffer
    kConnectFailed,  // no connection (refused, timeout, TLS, limit): `acquire`, `detail`
    kReset,          // the connection closed or reset before a complete response
    kTimeout,        // no response head before the attempt's deadline
    kBadResponse,    // a malformed response head: `why`
    kClient,         // the client's body failed; the answer is prepared (or the client is gone)
  };
  Kind kind = Kind::kReset;
  http::AcquireError acquire = http::AcquireError::kNone;
  const char* why = nullptr;
  std::string detail;
  std::unique_ptr<http::UpstreamConnection> conn;
  http::ResponseInfo info;  // kResponse: the head's framing and fields to drop
};

/// Drops an interim response head (100, 103) from the connection's buffer: it is not
/// relayed; the final response follows it.
void drop_interim(http::UpstreamConnection& conn) {
  const std::size_t rest = conn.len - conn.head().head_size;
  std::memmove(conn.buf(), conn.buf() + conn.head().head_size, rest);
  conn.len = rest;
}

resilience::Outcome outcome_of(const Try& t) {
  using resilience::Outcome;
  using resilience::TransportError;
  switch (t.kind) {
    case Try::Kind::kResponse:
      return Outcome::response(t.conn->head().status);
    case Try::Kind::kConnectFailed:
      return Outcome::failed(TransportError::kConnectFailure);
    case Try::Kind::kTimeout:
      return Outcome::failed(TransportError::kTimeout);
    case Try::Kind::kBadResponse:
      return Outcome::response(502);
    default:
      return Outcome::failed(TransportError::kReset);
  }
}

/// A hedged request's second attempt, raced against the first (see ProxyHandler::proxy).
/// Lives on the heap while both run; the primary waits for the hedge to end before it goes
/// on, so the hedge may use the exchange's request and the request's plan meanwhile.
struct HedgeRace {
  explicit HedgeRace(http::Executor e) : wake(e), timer(e) {}
  Timer wake;   // the primary waits on it until the hedge has ended; cancel() wakes it
  Timer timer;  // the hedge's delay, then its deadline
  bool primary_done = false;  // the primary attempt ended ...
  bool primary_ok = false;    // ... with a response
  bool started = false;       // the hedge attempt was sent
  bool ended = false;         // the hedge is over (won, lost, failed or never started)
  bool won = false;           // the hedge's response is the one to relay
  bool primary_cut = false;   // the primary's connection was closed because the hedge won
  bool hedge_cut = false;     // the hedge's connection was closed because the primary won
  http::UpstreamConnection* primary = nullptr;  // while the primary attempt holds one
  http::UpstreamConnection* hedge = nullptr;    // while the hedge attempt holds one
  std::shared_ptr<Instance> inst;               // the hedge's instance
  resilience::Permit permit{};
  std::size_t index = 0;
  core::SteadyTime began{};
  http::HeadBuffer head;
  Try result;
};

// ---------------------------------------------------------------------------------------
// Answers prepared synchronously into ex.scratch().

/// Prepares a problem answer. Returns false when the response has already begun (then
/// there is nothing to prepare: the connection must be cut).
bool prepare_problem(Exchange& ex, Outcome& out, int status, std::string_view slug,
                     std::string_view detail, std::string_view extra = {}) {
  out.status = status;
  if (ex.response_started()) return false;
  if (!ex.body_done()) ex.set_close();  // answer, then close rather than read the body
  http::write_problem(ex.scratch(), status, slug, detail, ex.correlation_id(), !ex.keep_alive(),
                      extra);
  return true;
}

void prepare_body_error(Exchange& ex, Outcome& out, BodyError e) {
  ex.set_close();
  switch (e) {
    case BodyError::kTimeout:
      prepare_problem(ex, out, 408, "request-timeout",
                      "request body not received within limits.body_timeout");
      break;
    case BodyError::kTooLarge:
      prepare_problem(ex, out, 413, "body-too-large",
                      "request body larger than limits.max_body_bytes (" +
                          std::to_string(ex.limits().max_body_bytes) + " bytes)");
      break;
    case BodyError::kMalformed:
      prepare_problem(ex, out, 400, "bad-request", "malformed chunked request body");
      break;
    default:
      out.status = 499;  // the client went away: nobody to answer
      ex.abort();
  }
}

/// The answer for an attempt that got no usable response (the last one, when no retry
/// follows).
void prepare_failure(Exchange& ex, Outcome& out, const Service& svc, const Instance& inst,
                     const Try& t, core::Duration waited) {
  const std::string& name = svc.config->name;
  const std::string& url = inst.config.url.text;
  switch (t.kind) {
    case Try::Kind::kConnectFailed: {
      const bool timeout = t.acquire == http::AcquireError::kTimeout;
      const int status = timeout ? 504 : t.acquire == http::AcquireError::kLimit ? 503 : 502;
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}): {}: {}", name, url,
                 http::describe(t.acquire), t.detail);
      prepare_problem(
          ex, out, status, timeout ? "upstream-timeout" : "upstream-unavailable",
          "instance of \"" + name + "\": " + http::describe(t.acquire) + ": " + t.detail);
      break;
    }
    case Try::Kind::kTimeout: {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) did not answer within {} ms", name,
                 url, ms);
      prepare_problem(ex, out, 504, "upstream-timeout",
                      "instance of \"" + name + "\" did not answer within " + std::to_string(ms) +
                          " ms (timeouts.response, retry.per_try_timeout or the request's "
                          "deadline)");
      break;
    }
    case Try::Kind::kBadResponse:
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) sent a malformed response: {}", name,
                 url, t.why);
      prepare_problem(ex, out, 502, "bad-upstream-response",
                      "instance of \"" + name + "\" sent a malformed response: " + t.why);
      break;
    case Try::Kind::kReset:
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) closed or reset the connection", name,
                 url);
      prepare_problem(
          ex, out, 502, "upstream-reset",
          "instance of \"" + name + "\" closed the connection without a complete response");
      break;
    case Try::Kind::kResponse:
    case Try::Kind::kClient:
      break;  // nothing to prepare
  }
}

/// The route's static fallback answer, marked X-Switchboard-Fallback: static.
void prepare_fallback(Exchange& ex, Outcome& out, const core::FallbackConfig& fb,
                      std::string_view why) {
  SB_REQ_LOG(info, ex.correlation_id(), "fallback answer {} ({})", fb.status, why);
  out.status = fb.status;
  if (!ex.body_done()) ex.set_close();
  http::HeadBuffer& h = ex.scratch();
  http::HeadWriter w(h);
  w.status_line(fb.status, http::reason_phrase(fb.status));
  for (const auto& [name, value] : fb.headers) w.field(name, value);
  const bool bodyless = fb.status == 204 || fb.status == 304;
  if (!bodyless) w.field("Content-Length", static_cast<std::uint64_t>(fb.body.size()));
  w.field("X-Switchboard-Fallback", "static").field("X-Correlation-ID", ex.correlation_id());
  if (!ex.keep_alive())
    w.field("Connection", "close");
  else if (ex.head().version_minor == 0)
    w.field("Connection", "keep-alive");
  w.end();
  if (ex.info().method != http::Method::kHead && !bodyless) h.append(fb.body);
}

/// A complete response of our own (operations and API answers), into ex.scratch().
void prepare_response(Exchange& ex, Outcome& out, int status, std::string_view content_type,
                      std::string_view body, std::string_view extra_fields) {
  out.status = status;
  if (!ex.body_done()) ex.set_close();
  http::HeadBuffer& h = ex.scratch();
  http::HeadWriter w(h);
  w.status_line(status, http::reason_phrase(status));
  if (status != 204) {
    w.field("Content-Type", content_type).field("Content-Length", body.size());
  }
  w.field("Cache-Control", "no-store").field("X-Correlation-ID", ex.correlation_id());
  if (!ex.keep_alive())
    w.field("Connection", "close");
  else if (ex.head().version_minor == 0)
    w.field("Connection", "keep-alive");
  w.raw(extra_fields);
  w.end();
  if (ex.info().method != http::Method::kHead && status != 204) h.append(body);
}

void prepare_admin(Gateway& gw, Exchange& ex, Outcome& out, core::SteadyTime now) {
  const AdminResponse r = handle_admin(gw, ex.head().method, ex.info().path, now);
  prepare_response(ex, out, r.status, "application/json", r.body, r.extra_fields);
}

/// The request head for the upstream, into ex.scratch(). A deadline the client sent goes on
/// reduced by the time spent here.
void prepare_upstream_head(Exchange& ex, const RouteMatch& m, const Service& svc,
                           const Instance& inst, const Plan& plan, core::SteadyTime now,
                           http::HeadBuffer& h) {
  const auto& head = ex.head();
  const auto& info = ex.info();
  http::HeadWriter w(h);
  h.append(head.method);
  h.push_back(' ');
  h.append(inst.config.url.base_path);
  Router::append_upstream_path(m, h);
  h.append(info.query).append(" HTTP/1.1\r\n", 11);
  w.field("Host", svc.config->preserve_host && !info.host.empty()
                      ? info.host
                      : std::string_view(inst.authority));
  w.kept_fields(head, info.drop);
  h.append("X-Forwarded-For: ", 17);
  if (!info.forwarded_for.empty()) h.append(info.forwarded_for).append(", ", 2);
  h.append(ex.peer_address()).append("\r\n", 2);
  w.field("X-Forwarded-Proto", "http");
  if (!info.host.empty()) w.field("X-Forwarded-Host", info.host);
  w.field("X-Correlation-ID", ex.correlation_id());
  if (info.has_request_timeout)
    w.field("X-Request-Timeout-Ms",
            static_cast<std::uint64_t>(plan.deadline.forward_timeout_ms(now)));
  if (info.has_grpc_timeout) w.field("grpc-timeout", plan.deadline.grpc_timeout_value(now));
  if (info.framing == Framing::kLength) {
    w.field("Content-Length", info.content_length);
  } else if (info.framing == Framing::kChunked) {
    w.field("Transfer-Encoding", "chunked");
  } else if (info.method == http::Method::kPost || info.method == http::Method::kPut ||
             info.method == http::Method::kPatch) {
    w.field("Content-Length", std::uint64_t{0});
  }
  w.end();
}

/// The response head for the client, into ex.scratch2(). Returns whether the body is
/// re-chunked (upstream chunked or close-delimited, client HTTP/1.1).
bool prepare_client_head(Exchange& ex, const http::ResponseHead& rh, const http::ResponseInfo& ri) {
  const bool client_11 = ex.head().version_minor == 1;
  const bool unframed = ri.framing == Framing::kChunked || ri.framing == Framing::kUntilClose;
  if (unframed && !client_11) ex.set_close();  // HTTP/1.0: the close ends the body
  http::HeadBuffer& h = ex.scratch2();
  http::HeadWriter w(h);
  w.status_line(rh.status, rh.reason);
  w.kept_fields(rh, ri.drop);
  w.field("X-Correlation-ID", ex.correlation_id());
  if (ri.framing == Framing::kLength) {
    w.field("Content-Length", ri.content_length);
  } else if (unframed && client_11) {
    w.field("Transfer-Encoding", "chunked");
  } else if (ri.framing == Framing::kNone && ex.info().method != http::Method::kHead &&
             rh.status != 204 && rh.status != 304) {
    w.field("Content-Length", std::uint64_t{0});
  }
  if (!ex.keep_alive())
    w.field("Connection", "close");
  else if (!client_11)
    w.field("Connection", "keep-alive");
  w.end();
  return unframed && client_11;
}

// ---------------------------------------------------------------------------------------

class ProxyHandler final : public http::Handler {
 public:
  ProxyHandler(Gateway& gw, http::Worker& worker)
      : gw_(gw),
        worker_(worker),
        log_(gw.config().logging.format, gw.config().logging.access_log, gw.clock()),
        feed_(gw.registry().make_feed()) {
    refresh();
  }

  ~ProxyHandler() override { log_.flush(gw_.clock().wall_now()); }

  // Not a coroutine itself: it hands back the one that answers, so a proxied request costs
  // one coroutine frame (an allocation, a resumption) fewer.
  Task<void> handle(Exchange& ex) override {
    if (is_api_path(ex.info().path)) return api(ex);
    return proxy(ex);
  }

  void on_tick(core::SteadyTime now) override {
    for (auto& [key, inst] : instances_) inst->pool->sweep(now);
    log_.flush(gw_.clock().wall_now());
  }

 private:
  /// Appends the SSE frames of the events after `sent` to `frames` and advances `sent`. A new
  /// stream (`fresh`), or one whose events the bounded log no longer holds, gets a `snapshot`
  /// event holding the whole registry first, then what follows it.
  static void append_events(registry::Registry& reg, bool fresh, std::uint64_t& sent,
                            std::string& frames) {
    auto since = reg.events_since(sent);
    if (fresh || since.too_old) {
      sent = reg.last_event_id();
      since = reg.events_since(sent);
      frames += registry::sse_snapshot(sent, reg.to_json());
    }
    for (const auto& e : since.events) {
      frames += registry::to_sse(e);
      sent = e.id;
    }
  }

  /// GET /api/services/events: Server-Sent Events of registry changes. `Last-Event-ID`
  /// resumes; a new stream, or one whose id the bounded log no longer holds, starts with a
  /// `snapshot` event holding the whole registry. Polls the log every 100 ms; ends when the
  /// client goes away or Switchboard drains.
  Task<void> stream_events(Exchange& ex, Outcome& out) {
    auto& reg = gw_.registry();
    std::optional<std::uint64_t> last;
    for (std::size_t i = 0; i < ex.head().field_count; ++i)
      if (http::iequals(ex.head().fields[i].name, "last-event-id"))
        last = registry::parse_last_event_id(ex.head().fields[i].value);
    ex.set_close();  // the stream ends with the connection
    out.status = 200;
    http::HeadBuffer& h = ex.scratch();
    http::HeadWriter w(h);
    w.status_line(200, "OK")
        .field("Content-Type", "text/event-stream")
        .field("Cache-Control", "no-store")
        .field("X-Correlation-ID", ex.correlation_id())
        .field("Connection", "close");
    w.end();
    std::uint64_t sent = last.value_or(0);
    std::string frames;
    append_events(reg, !last, sent, frames);
    ex.set_response_started();
    ex.batch().clear();
    ex.batch().add(h);
    ex.batch().add(frames);
    bool ok = true;
    SB_FLUSH(ex, ok);
    Timer timer(worker_.context().get_executor());
    int idle_ticks = 0;
    while (ok && !worker_.draining()) {
      timer.expires_after(std::chrono::milliseconds(100));
      co_await timer.async_wait(kUse);
      frames.clear();
      if (reg.last_event_id() != sent) {
        append_events(reg, false, sent, frames);
        idle_ticks = 0;
      } else if (++idle_ticks == 150) {  // a comment every 15 s keeps proxies from timing out
        frames = ": keep-alive\n\n";
        idle_ticks = 0;
      }
      if (frames.empty()) continue;
      ex.batch().add(frames);
      SB_FLUSH(ex, ok);
    }
    ex.abort();
  }

  /// The registration API: reads the (small) body, then answers from the registry.
  Task<void> answer_api(Exchange& ex, Outcome& out) {
    // Listener, token and client address are checked before the body is read.
    if (auto refused = check_api_access(gw_, ex)) {
      prepare_response(ex, out, refused->status, refused->content_type, refused->body,
                       refused->extra_fields);
      co_await send_scratch(ex);
      co_return;
    }
    if (ex.info().path == "/api/services/events" && ex.head().method == "GET") {
      co_await stream_events(ex, out);
      co_return;
    }
    std::string body;
    if (ex.info().framing == Framing::kLength &&
        ex.info().content_length > registry::kMaxRegistrationBody) {
      prepare_problem(ex, out, 413, "body-too-large", "API bodies are at most 64 KiB");
      co_await send_scratch(ex);
      co_return;
    }
    while (api_wants_body(ex.head().method) && !ex.body_done()) {
      const http::BodyPiece piece = co_await ex.read_body();
      if (piece.error != BodyError::kNone) {
        prepare_body_error(ex, out, piece.error);
        co_await send_scratch(ex);
        co_return;
      }
      if (body.size() + piece.data.size() > registry::kMaxRegistrationBody) {
        prepare_problem(ex, out, 413, "body-too-large", "API bodies are at most 64 KiB");
        co_await send_scratch(ex);
        co_return;
      }
      body.append(piece.data);
    }
    // On the registry's writer thread, in arrival order: a change is committed to the store
    // (fsync) before it is answered, and this worker's other connections must not wait for
    // the disk meanwhile. Reads go the same way, so they see every change answered before.
    // Named, so that it lives in this frame until it has launched: GCC 12 may destroy a
    // temporary of the co_await expression (and the strings it owns) before that.
    auto call = run_on(
        gw_.registry_writer(), worker_,
        [&gw = gw_, method = std::string(ex.head().method), path = std::string(ex.info().path),
         body = std::move(body), id = std::string(ex.correlation_id()),
         peer = std::string(ex.peer_address())] {
          try {
            return handle_api(gw, method, path, body, id, peer);
          } catch (const std::exception& e) {  // nothing may escape the writer's thread
            const core::RequestLogScope scope(id);
            spdlog::error("registry API call failed: {}", e.what());
            return ApiResponse{500,
                               "application/problem+json",
                               problem_body(500, "internal-error", e.what(), "", id),
                               {}};
          }
        });
    auto [r] = co_await std::move(call);
    prepare_response(ex, out, r.status, r.content_type, r.body, r.extra_fields);
    co_await send_scratch(ex);
  }

  /// Takes the registry's new snapshot when there is one: one atomic load per request.
  bool refresh_if_changed() {
    if (gw_.registry().version() == version_) return false;
    refresh();
    return true;
  }

  void refresh() {
    auto snap = gw_.registry().snapshot();
    version_ = snap->version;
    const auto now = gw_.clock().steady_now();
    std::map<std::string, std::shared_ptr<Service>, std::less<>> services;
    std::unordered_map<std::string, std::shared_ptr<Instance>> instances;
    std::map<std::string, std::shared_ptr<Lb>, std::less<>> balancers;
    std::vector<resilience::BalancerEndpoint> endpoints;
    for (const auto& rs : snap->services) {
      auto svc =
          std::make_shared<Service>(Service{snap,
                                            &rs.config,
                                            {},
                                            gw_.guards().service(rs.config),
                                            nullptr,
                                            0,
                                            resilience::RetryPolicy(rs.config.policy.retry)});
      // Which instances take traffic: healthy and degraded ones, or all of them when fewer
      // than panic_threshold percent do (better a failing answer than none). Degraded ones
      // weigh a quarter of healthy ones, unless fewer than half of the usable ones are healthy.
      std::size_t usable = 0, healthy = 0;
      for (const auto& ri : rs.instances) {
        usable += ri.takes_traffic;
        healthy += ri.takes_traffic && ri.state != registry::InstanceState::kDegraded;
      }
      const bool panic = !rs.instances.empty() && rs.config.panic_threshold > 0 &&
                         usable * 100 < rs.config.panic_threshold * rs.instances.size();
      const bool degraded_full = healthy * 2 < usable;
      auto lb_it = balancers_.find(rs.name);
      std::shared_ptr<Lb> lb = lb_it != balancers_.end() ? lb_it->second : nullptr;
      const bool first_view = lb == nullptr;
      if (!lb)
        lb = std::make_shared<Lb>(
            Lb{resilience::Balancer(
                   rs.config.balancer, gw_.config().server.zone,
                   resilience::mix64(worker_.index() + 1) ^ std::hash<std::string>{}(rs.name)),
               0});
      endpoints.clear();
      for (const auto& ri : rs.instances) {
        if (!ri.takes_traffic && !panic) continue;  // failing its checks, or not yet checked
        const bool degraded = ri.state == registry::InstanceState::kDegraded;
        // Same service, id and URL: the same upstream, so keep its pool and state.
        std::string key = rs.name + '/' + ri.id + ' ' + ri.config.url.text;
        auto it = instances_.find(key);
        // instances_ holds exactly the previous view's endpoints: a new entry is a newly
        // available instance, which ramps up (balancer.slow_start); the first view does not.
        const bool known = it != instances_.end();
        std::shared_ptr<Instance> inst;
        if (known) {
          inst = it->second;
        } else {
          const auto& tls = rs.config.tls;
          http::UpstreamTarget target{ri.config.url.host, ri.config.url.port,
                                      ri.config.url.tls,  tls.server_name,
                                      tls.verify,         gw_.tls_context_for(rs.name)};
          inst = std::make_shared<Instance>(Instance{
              ri.config,
              std::make_unique<http::UpstreamPool>(worker_.context().get_executor(), target,
                                                   rs.config.pool, rs.config.timeouts.connect),
              ri.config.url.authority(),
              ri.uid,
              ri.in_flight,
              gw_.guards().instance(*svc->guard, rs.config, ri.id, ri.config.url.text),
              {}});
        }
        endpoints.push_back(resilience::BalancerEndpoint{
            reinterpret_cast<std::uintptr_t>(inst.get()),
            ri.config.weight * (degraded && !degraded_full ? 1u : 4u), inst->config.zone,
            known || first_view ? std::nullopt : std::optional<core::SteadyTime>(now)});
        svc->instances.push_back(inst);
        instances.emplace(std::move(key), std::move(inst));
      }
      lb->balancer.set_endpoints(endpoints, now);
      svc->generation = ++lb->generation;
      svc->lb = lb;
      balancers.emplace(rs.name, std::move(lb));
      services.emplace(rs.name, std::move(svc));
    }
    services_ = std::move(services);
    instances_ = std::move(instances);  // pools of removed instances close once idle
    balancers_ = std::move(balancers);
  }

  /// Decides where a request goes: true with out.service set and the route in `m`, or false
  /// with the answer prepared in scratch.
  bool route(Exchange& ex, Outcome& out, RouteMatch& m) {
    const auto& info = ex.info();
    if (is_admin_path(info.path)) {
      prepare_admin(gw_, ex, out, worker_.now());
      return false;
    }
    if (ex.listener() == http::ListenerKind::kAdmin) {
      prepare_problem(ex, out, 404, "not-found",
                      "the admin listener serves /health, /health/live, /health/ready and "
                      "/api/services");
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
    const auto it = services_.find(m.service_name);
    if (it == services_.end()) {
      prepare_problem(ex, out, 404, "unknown-service",
                      "no service named \"" + std::string(m.service_name) + "\"");
      return false;
    }
    out.service = it->second;
    return true;
  }

  /// The request's deadline, its service breaker's permit and whether it may be retried.
  /// False with the answer (400, 504, 503 or the fallback) prepared in scratch.
  bool begin(Exchange& ex, Outcome& out, const RouteMatch& m, core::SteadyTime start, Plan& plan) {
    Service& svc = *out.service;
    const auto& info = ex.info();
    plan.policy = m.policy ? m.policy : &svc.config->policy;
    plan.retry = m.policy ? &route_retry(*m.policy) : &svc.retry;
    std::optional<core::Duration> asked;
    if (info.has_request_timeout || info.has_grpc_timeout) {
      const bool ms = info.has_request_timeout;
      const auto parsed = ms ? resilience::parse_request_timeout_ms(info.request_timeout_ms)
                             : resilience::parse_grpc_timeout(info.grpc_timeout);
      if (!parsed) {
        prepare_problem(ex, out, 400, "bad-timeout",
                        std::string(ms ? "X-Request-Timeout-Ms" : "grpc-timeout") + ": " +
                            std::string(parsed.error));
        return false;
      }
      asked = parsed.value;
    }
    plan.deadline =
        resilience::Deadline(start, resilience::effective_budget(plan.policy->timeout, asked));
    const auto now = start;  // microseconds ago: not worth another clock read
    if (plan.deadline.expired(now)) {
      if (plan.policy->fallback.enabled()) {
        prepare_fallback(ex, out, plan.policy->fallback, "deadline expired");
      } else {
        prepare_problem(ex, out, 504, "deadline-expired",
                        "the request's deadline expired before an upstream was called");
      }
      return false;
    }
    const auto adm = svc.guard->breaker.allow(now);
    svc.guard->report(adm.transition);
    if (!adm.allowed()) {
      if (plan.policy->fallback.enabled()) {
        prepare_fallback(ex, out, plan.policy->fallback, "circuit breaker open");
      } else {
        prepare_problem(ex, out, 503, "circuit-open",
                        "the circuit breaker of \"" + svc.config->name +
                            "\" is open after repeated failures; retry after " +
                            std::to_string(adm.retry_after.count()) + " s",
                        "Retry-After: " + std::to_string(adm.retry_after.count()) + "\r\n");
      }
      return false;
    }
    plan.service_permit = adm.permit;
    plan.began = now;  // the first attempt starts now
    svc.guard->budget.record_request(now);
    plan.may_retry =
        plan.retry->attempts_left(0) &&
        resilience::RetryPolicy::is_idempotent(ex.head().method, info.idempotency_key) &&
        (ex.body_done() || (ex.body_fits() && plan.retry->body_replayable(info.content_length)));
    return true;
  }

  /// The instance for the next attempt: balanced over those whose breaker admits and that
  /// are not ejected, avoiding instances this request tried. nullptr when none can take it.
  Instance* choose(Service& svc, Plan& plan, core::SteadyTime now) {
    std::array<std::size_t, 8> exclude{};
    std::size_t n = 0;
    for (std::size_t k = 0; k < plan.n_tried; ++k)
      for (std::size_t j = 0; j < svc.instances.size(); ++j)
        if (svc.instances[j].get() == plan.tried[k] && n < exclude.size()) exclude[n++] = j;
    auto available = [&](std::size_t i) {
      const InstanceGuard& g = *svc.instances[i]->guard;
      return !(g.outlier && g.outlier->ejected(now)) && g.breaker.may_allow(now);
    };
    while (true) {
      const std::size_t i = svc.lb->balancer.pick(now, available, {exclude.data(), n});
      if (i == resilience::Balancer::kNone) return nullptr;
      Instance& inst = *svc.instances[i];
      const auto a = inst.guard->breaker.allow(now);
      inst.guard->report(a.transition);
      if (a.allowed()) {
        plan.permit = a.permit;
        plan.index = i;
        return &inst;
      }
      // Another request took the last half-open probe: try the others.
      if (n == exclude.size()) return nullptr;
      exclude[n++] = i;
    }
  }

  /// The RetryPolicy of a route's own request policy (built once per worker).
  const resilience::RetryPolicy& route_retry(const core::RequestPolicy& p) {
    auto it = route_retry_.find(&p);
    if (it == route_retry_.end())
      it = route_retry_.emplace(&p, resilience::RetryPolicy(p.retry)).first;
    return it->second;
  }

  enum class Next : std::uint8_t { kRelay, kRetry, kAnswer };

  struct Recorded {
    core::SteadyTime now;  // when the attempt ended
    resilience::Outcome outcome;
    bool failure = false;
    std::optional<core::Duration> retry_after;
  };

  /// Feeds an attempt's outcome to every policy: the instance's breaker and outlier record,
  /// the balancer, the latency estimate and the registry's live health.
  Recorded record_attempt(Service& svc, Instance& inst, resilience::Permit permit,
                          std::size_t index, core::SteadyTime began, const Try& t) {
    const auto now = gw_.clock().steady_now();
    const core::Duration latency = now - began;
    const std::size_t li = svc.lb_index(index);
    Recorded r;
    r.now = now;
    r.outcome = outcome_of(t);
    r.failure = inst.guard->breaker.is_failure(r.outcome);
    inst.guard->report(inst.guard->breaker.record(now, permit, r.failure, latency));
    if (inst.guard->outlier) inst.guard->report(inst.guard->outlier->record(now, r.outcome));
    if (t.kind == Try::Kind::kResponse) {
      if (li != resilience::Balancer::kNone) svc.lb->balancer.on_finish(li, now, latency);
      inst.latency.record(latency);
      if (r.outcome.status == 429 || r.outcome.status == 503) {
        const http::ResponseHead& h = t.conn->head();
        for (std::size_t f = 0; f < h.field_count; ++f) {
          if (!http::iequals(h.fields[f].name, "retry-after")) continue;
          if (const auto ra = resilience::parse_retry_after(h.fields[f].value)) {
            r.retry_after = *ra;
            if (li != resilience::Balancer::kNone) svc.lb->balancer.avoid_until(li, now + *ra);
          }
          break;
        }
      }
    } else if (li != resilience::Balancer::kNone) {
      svc.lb->balancer.on_abandon(li);
    }
    // The registry's view of the instance (health from live traffic): a failure is a 5xx,
    // a reset or a timeout.
    feed_->push(registry::LiveSample{
        inst.uid,
        static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(latency).count()),
        t.kind == Try::Kind::kResponse && (r.outcome.status < 500 || r.outcome.status > 599)});
    return r;
  }

  /// An attempt that ended without telling anything about its instance (the client went
  /// away, or the other side of a hedge won): its probe permit and balancer slot go back.
  void abandon_attempt(Service& svc, Instance& inst, resilience::Permit permit, std::size_t index) {
    inst.guard->breaker.release(permit);
    const std::size_t li = svc.lb_index(index);
    if (li != resilience::Balancer::kNone) svc.lb->balancer.on_abandon(li);
  }

  /// Records an attempt with every policy and decides what follows: relay the response,
  /// retry (plan.wait says after how long), or answer from scratch (prepared here).
  Next finish_attempt(Exchange& ex, Outcome& out, Service& svc, Instance& inst, Plan& plan,
                      const Try& t) {
    if (t.kind == Try::Kind::kClient) {
      abandon_attempt(svc, inst, plan.permit, plan.index);
      return Next::kAnswer;  // prepared by the attempt
    }
    const Recorded rec = record_attempt(svc, inst, plan.permit, plan.index, plan.began, t);
    const auto now = rec.now;
    plan.ended = now;
    const core::Duration latency = now - plan.began;
    const resilience::Outcome o = rec.outcome;
    const bool failure = rec.failure;
    const std::optional<core::Duration> retry_after = rec.retry_after;
    plan.failed = failure;
    plan.last_status = o.status;

    if (plan.may_retry && plan.retry->retryable(o) && plan.retry->attempts_left(plan.retries)) {
      const core::Duration wait = plan.retry->delay(plan.retries, rng_, retry_after);
      const core::Duration remaining = plan.deadline.remaining(now);
      if (remaining > wait && resilience::worth_retrying(remaining - wait, inst.latency.median()) &&
          svc.guard->budget.try_acquire(now)) {
        plan.wait = wait;
        ++plan.retries;
        if (plan.n_tried < plan.tried.size()) plan.tried[plan.n_tried++] = &inst;
        SB_REQ_LOG(debug, ex.correlation_id(), "retry {} of {} after {} ({})", plan.retries,
                   svc.config->name, resilience::to_string(o.error), o.status);
        return Next::kRetry;
      }
    }
    const auto& fb = plan.policy->fallback;
    if (t.kind == Try::Kind::kResponse) {
      if (!(fb.enabled() && failure)) return Next::kRelay;
      prepare_fallback(ex, out, fb, "the upstream answered " + std::to_string(o.status));
      return Next::kAnswer;
    }
    if (fb.enabled())
      prepare_fallback(ex, out, fb, "every attempt failed");
    else
      prepare_failure(ex, out, svc, inst, t, latency);
    return Next::kAnswer;
  }

  /// Feeds the request's final outcome to its service's breaker.
  void finish_request(Exchange& ex, const Outcome& out, const Plan& plan, core::SteadyTime start) {
    ServiceGuard& g = *out.service->guard;
    if (!plan.sent || out.status == 499 || (ex.closed() && out.status == 0)) {
      g.breaker.release(plan.service_permit);
      return;
    }
    // The outcome's time: when the last attempt's answer (head) came, or the answer was made.
    const auto now = plan.ended == core::SteadyTime{} ? gw_.clock().steady_now() : plan.ended;
    g.report(g.breaker.record(now, plan.service_permit, plan.failed, now - start));
  }

  Task<void> api(Exchange& ex) {
    const auto start = gw_.clock().steady_now();
    Outcome out;
    co_await answer_api(ex, out);
    if (log_.enabled()) record(ex, out, start);
  }

  /// Routes the request and answers it: from an instance (with retries, hedges and
  /// fallbacks as its policy says), or with the problem that kept it from one. Every way out
  /// writes the access-log line.
  Task<void> proxy(Exchange& ex) {
    const auto start = gw_.clock().steady_now();
    Outcome out;
    const auto logged = [&] {
      if (log_.enabled()) record(ex, out, start);
    };
    RouteMatch m;
    if (!route(ex, out, m)) {
      co_await send_scratch(ex);
      logged();
      co_return;
    }
    Plan plan;
    if (!begin(ex, out, m, start, plan)) {
      co_await send_scratch(ex);
      logged();
      co_return;
    }
    // A body that a retry may resend is read whole first (it fits the exchange's buffer).
    if (plan.may_retry && !ex.body_done()) {
      const BodyError e = co_await ex.buffer_body();
      if (e != BodyError::kNone) {
        prepare_body_error(ex, out, e);
        out.service->guard->breaker.release(plan.service_permit);
        co_await send_scratch(ex);
        logged();
        co_return;
      }
      plan.began = gw_.clock().steady_now();
    }
    Try t;
    for (bool first = true;;) {
      // The newest view of the service: a retry after a registry change sees the change.
      if (!first && refresh_if_changed())
        if (const auto it = services_.find(out.service->config->name);
            it != services_.end() && it->second != out.service) {
          out.service = it->second;  // the old view (and what plan points into) may go now
          if (m.policy == nullptr) {
            plan.policy = &out.service->config->policy;
            plan.retry = &out.service->retry;
          }
        }
      Service& svc = *out.service;
      const auto now = first ? plan.began : gw_.clock().steady_now();
      first = false;
      Instance* inst = choose(svc, plan, now);
      if (inst == nullptr) {
        if (plan.n_tried > 0 && out.instance) {
          // Retrying, but every instance is refusing now: answer with the last failure.
          if (plan.policy->fallback.enabled())
            prepare_fallback(ex, out, plan.policy->fallback, "every attempt failed");
          else if (t.kind == Try::Kind::kResponse)  // its answer was let go for the retry
            prepare_problem(ex, out, plan.last_status, "upstream-error",
                            "instance of \"" + svc.config->name + "\" answered " +
                                std::to_string(plan.last_status) +
                                " and no instance was left to retry on",
                            plan.last_status == 503 ? "Retry-After: 1\r\n" : "");
          else
            prepare_failure(ex, out, svc, *out.instance, t, now - plan.began);
        } else {
          // Nothing was sent: the service's breaker learns nothing from this request (its
          // instances' breakers and health already said no).
          plan.sent = false;
          if (plan.policy->fallback.enabled())
            prepare_fallback(ex, out, plan.policy->fallback, "no instance available");
          else
            prepare_problem(ex, out, 503, "no-instance",
                            "service \"" + svc.config->name +
                                "\" has no instance to send to (none healthy, or every one's "
                                "circuit breaker is open or it is ejected)",
                            "Retry-After: 1\r\n");
        }
        break;
      }
      out.instance = svc.instances[plan.index];
      prepare_upstream_head(ex, m, svc, *inst, plan, now, ex.scratch());
      plan.began = now;
      svc.lb->balancer.on_start(plan.index);
      if (inst->in_flight) inst->in_flight->fetch_add(1, std::memory_order_relaxed);
      const core::Duration per_try = plan.retry->per_try_timeout() > core::Duration::zero()
                                         ? plan.retry->per_try_timeout()
                                         : core::Duration(svc.config->timeouts.response);
      std::unique_ptr<HedgeRace> race;
      if (const auto delay = hedge_delay(ex, svc, plan, *inst, now)) {
        race = std::make_unique<HedgeRace>(worker_.context().get_executor());
        asio::co_spawn(worker_.context(), run_hedge(ex, m, out.service, plan, *race, *delay, inst),
                       asio::detached);
      }
      // The attempt: a kept connection (or a new one), the request, the response head, all
      // before `until`. A kept connection that the instance closed meanwhile fails before
      // any byte of an answer; then the request goes once more on a new connection (not a
      // retry: the instance did nothing wrong). Inline rather than a coroutine of its own:
      // one frame fewer per request.
      const core::SteadyTime until = std::min(now + per_try, plan.deadline.at());
      t = Try{};
      for (bool kept = true;; kept = false) {
        std::unique_ptr<http::UpstreamConnection> conn;
        if (kept) conn = inst->pool->take_idle();
        if (!conn) {
          auto lease = co_await inst->pool->connect(ex);
          if (!lease.conn) {
            t.kind = Try::Kind::kConnectFailed;
            t.acquire = lease.error;
            t.detail = std::move(lease.detail);
            break;
          }
          conn = std::move(lease.conn);
        }
        if (race) race->primary = conn.get();  // so that a winning hedge can cut it
        t.kind = co_await exchange(ex, out, *conn, until, t.why, t.info);
        if (race) race->primary = nullptr;
        if (t.kind == Try::Kind::kResponse) {
          t.conn = std::move(conn);
          break;
        }
        const bool stale = t.kind == Try::Kind::kReset && conn->reused && conn->len == 0 && kept &&
                           ex.body_replayable() && !(race && race->won);
        inst->pool->discard(std::move(conn));
        if (!stale) break;
        ex.rewind_body();
      }
      if (race) {
        co_await settle(*race, t);
        if (race->won) {
          // The hedge's answer is the one: the primary was cut (nothing learned) or failed.
          if (race->primary_cut)
            abandon_attempt(svc, *inst, plan.permit, plan.index);
          else
            (void)record_attempt(svc, *inst, plan.permit, plan.index, plan.began, t);
          if (inst->in_flight) inst->in_flight->fetch_sub(1, std::memory_order_relaxed);
          if (t.conn) inst->pool->discard(std::move(t.conn));
          out.instance = race->inst;
          inst = race->inst.get();  // its in_flight was counted when the hedge started
          plan.permit = race->permit;
          plan.index = race->index;
          plan.began = race->began;
          t = std::move(race->result);
          SB_REQ_LOG(debug, ex.correlation_id(), "hedge to {} won", inst->config.url.text);
        }
      }
      const Next next = finish_attempt(ex, out, svc, *inst, plan, t);
      if (next == Next::kRelay) {
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
          end_relay(ex, svc, *inst, std::move(t.conn), ok, reusable);
        } else {
          co_await relay(ex, out, svc, *inst, std::move(t.conn), t.info);
        }
        if (inst->in_flight) inst->in_flight->fetch_sub(1, std::memory_order_relaxed);
        finish_request(ex, out, plan, start);
        logged();
        co_return;
      }
      if (inst->in_flight) inst->in_flight->fetch_sub(1, std::memory_order_relaxed);
      if (t.conn) inst->pool->discard(std::move(t.conn));
      if (next == Next::kAnswer) break;
      if (plan.wait > core::Duration::zero()) co_await pause(plan.wait);
      if (ex.closed()) break;
      ex.rewind_body();
    }
    finish_request(ex, out, plan, start);
    co_await send_scratch(ex);
    logged();
  }

  /// How long to wait before hedging this attempt, or nullopt for no hedge: only the first
  /// attempt of an idempotent GET without a body, on a route with hedging, with another
  /// instance to go to and time left for it.
  std::optional<core::Duration> hedge_delay(Exchange& ex, const Service& svc, const Plan& plan,
                                            Instance& inst, core::SteadyTime now) {
    const auto& h = plan.policy->hedge;
    if (!h.enabled || plan.retries > 0 || plan.n_tried > 0 || svc.instances.size() < 2 ||
        ex.info().method != http::Method::kGet || ex.info().framing != Framing::kNone)
      return std::nullopt;
    const core::Duration delay =
        h.delay > core::Millis(0) ? core::Duration(h.delay) : inst.latency.p95();
    if (delay <= core::Duration::zero()) return std::nullopt;  // no latency known yet
    // Time left after the delay must cover a typical answer (the instance's median).
    const core::Duration remaining = plan.deadline.remaining(now);
    if (remaining <= delay || !resilience::worth_retrying(remaining - delay, inst.latency.median()))
      return std::nullopt;
    return delay;
  }

  /// After the primary attempt: stops the hedge when it has not started or lost, lets it
  /// finish when the primary failed (the first success wins), and waits until it has ended.
  Task<void> settle(HedgeRace& race, const Try& primary) {
    race.primary_done = true;
    race.primary_ok = primary.kind == Try::Kind::kResponse && !race.won;
    if (!race.started) {
      race.timer.cancel();
    } else if (race.primary_ok && race.hedge != nullptr) {
      race.hedge_cut = true;
      http::error_code ignored;
      race.hedge->socket().close(ignored);
    }
    while (!race.ended) {
      race.wake.expires_at(core::SteadyTime::max());
      co_await race.wake.async_wait(kUse);
    }
  }

  /// The hedge: after `delay`, unless the primary has ended, a second attempt on another
  /// instance (spending the retry budget). Its response wins when it comes first; then the
  /// primary's connection is closed. Bounded by the request's deadline.
  Task<void> run_hedge(Exchange& ex, const RouteMatch& m, std::shared_ptr<Service> svcp, Plan& plan,
                       HedgeRace& race, core::Duration delay, const Instance* primary) {
    Service& svc = *svcp;
    race.timer.expires_after(delay);
    co_await race.timer.async_wait(kUse);
    auto now = gw_.clock().steady_now();
    Plan p = plan;  // the primary's exclusions, plus the primary itself
    if (p.n_tried < p.tried.size()) p.tried[p.n_tried++] = primary;
    Instance* inst = nullptr;
    if (!race.primary_done && svc.guard->budget.try_acquire(now)) inst = choose(svc, p, now);
    if (inst != nullptr && inst == primary) {  // nowhere else to go
      inst->guard->breaker.release(p.permit);
      inst = nullptr;
    }
    if (inst == nullptr || race.primary_done) {
      if (inst != nullptr) inst->guard->breaker.release(p.permit);
      race.ended = true;
      race.wake.cancel();
      co_return;
    }
    race.started = true;
    race.inst = svc.instances[p.index];
    race.permit = p.permit;
    race.index = p.index;
    race.began = now;
    prepare_upstream_head(ex, m, svc, *inst, plan, now, race.head);
    svc.lb->balancer.on_start(p.index);
    if (inst->in_flight) inst->in_flight->fetch_add(1, std::memory_order_relaxed);
    // The deadline: the request's. Closing the socket ends whatever the hedge awaits.
    race.timer.expires_at(plan.deadline.at());
    race.timer.async_wait([&race](http::error_code ec) {
      if (ec || race.hedge == nullptr) return;
      http::error_code ignored;
      race.hedge->socket().close(ignored);
    });
    race.result = co_await hedge_exchange(ex, *inst, race);
    race.timer.cancel();
    if (race.result.kind == Try::Kind::kResponse && !race.primary_ok) {
      race.won = true;
      if (race.primary != nullptr) {
        race.primary_cut = true;
        http::error_code ignored;
        race.primary->socket().close(ignored);
      }
    } else {
      if (race.hedge_cut || race.result.kind == Try::Kind::kResponse)
        abandon_attempt(svc, *inst, race.permit, race.index);
      else
        (void)record_attempt(svc, *inst, race.permit, race.index, race.began, race.result);
      if (race.result.conn) inst->pool->discard(std::move(race.result.conn));
      if (inst->in_flight) inst->in_flight->fetch_sub(1, std::memory_order_relaxed);
    }
    race.ended = true;
    race.wake.cancel();
  }

  /// The hedge's request (no body: GET only) and response head, on its own connection.
  Task<Try> hedge_exchange(Exchange& ex, Instance& inst, HedgeRace& race) {
    Try t;
    std::unique_ptr<http::UpstreamConnection> conn = inst.pool->take_idle();
    if (!conn) {
      auto lease = co_await inst.pool->connect(nullptr, &race.hedge);
      if (!lease.conn) {
        t.kind = Try::Kind::kConnectFailed;
        t.acquire = lease.error;
        t.detail = std::move(lease.detail);
        co_return t;
      }
      conn = std::move(lease.conn);
    }
    race.hedge = conn.get();
    const asio::const_buffer head(race.head.data(), race.head.size());
    std::size_t sent = 0;
    while (sent < race.head.size()) {
      const asio::const_buffer rest = asio::buffer(head + sent);
      auto [ec, n] = co_await conn->write_some(http::Buffers(&rest, 1));
      if (ec) break;
      sent += n;
    }
    std::size_t scan = 0;
    t.kind = Try::Kind::kReset;
    // The head went out through co_await (the answer may have been reported meanwhile), so
    // the reads start with Asio's usual attempt.
    while (sent == race.head.size()) {
      auto [ec, n] = co_await conn->read_some(conn->buf() + conn->len,
                                              http::UpstreamConnection::kBufferSize - conn->len);
      if (ec || n == 0) break;
      conn->len += n;
      const auto pr = http::parse_response_head(
          conn->buf(), conn->len, ex.limits().max_response_header_bytes, scan, conn->head());
      if (pr.status == http::ParseStatus::kError) {
        t.kind = Try::Kind::kBadResponse;
        t.why = http::describe(pr.error);
        break;
      }
      if (pr.status != http::ParseStatus::kComplete) continue;
      if (conn->head().status < 200) {  // interim: the final response follows
        drop_interim(*conn);
        scan = 0;
        continue;
      }
      if (http::analyze_response(conn->head(), ex.info().method, t.info) !=
          http::ResponseError::kNone) {
        t.kind = Try::Kind::kBadResponse;
        t.why = "malformed response head";
        break;
      }
      t.kind = Try::Kind::kResponse;
      break;
    }
    race.hedge = nullptr;
    t.conn = std::move(conn);
    if (t.kind != Try::Kind::kResponse) {
      inst.pool->discard(std::move(t.conn));
    }
    co_return t;
  }

  /// Waits on this worker (retry backoff).
  Task<void> pause(core::Duration d) {
    Timer timer(worker_.context().get_executor());
    timer.expires_after(d);
    co_await timer.async_wait(kUse);
  }

  void record(Exchange& ex, const Outcome& out, core::SteadyTime start) {
    const auto end = gw_.clock().steady_now();
    log_.record(AccessRecord{
        ex.head().method, ex.head().target, out.status,
        std::chrono::duration<double, std::milli>(end - start).count(),
        out.service ? std::string_view(out.service->config->name) : std::string_view{},
        out.instance ? std::string_view(out.instance->config.url.text) : std::string_view{},
        ex.bytes_sent(), ex.correlation_id(), ex.peer_address()});
  }

  /// Sends what scratch holds; cuts the connection when there is nothing to send.
  static Task<void> send_scratch(Exchange& ex) {
    if (ex.closed()) co_return;
    if (ex.response_started()) {
      ex.abort();  // too late for a status
      co_return;
    }
    ex.set_response_started();
    ex.batch().clear();
    ex.batch().add(ex.scratch());
    bool ok = true;
    SB_FLUSH(ex, ok);
    if (!ok) ex.abort();
  }

  /// Sends the request on `conn` and reads the response head.
  Task<Try::Kind> exchange(Exchange& ex, Outcome& out, http::UpstreamConnection& conn,
                           core::SteadyTime until, const char*& why, http::ResponseInfo& ri) {
    const bool chunked = ex.info().framing == Framing::kChunked;
    http::WriteBatch& batch = ex.batch();
    batch.clear();
    batch.add(ex.scratch());
    bool sent = true;
    bool waited = false;  // whether this coroutine gave way while sending (see below)
    for (;;) {
      if (!ex.body_done()) {
        // Buffered body bytes come back without I/O, so a small body leaves with the head.
        waited = true;
        const http::BodyPiece piece = co_await ex.read_body();
        if (piece.error != BodyError::kNone) {
          prepare_body_error(ex, out, piece.error);
          co_return Try::Kind::kClient;
        }
        if (chunked) {
          batch.add_chunk(piece.data);
          if (ex.body_done()) batch.add("0\r\n\r\n");
        } else {
          batch.add(piece.data);
        }
      }
      bool failed = false;
      batch.consume(conn.write_now(batch.buffers(), failed));
      if (failed) {
        sent = false;
        break;
      }
      while (!batch.empty()) {
        waited = true;
        ex.arm(conn.socket(), until, http::TimeoutKind::kUpstreamResponse);
        auto [ec, n] = co_await conn.write_some(batch.buffers());
        if (ec) {
          sent = false;
          break;
        }
        batch.consume(n);
      }
      ex.disarm();
      batch.clear();
      if (!sent) break;
      if (ex.body_done()) break;
    }

    std::size_t scan = 0;
    // When the whole request went out at once, from here, the first read waits for epoll:
    // the answer cannot be there yet, and its arrival will be reported. Not after giving
    // way while sending: an early answer (say a 401 before the body) may have come and been
    // reported meanwhile, and waiting for another report would wait for nothing.
    auto start = waited ? http::UpstreamConnection::ReadStart::kTryNow
                        : http::UpstreamConnection::ReadStart::kWaitForEpoll;
    while (sent) {
      if (conn.len > 0) {
        const auto pr = http::parse_response_head(
            conn.buf(), conn.len, ex.limits().max_response_header_bytes, scan, conn.head());
        if (pr.status == http::ParseStatus::kError) {
          why = http::describe(pr.error);
          co_return Try::Kind::kBadResponse;
        }
        if (pr.status == http::ParseStatus::kComplete) {
          const int status = conn.head().status;
          if (status >= 200 || status == 101) {
            const http::ResponseError re =
                http::analyze_response(conn.head(), ex.info().method, ri);
            if (re != http::ResponseError::kNone) {
              why = http::describe(re);
              co_return Try::Kind::kBadResponse;
            }
            // A body that fits the buffer is read whole before anything goes to the client:
            // an instance dying between its head and its body then fails the attempt (which
            // may be retried) instead of cutting the client's response. Usually the body came
            // with the head and this reads nothing.
            const std::uint64_t whole = conn.head().head_size + ri.content_length;
            if (ri.framing == Framing::kLength && whole <= http::UpstreamConnection::kBufferSize) {
              while (conn.len < whole) {
                ex.arm(conn.socket(), until, http::TimeoutKind::kUpstreamResponse);
                auto [ec, n] = co_await conn.read_some(
                    conn.buf() + conn.len, http::UpstreamConnection::kBufferSize - conn.len);
                ex.disarm();
                if (ec || n == 0)
                  co_return ex.fired() == http::TimeoutKind::kUpstreamResponse ? Try::Kind::kTimeout
                                                                               : Try::Kind::kReset;
                conn.len += n;
              }
            }
            co_return Try::Kind::kResponse;
          }
          drop_interim(conn);
          scan = 0;
          continue;
        }
      }
      ex.arm(conn.socket(), until, http::TimeoutKind::kUpstreamResponse);
      auto [ec, n] = co_await conn.read_some(
          conn.buf() + conn.len, http::UpstreamConnection::kBufferSize - conn.len, start);
      start = http::UpstreamConnection::ReadStart::kTryNow;
      ex.disarm();
      if (ec || n == 0) break;
      conn.len += n;
    }
    if (ex.fired() == http::TimeoutKind::kUpstreamResponse) co_return Try::Kind::kTimeout;
    co_return Try::Kind::kReset;
  }

  /// Reads more from the upstream after moving [keep_from, len) to the front; returns
  /// the bytes read, 0 on end of stream, error or timeout.
  Task<std::size_t> refill(Exchange& ex, http::UpstreamConnection& conn, std::size_t keep_from,
                           core::Millis timeout) {
    const std::size_t rest = conn.len - keep_from;
    if (rest > 0 && keep_from > 0) std::memmove(conn.buf(), conn.buf() + keep_from, rest);
    conn.len = rest;
    ex.arm(conn.socket(), worker_.now() + timeout, http::TimeoutKind::kUpstreamResponse);
    auto [ec, n] = co_await conn.read_some(conn.buf() + conn.len,
                                           http::UpstreamConnection::kBufferSize - conn.len);
    ex.disarm();
    if (ec) co_return 0;
    conn.len += n;
    co_return n;
  }

  /// True when the response's body is all in the buffer already: a Content-Length body that
  /// came whole with its head.
  static bool whole_in_buffer(http::UpstreamConnection& conn, const http::ResponseInfo& ri) {
    return ri.framing == Framing::kLength && conn.len - conn.head().head_size >= ri.content_length;
  }

  /// The client's response head into scratch2 (the caller adds it to the batch); returns
  /// whether the body is to be rechunked.
  static bool start_relay(Exchange& ex, Outcome& out, http::UpstreamConnection& conn,
                          const http::ResponseInfo& ri) {
    out.status = conn.head().status;
    const bool rechunk = prepare_client_head(ex, conn.head(), ri);
    ex.set_response_started();
    ex.batch().clear();
    return rechunk;
  }

  /// After a relay: the connection goes back to the pool when it is `reusable` (the
  /// upstream keeps it and its message ended at the last byte read); a cut relay cuts the
  /// client connection too (the status is out: nothing else can tell the client).
  void end_relay(Exchange& ex, const Service& svc, const Instance& inst,
                 std::unique_ptr<http::UpstreamConnection> conn, bool ok, bool reusable) {
    if (!ok) {
      SB_REQ_LOG(warn, ex.correlation_id(), "response from {} ({}) cut mid-body", svc.config->name,
                 inst.config.url.text);
      inst.pool->discard(std::move(conn));
      ex.abort();
      return;
    }
    if (reusable)
      inst.pool->release(std::move(conn), worker_.now());
    else
      inst.pool->discard(std::move(conn));
  }

  Task<void> relay(Exchange& ex, Outcome& out, Service& svc, Instance& inst,
                   std::unique_ptr<http::UpstreamConnection> conn, const http::ResponseInfo& ri) {
    const bool rechunk = start_relay(ex, out, *conn, ri);
    ex.batch().add(ex.scratch2());
    std::size_t pos = conn->head().head_size;  // next unconsumed byte in conn->buf()
    const bool reusable = ri.keep_alive;
    bool ok = true;
    bool clean_end = true;  // the upstream's message ended exactly at its last byte
    switch (ri.framing) {
      case Framing::kNone:
        clean_end = conn->len == pos;
        SB_FLUSH(ex, ok);
        break;
      case Framing::kLength:
        // The common case, inline: a small body usually came with the head.
        for (std::uint64_t left = ri.content_length;;) {
          const std::size_t take =
              static_cast<std::size_t>(std::min<std::uint64_t>(left, conn->len - pos));
          ex.batch().add(std::string_view(conn->buf() + pos, take));
          pos += take;
          left -= take;
          if (left == 0) clean_end = conn->len == pos;
          SB_FLUSH(ex, ok);
          if (!ok || left == 0) break;
          if (co_await refill(ex, *conn, conn->len, svc.config->timeouts.response) == 0) {
            ok = false;
            break;
          }
          pos = 0;
        }
        break;
      case Framing::kChunked:
        ok = co_await relay_chunked(ex, *conn, pos, rechunk, svc, clean_end);
        break;
      case Framing::kUntilClose:
        ok = co_await relay_until_close(ex, *conn, pos, rechunk, svc);
        clean_end = false;
        break;
    }
    end_relay(ex, svc, inst, std::move(conn), ok, reusable && clean_end);
  }

  Task<bool> relay_chunked(Exchange& ex, http::UpstreamConnection& conn, std::size_t pos,
                           bool rechunk, const Service& svc, bool& clean_end) {
    http::ChunkedDecoder dec;
    http::WriteBatch& batch = ex.batch();
    for (;;) {
      const auto step = dec.step(conn.buf() + pos, conn.len - pos);
      pos += step.consumed;
      switch (step.status) {
        case http::ChunkedDecoder::Status::kData:
          if (rechunk)
            batch.add_chunk(step.data);
          else
            batch.add(step.data);
          if (batch.full()) {
            bool ok = true;
            SB_FLUSH(ex, ok);
            if (!ok) co_return false;
          }
          break;
        case http::ChunkedDecoder::Status::kDone: {
          if (rechunk) batch.add("0\r\n\r\n");
          clean_end = conn.len == pos;
          bool ok = true;
          SB_FLUSH(ex, ok);
          co_return ok;
        }
        case http::ChunkedDecoder::Status::kError:
          SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} sent a malformed chunked body",
                     svc.config->name);
          co_return false;
        case http::ChunkedDecoder::Status::kNeedMore: {
          // Send what we have (it points into the buffer), then read more.
          bool ok = true;
          SB_FLUSH(ex, ok);
          if (!ok) co_return false;
          if (co_await refill(ex, conn, pos, svc.config->timeouts.response) == 0) co_return false;
          pos = 0;
          break;
        }
      }
    }
  }

  Task<bool> relay_until_close(Exchange& ex, http::UpstreamConnection& conn, std::size_t pos,
                               bool rechunk, const Service& svc) {
    http::WriteBatch& batch = ex.batch();
    for (;;) {
      const std::string_view data(conn.buf() + pos, conn.len - pos);
      if (rechunk)
        batch.add_chunk(data);
      else
        batch.add(data);
      bool ok = true;
      SB_FLUSH(ex, ok);
      if (!ok) co_return false;
      if (co_await refill(ex, conn, conn.len, svc.config->timeouts.response) == 0) {
        if (ex.fired() == http::TimeoutKind::kUpstreamResponse) co_return false;
        break;  // the upstream closed: that is the end of the body
      }
      pos = 0;
    }
    if (rechunk) batch.add("0\r\n\r\n");
    bool ok = true;
    SB_FLUSH(ex, ok);
    co_return ok;
  }

  Gateway& gw_;
  http::Worker& worker_;
  AccessLog log_;
  std::shared_ptr<registry::LiveFeed> feed_;  // this worker's live samples for the registry
  std::uint64_t version_ = 0;                 // of the registry snapshot services_ was built from
  std::map<std::string, std::shared_ptr<Service>, std::less<>> services_;
  std::unordered_map<std::string, std::shared_ptr<Instance>> instances_;
  std::map<std::string, std::shared_ptr<Lb>, std::less<>> balancers_;  // by service
  std::unordered_map<const core::RequestPolicy*, resilience::RetryPolicy> route_retry_;
  resilience::Rng rng_{
      resilience::mix64(reinterpret_cast<std::uintptr_t>(this))};  // backoff jitter
};

}  // namespace

std::unique_ptr<http::Handler> make_proxy_handler(Gateway& gateway, http::Worker& worker) {
  return std::make_unique<ProxyHandler>(gateway, worker);
}

}  // namespace sb::gateway
