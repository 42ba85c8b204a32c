#include "gateway/relay.hpp"

#include "core/logging.hpp"
#include "gateway/flush.hpp"

namespace sb::gateway {

using http::Exchange;
using http::Framing;
using http::Task;
namespace asio = http::asio;

namespace {

/// The upstream connection as relay_body()'s source: each read armed with the service's
/// response timeout on the exchange's deadline.
struct UpstreamSource {
  Exchange* ex;
  http::UpstreamConnection* conn;
  http::Worker* worker;
  core::Millis timeout;

  char* buf() { return conn->buf(); }
  std::size_t& len() { return conn->len; }
  static constexpr std::size_t capacity() { return http::UpstreamConnection::kBufferSize; }
  auto read_some(char* p, std::size_t n) {
    ex->arm(conn->socket(), worker->now() + timeout, http::TimeoutKind::kUpstreamResponse);
    return conn->read_some(p, n);
  }
  void read_done() { ex->disarm(); }
};
static_assert(RelaySource<UpstreamSource>);
static_assert(RelaySink<Exchange>);

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

BodyFramer::Step BodyFramer::take(const char* buf, std::size_t len, std::size_t& pos,
                                  http::WriteBatch& batch) {
  switch (framing_) {
    case Framing::kNone:
      return Step::kDone;
    case Framing::kLength: {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, len - pos));
      batch.add(std::string_view(buf + pos, take));
      pos += take;
      left_ -= take;
      return left_ == 0 ? Step::kDone : Step::kNeedMore;
    }
    case Framing::kUntilClose: {
      const std::string_view data(buf + pos, len - pos);
      if (rechunk_)
        batch.add_chunk(data);
      else
        batch.add(data);
      pos = len;
      return Step::kNeedMore;
    }
    case Framing::kChunked:
      for (;;) {
        const auto step = chunked_.step(buf + pos, len - pos);
        pos += step.consumed;
        switch (step.status) {
          case http::ChunkedDecoder::Status::kData:
            if (rechunk_)
              batch.add_chunk(step.data);
            else
              batch.add(step.data);
            if (batch.full()) return Step::kBatchFull;
            break;
          case http::ChunkedDecoder::Status::kDone:
            if (rechunk_) batch.add("0\r\n\r\n");
            return Step::kDone;
          case http::ChunkedDecoder::Status::kError:
            return Step::kMalformed;
          case http::ChunkedDecoder::Status::kNeedMore:
            return Step::kNeedMore;
        }
      }
  }
  return Step::kMalformed;  // not reached: every framing returns above
}

Task<void> relay(http::Worker& worker, Exchange& ex, RequestOutcome& out, Service& svc,
                 Instance& inst, std::unique_ptr<http::UpstreamConnection> conn,
                 const http::ResponseInfo& ri) {
  // Not a coroutine itself: the relay is relay_body()'s frame alone, and the head is ready
  // in the batch when the caller awaits it.
  const bool rechunk = start_relay(ex, out, *conn, ri);
  ex.batch().add(ex.scratch2());
  const std::size_t pos = conn->head().head_size;  // the first body byte in conn->buf()
  UpstreamSource src{&ex, conn.get(), &worker, svc.config->timeouts.response};
  return relay_body(src, ex, BodyFramer(ri.framing, ri.content_length, rechunk), pos,
                    [&worker, &ex, &svc, &inst, keep_alive = ri.keep_alive,
                     conn = std::move(conn)](RelayResult r) mutable {
                      if (r.end == RelayEnd::kMalformed)
                        SB_REQ_LOG(warn, ex.correlation_id(),
                                   "upstream {} sent a malformed chunked body", svc.config->name);
                      end_relay(ex, svc, inst, std::move(conn), r.end == RelayEnd::kComplete,
                                keep_alive && r.clean_end, worker.now());
                    });
}

}  // namespace sb::gateway
