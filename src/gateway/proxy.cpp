#include "gateway/proxy.hpp"

#include <array>

#include "core/logging.hpp"
#include "gateway/access_log.hpp"
#include "gateway/admin.hpp"
#include "gateway/gateway.hpp"
#include "http/exchange.hpp"
#include "http/problem.hpp"
#include "http/server.hpp"
#include "http/upstream.hpp"

namespace sb::gateway {
namespace {

using http::Buffers;
using http::Exchange;
using http::Framing;
using http::Task;
namespace asio = http::asio;
using BodyError = http::BodyPiece::Error;

struct Instance {
  const core::InstanceConfig* config;
  std::unique_ptr<http::UpstreamPool> pool;
  std::string authority;  // the Host the upstream gets
};

struct Service {
  const core::ServiceConfig* config;
  std::vector<Instance> instances;
  std::size_t next = 0;  // round robin (the resilience issue replaces it)
};

/// What the access log says about one exchange.
struct Outcome {
  int status = 0;
  std::string_view service;
  std::string_view instance;
};

/// Gathers the pieces of one write (head, chunk-size lines, data, CRLFs) so that each
/// read from the upstream costs one writev to the client. Fixed storage: no allocation.
class WriteBatch {
 public:
  static constexpr std::size_t kMaxBuffers = 48;
  void add(std::string_view s) {
    if (!s.empty()) bufs_[n_++] = asio::const_buffer(s.data(), s.size());
  }
  void add_chunk(std::string_view data) {
    if (data.empty()) return;
    char* line = lines_[lines_used_++].data();
    const std::size_t len = http::format_chunk_size(data.size(), line);
    add({line, len});
    add(data);
    add("\r\n");
  }
  bool full() const { return n_ + 3 > kMaxBuffers || lines_used_ == lines_.size(); }
  bool empty() const { return n_ == 0; }
  Buffers buffers() const { return Buffers(bufs_.data(), n_); }
  void clear() {
    n_ = 0;
    lines_used_ = 0;
  }

 private:
  std::array<asio::const_buffer, kMaxBuffers> bufs_;
  std::size_t n_ = 0;
  std::array<std::array<char, 20>, 15> lines_;
  std::size_t lines_used_ = 0;
};

class ProxyHandler final : public http::Handler {
 public:
  ProxyHandler(Gateway& gw, http::Worker& worker)
      : gw_(gw),
        worker_(worker),
        log_(gw.config().logging.format, gw.config().logging.access_log) {
    const auto& services = gw.config().services;
    services_.reserve(services.size());
    for (std::size_t i = 0; i < services.size(); ++i) {
      const auto& sc = services[i];
      Service s{&sc, {}, worker.index()};  // workers start round robin at different places
      for (const auto& ic : sc.instances) {
        http::UpstreamTarget target{ic.url.host,        ic.url.port,     ic.url.tls,
                                    sc.tls.server_name, sc.tls.verify, gw.tls_context(i)};
        s.instances.push_back(Instance{
            &ic,
            std::make_unique<http::UpstreamPool>(worker.context().get_executor(), target, sc.pool,
                                                 sc.timeouts.connect),
            ic.url.authority()});
      }
      services_.push_back(std::move(s));
    }
  }

  ~ProxyHandler() override { log_.flush(gw_.clock().wall_now()); }

  Task<void> handle(Exchange& ex) override {
    const auto start = gw_.clock().steady_now();
    Outcome out;
    const auto& info = ex.info();
    if (is_admin_path(info.path)) {
      co_await answer_admin(ex, out);
    } else if (ex.listener() == http::ListenerKind::kAdmin) {
      co_await answer_problem(ex, out, 404, "not-found",
                              "the admin listener serves /health, /health/live and /health/ready");
    } else {
      co_await proxy(ex, out);
    }
    if (log_.enabled()) {
      const auto end = gw_.clock().steady_now();
      log_.record(AccessRecord{
          ex.head().method, ex.head().target, out.status,
          std::chrono::duration<double, std::milli>(end - start).count(), out.service,
          out.instance, ex.bytes_sent(), ex.correlation_id(), ex.peer_address()});
    }
  }

  void on_tick(core::SteadyTime now) override {
    for (auto& s : services_)
      for (auto& i : s.instances) i.pool->sweep(now);
    log_.flush(gw_.clock().wall_now());
  }

 private:
  Task<void> answer_admin(Exchange& ex, Outcome& out) {
    AdminResponse r = handle_admin(gw_, ex.head().method, ex.info().path, worker_.now());
    out.status = r.status;
    const bool keep = ex.keep_alive();
    std::string& head = ex.scratch();
    http::HeadWriter w(head);
    w.status_line(r.status, http::reason_phrase(r.status))
        .field("Content-Type", "application/json")
        .field("Content-Length", r.body.size())
        .field("Cache-Control", "no-store")
        .field("X-Correlation-ID", ex.correlation_id());
    if (!keep) w.field("Connection", "close");
    else if (ex.head().version_minor == 0) w.field("Connection", "keep-alive");
    w.raw(r.extra_fields);
    w.end();
    const bool head_only = ex.info().method == http::Method::kHead;
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head),
                                           asio::buffer(r.body.data(), head_only ? 0 : r.body.size())};
    ex.set_response_started();
    if (co_await ex.write(bufs)) ex.abort();
  }

  Task<void> answer_problem(Exchange& ex, Outcome& out, int status, std::string_view slug,
                            std::string_view detail, std::string_view extra = {}) {
    out.status = status;
    if (ex.response_started()) {  // too late for a status: cut the response
      ex.abort();
      co_return;
    }
    // Unread request body: answer, then close rather than read it all.
    if (!ex.body_done()) ex.set_close();
    const bool keep = ex.keep_alive();
    http::write_problem(ex.scratch(), status, slug, detail, ex.correlation_id(), !keep, extra);
    ex.set_response_started();
    std::array<asio::const_buffer, 1> bufs{asio::buffer(ex.scratch())};
    if (co_await ex.write(bufs)) ex.abort();
  }

  Task<void> proxy(Exchange& ex, Outcome& out) {
    const auto& info = ex.info();
    const RouteMatch m = gw_.router().match(info.host, info.path);
    if (m.kind == RouteMatch::Kind::kUnknownService) {
      co_await answer_problem(ex, out, 404, "unknown-service",
                              "no service named \"" + std::string(m.service_name) + "\"");
      co_return;
    }
    if (m.kind == RouteMatch::Kind::kNoRoute) {
      co_await answer_problem(ex, out, 404, "no-route",
                              "no route matches this path; use /svc/<service>/... or a routes entry");
      co_return;
    }
    Service& svc = services_[m.service];
    out.service = svc.config->name;
    if (svc.instances.empty()) {
      co_await answer_problem(ex, out, 503, "no-instance",
                              "service \"" + svc.config->name + "\" has no instance to send to",
                              "Retry-After: 1\r\n");
      co_return;
    }
    Instance& inst = svc.instances[svc.next++ % svc.instances.size()];
    out.instance = inst.config->url.text;
    build_upstream_head(ex, m, svc, inst);
    co_await forward(ex, out, svc, inst);
  }

  void build_upstream_head(Exchange& ex, const RouteMatch& m, const Service& svc,
                           const Instance& inst) {
    const auto& head = ex.head();
    const auto& info = ex.info();
    std::string& h = ex.scratch();
    http::HeadWriter w(h);
    h.append(head.method).push_back(' ');
    h.append(inst.config->url.base_path);
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

  // Sends the request (head and body) on `conn`. Returns false on an upstream write error;
  // `client_error` is set when the client's body failed instead.
  Task<bool> send_request(Exchange& ex, http::UpstreamConnection& conn, const Service& svc,
                          BodyError& client_error) {
    const bool chunked = ex.info().framing == Framing::kChunked;
    WriteBatch batch;
    batch.add(ex.scratch());
    for (;;) {
      if (!ex.body_done()) {
        // Body bytes already buffered come back without I/O, so a small body leaves in
        // the same write as the head.
        const http::BodyPiece piece = co_await ex.read_body();
        if (piece.error != BodyError::kNone) {
          client_error = piece.error;
          co_return true;
        }
        if (chunked) {
          batch.add_chunk(piece.data);
          if (ex.body_done()) batch.add("0\r\n\r\n");
        } else {
          batch.add(piece.data);
        }
      }
      if (!batch.empty()) {
        ex.arm(conn.socket(), worker_.now() + svc.config->timeouts.response,
               http::TimeoutKind::kUpstreamResponse);
        const http::error_code ec = co_await conn.write(batch.buffers());
        ex.disarm();
        batch.clear();
        if (ec) co_return false;
      }
      if (ex.body_done()) co_return true;
    }
  }

  Task<void> forward(Exchange& ex, Outcome& out, Service& svc, Instance& inst) {
    const auto& timeouts = svc.config->timeouts;
    for (int attempt = 0;; ++attempt) {
      auto lease = co_await inst.pool->acquire(ex, attempt > 0);
      if (!lease.conn) {
        const bool timeout = lease.error == http::AcquireError::kTimeout;
        const int status = timeout ? 504 : lease.error == http::AcquireError::kLimit ? 503 : 502;
        SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}): {}: {}", svc.config->name,
                   inst.config->url.text, http::describe(lease.error), lease.detail);
        co_await answer_problem(ex, out, status, timeout ? "upstream-timeout" : "upstream-unavailable",
                                std::string("instance of \"") + svc.config->name + "\": " +
                                    http::describe(lease.error) + ": " + lease.detail);
        co_return;
      }
      auto conn = std::move(lease.conn);
      const bool reused = conn->reused;
      BodyError client_error = BodyError::kNone;
      bool sent = co_await send_request(ex, *conn, svc, client_error);
      if (client_error != BodyError::kNone) {
        inst.pool->discard(std::move(conn));
        co_await answer_body_error(ex, out, client_error);
        co_return;
      }
      const http::TimeoutKind fired_on_send = ex.fired();
      // Read the response head.
      std::size_t scan = 0;
      http::ParseResult pr{http::ParseStatus::kIncomplete};
      bool upstream_failed = !sent;
      if (sent) {
        for (;;) {
          if (conn->len > 0) {
            pr = http::parse_response_head(conn->buf.get(), conn->len,
                                           ex.limits().max_response_header_bytes, scan, conn->head);
            if (pr.status == http::ParseStatus::kComplete && conn->head.status >= 100 &&
                conn->head.status < 200 && conn->head.status != 101) {
              // Interim response (100, 103): not relayed; the final one follows.
              const std::size_t rest = conn->len - conn->head.head_size;
              std::memmove(conn->buf.get(), conn->buf.get() + conn->head.head_size, rest);
              conn->len = rest;
              scan = 0;
              continue;
            }
            if (pr.status != http::ParseStatus::kIncomplete) break;
          }
          ex.arm(conn->socket(), worker_.now() + timeouts.response,
                 http::TimeoutKind::kUpstreamResponse);
          auto [ec, n] = co_await conn->read_some(conn->buf.get() + conn->len,
                                                  http::UpstreamConnection::kBufferSize - conn->len);
          ex.disarm();
          if (ec || n == 0) {
            upstream_failed = true;
            break;
          }
          conn->len += n;
        }
      }
      const http::TimeoutKind fired = ex.fired() != http::TimeoutKind::kNone ? ex.fired() : fired_on_send;
      if (upstream_failed) {
        // A kept-alive connection the upstream closed meanwhile fails before any byte of
        // an answer: resend once on a new connection when the body can be replayed.
        const bool nothing_back = conn->len == 0;
        inst.pool->discard(std::move(conn));
        if (fired == http::TimeoutKind::kUpstreamResponse) {
          SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) did not answer within {} ms",
                     svc.config->name, inst.config->url.text, timeouts.response.count());
          co_await answer_problem(ex, out, 504, "upstream-timeout",
                                  "instance of \"" + svc.config->name +
                                      "\" did not answer within timeouts.response (" +
                                      std::to_string(timeouts.response.count()) + " ms)");
          co_return;
        }
        if (reused && nothing_back && attempt == 0 && ex.body_replayable()) {
          ex.rewind_body();
          continue;
        }
        SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) closed or reset the connection",
                   svc.config->name, inst.config->url.text);
        co_await answer_problem(ex, out, 502, "upstream-reset",
                                "instance of \"" + svc.config->name +
                                    "\" closed the connection without a complete response");
        co_return;
      }
      if (pr.status == http::ParseStatus::kError) {
        inst.pool->discard(std::move(conn));
        SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) sent a malformed response: {}",
                   svc.config->name, inst.config->url.text, http::describe(pr.error));
        co_await answer_problem(ex, out, 502, "bad-upstream-response",
                                std::string("instance of \"") + svc.config->name +
                                    "\" sent a malformed response: " + http::describe(pr.error));
        co_return;
      }
      co_await relay_response(ex, out, svc, inst, std::move(conn));
      co_return;
    }
  }

  Task<void> answer_body_error(Exchange& ex, Outcome& out, BodyError e) {
    ex.set_close();
    switch (e) {
      case BodyError::kTimeout:
        co_await answer_problem(ex, out, 408, "request-timeout",
                                "request body not received within limits.body_timeout");
        break;
      case BodyError::kTooLarge:
        co_await answer_problem(ex, out, 413, "body-too-large",
                                "request body larger than limits.max_body_bytes (" +
                                    std::to_string(ex.limits().max_body_bytes) + " bytes)");
        break;
      case BodyError::kMalformed:
        co_await answer_problem(ex, out, 400, "bad-request", "malformed chunked request body");
        break;
      default:
        out.status = 499;  // client went away: nobody to answer
        ex.abort();
    }
  }

  Task<void> relay_response(Exchange& ex, Outcome& out, Service& svc, Instance& inst,
                            std::unique_ptr<http::UpstreamConnection> conn) {
    const auto& rh = conn->head;
    http::ResponseInfo ri;
    const http::ResponseError re = http::analyze_response(rh, ex.info().method, ri);
    if (re != http::ResponseError::kNone) {
      inst.pool->discard(std::move(conn));
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) sent a malformed response: {}",
                 svc.config->name, inst.config->url.text, http::describe(re));
      co_await answer_problem(ex, out, 502, "bad-upstream-response",
                              std::string("instance of \"") + svc.config->name +
                                  "\" sent a malformed response: " + http::describe(re));
      co_return;
    }
    out.status = rh.status;
    const bool client_11 = ex.head().version_minor == 1;
    const bool rechunk = (ri.framing == Framing::kChunked || ri.framing == Framing::kUntilClose);
    if (rechunk && !client_11) ex.set_close();  // HTTP/1.0: the end of the body is the close
    const bool keep = ex.keep_alive();

    std::string& h = ex.scratch2();
    http::HeadWriter w(h);
    w.status_line(rh.status, rh.reason);
    for (std::size_t i = 0; i < rh.field_count; ++i)
      if (!ri.drop.test(i)) w.field(rh.fields[i].name, rh.fields[i].value);
    w.field("X-Correlation-ID", ex.correlation_id());
    if (ri.framing == Framing::kLength) w.field("Content-Length", ri.content_length);
    else if (rechunk && client_11) w.field("Transfer-Encoding", "chunked");
    else if (ri.framing == Framing::kNone && ex.info().method != http::Method::kHead &&
             rh.status != 204 && rh.status != 304)
      w.field("Content-Length", std::uint64_t{0});
    if (!keep) w.field("Connection", "close");
    else if (!client_11) w.field("Connection", "keep-alive");
    w.end();

    const auto response_timeout = svc.config->timeouts.response;
    std::size_t pos = rh.head_size;  // next unconsumed byte in conn->buf
    bool upstream_reusable = ri.keep_alive;
    WriteBatch batch;
    batch.add(h);
    ex.set_response_started();

    auto flush = [&]() -> Task<bool> {
      if (batch.empty()) co_return true;
      const http::error_code ec = co_await ex.write(batch.buffers());
      batch.clear();
      co_return !ec;
    };
    // Reads more from the upstream into conn->buf (from the start); 0 on EOF or error.
    auto refill = [&](std::size_t keep_from) -> Task<std::size_t> {
      const std::size_t rest = conn->len - keep_from;
      if (rest > 0 && keep_from > 0) std::memmove(conn->buf.get(), conn->buf.get() + keep_from, rest);
      conn->len = rest;
      pos = 0;
      ex.arm(conn->socket(), worker_.now() + response_timeout, http::TimeoutKind::kUpstreamResponse);
      auto [ec, n] = co_await conn->read_some(conn->buf.get() + conn->len,
                                              http::UpstreamConnection::kBufferSize - conn->len);
      ex.disarm();
      if (ec) co_return 0;
      conn->len += n;
      co_return n;
    };

    bool ok = true;
    switch (ri.framing) {
      case Framing::kNone:
        if (conn->len > pos) upstream_reusable = false;  // bytes after a bodiless response
        ok = co_await flush();
        break;
      case Framing::kLength: {
        std::uint64_t left = ri.content_length;
        for (;;) {
          const std::size_t avail = conn->len - pos;
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, avail));
          batch.add(std::string_view(conn->buf.get() + pos, take));
          pos += take;
          left -= take;
          if (left == 0 && conn->len > pos) upstream_reusable = false;
          if (!(ok = co_await flush())) break;
          if (left == 0) break;
          if (co_await refill(conn->len) == 0) {
            ok = false;
            break;
          }
        }
        break;
      }
      case Framing::kChunked: {
        http::ChunkedDecoder dec;
        for (;;) {
          const auto step = dec.step(conn->buf.get() + pos, conn->len - pos);
          pos += step.consumed;
          if (step.status == http::ChunkedDecoder::Status::kData) {
            if (client_11) batch.add_chunk(step.data);
            else batch.add(step.data);
            if (batch.full() && !(ok = co_await flush())) break;
            continue;
          }
          if (step.status == http::ChunkedDecoder::Status::kDone) {
            if (client_11) batch.add("0\r\n\r\n");
            if (conn->len > pos) upstream_reusable = false;
            ok = co_await flush();
            break;
          }
          if (step.status == http::ChunkedDecoder::Status::kError) {
            ok = false;
            SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} sent a malformed chunked body",
                       svc.config->name);
            break;
          }
          // kNeedMore: send what we have (it points into conn->buf), then read more.
          if (!(ok = co_await flush())) break;
          if (co_await refill(pos) == 0) {
            ok = false;
            break;
          }
        }
        break;
      }
      case Framing::kUntilClose: {
        upstream_reusable = false;
        for (;;) {
          const std::string_view data(conn->buf.get() + pos, conn->len - pos);
          if (client_11) batch.add_chunk(data);
          else batch.add(data);
          pos = conn->len;
          if (!(ok = co_await flush())) break;
          if (co_await refill(conn->len) == 0) {
            if (ex.fired() == http::TimeoutKind::kUpstreamResponse) ok = false;
            break;
          }
        }
        if (ok && client_11) {
          batch.add("0\r\n\r\n");
          ok = co_await flush();
        }
        break;
      }
    }
    if (!ok) {
      // Mid-body failure: the status is out, so the only honest signal is to cut the
      // client connection.
      SB_REQ_LOG(warn, ex.correlation_id(), "response from {} ({}) cut mid-body", svc.config->name,
                 inst.config->url.text);
      inst.pool->discard(std::move(conn));
      ex.abort();
      co_return;
    }
    if (upstream_reusable) inst.pool->release(std::move(conn), worker_.now());
    else inst.pool->discard(std::move(conn));
  }

  Gateway& gw_;
  http::Worker& worker_;
  AccessLog log_;
  std::vector<Service> services_;
};

}  // namespace

std::unique_ptr<http::Handler> make_proxy_handler(Gateway& gateway, http::Worker& worker) {
  return std::make_unique<ProxyHandler>(gateway, worker);
}

}  // namespace sb::gateway
