// The relays over a scripted upstream stream and a scripted client, on an io_context and
// without a socket, the way Boost.Beast tests its reads (test/beast/http/read.cpp): each
// framing delivered split at every offset gives the client the same body, a cut at every
// read step never gives a response that looks complete, and a failed write at every step
// stops the relay. The framings are those start_relay() decides (prepare_client_head):
// Content-Length as is; chunked or close-delimited re-chunked for an HTTP/1.1 client;
// chunked decoded, or close-delimited as is, for an HTTP/1.0 client (the close ends it).
#include "gateway/relay.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <deque>
#include <limits>
#include <string>
#include <vector>

namespace sb::gateway {
namespace {

namespace asio = http::asio;
using http::error_code;
using http::Framing;

constexpr std::string_view kUpstreamHead = "<head>";              // before the body in the buffer
constexpr std::string_view kClientHead = "CLIENT-HEAD\r\n";       // in the batch when it starts
constexpr std::string_view kNextMessage = "HTTP/1.1 200 OK\r\n";  // after the message

// One read of the scripted upstream: bytes, or an error (eof: a clean close).
struct Read {
  std::string bytes;
  error_code ec{};
};

// What a run saw, shared by the source's copy in the coroutine frame, the client and the test.
struct Trace {
  bool write_failed = false;
  int ops_after_failure = 0;  // reads and writes begun after a write failed
};

// The upstream: a read buffer of `capacity` bytes and the reads still to come. Once the
// script runs out, every read is a clean close. A read takes what fits of the next piece
// and leaves the rest for the next read, as a socket does.
struct Upstream {
  Upstream(asio::io_context& ctx, Trace& t, std::size_t size)
      : io(ctx), trace(t), capacity(size), buf(size, '\0') {}

  std::pair<error_code, std::size_t> next(char* p, std::size_t n) {
    EXPECT_GT(n, 0u) << "a read of 0 bytes";
    if (trace.write_failed) ++trace.ops_after_failure;
    ++reads;
    if (script.empty()) {
      last_read = 0;
      return {asio::error::eof, 0};
    }
    Read& r = script.front();
    if (r.ec) {
      const error_code ec = r.ec;
      script.pop_front();
      last_read = 0;
      return {ec, 0};
    }
    const std::size_t k = std::min(n, r.bytes.size());
    std::memcpy(p, r.bytes.data(), k);
    r.bytes.erase(0, k);
    if (r.bytes.empty()) script.pop_front();
    delivered += k;
    last_read = k;
    return {error_code{}, k};
  }

  asio::io_context& io;
  Trace& trace;
  std::size_t capacity;
  std::string buf;
  std::size_t len = 0;
  std::deque<Read> script;
  std::size_t delivered = 0;  // body bytes handed out, the ones in the buffer at the start too
  std::size_t last_read = 0;  // bytes the last read gave
  int reads = 0;
  bool armed = false;  // between read_some() and read_done()
};

class ScriptedSource {
 public:
  explicit ScriptedSource(Upstream& up) : up_(&up) {}
  char* buf() { return up_->buf.data(); }
  std::size_t& len() { return up_->len; }
  std::size_t capacity() const { return up_->capacity; }
  auto read_some(char* p, std::size_t n) {
    EXPECT_FALSE(up_->armed) << "read_some() twice without read_done()";
    up_->armed = true;
    return asio::async_initiate<decltype(http::kUse), void(error_code, std::size_t)>(
        [up = up_, p, n](auto handler) {
          const auto [ec, got] = up->next(p, n);
          asio::post(up->io,
                     [h = std::move(handler), ec, got]() mutable { std::move(h)(ec, got); });
        },
        http::kUse);
  }
  void read_done() { up_->armed = false; }

 private:
  Upstream* up_;
};

// How the client takes writes.
struct ClientOptions {
  std::size_t max_write = std::numeric_limits<std::size_t>::max();  // bytes one write takes
  bool now_takes = true;  // write_now() takes bytes (else it would block each time)
  int fail_at = -1;       // the write (write_now or write_some, from 0) that fails
};

// The client side: the batch, and what reached the client.
class ScriptedClient {
 public:
  ScriptedClient(asio::io_context& io, Trace& trace, ClientOptions opts)
      : io_(io), trace_(trace), opts_(opts) {}

  http::WriteBatch& batch() { return batch_; }
  std::size_t write_now(http::Buffers b, bool& failed) {
    const auto [ok, n] = write(b, true);
    if (!ok) failed = true;
    return n;
  }
  auto write_some(http::Buffers b) {
    return asio::async_initiate<decltype(http::kUse), void(error_code, std::size_t)>(
        [this, b](auto handler) {
          const auto [ok, n] = write(b, false);
          const error_code ec = ok ? error_code{} : error_code(asio::error::broken_pipe);
          asio::post(io_, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
        },
        http::kUse);
  }
  void count_sent(std::size_t n) { counted += n; }

  std::string got;  // every byte the client received
  std::size_t counted = 0;
  int ops = 0;

 private:
  std::pair<bool, std::size_t> write(http::Buffers b, bool now) {
    if (trace_.write_failed) ++trace_.ops_after_failure;
    if (ops++ == opts_.fail_at) {
      trace_.write_failed = true;
      return {false, 0};
    }
    EXPECT_FALSE(b.empty()) << "a write of nothing";
    if (now && !opts_.now_takes) return {true, 0};
    std::size_t n = 0;
    for (const auto& piece : b) {
      const std::size_t take = std::min(piece.size(), opts_.max_write - n);
      got.append(static_cast<const char*>(piece.data()), take);
      n += take;
      if (n == opts_.max_write) break;
    }
    return {true, n};
  }

  asio::io_context& io_;
  Trace& trace_;
  ClientOptions opts_;
  http::WriteBatch batch_;
};

static_assert(RelaySource<ScriptedSource>);
static_assert(RelaySink<ScriptedClient>);

// One framing: the upstream's message (without its head) and the body it carries.
struct Case {
  const char* name;
  Framing framing;
  bool rechunk;
  std::string message;
  std::string body;
};

// A chunked message of `pieces` (one chunk each; an extension on the first and a trailer
// field at the end).
std::string chunked(const std::vector<std::string>& pieces) {
  std::string m;
  bool first = true;
  for (const std::string& p : pieces) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx", p.size());
    m += size;
    if (first) m += ";name=value";
    first = false;
    m += "\r\n" + p + "\r\n";
  }
  return m + "0\r\nX-Trailer: t\r\n\r\n";
}

std::string concat(const std::vector<std::string>& pieces) {
  std::string s;
  for (const std::string& p : pieces) s += p;
  return s;
}

// A body that holds what looks like framing, and a piece longer than the small buffer.
const std::vector<std::string> kPieces = {"first line", "\r\n", "0\r\n\r\n", "second",
                                          std::string(40, 'x')};

std::vector<Case> cases() {
  const std::string body = concat(kPieces);
  return {
      {"content-length", Framing::kLength, false, body, body},
      {"chunked re-chunked (HTTP/1.1)", Framing::kChunked, true, chunked(kPieces), body},
      {"chunked decoded (HTTP/1.0)", Framing::kChunked, false, chunked(kPieces), body},
      {"until close re-chunked (HTTP/1.1)", Framing::kUntilClose, true, body, body},
      {"until close as is (HTTP/1.0)", Framing::kUntilClose, false, body, body},
  };
}

// How the upstream delivers the message: in the buffer with the head, then reads.
struct Delivery {
  std::string initial;
  std::vector<Read> reads;
};

struct Outcome {
  RelayResult result;
  int done_calls = 0;
  std::string client;  // after the client head
  bool head_sent = false;
  std::size_t delivered = 0;
  std::size_t last_read = 0;
  int reads = 0;
  int writes = 0;
  bool armed = false;
  bool counted_all = false;  // count_sent() saw every byte the client got
  int ops_after_failure = 0;
};

class RelayTest : public ::testing::Test {
 protected:
  Outcome run(const Case& c, const Delivery& d, ClientOptions opts = {},
              std::size_t capacity = 1024) {
    Trace trace;
    Upstream up(io_, trace, capacity);
    EXPECT_LE(kUpstreamHead.size() + d.initial.size(), capacity);
    std::memcpy(up.buf.data(), kUpstreamHead.data(), kUpstreamHead.size());
    std::memcpy(up.buf.data() + kUpstreamHead.size(), d.initial.data(), d.initial.size());
    up.len = kUpstreamHead.size() + d.initial.size();
    up.delivered = d.initial.size();
    for (const Read& r : d.reads)
      if (!r.bytes.empty() || r.ec) up.script.push_back(r);
    ScriptedClient client(io_, trace, opts);
    client.batch().add(kClientHead);
    Outcome o;
    const std::uint64_t length = c.framing == Framing::kLength ? c.body.size() : 0;
    io_.restart();
    asio::co_spawn(io_,
                   relay_body(ScriptedSource(up), client, BodyFramer(c.framing, length, c.rechunk),
                              kUpstreamHead.size(),
                              [&o](RelayResult r) {
                                o.result = r;
                                ++o.done_calls;
                              }),
                   asio::detached);
    io_.run();
    o.head_sent = client.got.starts_with(kClientHead);
    if (o.head_sent) o.client = client.got.substr(kClientHead.size());
    o.delivered = up.delivered;
    o.last_read = up.last_read;
    o.reads = up.reads;
    o.writes = client.ops;
    o.armed = up.armed;
    o.counted_all = client.counted == client.got.size();
    o.ops_after_failure = trace.ops_after_failure;
    return o;
  }

  asio::io_context io_{1};
};

// The client's chunked body decoded: whether it is well formed, whether it ended with
// the last chunk (and nothing after it), and the data.
struct Dechunked {
  bool valid = true;
  bool done = false;
  std::string data;
};
Dechunked dechunk(std::string_view s) {
  Dechunked out;
  http::ChunkedDecoder dec;
  std::size_t pos = 0;
  for (;;) {
    const auto step = dec.step(s.data() + pos, s.size() - pos);
    pos += step.consumed;
    if (step.status == http::ChunkedDecoder::Status::kData) {
      EXPECT_FALSE(step.data.empty());
      out.data += step.data;
      continue;
    }
    out.valid = step.status != http::ChunkedDecoder::Status::kError;
    out.done = step.status == http::ChunkedDecoder::Status::kDone;
    if (out.done && pos != s.size()) out.valid = false;  // bytes after the last chunk
    return out;
  }
}

// What the body a complete relay gives the client must be, and that it ends as its framing
// says (exactly one last chunk, at the end, when re-chunked).
void expect_complete(const Case& c, const Outcome& o, const std::string& where) {
  SCOPED_TRACE(std::string(c.name) + ", " + where);
  EXPECT_EQ(o.done_calls, 1);
  EXPECT_EQ(o.result.end, RelayEnd::kComplete);
  EXPECT_FALSE(o.armed);
  EXPECT_TRUE(o.counted_all);
  ASSERT_TRUE(o.head_sent);
  if (c.rechunk) {
    const Dechunked d = dechunk(o.client);
    EXPECT_TRUE(d.valid) << o.client;
    EXPECT_TRUE(d.done) << o.client;
    EXPECT_EQ(d.data, c.body);
  } else {
    EXPECT_EQ(o.client, c.body);
  }
}

// A relay that was cut: reported as a cut, and what the client got cannot pass for the
// whole body (bytes short of the Content-Length, no last chunk); an HTTP/1.0 client may
// have every byte, and only the reset the cut causes (end_relay) tells it.
void expect_cut(const Case& c, const Outcome& o, const std::string& where) {
  SCOPED_TRACE(std::string(c.name) + ", " + where);
  EXPECT_EQ(o.done_calls, 1);
  EXPECT_EQ(o.result.end, RelayEnd::kCut);
  EXPECT_FALSE(o.result.clean_end);
  EXPECT_FALSE(o.armed);
  ASSERT_TRUE(o.head_sent);
  if (c.rechunk) {
    const Dechunked d = dechunk(o.client);
    EXPECT_TRUE(d.valid) << o.client;
    EXPECT_FALSE(d.done) << "a cut body ends with a last chunk: " << o.client;
    EXPECT_TRUE(c.body.starts_with(d.data));
  } else {
    EXPECT_TRUE(c.body.starts_with(o.client)) << o.client;
    if (c.framing == Framing::kLength) {
      EXPECT_LT(o.client.size(), c.body.size());
    }
  }
}

// The upstream connection is reusable exactly when the message ended at the last byte
// read; and no read starts after the message ended (it would take a next message's bytes).
void expect_reuse(const Case& c, const Outcome& o, const std::string& where) {
  SCOPED_TRACE(std::string(c.name) + ", " + where);
  if (c.framing == Framing::kUntilClose) {
    EXPECT_FALSE(o.result.clean_end);
    return;
  }
  EXPECT_EQ(o.result.clean_end, o.delivered == c.message.size());
  if (o.reads > 0) {
    EXPECT_LT(o.delivered - o.last_read, c.message.size()) << "read past the end";
  }
}

// The stream as the relay sees it: the message, then a clean close for a close-delimited
// body (the others end by their framing).
std::vector<Read> one_byte_reads(std::string_view s) {
  std::vector<Read> reads;
  for (char ch : s) reads.push_back({std::string(1, ch)});
  return reads;
}

// Every delivery of the message: one-byte reads, and every split into what came with the
// head and two reads (each part possibly empty).
std::vector<std::pair<std::string, Delivery>> deliveries(const std::string& m,
                                                         std::size_t max_initial) {
  std::vector<std::pair<std::string, Delivery>> out;
  out.push_back({"one-byte reads", {"", one_byte_reads(m)}});
  for (std::size_t i = 0; i <= std::min(m.size(), max_initial); ++i)
    for (std::size_t k = i; k <= m.size(); ++k)
      out.push_back({"split at " + std::to_string(i) + " and " + std::to_string(k),
                     {m.substr(0, i), {{m.substr(i, k - i)}, {m.substr(k)}}}});
  return out;
}

// Every framing, delivered split at every offset, with a big and a small read buffer, with
// and without bytes of a next message after it (split at every offset too): the same body reaches
// the client, ended as its framing says, and the connection is reusable exactly when the message
// ended at the last byte read. (Re-chunked bodies keep the upstream's read boundaries as chunk
// boundaries, so their bytes are compared decoded.)
TEST_F(RelayTest, EverySplitOfTheStreamGivesTheSameBody) {
  for (const Case& c : cases()) {
    for (const std::size_t capacity : {std::size_t{1024}, std::size_t{32}}) {
      for (const bool extra : {false, true}) {
        if (extra && c.framing == Framing::kUntilClose) continue;  // all of it is the body
        std::string reference;  // the client's bytes for the whole message in one read
        const std::string stream = extra ? c.message + std::string(kNextMessage) : c.message;
        for (const auto& [name, d] : deliveries(stream, capacity - kUpstreamHead.size())) {
          const std::string where =
              name + ", buffer " + std::to_string(capacity) + (extra ? ", next message" : "");
          const Outcome o = run(c, d, {}, capacity);
          expect_complete(c, o, where);
          expect_reuse(c, o, where);
          if (!c.rechunk) {
            if (reference.empty()) reference = o.client;
            EXPECT_EQ(o.client, reference) << c.name << ", " << where;
          }
        }
      }
    }
  }
}

// The client taking each write in pieces (down to a byte; write_now() taking nothing, so
// that write_some() does it all) gets exactly the bytes it gets in one write.
TEST_F(RelayTest, EverySplitOfTheWritesGivesTheSameBytes) {
  for (const Case& c : cases()) {
    for (const auto& [name, d] : deliveries(c.message, 1024)) {
      if (name != "one-byte reads" && name.find("split at 0 and") != 0) continue;
      const Outcome whole = run(c, d);
      expect_complete(c, whole, name);
      for (const std::size_t max_write : {std::size_t{1}, std::size_t{2}, std::size_t{7}})
        for (const bool now_takes : {true, false}) {
          const Outcome o = run(c, d, {.max_write = max_write, .now_takes = now_takes});
          const std::string where = name + ", writes of " + std::to_string(max_write) +
                                    (now_takes ? "" : ", write_now() blocked");
          expect_complete(c, o, where);
          EXPECT_EQ(o.client, whole.client) << c.name << ", " << where;
        }
    }
  }
}

const std::vector<std::pair<const char*, error_code>> kCuts = {
    {"reset", asio::error::connection_reset},
    {"timeout (the deadline cancels the read)", asio::error::operation_aborted},
    {"error", asio::error::timed_out},
};

// A cut (reset, timeout, error) at every read step, of every delivery: reported as a
// cut, and nothing the client got looks like the whole body. After the message ended no
// read is made, so a cut there changes nothing.
TEST_F(RelayTest, ACutAtEveryReadStepNeverLooksComplete) {
  for (const Case& c : cases()) {
    for (const auto& [name, d] : deliveries(c.message, 1024)) {
      if (name != "one-byte reads" && name.find("split at 0 and") != 0 &&
          name.find(" and " + std::to_string(c.message.size())) == std::string::npos)
        continue;
      for (const auto& [cut_name, ec] : kCuts) {
        for (std::size_t step = 0; step <= d.reads.size(); ++step) {
          Delivery cut = d;
          cut.reads.resize(step);
          cut.reads.push_back({"", ec});
          const Outcome o = run(c, cut);
          const std::string where = name + ", " + cut_name + " at read " + std::to_string(step);
          const bool reached = o.delivered < c.message.size() || c.framing == Framing::kUntilClose;
          if (reached)
            expect_cut(c, o, where);
          else
            expect_complete(c, o, where);
        }
      }
    }
  }
}

// A clean close (FIN) at every read step: it ends a close-delimited body (with the last
// chunk when re-chunked), and cuts a Content-Length or chunked one.
TEST_F(RelayTest, ACleanCloseEndsOnlyACloseDelimitedBody) {
  for (const Case& c : cases()) {
    const Delivery d{"", one_byte_reads(c.message)};
    for (std::size_t step = 0; step <= d.reads.size(); ++step) {
      Delivery fin = d;
      fin.reads.resize(step);
      fin.reads.push_back({"", asio::error::eof});
      const Outcome o = run(c, fin);
      const std::string where = "FIN after " + std::to_string(step) + " bytes";
      if (c.framing == Framing::kUntilClose) {
        Case shorter = c;
        shorter.body = c.body.substr(0, step);
        expect_complete(shorter, o, where);
      } else if (step < c.message.size()) {
        expect_cut(c, o, where);
      } else {
        expect_complete(c, o, where);
        EXPECT_TRUE(o.result.clean_end) << c.name;
      }
    }
  }
}

// A client write that fails at every write step stops the relay there: reported, and no
// read or write after it.
TEST_F(RelayTest, AFailedWriteAtEveryStepStopsTheRelay) {
  for (const Case& c : cases()) {
    for (const auto& [name, d] : deliveries(c.message, 1024)) {
      if (name != "one-byte reads" && name != "split at 0 and 0" && name != "split at 10 and 20")
        continue;
      for (const ClientOptions base : {ClientOptions{}, ClientOptions{.max_write = 3},
                                       ClientOptions{.max_write = 5, .now_takes = false}}) {
        for (int step = 0;; ++step) {
          ClientOptions opts = base;
          opts.fail_at = step;
          const Outcome o = run(c, d, opts);
          const std::string where = name + ", write " + std::to_string(step) + " fails";
          if (o.writes <= step) {  // the relay ended before that write
            expect_complete(c, o, where);
            EXPECT_GT(step, 0);
            break;
          }
          SCOPED_TRACE(std::string(c.name) + ", " + where);
          EXPECT_EQ(o.done_calls, 1);
          EXPECT_EQ(o.result.end, RelayEnd::kClientGone);
          EXPECT_FALSE(o.result.clean_end);
          EXPECT_EQ(o.ops_after_failure, 0);
          EXPECT_FALSE(o.armed);
          ASSERT_LT(step, 10000) << "the relay never ends";
        }
      }
    }
  }
}

// Many small chunks in one read overflow the write batch's chunk lines: the relay writes
// and goes on, and the body comes through whole.
TEST_F(RelayTest, ManyChunksInOneReadFillTheBatchAndGoOn) {
  std::vector<std::string> pieces;
  for (int i = 0; i < 100; ++i)
    pieces.push_back(std::string(1 + i % 3, static_cast<char>('a' + i % 26)));
  for (const bool rechunk : {true, false}) {
    const Case c{"many chunks", Framing::kChunked, rechunk, chunked(pieces), concat(pieces)};
    const Outcome o = run(c, {c.message, {}});
    expect_complete(c, o, "in the buffer with the head");
    EXPECT_TRUE(o.result.clean_end);
    EXPECT_EQ(o.reads, 0);
    EXPECT_GT(o.writes, 2) << "the batch never filled";
  }
}

// A malformed chunked body at every split: reported as malformed (the client is cut), and
// no last chunk reaches the client.
TEST_F(RelayTest, AMalformedChunkedBodyIsNeverCompleted) {
  const std::string message = "5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n";
  const Case c{"malformed", Framing::kChunked, true, message, "hello"};
  for (const auto& [name, d] : deliveries(message, 1024)) {
    const Outcome o = run(c, d);
    SCOPED_TRACE(name);
    EXPECT_EQ(o.done_calls, 1);
    EXPECT_EQ(o.result.end, RelayEnd::kMalformed);
    const Dechunked got = dechunk(o.client);
    EXPECT_FALSE(got.done);
    EXPECT_TRUE(std::string("hello").starts_with(got.data));
  }
}

// A chunk-size line longer than the read buffer is malformed, not a read of 0 bytes taken
// for a close (which would be reported as a cut) or a relay that never ends.
TEST_F(RelayTest, AChunkLineLongerThanTheBufferIsMalformed) {
  const std::string message = "5;name=" + std::string(60, 'v') + "\r\nhello\r\n0\r\n\r\n";
  const Case c{"long line", Framing::kChunked, true, message, "hello"};
  const Outcome small = run(c, {"", one_byte_reads(message)}, {}, 32);
  EXPECT_EQ(small.done_calls, 1);
  EXPECT_EQ(small.result.end, RelayEnd::kMalformed);
  expect_complete(c, run(c, {"", one_byte_reads(message)}, {}, 1024), "a buffer that holds it");
}

// A response without a body: the head is written, nothing is read, and the connection is
// reusable unless bytes came after the head.
TEST_F(RelayTest, NoBodyWritesTheHeadAndReadsNothing) {
  const Case c{"no body", Framing::kNone, false, "", ""};
  const Outcome clean = run(c, {});
  expect_complete(c, clean, "nothing after the head");
  EXPECT_TRUE(clean.result.clean_end);
  EXPECT_EQ(clean.reads, 0);
  const Outcome dirty = run(c, {"junk", {}});
  expect_complete(c, dirty, "bytes after the head");
  EXPECT_FALSE(dirty.result.clean_end);
  EXPECT_EQ(dirty.reads, 0);
}

}  // namespace
}  // namespace sb::gateway
