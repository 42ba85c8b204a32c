#include "gateway/upstream_exchange.hpp"

#include <algorithm>
#include <cstring>

#include "http/message.hpp"
#include "resilience/retry.hpp"

namespace sb::gateway {
namespace {

using http::Framing;
using http::UpstreamConnection;
using BodyError = http::BodyPiece::Error;

/// Drops an interim response head (100, 103) from the connection's buffer: it is not
/// relayed; the final response follows it.
void drop_interim(UpstreamConnection& conn) {
  const std::size_t rest = conn.len - conn.head().head_size;
  std::memmove(conn.buf(), conn.buf() + conn.head().head_size, rest);
  conn.len = rest;
}

}  // namespace

AttemptEnd Try::end() const {
  AttemptEnd e{kind, 0, std::nullopt};
  if (kind != AttemptKind::kResponse) return e;
  const http::ResponseHead& h = conn->head();
  e.status = h.status;
  if (h.status == 429 || h.status == 503) {
    for (std::size_t f = 0; f < h.field_count; ++f) {
      if (!http::iequals(h.fields[f].name, "retry-after")) continue;
      e.retry_after = resilience::parse_retry_after(h.fields[f].value);
      break;
    }
  }
  return e;
}

http::Task<AttemptKind> exchange(http::Exchange& ex, RequestOutcome& out, UpstreamConnection& conn,
                                 const ExchangeRequest& req, AttemptWatch& watch,
                                 core::Clock& clock, const char*& why, http::ResponseInfo& ri) {
  bool sent = true;
  bool waited = false;  // whether this coroutine gave way while sending (see below)
  // Each wait for the upstream to take bytes is bounded by the per-try timeout from when
  // it began (a slow client body is not the upstream's delay).
  core::SteadyTime now = req.started;
  const auto bound = [&] { return std::min(now + req.per_try, req.deadline); };
  if (!req.with_body) {
    // The head alone, one buffer (a hedge's GET: the client exchange's batch is the
    // primary attempt's).
    const http::asio::const_buffer head(req.head.data(), req.head.size());
    std::size_t done = 0;
    bool failed = false;
    done = conn.write_now(http::Buffers(&head, 1), failed);
    sent = !failed;
    while (sent && done < req.head.size()) {
      waited = true;
      const http::asio::const_buffer rest = http::asio::buffer(head + done);
      watch.arm(conn.socket(), bound());
      auto [ec, n] = co_await conn.write_some(http::Buffers(&rest, 1));
      watch.disarm();
      if (ec) sent = false;
      done += n;
    }
  } else {
    const bool chunked = ex.info().framing == Framing::kChunked;
    http::WriteBatch& batch = ex.batch();
    batch.clear();
    batch.add(req.head);
    for (;;) {
      if (!ex.body_done()) {
        // Buffered body bytes come back without I/O, so a small body leaves with the head.
        waited = true;
        const http::BodyPiece piece = co_await ex.read_body();
        if (piece.error != BodyError::kNone) {
          // The client's body failed: its answer is prepared; the upstream connection is
          // dropped by the caller without a last chunk, so the upstream sees a cut request.
          prepare_body_error(ex, out, piece.error);
          co_return AttemptKind::kClient;
        }
        now = clock.steady_now();
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
        watch.arm(conn.socket(), bound());
        auto [ec, n] = co_await conn.write_some(batch.buffers());
        if (ec) {
          sent = false;
          break;
        }
        batch.consume(n);
      }
      watch.disarm();
      batch.clear();
      if (!sent) break;
      if (ex.body_done()) break;
    }
  }
  // The response head must come within the per-try timeout of the request's end.
  if (waited) now = clock.steady_now();
  const core::SteadyTime until = bound();

  std::size_t scan = 0;
  // When the whole request went out at once, from here, the first read waits for epoll:
  // the answer cannot be there yet, and its arrival will be reported. Not after giving
  // way while sending: an early answer (say a 401 before the body) may have come and been
  // reported meanwhile, and waiting for another report would wait for nothing.
  auto start = waited ? UpstreamConnection::ReadStart::kTryNow
                      : UpstreamConnection::ReadStart::kWaitForEpoll;
  while (sent) {
    if (conn.len > 0) {
      const auto pr = http::parse_response_head(
          conn.buf(), conn.len, ex.limits().max_response_header_bytes, scan, conn.head());
      if (pr.status == http::ParseStatus::kError) {
        why = http::describe(pr.error);
        co_return AttemptKind::kBadResponse;
      }
      if (pr.status == http::ParseStatus::kComplete) {
        const int status = conn.head().status;
        if (status >= 200 || status == 101) {
          const http::ResponseError re = http::analyze_response(conn.head(), ex.info().method, ri);
          if (re != http::ResponseError::kNone) {
            why = http::describe(re);
            co_return AttemptKind::kBadResponse;
          }
          // A body that fits the buffer is read whole before anything goes to the client:
          // an instance dying between its head and its body then fails the attempt (which
          // may be retried) instead of cutting the client's response. Usually the body came
          // with the head and this reads nothing.
          const std::uint64_t whole = conn.head().head_size + ri.content_length;
          if (ri.framing == Framing::kLength && whole <= UpstreamConnection::kBufferSize) {
            while (conn.len < whole) {
              watch.arm(conn.socket(), until);
              auto [ec, n] = co_await conn.read_some(conn.buf() + conn.len,
                                                     UpstreamConnection::kBufferSize - conn.len);
              watch.disarm();
              if (ec || n == 0)
                co_return watch.fired() ? AttemptKind::kTimeout : AttemptKind::kReset;
              conn.len += n;
            }
          }
          co_return AttemptKind::kResponse;
        }
        drop_interim(conn);
        scan = 0;
        continue;
      }
    }
    watch.arm(conn.socket(), until);
    auto [ec, n] = co_await conn.read_some(conn.buf() + conn.len,
                                           UpstreamConnection::kBufferSize - conn.len, start);
    start = UpstreamConnection::ReadStart::kTryNow;
    watch.disarm();
    if (ec || n == 0) break;
    conn.len += n;
  }
  co_return watch.fired() ? AttemptKind::kTimeout : AttemptKind::kReset;
}

}  // namespace sb::gateway
