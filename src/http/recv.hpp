// Socket reads that spare the data path Asio's failing first recv().
//
// Asio tries every read at once ("speculatively") before waiting for epoll, and stops only
// after a read of 0 bytes. On a request/response connection the read that follows a write
// nearly never finds data (the peer has not answered yet), so half the data path's recv()
// calls returned EAGAIN: 4 per proxied request where 2 carry data (counted with perf's
// syscall tracepoints). Two ways out, one per side:
//
// - Client connections (recv_some): a short read alone does not prove the socket drained,
//   since the peer's FIN may sit behind the data and a FIN that came before the read raises
//   no new epoll event. So these sockets set TCP_INQ (enable_inq) and read with recvmsg():
//   the kernel says how much is left, counting a pending FIN as more (tcp_inq_hint). A read
//   that leaves nothing reports "done and exhausted": the reactor stops trying reads on the
//   socket until epoll reports news, and the next read waits for epoll without a system
//   call. (nginx learns the same from EPOLLRDHUP; Asio does not pass epoll's flags to its
//   operations.)
// - Upstream connections (ReadStart::kWaitForEpoll): the first read after a request was
//   sent skips the speculative recv() outright. That is safe because something is bound to
//   arrive after the request and raise an epoll event: the answer, or a reset from an
//   instance that had already closed. A plain recv() is cheaper than recvmsg() with its
//   control message (~150 ns per read here, perf), so this side does without TCP_INQ.
//
// Built on Asio's reactor operations (boost/asio/detail, Boost 1.81 as packaged by Debian 12):
// the operation object is allocated, completed and destroyed exactly as Asio's own
// reactive_socket_recv_op is; only its perform step differs. Internal to src/http and
// src/gateway .cpp files.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactive_socket_service_base.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#include <boost/asio/error.hpp>

#include "http/io.hpp"
#include "http/socket_calls.hpp"

namespace sb::http {
namespace recv_detail {

namespace ad = boost::asio::detail;

/// Where a read's buffer comes from when it has none yet: lend() is called (on the
/// socket's thread, from the reactor) once bytes may be there, and give_back() when the
/// attempt found none after all, so a connection waiting for its next request holds no
/// buffer. lend() returns the buffer and sets `size`; it must not fail.
struct Lender {
  void* self = nullptr;
  char* (*lend)(void* self, std::size_t& size) = nullptr;
  void (*give_back)(void* self) = nullptr;
};

enum class Flavor : std::uint8_t {
  kPlain,  // recv(); done when bytes came
  // As kPlain, but the first attempt (the speculative one) is skipped. Only for sockets
  // whose reads have never reported "exhausted" (upstream sockets: no TCP_INQ, and dropped
  // after end of stream): then the reactor makes that first attempt from start_op, before
  // any event, and the skip never swallows an event's read.
  kWaitForEpoll,
  kInq,  // recvmsg() with TCP_INQ: done and exhausted when nothing is left
};

template <class Handler>
class RecvOp : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(RecvOp);

  RecvOp(int fd, char* data, std::size_t size, Flavor flavor, Lender lender, Handler& handler,
         const Executor& io_ex)
      : reactor_op(error_code(), &RecvOp::perform, &RecvOp::complete),
        fd_(fd),
        flavor_(flavor),
        data_(data),
        size_(size),
        lender_(lender),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  static status perform(reactor_op* base) {
    auto* o = static_cast<RecvOp*>(base);
    if (o->flavor_ == Flavor::kWaitForEpoll) {  // "would block", without a system call
      o->flavor_ = Flavor::kPlain;
      return not_done;
    }
    const bool borrowed = o->data_ == nullptr && o->lender_.lend != nullptr;
    if (borrowed) o->data_ = o->lender_.lend(o->lender_.self, o->size_);
    if (o->size_ == 0) return done;  // as Asio: an empty read completes at once with 0
    for (;;) {
      int left = -1;
      const ssize_t n =
          o->flavor_ == Flavor::kInq ? o->recv_inq(left) : sys::recv(o->fd_, o->data_, o->size_, 0);
      if (n > 0) {
        o->bytes_transferred_ = static_cast<std::size_t>(n);
        return left == 0 ? done_and_exhausted : done;
      }
      if (n == 0) {
        o->ec_ = boost::asio::error::eof;
        return done_and_exhausted;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (borrowed) {  // nothing came after all: keep waiting without the buffer
          o->lender_.give_back(o->lender_.self);
          o->data_ = nullptr;
          o->size_ = 0;
        }
        return not_done;
      }
      o->ec_ = error_code(errno, boost::asio::error::get_system_category());
      return done;
    }
  }

  static void complete(void* owner, ad::operation* base, const error_code&, std::size_t) {
    auto* o = static_cast<RecvOp*>(base);
    ptr p = {ad::addressof(o->handler_), o, o};
    ad::handler_work<Handler, Executor> w(std::move(o->work_));
    // The handler may own the operation's memory: free it from a local copy, then call.
    ad::binder2<Handler, error_code, std::size_t> handler(o->handler_, o->ec_,
                                                          o->bytes_transferred_);
    p.h = ad::addressof(handler.handler_);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

 private:
  // recvmsg() with room for TCP_INQ's control message; `left` is what it says remains (a
  // pending FIN counts as 1), -1 when the socket sent none.
  ssize_t recv_inq(int& left) {
    iovec iov{data_, size_};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = sys::recvmsg(fd_, &msg, 0);
    if (n > 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ)
          std::memcpy(&left, CMSG_DATA(c), sizeof left);
      }
    }
    return n;
  }

  int fd_;
  Flavor flavor_;
  char* data_;
  std::size_t size_;
  Lender lender_;
  Handler handler_;
  ad::handler_work<Handler, Executor> work_;
};

// Reaches the socket's reactor registration, which basic_socket keeps protected. A member
// pointer formed in a derived class's scope is the standard way to read it; the class is
// never constructed.
struct SocketAccess : Socket {
  static auto& implementation(Socket& s) {
    return (s.*(&SocketAccess::impl_)).get_implementation();
  }
};

template <class Handler>
void start_recv(Reactor& reactor, Socket& socket, char* data, std::size_t size, Flavor flavor,
                Handler handler, Lender lender = {}) {
  const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
  auto& impl = SocketAccess::implementation(socket);
  using Op = RecvOp<Handler>;
  typename Op::ptr p = {ad::addressof(handler), Op::ptr::allocate(handler), 0};
  p.p = new (p.v) Op(impl.socket_, data, size, flavor, lender, handler, socket.get_executor());
  if (!(impl.state_ & ad::socket_ops::non_blocking) &&
      !ad::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, p.p->ec_)) {
    reactor.post_immediate_completion(p.p, is_continuation);
  } else {
    reactor.start_op(ad::epoll_reactor::read_op, impl.socket_, impl.reactor_data_, p.p,
                     is_continuation, true);
  }
  p.v = p.p = 0;
}

}  // namespace recv_detail

/// The reactor behind `socket`'s io_context. Looked up (under Asio's service-registry lock)
/// once per connection, not per read.
inline Reactor& reactor_of(Socket& socket) {
  return asio::use_service<Reactor>(socket.get_executor().context());
}

/// Asks the kernel to say with every read how much is left (TCP_INQ), for recv_some. Once
/// per connection.
inline void enable_inq(Socket& socket) {
  const int on = 1;
  ::setsockopt(socket.native_handle(), SOL_TCP, TCP_INQ, &on, sizeof on);
}

/// `auto [ec, n] = co_await recv_some(reactor, socket, data, size)`: like async_read_some on
/// one buffer (end of stream is asio::error::eof), but a read that drained a TCP_INQ socket
/// leaves the next one waiting for epoll instead of trying recv() first. `reactor` is
/// reactor_of(socket).
inline auto recv_some(Reactor& reactor, Socket& socket, char* data, std::size_t size) {
  return asio::async_initiate<decltype(kUse), void(error_code, std::size_t)>(
      [&reactor, &socket, data, size](auto handler) {
        recv_detail::start_recv(reactor, socket, data, size, recv_detail::Flavor::kInq,
                                std::move(handler));
      },
      kUse);
}

/// `auto [ec, n] = co_await recv_lent(reactor, socket, lender)`: recv_some for a connection
/// that holds no buffer while it waits (an idle keep-alive client). The buffer is taken
/// from `lender` only when the socket may have bytes, and returned if it had none; after a
/// read that brought bytes (or an end of stream) the caller owns what lend() gave. A read
/// that ends without attempting (cancelled, timed out) has taken nothing.
inline auto recv_lent(Reactor& reactor, Socket& socket, recv_detail::Lender lender) {
  return asio::async_initiate<decltype(kUse), void(error_code, std::size_t)>(
      [&reactor, &socket, lender](auto handler) {
        recv_detail::start_recv(reactor, socket, nullptr, 0, recv_detail::Flavor::kInq,
                                std::move(handler), lender);
      },
      kUse);
}

}  // namespace sb::http
