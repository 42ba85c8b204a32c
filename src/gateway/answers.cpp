#include "gateway/answers.hpp"

#include "core/logging.hpp"
#include "gateway/admin.hpp"
#include "gateway/flush.hpp"
#include "http/problem.hpp"
#include "http/upstream.hpp"

namespace sb::gateway {

using http::Exchange;
using http::Framing;
using BodyError = http::BodyPiece::Error;

/// Prepares a problem answer. Returns false when the response has already begun (then
/// there is nothing to prepare: the connection must be cut).
bool prepare_problem(Exchange& ex, RequestOutcome& out, int status, std::string_view slug,
                     std::string_view detail, std::string_view extra) {
  out.status = status;
  if (ex.response_started()) return false;
  if (!ex.body_done()) ex.set_close();  // answer, then close rather than read the body
  http::write_problem(ex.scratch(), status, slug, detail, ex.correlation_id(), !ex.keep_alive(),
                      extra);
  return true;
}

void prepare_body_error(Exchange& ex, RequestOutcome& out, BodyError e) {
  ex.set_close();
  switch (e) {
    case BodyError::kTimeout:
      prepare_problem(ex, out, 408, "request-timeout", ex.body_timeout_detail());
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
void prepare_failure(Exchange& ex, RequestOutcome& out, const Service& svc, const Instance& inst,
                     const AttemptFailure& t, core::Duration waited) {
  const std::string& name = svc.config->name;
  const std::string& url = inst.config.url.text;
  switch (t.kind) {
    case AttemptKind::kConnectFailed: {
      const bool timeout = t.acquire == http::AcquireError::kTimeout;
      const int status = timeout ? 504 : t.acquire == http::AcquireError::kLimit ? 503 : 502;
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}): {}: {}", name, url,
                 http::describe(t.acquire), t.detail);
      prepare_problem(ex, out, status, timeout ? "upstream-timeout" : "upstream-unavailable",
                      "instance of \"" + name + "\": " + http::describe(t.acquire) + ": " +
                          std::string(t.detail));
      break;
    }
    case AttemptKind::kTimeout: {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) did not answer within {} ms", name,
                 url, ms);
      prepare_problem(ex, out, 504, "upstream-timeout",
                      "instance of \"" + name + "\" did not answer within " + std::to_string(ms) +
                          " ms (timeouts.response, retry.per_try_timeout or the request's "
                          "deadline)");
      break;
    }
    case AttemptKind::kBadResponse:
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) sent a malformed response: {}", name,
                 url, t.why);
      prepare_problem(ex, out, 502, "bad-upstream-response",
                      "instance of \"" + name + "\" sent a malformed response: " + t.why);
      break;
    case AttemptKind::kReset:
      SB_REQ_LOG(warn, ex.correlation_id(), "upstream {} ({}) closed or reset the connection", name,
                 url);
      prepare_problem(
          ex, out, 502, "upstream-reset",
          "instance of \"" + name + "\" closed the connection without a complete response");
      break;
    case AttemptKind::kResponse:
    case AttemptKind::kClient:
      break;  // nothing to prepare
  }
}

/// The route's static fallback answer, marked X-Switchboard-Fallback: static.
void prepare_fallback(Exchange& ex, RequestOutcome& out, const core::FallbackConfig& fb,
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
void prepare_response(Exchange& ex, RequestOutcome& out, int status, std::string_view content_type,
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

void prepare_admin(Gateway& gw, Exchange& ex, RequestOutcome& out, core::SteadyTime now) {
  const AdminResponse r = handle_admin(gw, ex.head().method, ex.info().path, now);
  prepare_response(ex, out, r.status, "application/json", r.body, r.extra_fields);
}

/// The request head for the upstream, into ex.scratch(). A deadline the client sent goes on
/// reduced by the time spent here.
void prepare_upstream_head(Exchange& ex, const RouteMatch& m, const Service& svc,
                           const Instance& inst, const resilience::Deadline& deadline,
                           core::SteadyTime now, http::HeadBuffer& h) {
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
    w.field("X-Request-Timeout-Ms", static_cast<std::uint64_t>(deadline.forward_timeout_ms(now)));
  if (info.has_grpc_timeout) w.field("grpc-timeout", deadline.grpc_timeout_value(now));
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

http::Task<void> send_scratch(Exchange& ex) {
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

}  // namespace sb::gateway
