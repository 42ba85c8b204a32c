// Upstream connections (plain TCP or TLS) and the per-worker, per-instance keep-alive pool
// that lends them out. Internal (includes Asio); TLS details stay in upstream.cpp.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/write.hpp>
#include "core/clock.hpp"
#include "core/config.hpp"

#include "http/io.hpp"
#include "http/parser.hpp"
#include "http/recv.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sb::http {

class Exchange;
class Worker;

/// Resolves upstream host names for the workers of one server, on a thread of its own.
/// getaddrinfo() blocks (for seconds when a DNS server does not answer), and a worker's
/// io_context cannot run Asio's async resolver: it is lock-free
/// (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE), and Asio refuses to resolve on such a context
/// ("Operation not supported"). The thread starts on the first name; the answer goes back
/// to the asking worker through its mailbox (Worker::deliver), so a worker never waits.
class NameResolver {
 public:
  using Endpoints = std::vector<asio::ip::tcp::endpoint>;
  /// Gets the error (host_not_found when there is no address) or at least one endpoint.
  using Done = std::function<void(error_code, Endpoints)>;

  NameResolver();
  ~NameResolver();  // stop()

  /// Resolves `host` (a name or a literal address) with `port`, then runs `done` on
  /// `worker`'s thread. Thread-safe. Names are asked in the order they come; no
  /// AI_ADDRCONFIG, so "localhost" resolves on a host whose only addresses are loopback.
  void resolve(Worker& worker, std::string host, std::uint16_t port, Done done);
  /// Finishes the resolution under way and joins the thread; what is still queued is
  /// dropped unanswered. Call before the workers are destroyed. Idempotent.
  void stop();

 private:
  struct Job {
    Worker* worker;
    std::string host;
    std::uint16_t port;
    Done done;
  };
  void run();
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;   // under mu_
  bool stopping_ = false;  // under mu_
  std::thread thread_;     // started by the first resolve() (under mu_)
};

/// Makes the TLS client context for a service's upstreams (verification, CA file).
/// Shared by all workers (an SSL_CTX is safe to share once configured). On error returns
/// nullptr and sets `error`.
std::shared_ptr<asio::ssl::context> make_client_tls_context(const core::TlsConfig& tls,
                                                            std::string* error);

/// Where a pool connects.
struct UpstreamTarget {
  std::string host;
  std::uint16_t port = 80;
  bool tls = false;
  std::string server_name;  // SNI and verified name (TLS only)
  bool verify = true;
  std::shared_ptr<asio::ssl::context> tls_context;
};

/// What a connection needs only while an exchange is on it: the read buffer and the parsed
/// response head. Lent from a per-thread free list on acquire and returned on release, so
/// an idle pooled connection costs a socket and not 20 KiB.
struct ResponseBuffer {
  static constexpr std::size_t kSize = 20 * 1024;  // one read takes a 16 KiB body and its head
  ResponseHead head;
  char data[kSize];
};

class UpstreamConnection {
 public:
  static constexpr std::size_t kBufferSize = ResponseBuffer::kSize;

  explicit UpstreamConnection(Executor ex);
  ~UpstreamConnection();

  /// The TCP socket (the lowest layer, also under TLS): deadlines cancel it.
  Socket& socket();
  /// Writes what a plain TCP socket takes right now (0 for TLS, which needs the stream).
  std::size_t write_now(Buffers buffers, bool& failed) {
    if (tls_) return 0;
    return send_now(socket_.native_handle(), buffers, failed);
  }
  /// `auto [ec, n] = co_await conn.write_some(buffers)`: one write, plain TCP or TLS
  /// decided at run time without a coroutine frame of its own (the TLS stream stays
  /// inside upstream.cpp). May write less than asked.
  auto write_some(Buffers buffers) {
    return asio::async_initiate<decltype(kUse), void(error_code, std::size_t)>(
        [this, buffers](auto handler) {
          if (tls_)
            start_tls_write(buffers, std::move(handler));
          else
            socket_.async_write_some(buffers, std::move(handler));
        },
        kUse);
  }
  /// How a read starts: with Asio's speculative recv(), or waiting for epoll first. Wait
  /// only for the first read after a request was sent (see http/recv.hpp).
  enum class ReadStart : bool { kTryNow, kWaitForEpoll };
  /// `auto [ec, n] = co_await conn.read_some(data, size[, start])`.
  auto read_some(char* data, std::size_t size, ReadStart start = ReadStart::kTryNow) {
    return asio::async_initiate<decltype(kUse), void(error_code, std::size_t)>(
        [this, data, size, start](auto handler) {
          if (tls_)
            start_tls_read(asio::buffer(data, size), std::move(handler));
          else
            recv_detail::start_recv(*reactor_, socket_, data, size,
                                    start == ReadStart::kWaitForEpoll
                                        ? recv_detail::Flavor::kWaitForEpoll
                                        : recv_detail::Flavor::kPlain,
                                    std::move(handler));
        },
        kUse);
  }

  /// The TLS client handshake on a connected socket: SNI, host name verification as the
  /// target asks. Returns "" on success, else why it failed (certificate errors named).
  /// Cancel it by closing socket().
  Task<std::string> handshake(const UpstreamTarget& target);

  /// True when nothing is waiting to be read on the idle socket: no end of stream, no
  /// error, no byte (one non-blocking recv with MSG_PEEK). An idle HTTP/1.1 connection
  /// must never have bytes pending; one that has them (a FIN, an unsolicited "408" before
  /// the instance closes it, a TLS close_notify) cannot be used.
  ///
  /// Why a check on take and not a read-watch on each idle socket: Asio registers sockets
  /// edge-triggered, without EPOLLRDHUP, so a FIN that arrived together with the last bytes
  /// of a response raises no event of its own after the read that took those bytes. A
  /// watch armed on release would miss it unless it first tried the socket, which costs
  /// the same recv() per request as this check, plus an operation to queue and to cancel on
  /// every reuse. The check also runs only when a connection is reused, never for one that
  /// idles out.
  bool idle_clean();
  /// Takes a read buffer from this thread's free list (an idle connection holds none).
  void lend();
  /// Returns the read buffer to this thread's free list.
  void give_back();
  /// Frees some of this thread's kept read buffers that went unused (FreeList::trim); the
  /// worker calls it about once a second.
  static void trim_free_buffers();

  // Response parsing state (while leased); the head's views point into buf().
  char* buf() { return lent_->data; }
  ResponseHead& head() { return lent_->head; }
  std::size_t len = 0;
  bool reused = false;  // came from the idle pool
  core::SteadyTime idle_since{};

 private:
  friend class UpstreamPool;
  struct Tls;
  using Completion = asio::any_completion_handler<void(error_code, std::size_t)>;
  void start_tls_write(Buffers buffers, Completion handler);
  void start_tls_read(asio::mutable_buffer buffer, Completion handler);
  Socket socket_;
  Reactor* reactor_;
  std::unique_ptr<Tls> tls_;
  std::unique_ptr<ResponseBuffer> lent_;
};

/// Why acquire() gave no connection.
enum class AcquireError : std::uint8_t { kNone, kRefused, kTimeout, kTls, kResolve, kLimit };
const char* describe(AcquireError e);

/// A pool's counts since it was made, for metrics (read on its worker).
struct PoolStats {
  std::size_t open = 0;  // lent out or idle
  std::size_t idle = 0;
  std::uint64_t created = 0;  // connections made
  std::uint64_t reused = 0;   // idle connections taken again
  std::uint64_t closed = 0;   // connections let go (discarded, expired, stale, no idle room)
};

/// Keep-alive connections to one instance, for one worker. Not thread-safe (one worker).
class UpstreamPool {
 public:
  UpstreamPool(Executor ex, UpstreamTarget target, core::PoolConfig pool,
               core::Millis connect_timeout);
  ~UpstreamPool();

  struct Lease {
    std::unique_ptr<UpstreamConnection> conn{};
    AcquireError error = AcquireError::kNone;
    std::string detail{};  // for logs and problem details
  };
  /// The most recently used idle connection that is still clean (idle_clean()), or
  /// nullptr. Idle connections found closed or dirty on the way are closed and counted.
  std::unique_ptr<UpstreamConnection> take_idle();
  /// Idle connections take_idle() found closed by the instance or holding stray bytes.
  std::uint64_t stale_discarded() const { return stale_discarded_; }
  /// A new connection (TCP connect, then the TLS handshake for https). Deadlines are armed
  /// on `ex`. The slow path: keep it out of the request's common case.
  Task<Lease> connect(Exchange& ex) { return connect(&ex, nullptr); }
  /// The same without an exchange's deadlines (`ex` null): the caller bounds it by closing
  /// the socket of `*watch`, which points at the connection while it is being made.
  Task<Lease> connect(Exchange* ex, UpstreamConnection** watch);
  /// Returns a connection after a complete exchange; kept when there is idle room.
  void release(std::unique_ptr<UpstreamConnection> conn, core::SteadyTime now);
  /// Drops a connection that cannot be reused.
  void discard(std::unique_ptr<UpstreamConnection> conn);
  /// Closes idle connections older than the idle timeout.
  void sweep(core::SteadyTime now);

  const UpstreamTarget& target() const { return target_; }
  PoolStats stats() const {
    return PoolStats{busy_ + idle_.size(), idle_.size(), created_, reused_, closed_};
  }

 private:
  struct Resolution;
  /// Fills endpoints_ for a host name: one resolution in flight per pool (callers that
  /// come while it runs wait for the same answer), bounded by the connect timeout. Returns
  /// a failed Lease, or nothing when endpoints_ is filled.
  Task<std::optional<Lease>> resolve();
  Executor ex_;
  UpstreamTarget target_;
  core::PoolConfig pool_;
  core::Millis connect_timeout_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // back = most recent
  std::size_t busy_ = 0;
  std::uint64_t stale_discarded_ = 0;
  std::uint64_t created_ = 0, reused_ = 0, closed_ = 0;
  // A literal address is parsed once; a name is resolved when first needed and the answer
  // kept until a connect to all of its addresses fails (then resolved again).
  std::vector<asio::ip::tcp::endpoint> endpoints_;
  std::shared_ptr<Resolution> resolving_;  // the resolution in flight, if any
};

}  // namespace sb::http
