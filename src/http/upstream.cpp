#include "http/upstream.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include "core/assert.hpp"
#include "core/logging.hpp"
#include "http/exchange.hpp"
#include "http/free_list.hpp"
#include "http/server.hpp"
#include "http/socket_calls.hpp"

namespace sb::http {

namespace ssl = asio::ssl;

std::shared_ptr<ssl::context> make_client_tls_context(const core::TlsConfig& tls,
                                                      std::string* error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (!tls.ca_file.empty()) {
    ctx->load_verify_file(tls.ca_file, ec);
    if (ec) {
      *error = "tls.ca_file \"" + tls.ca_file + "\": " + ec.message();
      return nullptr;
    }
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) {
      *error = "cannot load the system's trust store: " + ec.message();
      return nullptr;
    }
  }
  ctx->set_verify_mode(tls.verify ? ssl::verify_peer : ssl::verify_none, ec);
  return ctx;
}

struct UpstreamConnection::Tls {
  Tls(Socket& s, ssl::context& ctx) : stream(s, ctx) {}
  ssl::stream<Socket&> stream;
};

namespace {
// Per worker thread: buffers of connections that are idle or gone, kept for the next lease
// and trimmed by the worker's tick (see FreeList).
constexpr std::size_t kMaxFreeBuffers = 1024;  // at most ~24 MiB kept per worker
thread_local FreeList<ResponseBuffer> t_free_buffers(kMaxFreeBuffers);
}  // namespace

void UpstreamConnection::trim_free_buffers() { t_free_buffers.trim(); }

UpstreamConnection::UpstreamConnection(Executor ex) : socket_(ex), reactor_(&reactor_of(socket_)) {
  lend();
}

UpstreamConnection::~UpstreamConnection() { give_back(); }

void UpstreamConnection::lend() {
  if (lent_) return;
  lent_ = t_free_buffers.take();
  if (!lent_) lent_ = std::make_unique_for_overwrite<ResponseBuffer>();  // no 20 KiB memset
  len = 0;
}

void UpstreamConnection::give_back() {
  if (!lent_) return;
  t_free_buffers.put(std::move(lent_));
}

Socket& UpstreamConnection::socket() { return socket_; }

void UpstreamConnection::start_tls_write(Buffers buffers, Completion handler) {
  tls_->stream.async_write_some(buffers, std::move(handler));
}

void UpstreamConnection::start_tls_read(asio::mutable_buffer buffer, Completion handler) {
  tls_->stream.async_read_some(buffer, std::move(handler));
}

Task<std::string> UpstreamConnection::handshake(const UpstreamTarget& target) {
  tls_ = std::make_unique<Tls>(socket_, *target.tls_context);
  SSL* ssl_handle = tls_->stream.native_handle();
  const std::string& name = target.server_name.empty() ? target.host : target.server_name;
  error_code ip_ec;
  asio::ip::make_address(name, ip_ec);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
  if (ip_ec) {
    SSL_set_tlsext_host_name(ssl_handle, name.c_str());
    if (target.verify) X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  } else if (target.verify) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  }
  auto [hec] = co_await tls_->stream.async_handshake(ssl::stream_base::client, kUse);
  if (!hec) co_return std::string();
  const long verify = SSL_get_verify_result(ssl_handle);
  if (verify != X509_V_OK)
    co_return std::string("certificate verification failed: ") +
        X509_verify_cert_error_string(verify);
  co_return hec.message();
}

const char* describe(AcquireError e) {
  switch (e) {
    case AcquireError::kNone:
      return "ok";
    case AcquireError::kRefused:
      return "connection refused";
    case AcquireError::kTimeout:
      return "connect timeout";
    case AcquireError::kTls:
      return "TLS handshake failed";
    case AcquireError::kResolve:
      return "name resolution failed";
    case AcquireError::kLimit:
      return "connection limit reached";
  }
  return "error";
}

NameResolver::NameResolver() = default;

NameResolver::~NameResolver() { stop(); }

void NameResolver::resolve(Worker& worker, std::string host, std::uint16_t port, Done done) {
  const std::lock_guard lock(mu_);
  if (stopping_) return;  // the server is stopping: nobody waits for the answer
  jobs_.push_back(Job{&worker, std::move(host), port, std::move(done)});
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  wake_.notify_one();
}

void NameResolver::stop() {
  std::deque<Job> dropped;
  {
    const std::lock_guard lock(mu_);
    stopping_ = true;
    dropped.swap(jobs_);
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NameResolver::run() {
  asio::io_context ctx;  // the synchronous resolver needs one; it is never run
  asio::ip::tcp::resolver resolver(ctx);
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    // No address_configured (AI_ADDRCONFIG): it drops IPv4 answers on a host whose only
    // IPv4 address is the loopback one (a container without a network), "localhost" too.
    error_code ec;
    auto results = resolver.resolve(job.host, std::to_string(job.port),
                                    asio::ip::resolver_base::numeric_service, ec);
    Endpoints endpoints;
    if (!ec)
      for (const auto& r : results) endpoints.push_back(r.endpoint());
    if (!ec && endpoints.empty()) ec = asio::error::host_not_found;
    lock.lock();
    // Delivered under the lock: once stop() has returned, no worker gets a letter from here.
    if (stopping_) return;
    job.worker->deliver(
        [done = std::move(job.done), ec, found = std::move(endpoints)]() { done(ec, found); });
  }
}

/// One resolution of a pool's host name, shared by the connects waiting for it and the
/// letter that brings the answer (which may come after the pool is gone).
struct UpstreamPool::Resolution {
  explicit Resolution(Executor ex) : wake(ex) {}
  UpstreamPool* pool = nullptr;  // null once nobody in the pool waits for this answer
  Timer wake;                    // expires at the connect timeout; the answer cancels it
  bool answered = false;
  error_code ec;
};

UpstreamPool::UpstreamPool(Executor ex, UpstreamTarget target, core::PoolConfig pool,
                           core::Millis connect_timeout)
    : ex_(ex), target_(std::move(target)), pool_(pool), connect_timeout_(connect_timeout) {
  error_code ec;
  auto addr = asio::ip::make_address(target_.host, ec);
  if (!ec) endpoints_.emplace_back(addr, target_.port);
  idle_.reserve(pool_.max_idle);
}

UpstreamPool::~UpstreamPool() {
  if (resolving_) resolving_->pool = nullptr;
}

Task<std::optional<UpstreamPool::Lease>> UpstreamPool::resolve() {
  Worker* worker = Worker::current();
  if (worker == nullptr) {
    SB_BUG("UpstreamPool::connect() for a host name off a worker thread");
    co_return Lease{nullptr, AcquireError::kResolve,
                    target_.host + ": no worker thread to resolve it on"};
  }
  std::shared_ptr<Resolution> r = resolving_;
  if (!r) {
    r = std::make_shared<Resolution>(ex_);
    r->pool = this;
    r->wake.expires_after(connect_timeout_);
    resolving_ = r;
    worker->server().resolver().resolve(*worker, target_.host, target_.port,
                                        [r](error_code ec, NameResolver::Endpoints found) {
                                          r->answered = true;
                                          r->ec = ec;
                                          if (r->pool != nullptr) {
                                            if (!ec) r->pool->endpoints_ = std::move(found);
                                            r->pool->resolving_.reset();
                                          }
                                          r->wake.cancel();
                                        });
  }
  co_await r->wake.async_wait(kUse);
  if (!r->answered) {
    // The next connect asks again; this answer, when it comes, is dropped.
    r->pool = nullptr;
    if (resolving_ == r) resolving_.reset();
    co_return Lease{nullptr, AcquireError::kTimeout,
                    target_.host + ": no address within upstream timeouts.connect (" +
                        std::to_string(connect_timeout_.count()) + " ms)"};
  }
  if (r->ec)
    co_return Lease{nullptr, AcquireError::kResolve, target_.host + ": " + r->ec.message()};
  co_return std::nullopt;
}

bool UpstreamConnection::idle_clean() {
  // MSG_PEEK takes nothing from the socket: an alive, quiet connection stays as it was.
  char byte;
  for (;;) {
    const ssize_t n = sys::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

std::unique_ptr<UpstreamConnection> UpstreamPool::take_idle() {
  std::unique_ptr<UpstreamConnection> conn;
  while (!idle_.empty()) {
    conn = std::move(idle_.back());
    idle_.pop_back();
    // An idle connection must have nothing to read: an end of stream, an error or stray
    // bytes (an unsolicited 408 before the instance closes it) all mean it is gone or
    // dirty. Checked here, once per reuse, rather than by a read-watch on every idle socket:
    // see the comment on idle_clean().
    if (conn->idle_clean()) break;
    ++stale_discarded_;
    ++closed_;
    spdlog::debug("upstream {}:{}: kept connection closed or dirty while idle; discarded",
                  target_.host, target_.port);
    conn.reset();  // closed by its destructor
  }
  if (!conn) return nullptr;
  conn->reused = true;
  conn->lend();
  ++busy_;
  ++reused_;
  return conn;
}

Task<UpstreamPool::Lease> UpstreamPool::connect(Exchange* ex, UpstreamConnection** watch) {
  if (busy_ + idle_.size() >= pool_.max_connections) {
    if (!idle_.empty()) {
      idle_.erase(idle_.begin());  // make room by closing the oldest idle one
      ++closed_;
    } else {
      co_return Lease{nullptr, AcquireError::kLimit,
                      "upstream.pool.max_connections (" + std::to_string(pool_.max_connections) +
                          ") connections to this instance are busy"};
    }
  }

  const auto deadline =
      (ex != nullptr ? ex->worker().now() : core::SteadyTime{}) + connect_timeout_;
  auto arm = [&](Socket& socket) {
    if (ex != nullptr) ex->arm(socket, deadline, TimeoutKind::kUpstreamConnect);
  };
  auto fired = [&] {
    const TimeoutKind f = ex != nullptr ? ex->fired() : TimeoutKind::kNone;
    if (ex != nullptr) ex->disarm();
    return f;
  };
  if (endpoints_.empty()) {
    // Only for a host name (a literal address was parsed by the constructor), the first
    // time and after a connect to all of its addresses failed: the slow path.
    if (auto failed = co_await resolve()) co_return std::move(*failed);
  }

  auto conn = std::make_unique<UpstreamConnection>(ex_);
  if (watch != nullptr) *watch = conn.get();
  struct Unwatch {
    UpstreamConnection** w;
    ~Unwatch() {
      if (w != nullptr) *w = nullptr;
    }
  } unwatch{watch};
  error_code ec = asio::error::host_not_found;
  std::size_t used = 0;
  for (; used < endpoints_.size(); ++used) {
    const auto ep = endpoints_[used];  // a copy: endpoints_ may change while connecting
    error_code close_ec;
    conn->socket_.close(close_ec);
    arm(conn->socket_);
    auto [cec] = co_await conn->socket_.async_connect(ep, kUse);
    ec = cec;
    if (fired() == TimeoutKind::kUpstreamConnect)
      co_return Lease{nullptr, AcquireError::kTimeout,
                      "no connection within upstream timeouts.connect (" +
                          std::to_string(connect_timeout_.count()) + " ms)"};
    if (!ec) break;
  }
  if (!ec && used > 0 && used < endpoints_.size())
    std::swap(endpoints_[0], endpoints_[used]);  // "localhost": ::1 refused, 127.0.0.1 taken
  if (ec) {
    // Re-resolve names next time; literal addresses stay.
    error_code parse_ec;
    asio::ip::make_address(target_.host, parse_ec);
    if (parse_ec) endpoints_.clear();
    co_return Lease{nullptr, AcquireError::kRefused, ec.message()};
  }
  error_code opt_ec;
  conn->socket_.set_option(asio::ip::tcp::no_delay(true), opt_ec);

  if (target_.tls) {
    arm(conn->socket_);
    std::string why = co_await conn->handshake(target_);
    if (fired() == TimeoutKind::kUpstreamConnect)
      co_return Lease{nullptr, AcquireError::kTimeout,
                      "TLS handshake not done within timeouts.connect"};
    if (!why.empty()) co_return Lease{nullptr, AcquireError::kTls, std::move(why)};
  }
  ++busy_;
  ++created_;
  co_return Lease{std::move(conn)};
}

void UpstreamPool::release(std::unique_ptr<UpstreamConnection> conn, core::SteadyTime now) {
  SB_ASSERT(busy_ > 0);  // only a connection this pool lent comes back
  --busy_;
  if (idle_.size() >= pool_.max_idle) {
    ++closed_;
    return;  // closed by its destructor
  }
  conn->give_back();
  conn->len = 0;
  conn->idle_since = now;
  idle_.push_back(std::move(conn));
}

void UpstreamPool::discard(std::unique_ptr<UpstreamConnection> conn) {
  SB_ASSERT(busy_ > 0);
  --busy_;
  ++closed_;
  conn.reset();
}

void UpstreamPool::sweep(core::SteadyTime now) {
  // idle_ is ordered oldest first.
  std::size_t expired = 0;
  while (expired < idle_.size() && now - idle_[expired]->idle_since >= pool_.idle_timeout)
    ++expired;
  closed_ += expired;
  if (expired > 0) idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(expired));
}

}  // namespace sb::http
