#include "http/exchange.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/write.hpp>

#include "core/assert.hpp"
#include "core/correlation_id.hpp"
#include "core/logging.hpp"
#include "http/free_list.hpp"
#include "http/problem.hpp"
#include "http/recv.hpp"
#include "http/server.hpp"
#include "http/socket_calls.hpp"

// One client connection's request loop: the head read and checked, the body read (streamed,
// or buffered whole for replays and checks), the answer written, keep-alive and its limits.
// The worker, listeners and server that own connections are server.cpp.

namespace sb::http {
namespace {
constexpr std::size_t kInitialBuffer = RequestBuffers::kSize;
constexpr std::size_t kMinBodySpace = 8192;  // room after a head for body reads and chunk lines
}  // namespace

Exchange::Exchange(Worker& worker, Socket socket, ListenerKind kind)
    : worker_(worker),
      socket_(std::move(socket)),
      reactor_(&reactor_of(socket_)),
      kind_(kind),
      body_rate_(worker.limits().min_body_rate, worker.limits().body_rate_grace) {
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) {
    auto addr = ep.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    peer_address_ = addr.to_string();
  }
}

Exchange::~Exchange() {
  len_ = 0;
  give_back();
}

namespace {
// Per worker thread: request buffers of connections that are idle or gone, for the next
// request. Trimmed by the worker's tick (see FreeList), so what a burst of concurrent
// requests needed is not kept for good.
constexpr std::size_t kMaxFreeRequestBuffers = 4096;  // ~60 MiB per worker at most
thread_local FreeList<RequestBuffers> t_free_requests(kMaxFreeRequestBuffers);
}  // namespace

std::size_t Exchange::free_buffers_for_test() { return t_free_requests.size(); }
void Exchange::trim_free_buffers() { t_free_requests.trim(); }

void Exchange::lend() {
  if (req_) return;
  req_ = t_free_requests.take();
  if (!req_) req_ = std::make_unique<RequestBuffers>();
  buf_ = std::move(req_->data);
  cap_ = req_->data_size;
}

void Exchange::give_back() {
  if (!req_ || len_ != 0) return;
  if (cap_ <= RequestBuffers::kKeepMax) {
    req_->data = std::move(buf_);
    req_->data_size = cap_;
  } else {  // grown for a very large head: keep only the usual size
    req_->data = std::make_unique_for_overwrite<char[]>(RequestBuffers::kSize);
    req_->data_size = RequestBuffers::kSize;
  }
  buf_.reset();
  cap_ = 0;
  // The next connection starts clean, whatever this one left (an aborted write).
  req_->batch.clear();
  req_->scratch.clear();
  req_->scratch2.clear();
  t_free_requests.put(std::move(req_));
}

char* Exchange::lend_for_recv(void* self, std::size_t& size) {
  auto* ex = static_cast<Exchange*>(self);
  ex->lend();
  size = ex->cap_ - ex->len_;
  return ex->buf_.get() + ex->len_;
}

void Exchange::give_back_for_recv(void* self) { static_cast<Exchange*>(self)->give_back(); }

const core::LimitsConfig& Exchange::limits() const { return worker_.limits(); }

bool Exchange::keep_alive() const { return keep_alive_ && !worker_.draining(); }

void Exchange::abort() {
  closed_ = true;
  error_code ec;
  socket_.close(ec);
}

void Exchange::cut() {
  if (!closed_) {
    error_code ec;
    socket_.set_option(asio::socket_base::linger(true, 0), ec);
  }
  abort();
}

void Exchange::arm(Socket& socket, core::SteadyTime deadline, TimeoutKind kind) {
  armed_socket_ = &socket;
  deadline_ = deadline;
  armed_kind_ = kind;
  fired_ = TimeoutKind::kNone;
}

void Exchange::disarm() {
  armed_socket_ = nullptr;
  deadline_ = core::SteadyTime::max();
  armed_kind_ = TimeoutKind::kNone;
}

void Exchange::check_deadline(core::SteadyTime now) {
  if (armed_socket_ == nullptr || now < deadline_) return;
  fired_ = armed_kind_;
  error_code ec;
  armed_socket_->cancel(ec);
  disarm();
}

void Exchange::close_if_idle() {
  if (awaiting_head_ && !closed_) {
    error_code ec;
    socket_.cancel(ec);
  }
}

void Exchange::ensure_capacity(std::size_t need) {
  if (need <= cap_) return;
  need = (need + 4095) & ~std::size_t{4095};  // room for the next, slightly larger head
  auto bigger = std::make_unique_for_overwrite<char[]>(need);
  std::memcpy(bigger.get(), buf_.get(), len_);
  buf_ = std::move(bigger);
  cap_ = need;
}

void Exchange::new_correlation_id() {
  // One generator per worker thread, seeded from the clock and the thread.
  static thread_local core::CorrelationIdGenerator gen(
      static_cast<std::uint64_t>(worker_.server().clock().wall_now().time_since_epoch().count()) ^
      (static_cast<std::uint64_t>(worker_.index()) << 56) ^
      reinterpret_cast<std::uintptr_t>(&worker_));
  gen.next(generated_id_);
  correlation_id_ = std::string_view(generated_id_.data(), generated_id_.size());
}

std::size_t send_now(int fd, Buffers buffers, bool& failed) {
  // One buffer goes by send(): no iovec array for the kernel to copy in and check.
  const bool single = buffers.size() == 1;
  iovec iov[64];
  msghdr msg{};
  if (!single) {
    std::size_t n = 0;
    for (const auto& b : buffers) {
      if (n == 64) break;
      iov[n].iov_base = const_cast<void*>(b.data());
      iov[n].iov_len = b.size();
      ++n;
    }
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
  }
  for (;;) {
    const ssize_t r =
        single ? sys::send(fd, buffers[0].data(), buffers[0].size(), MSG_NOSIGNAL | MSG_DONTWAIT)
               : sys::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno == EINTR) continue;
    failed = errno != EAGAIN && errno != EWOULDBLOCK;
    return 0;
  }
}

std::size_t Exchange::write_now(Buffers buffers, bool& failed) {
  return send_now(socket_.native_handle(), buffers, failed);
}

void Exchange::arm_client_write() {
  arm(socket_, worker_.now() + limits().body_timeout, TimeoutKind::kClientWrite);
}

Task<void> Exchange::reject(int status, std::string_view detail) {
  if (correlation_id_.empty()) new_correlation_id();
  const char* slug = status == 408   ? "request-timeout"
                     : status == 413 ? "body-too-large"
                     : status == 414 ? "uri-too-long"
                     : status == 431 ? "header-too-large"
                     : status == 505 ? "version-not-supported"
                     : status == 501 ? "not-implemented"
                     : status == 417 ? "expectation-failed"
                                     : "bad-request";
  SB_REQ_LOG(info, correlation_id_, "refused request from {}: {} {}", peer_address_, status,
             detail);
  write_problem(req_->scratch, status, slug, detail, correlation_id_, true);
  arm(socket_, worker_.now() + limits().body_timeout, TimeoutKind::kClientWrite);
  co_await asio::async_write(socket_, asio::buffer(req_->scratch.data(), req_->scratch.size()),
                             kUse);
  disarm();
  // Lingering close: stop sending, then read and drop what the client still sends for a
  // moment, so a reset does not destroy the answer before the client reads it.
  error_code ec;
  socket_.shutdown(asio::socket_base::shutdown_send, ec);
  arm(socket_, worker_.now() + std::chrono::seconds(1), TimeoutKind::kClientBody);
  std::size_t drained = 0;
  while (drained < (1u << 20)) {
    auto [rec, n] = co_await socket_.async_read_some(asio::buffer(buf_.get(), cap_), kUse);
    if (rec) break;
    drained += n;
  }
  disarm();
  closed_ = true;
}

void Exchange::begin_head() {
  const auto& lim = limits();
  idle_ = len_ == 0;
  scan_from_ = 0;
  correlation_id_ = {};
  if (idle_)
    arm(socket_, worker_.now() + lim.keepalive_timeout, TimeoutKind::kKeepAlive);
  else
    arm(socket_, worker_.now() + lim.header_timeout, TimeoutKind::kClientHead);
}

Exchange::HeadStep Exchange::refuse(int status, std::string detail) {
  refuse_status_ = status;
  refuse_detail_ = std::move(detail);
  return HeadStep::kRefuse;
}

Exchange::HeadStep Exchange::parse_head() {
  const auto& lim = limits();
  const HeadLimits head_limits{lim.max_request_line, lim.max_header_bytes, lim.max_headers};
  if (len_ == 0) return HeadStep::kNeedMore;  // nothing yet (and maybe no buffer: idle)
  for (;;) {
    if (len_ > 0) {
      const ParseResult r =
          parse_request_head(buf_.get(), len_, head_limits, scan_from_, req_->head);
      if (r.status == ParseStatus::kComplete) {
        disarm();
        const RequestError re = analyze_request(req_->head, info_);
        if (re != RequestError::kNone) return refuse(status_for(re), describe(re));
        std::size_t want = req_->head.head_size + kMinBodySpace;
        const std::size_t replay_max = worker_.server().settings().replay_body_max;
        // A Content-Length body up to replay_max gets room to be read whole: to be resent
        // by a retry, or checked before an upstream is called (request_buffering).
        if (info_.framing == Framing::kLength && info_.content_length <= replay_max &&
            info_.content_length <= lim.max_body_bytes)
          want = std::max<std::size_t>(want, req_->head.head_size + info_.content_length);
        // A chunked body's size shows only at its end: room for replay_max encoded bytes,
        // so that buffer_body() can keep a small one whole, unless it already is (the
        // usual small body comes with its head, and then the buffer needs no growing).
        if (info_.framing == Framing::kChunked && cap_ < req_->head.head_size + replay_max &&
            !chunked_whole_in(req_->head.head_size))
          want = std::max(want, req_->head.head_size + replay_max);
        if (cap_ < want) {
          // Keep the head where it is for the whole exchange: grow now, then parse (and
          // analyze) again so that every view points into the final buffer.
          ensure_capacity(want);
          scan_from_ = 0;
          continue;
        }
        // Only now, with the head where it stays: a rewritten path is not parsed again.
        const RequestError pe = normalize_request_path(buf_.get(), req_->head, info_,
                                                       worker_.server().settings().merge_slashes);
        if (pe != RequestError::kNone) return refuse(status_for(pe), describe(pe));
        if (!info_.correlation_id.empty())
          correlation_id_ = info_.correlation_id;
        else
          new_correlation_id();
        if (info_.framing == Framing::kLength && info_.content_length > lim.max_body_bytes) {
          return refuse(413, "request body larger than limits.max_body_bytes (" +
                                 std::to_string(lim.max_body_bytes) + " bytes)");
        }
        body_pos_ = req_->head.head_size;
        body_left_ = info_.framing == Framing::kLength ? info_.content_length : 0;
        body_total_ = 0;
        chunked_.reset();
        body_done_ = info_.framing == Framing::kNone;
        body_read_from_socket_ = false;
        body_kept_part_ = false;
        buffered_body_bytes_ = 0;
        continue_sent_ = false;
        body_too_slow_ = false;
        body_rate_.reset();
        return HeadStep::kReady;
      }
      if (r.status == ParseStatus::kError) {
        disarm();
        return refuse(status_for(r.error, true), describe(r.error));
      }
    }
    if (len_ == cap_) {
      ensure_capacity(std::min<std::size_t>(cap_ * 2, lim.max_header_bytes + kMinBodySpace));
      scan_from_ = 0;      // the head moved: parse it again from the start
      if (len_ == cap_) {  // the parser refuses heads at the limit before the buffer is full
        SB_BUG("request buffer full of an unrefused head");
        return refuse(431, describe(HeadError::kHeadTooLarge));
      }
    }
    return HeadStep::kNeedMore;
  }
}

Task<BodyPiece::Error> Exchange::read_more_body() {
  const auto& lim = limits();
  if (info_.expect_continue && !continue_sent_) {
    continue_sent_ = true;
    static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
    arm(socket_, worker_.now() + lim.body_timeout, TimeoutKind::kClientWrite);
    auto [wec, wn] = co_await asio::async_write(socket_, asio::buffer(k100), kUse);
    disarm();
    if (wec) co_return BodyPiece::Error::kClosed;
  }
  // The earlier of the two limits guards the read: the gap (body_timeout) and what the
  // minimum rate still allows (see BodyRate).
  const core::SteadyTime began = worker_.now();
  const core::SteadyTime gap_end = began + lim.body_timeout;
  const core::SteadyTime rate_end = body_rate_.read_deadline(began);
  if (rate_end < gap_end)
    arm(socket_, rate_end, TimeoutKind::kClientBodyRate);
  else
    arm(socket_, gap_end, TimeoutKind::kClientBody);
  auto [ec, n] = co_await recv_some(*reactor_, socket_, buf_.get() + len_, cap_ - len_);
  const TimeoutKind f = fired_;
  disarm();
  if (!ec) len_ += n;
  body_rate_.record(began, worker_.now(), ec ? 0 : n);
  if (ec || n == 0) {
    if (f == TimeoutKind::kClientBodyRate) {
      body_too_slow_ = true;
      SB_REQ_LOG(
          info, correlation_id_,
          "request body from {} slower than limits.min_body_rate ({} bytes/s): {} bytes "
          "in {} ms of waiting",
          peer_address_, lim.min_body_rate, body_rate_.received(),
          std::chrono::duration_cast<std::chrono::milliseconds>(body_rate_.waited()).count());
      co_return BodyPiece::Error::kTimeout;
    }
    co_return f == TimeoutKind::kClientBody ? BodyPiece::Error::kTimeout
                                            : BodyPiece::Error::kClosed;
  }
  co_return BodyPiece::Error::kNone;
}

std::string_view Exchange::body_timeout_detail() const {
  return body_too_slow_
             ? "request body slower than limits.min_body_rate (after limits.body_rate_grace)"
             : "request body not received within limits.body_timeout";
}

bool Exchange::chunked_whole_in(std::size_t from) const {
  ChunkedDecoder scan;
  for (std::size_t pos = from;;) {
    const auto step = scan.step(buf_.get() + pos, len_ - pos);
    pos += step.consumed;
    if (step.status != ChunkedDecoder::Status::kData)
      return step.status == ChunkedDecoder::Status::kDone;
  }
}

bool Exchange::body_fits() const {
  if (body_read_from_socket_) return false;
  if (body_done_) return true;
  if (info_.framing == Framing::kChunked) return !body_kept_part_;
  return info_.framing == Framing::kLength && req_->head.head_size + info_.content_length <= cap_;
}

Task<BodyPiece::Error> Exchange::buffer_body() {
  if (!body_fits()) co_return BodyPiece::Error::kTooLarge;
  if (body_done_) co_return BodyPiece::Error::kNone;
  if (info_.framing == Framing::kChunked) {
    // Reads until the last chunk, checking the framing with a decoder of its own: the
    // body stays encoded in the buffer (from body_pos_) for read_body() to hand out, and
    // chunked_ stays where read_body() left it. The buffer is not grown here: the head's
    // views point into it (parse_head() made the room).
    ChunkedDecoder scan = chunked_;
    std::size_t pos = body_pos_;
    for (;;) {
      const auto step = scan.step(buf_.get() + pos, len_ - pos);
      pos += step.consumed;
      switch (step.status) {
        case ChunkedDecoder::Status::kData:
          if (scan.body_bytes() > limits().max_body_bytes) co_return BodyPiece::Error::kTooLarge;
          continue;
        case ChunkedDecoder::Status::kDone:
          buffered_body_bytes_ = scan.body_bytes();
          co_return BodyPiece::Error::kNone;
        case ChunkedDecoder::Status::kError:
          co_return BodyPiece::Error::kMalformed;
        case ChunkedDecoder::Status::kNeedMore:
          break;
      }
      if (len_ == cap_) {
        // Longer than the buffer: read_body() hands out what is here, then streams the
        // rest from the socket (and the body can no longer be replayed).
        body_kept_part_ = true;
        co_return BodyPiece::Error::kNone;
      }
      if (const BodyPiece::Error e = co_await read_more_body(); e != BodyPiece::Error::kNone)
        co_return e;
    }
  }
  const std::size_t end = req_->head.head_size + static_cast<std::size_t>(info_.content_length);
  while (len_ < end)
    if (const BodyPiece::Error e = co_await read_more_body(); e != BodyPiece::Error::kNone)
      co_return e;
  buffered_body_bytes_ = info_.content_length;
  co_return BodyPiece::Error::kNone;
}

void Exchange::rewind_body() {
  if (body_read_from_socket_) return;
  body_pos_ = req_->head.head_size;
  body_left_ = info_.framing == Framing::kLength ? info_.content_length : 0;
  body_total_ = 0;
  chunked_.reset();
  body_done_ = info_.framing == Framing::kNone;
}

Task<BodyPiece> Exchange::read_body() {
  if (body_done_) co_return BodyPiece{.done = true};
  const auto& lim = limits();
  for (;;) {
    if (body_pos_ < len_) {
      if (info_.framing == Framing::kLength) {
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, len_ - body_pos_));
        BodyPiece piece{.data = std::string_view(buf_.get() + body_pos_, take)};
        body_pos_ += take;
        body_left_ -= take;
        body_total_ += take;
        if (body_left_ == 0) body_done_ = true;
        co_return piece;
      }
      const auto step = chunked_.step(buf_.get() + body_pos_, len_ - body_pos_);
      body_pos_ += step.consumed;
      switch (step.status) {
        case ChunkedDecoder::Status::kData:
          body_total_ += step.data.size();
          if (body_total_ > lim.max_body_bytes)
            co_return BodyPiece{.error = BodyPiece::Error::kTooLarge};
          co_return BodyPiece{.data = step.data};
        case ChunkedDecoder::Status::kDone:
          body_done_ = true;
          co_return BodyPiece{.done = true};
        case ChunkedDecoder::Status::kError:
          co_return BodyPiece{.error = BodyPiece::Error::kMalformed};
        case ChunkedDecoder::Status::kNeedMore:
          break;
      }
    }
    // Need more bytes: keep the unconsumed tail (a partial chunk line) right after the head.
    const std::size_t base = req_->head.head_size;
    const std::size_t rest = len_ - body_pos_;
    if (body_pos_ != base && rest > 0)
      std::memmove(buf_.get() + base, buf_.get() + body_pos_, rest);
    len_ = base + rest;
    body_pos_ = base;
    if (len_ == cap_) co_return BodyPiece{.error = BodyPiece::Error::kMalformed};
    body_read_from_socket_ = true;
    if (const BodyPiece::Error e = co_await read_more_body(); e != BodyPiece::Error::kNone)
      co_return BodyPiece{.error = e};
  }
}

Task<bool> Exchange::drain_body(std::uint64_t max) {
  std::uint64_t seen = 0;
  while (!body_done_) {
    if (info_.framing == Framing::kLength && body_left_ > max) co_return false;
    BodyPiece p = co_await read_body();
    if (p.error != BodyPiece::Error::kNone) co_return false;
    seen += p.data.size();
    if (seen > max) co_return false;
  }
  co_return true;
}

Task<void> Exchange::run() {
  worker_.add(this);
  while (!closed_) {
    // The next request head: what is buffered, then reads until it is whole. The reads are
    // here rather than in a coroutine of their own: one frame fewer per request.
    begin_head();
    awaiting_head_ = true;
    HeadStep step;
    while ((step = parse_head()) == HeadStep::kNeedMore) {
      const bool was_idle = idle_;
      error_code ec;
      std::size_t n = 0;
      if (req_) {
        std::tie(ec, n) = co_await recv_some(*reactor_, socket_, buf_.get() + len_, cap_ - len_);
      } else {
        // Idle between requests: the buffers are lent only once bytes arrive.
        std::tie(ec, n) = co_await recv_lent(
            *reactor_, socket_,
            recv_detail::Lender{this, &Exchange::lend_for_recv, &Exchange::give_back_for_recv});
      }
      if (!ec) len_ += n;
      if (ec || n == 0) {
        const TimeoutKind f = fired_;
        disarm();
        step = f == TimeoutKind::kClientHead && len_ > 0
                   ? refuse(408, "request head not received within limits.header_timeout")
                   : HeadStep::kGone;
        break;
      }
      if (was_idle) {
        idle_ = false;
        arm(socket_, worker_.now() + limits().header_timeout, TimeoutKind::kClientHead);
      }
    }
    awaiting_head_ = false;
    if (step == HeadStep::kRefuse) co_await reject(refuse_status_, refuse_detail_);
    if (step != HeadStep::kReady) break;
    keep_alive_ = info_.keep_alive;
    response_started_ = false;
    bytes_sent_ = 0;
    worker_.in_flight.fetch_add(1, std::memory_order_relaxed);
    co_await worker_.handler().handle(*this);
    worker_.in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (closed_ || !keep_alive_ || worker_.draining()) break;
    if (!body_done_ && !co_await drain_body(64 * 1024)) break;
    // The next pipelined request, if any, moves to the front.
    const std::size_t rest = len_ - body_pos_;
    if (rest > 0) std::memmove(buf_.get(), buf_.get() + body_pos_, rest);
    len_ = rest;
    if (len_ == 0) {
      give_back();  // idle until the next request: hold no buffers meanwhile
      continue;
    }
    if (cap_ > kInitialBuffer * 4 && len_ <= kInitialBuffer) {
      // A large head grew the buffer once; do not keep it for the connection's lifetime.
      auto small = std::make_unique_for_overwrite<char[]>(kInitialBuffer);
      std::memcpy(small.get(), buf_.get(), len_);
      buf_ = std::move(small);
      cap_ = kInitialBuffer;
    }
  }
  disarm();
  error_code ec;
  if (!closed_) socket_.shutdown(asio::socket_base::shutdown_send, ec);
  socket_.close(ec);
  closed_ = true;
  len_ = 0;
  give_back();
  worker_.remove(this);
}

}  // namespace sb::http
