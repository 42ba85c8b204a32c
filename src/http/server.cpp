#include "http/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <mutex>
#include <system_error>
#include <tuple>

#include "core/assert.hpp"
#include "core/correlation_id.hpp"
#include "core/logging.hpp"
#include "http/exchange.hpp"
#include "http/free_list.hpp"
#include "http/problem.hpp"
#include "http/recv.hpp"
#include "http/socket_calls.hpp"
#include "http/upstream.hpp"

namespace sb::http {
namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr auto kTick = kTickPeriod;
constexpr unsigned kTicksPerTrim = 10;  // buffer free lists shed unused blocks every second

std::optional<asio::ip::tcp::endpoint> endpoint_for(const core::HostPort& hp, std::string* err) {
  error_code ec;
  auto addr = asio::ip::make_address(hp.host, ec);
  if (ec) {
    if (hp.host == "localhost") {
      addr = asio::ip::make_address("127.0.0.1");
    } else {
      *err = hp.str() + ": listen address must be an IP address (" + ec.message() + ")";
      return std::nullopt;
    }
  }
  return asio::ip::tcp::endpoint(addr, hp.port);
}

thread_local Worker* t_current_worker = nullptr;

Task<void> run_exchange(std::unique_ptr<Exchange> ex) { co_await ex->run(); }

Task<void> refuse_connection(Socket socket, std::string response) {
  co_await asio::async_write(socket, asio::buffer(response), kUse);
  error_code ec;
  socket.shutdown(asio::socket_base::shutdown_both, ec);
  socket.close(ec);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Worker

struct Worker::Impl {
  explicit Impl(asio::io_context& ctx)
      : tick_timer(ctx.get_executor()), mail_ready(ctx.get_executor(), make_eventfd()) {}
  static int make_eventfd() {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    return fd;
  }
  std::vector<std::pair<Acceptor, ListenerKind>> acceptors;
  Timer tick_timer;
  // The mailbox (see deliver()): letters under mail_mu, and an eventfd that turns readable
  // when one is left.
  std::mutex mail_mu;
  std::vector<std::function<void()>> mail;
  asio::posix::basic_stream_descriptor<Executor> mail_ready;
};

Worker* Worker::current() { return t_current_worker; }

void Worker::deliver(std::function<void()> fn) {
  {
    const std::lock_guard lock(impl_->mail_mu);
    impl_->mail.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  (void)!::write(impl_->mail_ready.native_handle(), &one, sizeof one);
}

Worker::Worker(Server& server, unsigned index)
    : server_(server),
      index_(index),
      // A worker's io_context is touched by its own thread only: other threads never
      // post to it, they set atomic flags the worker reads on its tick (see tick()) or
      // leave work in its mailbox (deliver()). So neither the scheduler nor the reactor
      // needs a lock.
      ctx_(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE)),
      impl_(std::make_unique<Impl>(*ctx_)) {
  now_ = server_.clock().steady_now();
  heartbeat_.store(now_.time_since_epoch().count(), std::memory_order_relaxed);
}

Worker::~Worker() {
  if (thread_.joinable()) thread_.join();
  // Connections still open hold references to the handler: run their coroutines to
  // completion (sockets closed) before the handler goes.
  impl_->acceptors.clear();
  handler_.reset();
}

core::SteadyTime Worker::refresh_now() {
  now_ = server_.clock().steady_now();
  return now_;
}

void Worker::add(Exchange* ex) {
  ex->next_ = head_;
  ex->prev_ = nullptr;
  if (head_ != nullptr) head_->prev_ = ex;
  head_ = ex;
  connections_.fetch_add(1, std::memory_order_relaxed);
}

void Worker::remove(Exchange* ex) {
  SB_ASSERT(ex->prev_ != nullptr || head_ == ex);  // on this worker's list
  if (ex->prev_ != nullptr)
    ex->prev_->next_ = ex->next_;
  else
    head_ = ex->next_;
  if (ex->next_ != nullptr) ex->next_->prev_ = ex->prev_;
  ex->prev_ = ex->next_ = nullptr;
  connections_.fetch_sub(1, std::memory_order_relaxed);
  server_.total_connections.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::tick() {
  const auto now = refresh_now();
  heartbeat_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  if (server_.stop_requested_.load(std::memory_order_acquire)) {
    ctx_->stop();
    return;
  }
  if (!server_.accepting() && !listeners_closed_) {
    listeners_closed_ = true;
    close_listeners();
  }
  for (Exchange* ex = head_; ex != nullptr;) {
    Exchange* next = ex->next_;  // check_deadline may not unlink, but be safe
    ex->check_deadline(now);
    ex = next;
  }
  if (server_.draining() && !server_.accepting()) close_idle();
  if (++ticks_ % kTicksPerTrim == 0) {
    Exchange::trim_free_buffers();
    UpstreamConnection::trim_free_buffers();
  }
  handler_->on_tick(now);
}

void Worker::close_idle() {
  for (Exchange* ex = head_; ex != nullptr; ex = ex->next_) ex->close_if_idle();
}

void Worker::close_listeners() {
  for (auto& [acceptor, kind] : impl_->acceptors) {
    error_code ec;
    acceptor.close(ec);
  }
}

void Worker::accept_loop(int which) {
  auto loop = [](Worker& self, Acceptor& acceptor, ListenerKind kind) -> Task<void> {
    const auto max_conn = self.limits().max_connections;
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kUse);
      if (ec) {
        if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
        // EMFILE and friends: pause instead of spinning.
        spdlog::warn("accept on worker {} failed: {}", self.index(), ec.message());
        Timer t(self.context().get_executor());
        t.expires_after(std::chrono::milliseconds(50));
        co_await t.async_wait(kUse);
        continue;
      }
      error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      enable_inq(socket);
      const auto total = self.server().total_connections.fetch_add(1, std::memory_order_relaxed);
      if (total >= max_conn) {
        self.server().total_connections.fetch_sub(1, std::memory_order_relaxed);
        HeadBuffer response;
        write_problem(response, 503, "connection-limit",
                      "the gateway holds limits.max_connections (" + std::to_string(max_conn) +
                          ") client connections",
                      "-", true);
        asio::co_spawn(self.context(),
                       refuse_connection(std::move(socket), std::string(response.view())),
                       asio::detached);
        continue;
      }
      auto ex = std::make_unique<Exchange>(self, std::move(socket), kind);
      asio::co_spawn(self.context(), run_exchange(std::move(ex)), asio::detached);
    }
  };
  auto& [acceptor, kind] = impl_->acceptors[static_cast<std::size_t>(which)];
  asio::co_spawn(*ctx_, loop(*this, acceptor, kind), asio::detached);
}

// ---------------------------------------------------------------------------------------
// Server

Server::Server(ServerSettings settings, core::Clock& clock, HandlerFactory factory)
    : settings_(std::move(settings)),
      clock_(clock),
      factory_(std::move(factory)),
      resolver_(std::make_unique<NameResolver>()) {}

Server::~Server() { stop(); }

std::optional<std::string> Server::bind() {
  std::vector<std::pair<core::HostPort, ListenerKind>> wanted{
      {settings_.listen, ListenerKind::kProxy}};
  if (settings_.admin_listen) wanted.emplace_back(*settings_.admin_listen, ListenerKind::kAdmin);
  if (settings_.metrics_listen)
    wanted.emplace_back(*settings_.metrics_listen, ListenerKind::kMetrics);

  // Probe each address with a plain socket first: a socket bound with SO_REUSEPORT would
  // silently share the port with another Switchboard of the same user.
  std::vector<asio::ip::tcp::endpoint> endpoints;
  for (auto& [hp, kind] : wanted) {
    std::string err;
    auto ep = endpoint_for(hp, &err);
    if (!ep) return err;
    asio::io_context probe_ctx;
    asio::ip::tcp::acceptor probe(probe_ctx);
    error_code ec;
    probe.open(ep->protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(*ep, ec);
    if (ec) {
      const char* what = ec == asio::error::address_in_use ? "address already in use" : nullptr;
      return hp.str() + ": " + (what ? what : ec.message());
    }
    ep->port(probe.local_endpoint().port());
    endpoints.push_back(*ep);
  }

  const unsigned n = std::max(1u, settings_.threads);
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
  for (std::size_t l = 0; l < wanted.size(); ++l) {
    for (auto& w : workers_) {
      Acceptor a(w->context().get_executor());
      error_code ec;
      a.open(endpoints[l].protocol(), ec);
      if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) a.set_option(ReusePort(true), ec);
      if (!ec) a.bind(endpoints[l], ec);
      if (!ec) a.listen(1024, ec);
      if (ec) {
        workers_.clear();
        return wanted[l].first.str() + ": " + ec.message();
      }
      w->impl_->acceptors.emplace_back(std::move(a), wanted[l].second);
    }
  }
  bound_proxy_ = core::HostPort{settings_.listen.host, endpoints[0].port()};
  std::size_t next = 1;
  if (settings_.admin_listen)
    bound_admin_ = core::HostPort{settings_.admin_listen->host, endpoints[next++].port()};
  if (settings_.metrics_listen)
    bound_metrics_ = core::HostPort{settings_.metrics_listen->host, endpoints[next].port()};
  return std::nullopt;
}

void Server::start() {
  for (auto& w : workers_) {
    w->handler_ = factory_(*w);
    for (std::size_t i = 0; i < w->impl_->acceptors.size(); ++i)
      w->accept_loop(static_cast<int>(i));
    auto ticker = [](Worker& self) -> Task<void> {
      auto& timer = self.impl_->tick_timer;
      for (;;) {
        timer.expires_after(kTick);
        auto [ec] = co_await timer.async_wait(kUse);
        if (ec) co_return;
        self.tick();
      }
    };
    asio::co_spawn(*w->ctx_, ticker(*w), asio::detached);
    auto mailbox = [](Worker& self) -> Task<void> {
      auto& ready = self.impl_->mail_ready;
      std::vector<std::function<void()>> letters;
      for (;;) {
        auto [ec] = co_await ready.async_wait(asio::posix::descriptor_base::wait_read, kUse);
        if (ec) co_return;
        std::uint64_t count = 0;
        (void)!::read(ready.native_handle(), &count, sizeof count);  // resets the eventfd
        {
          const std::lock_guard lock(self.impl_->mail_mu);
          letters.swap(self.impl_->mail);
        }
        for (auto& letter : letters) letter();
        letters.clear();
      }
    };
    asio::co_spawn(*w->ctx_, mailbox(*w), asio::detached);
    w->thread_ = std::thread([worker = w.get()] {
      t_current_worker = worker;
      worker->handler_->on_thread_start();
      worker->ctx_->run();
    });
  }
}

void Server::begin_drain() { draining_.store(true, std::memory_order_relaxed); }

void Server::stop_accepting() {
  // Each worker closes its own listeners and idle connections on its next tick.
  accepting_.store(false, std::memory_order_release);
}

std::uint32_t Server::connections() const {
  std::uint32_t n = 0;
  for (auto& w : workers_) n += w->connections();
  return n;
}

std::uint32_t Server::in_flight() const {
  std::uint32_t n = 0;
  for (auto& w : workers_) n += w->in_flight.load(std::memory_order_relaxed);
  return n;
}

bool Server::workers_alive(core::SteadyTime now, std::chrono::nanoseconds stall) const {
  for (auto& w : workers_) {
    const core::SteadyTime beat{core::SteadyTime::duration(w->heartbeat())};
    if (now - beat > stall) return false;
  }
  return true;
}

void Server::stop() {
  // Each worker stops its own loop on its next tick; a worker that never started has
  // nothing to stop.
  stop_requested_.store(true, std::memory_order_release);
  for (auto& w : workers_)
    if (w->thread_.joinable()) w->thread_.join();
  // Its letters go to workers: stopped before they are destroyed (~Server runs stop()).
  resolver_->stop();
}

}  // namespace sb::http
