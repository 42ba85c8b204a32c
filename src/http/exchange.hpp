// One client connection and the request/response exchange currently on it. The server owns
// the connection loop (read a head, enforce limits, answer what cannot be parsed); a Handler
// gets each parsed request as an Exchange and answers it. Internal (includes Asio).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/config.hpp"

#include "http/body_rate.hpp"
#include "http/head_buffer.hpp"
#include "http/io.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"
#include "http/write_batch.hpp"

namespace sb::http {

class Worker;
class Exchange;

/// What a client connection needs only while a request is on it: the read buffer, the
/// parsed head and the storage for building and gathering the response. Lent from a
/// per-worker free list when the first byte of a request arrives and given back when the
/// connection goes idle again, so an idle keep-alive connection holds none of it (~15 KiB).
struct RequestBuffers {
  // A head of up to 4 KiB and the 8 KiB of body space parse_head() wants after it, so that
  // the usual request never grows the buffer. Grown ones (up to kKeepMax) stay with the
  // block: a client whose heads are larger does not reallocate on every request.
  static constexpr std::size_t kSize = 12 * 1024;
  static constexpr std::size_t kKeepMax = 32 * 1024;
  std::unique_ptr<char[]> data = std::make_unique_for_overwrite<char[]>(kSize);
  std::size_t data_size = kSize;
  RequestHead head;
  HeadBuffer scratch;
  HeadBuffer scratch2;
  WriteBatch batch;
};

/// Which operation a deadline guards; reported when it fires.
enum class TimeoutKind : std::uint8_t {
  kNone,
  kKeepAlive,         // idle client between requests: close quietly
  kClientHead,        // 408
  kClientBody,        // 408
  kClientWrite,       // client not reading: close
  kUpstreamConnect,   // 504
  kUpstreamResponse,  // 504
  kClientBodyRate,    // 408: the body fell below limits.min_body_rate (see BodyRate)
};

/// Answers requests. One per worker, so it may keep per-worker state without locks.
/// How often a worker calls Handler::on_tick.
inline constexpr std::chrono::milliseconds kTickPeriod{100};

class Handler {
 public:
  virtual ~Handler() = default;
  /// Answers the request on `ex`. Must either write a complete response or call
  /// ex.abort() (the connection then closes).
  virtual Task<void> handle(Exchange& ex) = 0;
  /// Called by the worker about every 100 ms with the coarse time.
  virtual void on_tick(core::SteadyTime now) { (void)now; }
  /// Called once on the worker's thread before its loop runs.
  virtual void on_thread_start() {}
};

/// Which listener accepted a connection.
enum class ListenerKind : std::uint8_t { kProxy, kAdmin, kMetrics };

/// A body piece handed to the handler: a view into the connection's buffer, valid until the
/// next read_body() call.
struct BodyPiece {
  std::string_view data{};
  bool done = false;
  enum class Error : std::uint8_t {
    kNone,
    kClosed,
    kTimeout,
    kMalformed,
    kTooLarge
  } error = Error::kNone;
};

class Exchange {
 public:
  Exchange(Worker& worker, Socket socket, ListenerKind kind);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  /// The connection loop; returns when the connection is closed.
  Task<void> run();

  // --- The current request (valid inside Handler::handle) ---
  const RequestHead& head() const { return req_->head; }
  const RequestInfo& info() const { return info_; }
  ListenerKind listener() const { return kind_; }
  std::string_view correlation_id() const { return correlation_id_; }
  /// The client's address as text ("127.0.0.1").
  std::string_view peer_address() const { return peer_address_; }
  /// True when the request body has been read completely (or there is none).
  bool body_done() const { return body_done_; }
  /// True when every body byte read so far is still in the buffer, so the body can be
  /// replayed with rewind_body() (e.g. to resend it on a fresh upstream connection).
  bool body_replayable() const { return !body_read_from_socket_; }
  void rewind_body();
  /// The next piece of the request body. Sends "100 Continue" first when the client asked.
  Task<BodyPiece> read_body();
  /// What a BodyPiece::Error::kTimeout means, for the 408's detail: which limit ended the
  /// body ("request body not received within limits.body_timeout", or slower than
  /// limits.min_body_rate). Valid until the next request.
  std::string_view body_timeout_detail() const;
  /// Reads and discards the rest of the body (so the connection can be reused); false if
  /// that failed or is more than `max` bytes away.
  Task<bool> drain_body(std::uint64_t max);
  /// Whether the whole body fits the buffer, so that buffer_body() can make it replayable:
  /// the buffer already holds it, or it has a Content-Length and parse_head() made room
  /// (see ServerSettings::replay_body_max). A chunked body's size shows only at its end:
  /// true until buffer_body() found it longer than the buffer (false from then on), and
  /// false once read_body() has streamed part of it.
  bool body_fits() const;
  /// Reads the rest of a body that fits into the buffer, without handing it out: afterwards
  /// read_body() serves it from memory and rewind_body() can replay it (for retries).
  /// A chunked body is read up to its last chunk and its framing checked whole, so a
  /// malformed one is kMalformed before any of it was handed out; one longer than the
  /// buffer stops there with kNone and body_fits() false: read_body() hands out what was
  /// read, then streams the rest. Sends "100 Continue" first when the client asked. kNone
  /// on success; kTooLarge when !body_fits() (or a chunked body passes
  /// limits.max_body_bytes).
  Task<BodyPiece::Error> buffer_body();
  /// The length of the body buffer_body() kept whole (for a chunked one, what it decoded),
  /// for the retry's max_replay_body; 0 before it did.
  std::uint64_t buffered_body_bytes() const { return buffered_body_bytes_; }

  /// Writes what the socket takes right now, without waiting (one sendmsg): most responses
  /// leave whole this way, skipping the reactor. Returns the bytes written; sets `failed`
  /// when the connection is broken.
  std::size_t write_now(Buffers buffers, bool& failed);
  /// One writev (may write less than asked): `auto [ec, n] = co_await ex.write_some(b)`.
  auto write_some(Buffers buffers) {
    arm_client_write();
    return socket_.async_write_some(buffers, kUse);
  }
  void count_sent(std::size_t n) { bytes_sent_ += n; }
  /// Marks the response as begun (errors after this cannot be answered with a status).
  void set_response_started() { response_started_ = true; }
  bool response_started() const { return response_started_; }
  bool closed() const { return closed_; }
  /// Closes the connection after this exchange.
  void set_close() { keep_alive_ = false; }
  /// Whether the response should say "Connection: close" (client asked, draining, error).
  bool keep_alive() const;
  /// Closes the connection now (mid-response failures).
  void abort();
  /// Closes the connection with a reset (RST) after a response was cut: a client reading a
  /// close-delimited body (HTTP/1.0) sees an error, not a clean end.
  void cut();

  /// Reusable storage for building heads and gathering writes (kept here, not on
  /// coroutine frames, so that the frames stay small enough to be recycled). Valid while a
  /// request is on the connection (inside Handler::handle).
  HeadBuffer& scratch() { return req_->scratch; }
  HeadBuffer& scratch2() { return req_->scratch2; }
  WriteBatch& batch() { return req_->batch; }
  /// Whether the connection holds its request buffers now (it does while a request is on
  /// it, and never while idle between requests). For tests.
  bool holds_buffers_for_test() const { return req_ != nullptr; }
  /// Request buffers kept in this thread's free list. For tests.
  static std::size_t free_buffers_for_test();
  /// Frees some of this thread's kept request buffers that went unused (FreeList::trim);
  /// the worker calls it about once a second.
  static void trim_free_buffers();

  // --- Deadlines (one coarse sweep per worker; see Worker::tick) ---
  /// Guards the next operations on `socket` with `deadline`. Every wait is armed just
  /// before it starts; disarm() after it is optional (the next arm replaces the deadline).
  void arm(Socket& socket, core::SteadyTime deadline, TimeoutKind kind);
  void disarm();
  /// The kind of the deadline that fired since the last arm(), or kNone.
  TimeoutKind fired() const { return fired_; }
  /// Called by the sweep.
  void check_deadline(core::SteadyTime now);

  Worker& worker() { return worker_; }
  const core::LimitsConfig& limits() const;
  /// Bytes written to the client for the current response.
  std::uint64_t bytes_sent() const { return bytes_sent_; }
  /// Request body bytes read so far (decoded; since the last rewind_body()).
  std::uint64_t body_bytes_read() const { return body_total_; }
  /// True while waiting for the first byte of a request.
  bool idle() const { return idle_; }
  /// True while no request is in flight: waiting for or reading a request head (idle
  /// keep-alive, or a head begun but not complete).
  bool awaiting_head() const { return awaiting_head_; }
  /// Closes the connection if no request is in flight on it (awaiting_head()): the drain
  /// calls it once the listeners are closed. A half-received head is dropped unanswered.
  void close_if_idle();

  // Intrusive list of a worker's connections.
  Exchange* prev_ = nullptr;
  Exchange* next_ = nullptr;

 private:
  /// One read of body bytes into the buffer at len_ (after "100 Continue" when the client
  /// asked for it), under limits.body_timeout.
  Task<BodyPiece::Error> read_more_body();
  /// What the bytes buffered so far make of the next request head: a request ready to
  /// handle, more bytes needed, one to refuse (refuse_status_, refuse_detail_), or the
  /// client gone.
  enum class HeadStep : std::uint8_t { kReady, kNeedMore, kRefuse, kGone };
  void begin_head();
  HeadStep parse_head();
  HeadStep refuse(int status, std::string detail);
  Task<void> reject(int status, std::string_view detail);
  void arm_client_write();
  void ensure_capacity(std::size_t need);
  /// Takes request buffers from this thread's free list (a no-op when held).
  void lend();
  /// Returns them, when no request byte is buffered (len_ == 0).
  void give_back();
  static char* lend_for_recv(void* self, std::size_t& size);
  static void give_back_for_recv(void* self);
  void new_correlation_id();
  /// Whether buf_ from `from` to len_ holds a whole chunked body (its last chunk and
  /// trailer), checked with a decoder of its own.
  bool chunked_whole_in(std::size_t from) const;

  Worker& worker_;
  Socket socket_;
  Reactor* reactor_;  // socket_'s, for recv_some
  ListenerKind kind_;

  std::unique_ptr<RequestBuffers> req_;  // while a request is on the connection
  std::unique_ptr<char[]> buf_;          // req_->data while lent (it may grow)
  std::size_t cap_ = 0;
  std::size_t len_ = 0;        // bytes in buf_
  std::size_t scan_from_ = 0;  // head scan resume point
  int refuse_status_ = 0;
  std::string refuse_detail_;

  RequestInfo info_;
  std::array<char, 36> generated_id_{};
  std::string_view correlation_id_;
  std::string peer_address_;

  // body state
  std::size_t body_pos_ = 0;  // next unread body byte in buf_
  std::uint64_t body_left_ = 0;
  std::uint64_t body_total_ = 0;
  ChunkedDecoder chunked_;
  bool body_done_ = true;
  bool body_read_from_socket_ = false;
  bool body_kept_part_ = false;  // buffer_body() found a chunked body longer than the buffer
  std::uint64_t buffered_body_bytes_ = 0;
  bool continue_sent_ = false;
  bool body_too_slow_ = false;  // the last kTimeout was limits.min_body_rate's
  BodyRate body_rate_;

  bool keep_alive_ = true;
  bool response_started_ = false;
  bool idle_ = true;
  bool awaiting_head_ = true;
  bool closed_ = false;
  std::uint64_t bytes_sent_ = 0;

  Socket* armed_socket_ = nullptr;
  core::SteadyTime deadline_ = core::SteadyTime::max();
  TimeoutKind armed_kind_ = TimeoutKind::kNone;
  TimeoutKind fired_ = TimeoutKind::kNone;
};

}  // namespace sb::http
