#include "gateway/proxy.hpp"

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <unordered_map>

#include "core/logging.hpp"
#include "gateway/access_log.hpp"
#include "gateway/admin.hpp"
#include "gateway/api.hpp"
#include "gateway/gateway.hpp"
#include "http/exchange.hpp"
#include "http/problem.hpp"
#include "http/server.hpp"
#include "http/upstream.hpp"
#include "registry/registry.hpp"

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

/// An instance as a worker sees it: its own keep-alive pool. Kept across registry snapshots
/// while the instance keeps its URL, so pools survive unrelated registry changes.
struct Instance {
  core::InstanceConfig config;
  std::unique_ptr<http::UpstreamPool> pool;
  std::string authority;  // the Host the upstream gets
  std::uint64_t uid = 0;  // the registry's id for live samples
  std::shared_ptr<std::atomic<std::int32_t>> in_flight;
};

/// A service as a worker sees it, rebuilt with each registry snapshot. Requests in flight
/// hold it (and so the snapshot its config points into, and its instances' pools) until
/// they finish: a removed instance drains instead of vanishing under a request.
struct Service {
  std::shared_ptr<const registry::Snapshot> snapshot;
  const core::ServiceConfig* config;
  std::vector<std::shared_ptr<Instance>> instances;
  std::size_t next = 0;  // round robin when all weights are equal
  // Smooth weighted round robin (the resilience issue replaces it with P2C-EWMA):
  // healthy instances weigh 4 x their weight, degraded ones 1 x (full weight when fewer
  // than half of the usable instances are healthy).
  std::vector<int> weights{};
  std::vector<int> current{};
  int total = 0;
  bool weighted = false;

  /// The index of the next instance to send to.
  std::size_t pick() {
    if (!weighted) return next++ % instances.size();
    std::size_t best = 0;
    for (std::size_t i = 0; i < instances.size(); ++i) {
      current[i] += weights[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    return best;
  }
};

/// What the access log says about one exchange (and what keeps its service alive).
struct Outcome {
  int status = 0;
  std::shared_ptr<Service> service;
  std::shared_ptr<Instance> instance;
};

/// How one attempt on an upstream connection ended.
enum class Attempt : std::uint8_t {
  kResponse,  // a complete, valid response head is in the connection's buffer
  kRetry,     // a reused connection failed before answering; the request may be resent
  kAnswered,  // an error answer is prepared in scratch (or the client is gone)
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

void prepare_acquire_failure(Exchange& ex, Outcome& out, const Service& svc, const Instance& inst,
                             const http::UpstreamPool::Lease& lease) {
  const bool timeout = lease.error == http::AcquireError::kTimeout;
  const int status = timeout ? 504 : lease.error == http::AcquireError::kLimit ? 503 : 502;
  SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}): {}: {}", svc.config->name,
             inst.config.url.text, http::describe(lease.error), lease.detail);
  prepare_problem(ex, out, status, timeout ? "upstream-timeout" : "upstream-unavailable",
                  "instance of \"" + svc.config->name + "\": " + http::describe(lease.error) +
                      ": " + lease.detail);
}

void prepare_upstream_timeout(Exchange& ex, Outcome& out, const Service& svc,
                              const Instance& inst) {
  const auto ms = svc.config->timeouts.response.count();
  SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) did not answer within {} ms",
             svc.config->name, inst.config.url.text, ms);
  prepare_problem(ex, out, 504, "upstream-timeout",
                  "instance of \"" + svc.config->name +
                      "\" did not answer within timeouts.response (" + std::to_string(ms) + " ms)");
}

void prepare_upstream_reset(Exchange& ex, Outcome& out, const Service& svc, const Instance& inst) {
  SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) closed or reset the connection",
             svc.config->name, inst.config.url.text);
  prepare_problem(
      ex, out, 502, "upstream-reset",
      "instance of \"" + svc.config->name + "\" closed the connection without a complete response");
}

void prepare_bad_response(Exchange& ex, Outcome& out, const Service& svc, const Instance& inst,
                          const char* why) {
  SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) sent a malformed response: {}",
             svc.config->name, inst.config.url.text, why);
  prepare_problem(ex, out, 502, "bad-upstream-response",
                  "instance of \"" + svc.config->name + "\" sent a malformed response: " + why);
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

/// The request head for the upstream, into ex.scratch().
void prepare_upstream_head(Exchange& ex, const RouteMatch& m, const Service& svc,
                           const Instance& inst) {
  const auto& head = ex.head();
  const auto& info = ex.info();
  http::HeadBuffer& h = ex.scratch();
  http::HeadWriter w(h);
  h.append(head.method);
  h.push_back(' ');
  h.append(inst.config.url.base_path);
  Router::append_upstream_path(m, h);
  h.append(info.query).append(" HTTP/1.1\r\n", 11);
  w.field("Host", svc.config->preserve_host && !info.host.empty()
                      ? info.host
                      : std::string_view(inst.authority));
  for (std::size_t i = 0; i < head.field_count; ++i)
    if (!info.drop.test(i)) w.field(head.fields[i].name, head.fields[i].value);
  h.append("X-Forwarded-For: ", 17);
  if (!info.forwarded_for.empty()) h.append(info.forwarded_for).append(", ", 2);
  h.append(ex.peer_address()).append("\r\n", 2);
  w.field("X-Forwarded-Proto", "http");
  if (!info.host.empty()) w.field("X-Forwarded-Host", info.host);
  w.field("X-Correlation-ID", ex.correlation_id());
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
  for (std::size_t i = 0; i < rh.field_count; ++i)
    if (!ri.drop.test(i)) w.field(rh.fields[i].name, rh.fields[i].value);
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

  Task<void> handle(Exchange& ex) override {
    const auto start = gw_.clock().steady_now();
    Outcome out;
    if (is_api_path(ex.info().path)) {
      co_await answer_api(ex, out);
    } else {
      Instance* inst = nullptr;
      Service* svc = route(ex, out, inst);
      if (svc != nullptr) {
        if (inst->in_flight) inst->in_flight->fetch_add(1, std::memory_order_relaxed);
        const auto began = gw_.clock().steady_now();
        co_await forward(ex, out, *svc, *inst);
        if (inst->in_flight) inst->in_flight->fetch_sub(1, std::memory_order_relaxed);
        // The outcome feeds the instance's health: 5xx, resets and timeouts are failures;
        // a client that went away (499) is not the instance's fault.
        const auto us =
            std::chrono::duration_cast<std::chrono::microseconds>(gw_.clock().steady_now() - began);
        feed_->push(registry::LiveSample{inst->uid, static_cast<std::uint32_t>(us.count()),
                                         out.status < 500 || out.status > 599});
      } else {
        co_await send_scratch(ex);
      }
    }
    if (log_.enabled()) record(ex, out, start);
  }

  void on_tick(core::SteadyTime now) override {
    for (auto& [key, inst] : instances_) inst->pool->sweep(now);
    log_.flush(gw_.clock().wall_now());
  }

 private:
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
    auto since = reg.events_since(sent);
    if (!last || since.too_old) {
      sent = reg.last_event_id();
      since = reg.events_since(sent);
      frames = registry::sse_snapshot(sent, reg.to_json());
    }
    for (const auto& e : since.events) {
      frames += registry::to_sse(e);
      sent = e.id;
    }
    ex.set_response_started();
    ex.batch().clear();
    ex.batch().add(h);
    ex.batch().add(frames);
    bool ok = true;
    SB_FLUSH(ex, ok);
    using Timer =
        asio::basic_waitable_timer<std::chrono::steady_clock,
                                   asio::wait_traits<std::chrono::steady_clock>, http::Executor>;
    Timer timer(worker_.context().get_executor());
    int idle_ticks = 0;
    while (ok && !worker_.draining()) {
      timer.expires_after(std::chrono::milliseconds(100));
      co_await timer.async_wait(kUse);
      frames.clear();
      if (reg.last_event_id() != sent) {
        since = reg.events_since(sent);
        if (since.too_old) {  // fell behind the bounded log: start over from a snapshot
          sent = reg.last_event_id();
          since = reg.events_since(sent);
          frames = registry::sse_snapshot(sent, reg.to_json());
        }
        for (const auto& e : since.events) {
          frames += registry::to_sse(e);
          sent = e.id;
        }
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
    const ApiResponse r =
        handle_api(gw_, ex.head().method, ex.info().path, body, ex.correlation_id());
    prepare_response(ex, out, r.status, r.content_type, r.body, r.extra_fields);
    co_await send_scratch(ex);
  }

  /// Takes the registry's new snapshot when there is one: one atomic load per request.
  void refresh_if_changed() {
    if (gw_.registry().version() != version_) refresh();
  }

  void refresh() {
    auto snap = gw_.registry().snapshot();
    version_ = snap->version;
    std::map<std::string, std::shared_ptr<Service>, std::less<>> services;
    std::unordered_map<std::string, std::shared_ptr<Instance>> instances;
    for (const auto& rs : snap->services) {
      auto svc = std::make_shared<Service>(Service{snap, &rs.config, {}, worker_.index()});
      // Which instances take traffic: healthy and degraded ones, or all of them when fewer
      // than panic_threshold percent do (better a failing answer than none).
      std::size_t usable = 0, healthy = 0;
      for (const auto& ri : rs.instances) {
        usable += ri.takes_traffic;
        healthy += ri.takes_traffic && ri.state != registry::InstanceState::kDegraded;
      }
      const bool panic = !rs.instances.empty() && rs.config.panic_threshold > 0 &&
                         usable * 100 < rs.config.panic_threshold * rs.instances.size();
      const bool degraded_full = healthy * 2 < usable;
      for (const auto& ri : rs.instances) {
        if (!ri.takes_traffic && !panic) continue;  // failing its checks, or not yet checked
        const bool degraded = ri.state == registry::InstanceState::kDegraded;
        const int w = static_cast<int>(ri.config.weight) * (degraded && !degraded_full ? 1 : 4);
        svc->weights.push_back(w);
        svc->current.push_back(0);
        svc->total += w;
        // Same service, id and URL: the same upstream, so keep its pool.
        std::string key = rs.name + '/' + ri.id + ' ' + ri.config.url.text;
        auto it = instances_.find(key);
        std::shared_ptr<Instance> inst;
        if (it != instances_.end()) {
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
              ri.config.url.authority(), ri.uid, ri.in_flight});
        }
        svc->instances.push_back(inst);
        instances.emplace(std::move(key), std::move(inst));
      }
      for (int w : svc->weights) svc->weighted |= w != svc->weights.front();
      services.emplace(rs.name, std::move(svc));
    }
    services_ = std::move(services);
    instances_ = std::move(instances);  // pools of removed instances close once idle
  }

  /// Decides what to do with a request: returns the service and instance to forward to, or
  /// nullptr with the answer prepared in scratch.
  Service* route(Exchange& ex, Outcome& out, Instance*& inst) {
    const auto& info = ex.info();
    if (is_admin_path(info.path)) {
      prepare_admin(gw_, ex, out, worker_.now());
      return nullptr;
    }
    if (ex.listener() == http::ListenerKind::kAdmin) {
      prepare_problem(ex, out, 404, "not-found",
                      "the admin listener serves /health, /health/live and /health/ready");
      return nullptr;
    }
    const RouteMatch m = gw_.router().match(info.host, info.path);
    if (m.kind == RouteMatch::Kind::kNoRoute) {
      prepare_problem(ex, out, 404, "no-route",
                      "no route matches this path; use /svc/<service>/... or a routes entry");
      return nullptr;
    }
    // The router knows the configured services; the registry also has those registered
    // through the API.
    refresh_if_changed();
    const auto it = services_.find(m.service_name);
    if (it == services_.end()) {
      prepare_problem(ex, out, 404, "unknown-service",
                      "no service named \"" + std::string(m.service_name) + "\"");
      return nullptr;
    }
    Service& svc = *it->second;
    out.service = it->second;
    if (svc.instances.empty()) {
      prepare_problem(ex, out, 503, "no-instance",
                      "service \"" + svc.config->name + "\" has no instance to send to",
                      "Retry-After: 1\r\n");
      return nullptr;
    }
    out.instance = svc.instances[svc.pick()];
    inst = out.instance.get();
    prepare_upstream_head(ex, m, svc, *inst);
    return &svc;
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

  Task<void> forward(Exchange& ex, Outcome& out, Service& svc, Instance& inst) {
    for (bool first = true;; first = false) {
      std::unique_ptr<http::UpstreamConnection> conn;
      if (first) conn = inst.pool->take_idle();
      if (!conn && !co_await connect(ex, out, svc, inst, conn)) {
        co_await send_scratch(ex);
        co_return;
      }
      const Attempt a = co_await attempt(ex, out, svc, inst, *conn, first);
      if (a == Attempt::kResponse) {
        co_await relay(ex, out, svc, inst, std::move(conn));
        co_return;
      }
      inst.pool->discard(std::move(conn));
      if (a == Attempt::kAnswered) {
        co_await send_scratch(ex);
        co_return;
      }
      ex.rewind_body();  // kRetry: once, on a fresh connection
    }
  }

  /// A new connection into `conn`; false with the answer prepared when that failed.
  static Task<bool> connect(Exchange& ex, Outcome& out, const Service& svc, Instance& inst,
                            std::unique_ptr<http::UpstreamConnection>& conn) {
    auto lease = co_await inst.pool->connect(ex);
    if (!lease.conn) {
      prepare_acquire_failure(ex, out, svc, inst, lease);
      co_return false;
    }
    conn = std::move(lease.conn);
    co_return true;
  }

  /// Sends the request on `conn` and reads the response head.
  Task<Attempt> attempt(Exchange& ex, Outcome& out, const Service& svc, const Instance& inst,
                        http::UpstreamConnection& conn, bool first) {
    const bool chunked = ex.info().framing == Framing::kChunked;
    http::WriteBatch& batch = ex.batch();
    batch.clear();
    batch.add(ex.scratch());
    bool sent = true;
    for (;;) {
      if (!ex.body_done()) {
        // Buffered body bytes come back without I/O, so a small body leaves with the head.
        const http::BodyPiece piece = co_await ex.read_body();
        if (piece.error != BodyError::kNone) {
          prepare_body_error(ex, out, piece.error);
          co_return Attempt::kAnswered;
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
        ex.arm(conn.socket(), worker_.now() + svc.config->timeouts.response,
               http::TimeoutKind::kUpstreamResponse);
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
    while (sent) {
      if (conn.len > 0) {
        const auto pr = http::parse_response_head(
            conn.buf(), conn.len, ex.limits().max_response_header_bytes, scan, conn.head());
        if (pr.status == http::ParseStatus::kError) {
          prepare_bad_response(ex, out, svc, inst, http::describe(pr.error));
          co_return Attempt::kAnswered;
        }
        if (pr.status == http::ParseStatus::kComplete) {
          const int status = conn.head().status;
          if (status >= 200 || status == 101) co_return Attempt::kResponse;
          // An interim response (100, 103) is not relayed; the final one follows.
          const std::size_t rest = conn.len - conn.head().head_size;
          std::memmove(conn.buf(), conn.buf() + conn.head().head_size, rest);
          conn.len = rest;
          scan = 0;
          continue;
        }
      }
      ex.arm(conn.socket(), worker_.now() + svc.config->timeouts.response,
             http::TimeoutKind::kUpstreamResponse);
      auto [ec, n] = co_await conn.read_some(conn.buf() + conn.len,
                                             http::UpstreamConnection::kBufferSize - conn.len);
      ex.disarm();
      if (ec || n == 0) break;
      conn.len += n;
    }
    // No complete answer.
    if (ex.fired() == http::TimeoutKind::kUpstreamResponse) {
      prepare_upstream_timeout(ex, out, svc, inst);
      co_return Attempt::kAnswered;
    }
    // A kept-alive connection the upstream closed meanwhile fails before any byte of an
    // answer: resend once on a new connection when the body can be replayed.
    if (conn.reused && conn.len == 0 && first && ex.body_replayable()) co_return Attempt::kRetry;
    prepare_upstream_reset(ex, out, svc, inst);
    co_return Attempt::kAnswered;
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

  Task<void> relay(Exchange& ex, Outcome& out, Service& svc, Instance& inst,
                   std::unique_ptr<http::UpstreamConnection> conn) {
    http::ResponseInfo ri;
    const http::ResponseError re = http::analyze_response(conn->head(), ex.info().method, ri);
    if (re != http::ResponseError::kNone) {
      inst.pool->discard(std::move(conn));
      prepare_bad_response(ex, out, svc, inst, http::describe(re));
      co_await send_scratch(ex);
      co_return;
    }
    out.status = conn->head().status;
    const bool rechunk = prepare_client_head(ex, conn->head(), ri);
    ex.set_response_started();
    ex.batch().clear();
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
    if (!ok) {
      // The status is out: the only honest signal left is to cut the client connection.
      SB_REQ_LOG(warn, ex.correlation_id(), "response from {} ({}) cut mid-body", svc.config->name,
                 inst.config.url.text);
      inst.pool->discard(std::move(conn));
      ex.abort();
      co_return;
    }
    if (reusable && clean_end)
      inst.pool->release(std::move(conn), worker_.now());
    else
      inst.pool->discard(std::move(conn));
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
};

}  // namespace

std::unique_ptr<http::Handler> make_proxy_handler(Gateway& gateway, http::Worker& worker) {
  return std::make_unique<ProxyHandler>(gateway, worker);
}

}  // namespace sb::gateway
