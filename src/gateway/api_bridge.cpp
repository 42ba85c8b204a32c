#include "gateway/api_bridge.hpp"

#include <optional>
#include <string>

#include "core/logging.hpp"
#include "gateway/api.hpp"
#include "gateway/flush.hpp"
#include "gateway/gateway.hpp"
#include "gateway/run_on.hpp"
#include "http/problem.hpp"
#include "http/server.hpp"
#include "registry/events.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {

using http::Exchange;
using http::Framing;
using http::kUse;
using http::Task;
namespace asio = http::asio;
using BodyError = http::BodyPiece::Error;

namespace {

/// Appends the SSE frames of the events after `sent` to `frames` and advances `sent`. A new
/// stream (`fresh`), or one whose events the bounded log no longer holds, gets a `snapshot`
/// event holding the whole registry first, then what follows it.
void append_events(registry::Registry& reg, bool fresh, std::uint64_t& sent, std::string& frames) {
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
Task<void> stream_events(Gateway& gw, http::Worker& worker, Exchange& ex, RequestOutcome& out) {
  auto& reg = gw.registry();
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
  http::Timer timer(worker.context().get_executor());
  int idle_ticks = 0;
  while (ok && !worker.draining()) {
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

}  // namespace

/// The registration API: reads the (small) body, then answers from the registry.
Task<void> answer_api(Gateway& gw, http::Worker& worker, Exchange& ex, RequestOutcome& out) {
  // Listener, token and client address are checked before the body is read.
  if (auto refused = check_api_access(gw, ex)) {
    prepare_response(ex, out, refused->status, refused->content_type, refused->body,
                     refused->extra_fields);
    co_await send_scratch(ex);
    co_return;
  }
  if (ex.info().path == "/api/services/events" && ex.head().method == "GET") {
    co_await stream_events(gw, worker, ex, out);
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
  auto call =
      run_on(gw.registry_writer(), worker,
             [&gw = gw, method = std::string(ex.head().method), path = std::string(ex.info().path),
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

}  // namespace sb::gateway
