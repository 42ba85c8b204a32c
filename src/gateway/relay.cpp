#include "gateway/relay.hpp"

#include "core/logging.hpp"
#include "gateway/flush.hpp"

namespace sb::gateway {

using http::Exchange;
using http::Framing;
using http::Task;
namespace asio = http::asio;

namespace {

/// How a read of more response body ended.
enum class Fill : std::uint8_t {
  kData,  // bytes came
  kEnd,   // the upstream closed cleanly (TCP FIN, or TLS close_notify)
  kCut,   // a reset, an error, a timeout, or TLS without close_notify (truncation)
};

/// Reads more from the upstream after moving [keep_from, len) to the front.
Task<Fill> refill(Exchange& ex, http::UpstreamConnection& conn, std::size_t keep_from,
                  core::SteadyTime now, core::Millis timeout) {
  const std::size_t rest = conn.len - keep_from;
  if (rest > 0 && keep_from > 0) std::memmove(conn.buf(), conn.buf() + keep_from, rest);
  conn.len = rest;
  ex.arm(conn.socket(), now + timeout, http::TimeoutKind::kUpstreamResponse);
  auto [ec, n] = co_await conn.read_some(conn.buf() + conn.len,
                                         http::UpstreamConnection::kBufferSize - conn.len);
  ex.disarm();
  if (ec == asio::error::eof) co_return Fill::kEnd;
  if (ec) co_return Fill::kCut;
  conn.len += n;
  co_return n > 0 ? Fill::kData : Fill::kEnd;
}

Task<bool> relay_chunked(http::Worker& worker, Exchange& ex, http::UpstreamConnection& conn,
                         std::size_t pos, bool rechunk, const Service& svc, bool& clean_end);
Task<bool> relay_until_close(http::Worker& worker, Exchange& ex, http::UpstreamConnection& conn,
                             std::size_t pos, bool rechunk, const Service& svc);

}  // namespace

/// True when the response's body is all in the buffer already: a Content-Length body that
/// came whole with its head.
bool whole_in_buffer(http::UpstreamConnection& conn, const http::ResponseInfo& ri) {
  return ri.framing == Framing::kLength && conn.len - conn.head().head_size >= ri.content_length;
}

/// The client's response head into scratch2 (the caller adds it to the batch); returns
/// whether the body is to be rechunked.
bool start_relay(Exchange& ex, RequestOutcome& out, http::UpstreamConnection& conn,
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
               std::unique_ptr<http::UpstreamConnection> conn, bool ok, bool reusable,
               core::SteadyTime now) {
  if (!ok) {
    SB_REQ_LOG(warn, ex.correlation_id(), "response from {} ({}) cut mid-body", svc.config->name,
               inst.config.url.text);
    inst.pool->discard(std::move(conn));
    ex.cut();  // a reset, so that not even a close-delimited body looks whole
    return;
  }
  if (reusable)
    inst.pool->release(std::move(conn), now);
  else
    inst.pool->discard(std::move(conn));
}

Task<void> relay(http::Worker& worker, Exchange& ex, RequestOutcome& out, Service& svc,
                 Instance& inst, std::unique_ptr<http::UpstreamConnection> conn,
                 const http::ResponseInfo& ri) {
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
        if (co_await refill(ex, *conn, conn->len, worker.now(), svc.config->timeouts.response) != Fill::kData) {
          ok = false;
          break;
        }
        pos = 0;
      }
      break;
    case Framing::kChunked:
      ok = co_await relay_chunked(worker, ex, *conn, pos, rechunk, svc, clean_end);
      break;
    case Framing::kUntilClose:
      ok = co_await relay_until_close(worker, ex, *conn, pos, rechunk, svc);
      clean_end = false;
      break;
  }
  end_relay(ex, svc, inst, std::move(conn), ok, reusable && clean_end, worker.now());
}

namespace {

Task<bool> relay_chunked(http::Worker& worker, Exchange& ex, http::UpstreamConnection& conn,
                         std::size_t pos,
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
        if (co_await refill(ex, conn, pos, worker.now(), svc.config->timeouts.response) != Fill::kData)
          co_return false;
        pos = 0;
        break;
      }
    }
  }
}

Task<bool> relay_until_close(http::Worker& worker, Exchange& ex, http::UpstreamConnection& conn,
                             std::size_t pos,
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
    const Fill fill = co_await refill(ex, conn, conn.len, worker.now(), svc.config->timeouts.response);
    if (fill == Fill::kCut) co_return false;  // not the end: the client must see a cut
    if (fill == Fill::kEnd) break;            // the upstream closed: the body's end

    pos = 0;
  }
  if (rechunk) batch.add("0\r\n\r\n");
  bool ok = true;
  SB_FLUSH(ex, ok);
  co_return ok;
}

}  // namespace

}  // namespace sb::gateway
