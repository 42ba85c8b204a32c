// The relays: an upstream response's body to the client by its framing (Content-Length,
// chunked, until close), re-chunked for HTTP/1.1 clients when the upstream's body has no
// length. A cut upstream body (reset, error, timeout, TLS truncation, or a clean close
// before the framing's end) cuts the client's response: no last chunk, and the client
// connection is reset. Internal to the gateway.
//
// The relay is written once, as relay_body(), over a Source (the upstream: a read buffer
// and read_some) and a Sink (the client: a write batch and the writes SB_FLUSH uses). The
// gateway instantiates it with the upstream connection and the exchange; the tests
// (tests/gateway/relay_test.cpp) with a scripted stream that splits and fails every read
// and every write.
#pragma once

#include <concepts>
#include <cstring>
#include <memory>

#include "core/clock.hpp"
#include "gateway/answers.hpp"
#include "gateway/flush.hpp"
#include "gateway/view.hpp"
#include "http/exchange.hpp"
#include "http/parser.hpp"
#include "http/server.hpp"
#include "http/upstream.hpp"
#include "http/write_batch.hpp"

namespace sb::gateway {

/// True when the response's body is all in the buffer already: a Content-Length body that
/// came whole with its head.
bool whole_in_buffer(http::UpstreamConnection& conn, const http::ResponseInfo& ri);

/// The client's response head into scratch2 (the caller adds it to the batch); returns
/// whether the body is to be re-chunked.
bool start_relay(http::Exchange& ex, RequestOutcome& out, http::UpstreamConnection& conn,
                 const http::ResponseInfo& ri);

/// After a relay: the connection goes back to the pool when it is `reusable` (the
/// upstream keeps it and its message ended at the last byte read); a cut relay (`ok`
/// false) cuts the client connection too (the status is out: nothing else can tell).
void end_relay(http::Exchange& ex, const Service& svc, const Instance& inst,
               std::unique_ptr<http::UpstreamConnection> conn, bool ok, bool reusable,
               core::SteadyTime now);

/// Relays the response whose head is in conn's buffer: the head, then the body as its
/// framing says; then end_relay(). One coroutine frame for the whole relay.
http::Task<void> relay(http::Worker& worker, http::Exchange& ex, RequestOutcome& out, Service& svc,
                       Instance& inst, std::unique_ptr<http::UpstreamConnection> conn,
                       const http::ResponseInfo& ri);

/// How a relayed body ended.
enum class RelayEnd : std::uint8_t {
  kComplete,    // the body ended as its framing says, and all of it was written
  kCut,         // the upstream's body broke off: an error, a reset, a timeout, TLS without
                // close_notify, or a clean close before a length or chunked body's end
  kMalformed,   // the upstream's chunked framing is invalid
  kClientGone,  // a write to the client failed
};

struct RelayResult {
  RelayEnd end = RelayEnd::kCut;
  bool clean_end = false;  // kComplete, and the message ended at the last byte read (never
                           // for a close-delimited body): the connection may be reused
};

/// The framing half of a relay, without I/O: moves the body bytes of the upstream's read
/// buffer into the client's write batch as views into that buffer (chunk-size lines and
/// CRLFs added when re-chunking), and says when the body ends.
class BodyFramer {
 public:
  /// `rechunk`: send a chunked or close-delimited body as chunked (an HTTP/1.1 client);
  /// otherwise a chunked body is sent decoded and the close ends it (HTTP/1.0).
  BodyFramer(http::Framing framing, std::uint64_t content_length, bool rechunk)
      : framing_(framing), left_(content_length), rechunk_(rechunk) {}

  enum class Step : std::uint8_t {
    kNeedMore,   // all of buf[pos, len) is taken (or kept: a partial chunk-size line)
    kBatchFull,  // flush the batch, then call again
    kDone,       // the body ended at buf[pos]
    kMalformed,  // invalid chunked framing
  };
  /// Takes what it can of buf[pos, len), advancing `pos`. Bytes of the body that the batch
  /// holds point into `buf`: flush before the buffer changes.
  Step take(const char* buf, std::size_t len, std::size_t& pos, http::WriteBatch& batch);
  /// The upstream closed cleanly. True when that ends the body (close-delimited), with the
  /// last chunk added to the batch when re-chunking; false when it is a cut.
  bool end_on_close(http::WriteBatch& batch) {
    if (framing_ != http::Framing::kUntilClose) return false;
    if (rechunk_) batch.add("0\r\n\r\n");
    return true;
  }

 private:
  http::Framing framing_;
  std::uint64_t left_;  // kLength: body bytes not yet taken
  bool rechunk_;
  http::ChunkedDecoder chunked_;
};

/// The upstream side of relay_body(): a read buffer holding `len()` bytes out of
/// `capacity()`, and `co_await read_some(p, n)` yielding [error_code, bytes] (eof, or 0
/// bytes, is a clean close; any other error a cut), armed with its deadline; read_done()
/// after each read (disarms it).
template <class S>
concept RelaySource = requires(S s, char* p, std::size_t n) {
  { s.buf() } -> std::same_as<char*>;
  { s.len() } -> std::same_as<std::size_t&>;
  { s.capacity() } -> std::convertible_to<std::size_t>;
  s.read_some(p, n);
  s.read_done();
};

/// The client side of relay_body(): what SB_FLUSH uses (http::Exchange is one).
template <class S>
concept RelaySink = requires(S s, http::Buffers b, bool& failed, std::size_t n) {
  { s.batch() } -> std::same_as<http::WriteBatch&>;
  { s.write_now(b, failed) } -> std::same_as<std::size_t>;
  s.write_some(b);
  s.count_sent(n);
};

/// Relays a body from `src` to `sink` as `framer` says, starting with src.buf()[pos,
/// len()) and whatever the sink's batch already holds (the response head), then calls
/// `done(RelayResult)` once. Reads only while the body has not ended, so that nothing of a
/// next message is consumed; a cut, a malformed body or a failed write stops it at once.
/// Source and Done are kept by value in the coroutine frame (the only allocation).
template <RelaySource Source, RelaySink Sink, class Done>
http::Task<void> relay_body(Source src, Sink& sink, BodyFramer framer, std::size_t pos, Done done) {
  http::WriteBatch& batch = sink.batch();
  RelayResult result;
  for (;;) {
    const BodyFramer::Step step = framer.take(src.buf(), src.len(), pos, batch);
    if (step == BodyFramer::Step::kMalformed) {
      batch.clear();
      result.end = RelayEnd::kMalformed;
      break;
    }
    if (!batch.empty()) {
      bool ok = true;
      SB_FLUSH(sink, ok);
      if (!ok) {
        result.end = RelayEnd::kClientGone;
        break;
      }
    }
    if (step == BodyFramer::Step::kDone) {
      result = {RelayEnd::kComplete, pos == src.len()};
      break;
    }
    if (step == BodyFramer::Step::kBatchFull) continue;
    // Read more after the bytes kept (a partial chunk-size line or trailer) move to the
    // front; the batch is empty, so nothing points into the buffer.
    std::size_t& len = src.len();
    const std::size_t rest = len - pos;
    if (rest > 0 && pos > 0) std::memmove(src.buf(), src.buf() + pos, rest);
    len = rest;
    pos = 0;
    // A line that fills the buffer: unreachable with the decoder's line limits and the
    // gateway's buffer; a read of 0 bytes would look like a close.
    if (len >= src.capacity()) {
      result.end = RelayEnd::kMalformed;
      break;
    }
    auto [ec, n] = co_await src.read_some(src.buf() + len, src.capacity() - len);
    src.read_done();
    if (ec && ec != http::asio::error::eof) {
      result.end = RelayEnd::kCut;  // not the end: the client must see a cut
      break;
    }
    if (ec || n == 0) {
      if (!framer.end_on_close(batch)) {
        result.end = RelayEnd::kCut;
        break;
      }
      bool ok = true;
      if (!batch.empty()) SB_FLUSH(sink, ok);
      result.end = ok ? RelayEnd::kComplete : RelayEnd::kClientGone;
      break;
    }
    len += n;
  }
  done(result);
}

}  // namespace sb::gateway
