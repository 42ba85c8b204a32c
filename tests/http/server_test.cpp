#include "http/server.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>

#include "http/exchange.hpp"
#include "http/upstream.hpp"
#include "testing/manual_clock.hpp"

namespace sb::http {
namespace {

class NullHandler final : public Handler {
 public:
  Task<void> handle(Exchange& ex) override {
    ex.abort();
    co_return;
  }
};

// Answers every request "200 ok" in one write, noting the connection and whether it held
// its request buffers meanwhile.
class OkHandler final : public Handler {
 public:
  Task<void> handle(Exchange& ex) override {
    last = &ex;
    held_while_handling = ex.holds_buffers_for_test();
    static constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const asio::const_buffer b(kOk.data(), kOk.size());
    bool failed = false;
    if (ex.write_now(Buffers(&b, 1), failed) != kOk.size()) ex.abort();
    co_return;
  }
  std::atomic<Exchange*> last{nullptr};
  std::atomic<bool> held_while_handling{false};
};

// A blocking client socket to 127.0.0.1:port.
int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads until `n` responses "…ok" have arrived; false on error or timeout.
bool read_oks(int fd, int n) {
  std::string got;
  while (true) {
    std::size_t count = 0;
    for (std::size_t at = got.find("\r\n\r\nok"); at != std::string::npos;
         at = got.find("\r\n\r\nok", at + 1))
      ++count;
    if (count >= static_cast<std::size_t>(n)) return true;
    char buf[4096];
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return false;
    got.append(buf, static_cast<std::size_t>(r));
  }
}

Server::HandlerFactory null_factory() {
  return [](Worker&) { return std::make_unique<NullHandler>(); };
}

ServerSettings local(unsigned threads) {
  ServerSettings s;
  s.listen = core::HostPort{"127.0.0.1", 0};
  s.threads = threads;
  return s;
}

// Workers that do not turn fail liveness once the stall passes; not one tick before.
TEST(ServerTest, WorkersThatDoNotTurnFailLiveness) {
  testing::ManualClock clock;
  Server server(local(2), clock, null_factory());
  ASSERT_FALSE(server.bind().has_value());
  const auto t0 = clock.steady_now();
  EXPECT_TRUE(server.workers_alive(t0 + std::chrono::seconds(5), std::chrono::seconds(5)));
  EXPECT_FALSE(server.workers_alive(t0 + std::chrono::seconds(5) + std::chrono::nanoseconds(1),
                                    std::chrono::seconds(5)));
}

// Running workers refresh their heartbeat from the clock on each tick.
TEST(ServerTest, RunningWorkersRefreshTheirHeartbeat) {
  testing::ManualClock clock;
  Server server(local(2), clock, null_factory());
  ASSERT_FALSE(server.bind().has_value());
  server.start();
  clock.advance(std::chrono::seconds(60));
  const auto now = clock.steady_now();
  // Ticks run every 100 ms of real time; allow a generous bound.
  bool alive = false;
  for (int i = 0; i < 500 && !alive; ++i) {
    alive = server.workers_alive(now, std::chrono::seconds(1));
    if (!alive) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(alive);
  server.stop();
}

// A second server on the same address is refused, even though workers use SO_REUSEPORT.
TEST(ServerTest, PortInUseIsRefused) {
  testing::ManualClock clock;
  Server first(local(1), clock, null_factory());
  ASSERT_FALSE(first.bind().has_value());
  ServerSettings s = local(1);
  s.listen.port = first.proxy_address().port;
  Server second(s, clock, null_factory());
  const auto err = second.bind();
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("address already in use"), std::string::npos) << *err;
}

// Port 0 binds every worker to the same ephemeral port.
TEST(ServerTest, EphemeralPortIsSharedByWorkers) {
  testing::ManualClock clock;
  Server server(local(3), clock, null_factory());
  ASSERT_FALSE(server.bind().has_value());
  EXPECT_NE(server.proxy_address().port, 0);
  EXPECT_EQ(server.workers().size(), 3u);
}

// Issue 10: an idle keep-alive connection holds no request buffers: they are lent when a
// request's bytes arrive, kept across pipelined requests, and given back to the worker's
// free list when the connection goes idle again.
TEST(ServerTest, IdleKeepAliveConnectionHoldsNoBuffers) {
  testing::ManualClock clock;
  OkHandler* handler = nullptr;
  Server server(local(1), clock, [&](Worker&) {
    auto h = std::make_unique<OkHandler>();
    handler = h.get();
    return h;
  });
  ASSERT_FALSE(server.bind().has_value());
  server.start();
  // Runs on the worker's thread, after the turn that answered: (held, free list size).
  auto inspect = [&] {
    auto result = std::make_shared<std::promise<std::pair<bool, std::size_t>>>();
    auto fut = result->get_future();
    server.workers()[0]->deliver([&, result] {
      result->set_value(
          {handler->last.load()->holds_buffers_for_test(), Exchange::free_buffers_for_test()});
    });
    return fut.get();
  };
  const int fd = connect_to(server.proxy_address().port);
  ASSERT_GE(fd, 0);
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  ASSERT_TRUE(read_oks(fd, 1));
  EXPECT_TRUE(handler->held_while_handling.load());
  auto [held, free] = inspect();
  EXPECT_FALSE(held) << "an idle connection kept its request buffers";
  EXPECT_EQ(free, 1u);
  // Two pipelined requests, then idle again: the same buffers serve both.
  const std::string two = get + get;
  ASSERT_EQ(::send(fd, two.data(), two.size(), 0), static_cast<ssize_t>(two.size()));
  ASSERT_TRUE(read_oks(fd, 2));
  std::tie(held, free) = inspect();
  EXPECT_FALSE(held);
  EXPECT_EQ(free, 1u);
  ::close(fd);
  server.stop();
}

// Issue 10: a host name is resolved off the worker (whose lock-free io_context cannot run
// Asio's resolver) and the answer runs on the asking worker's thread; "localhost" resolves
// (no AI_ADDRCONFIG), a name that cannot exist does not.
TEST(ServerTest, ResolverAnswersOnTheAskingWorker) {
  testing::ManualClock clock;
  Server server(local(1), clock, null_factory());
  ASSERT_FALSE(server.bind().has_value());
  server.start();
  EXPECT_EQ(Worker::current(), nullptr);  // not a worker's thread
  Worker& worker = *server.workers()[0];
  struct Answer {
    bool on_worker = false;
    error_code ec;
    NameResolver::Endpoints endpoints;
  };
  auto ask = [&](std::string host) {
    auto result = std::make_shared<std::promise<Answer>>();
    auto fut = result->get_future();
    worker.deliver([&, host, result] {
      server.resolver().resolve(worker, host, 8080,
                                [&worker, result](error_code ec, NameResolver::Endpoints eps) {
                                  result->set_value({Worker::current() == &worker, ec, eps});
                                });
    });
    return fut.get();
  };
  const Answer local_host = ask("localhost");
  EXPECT_TRUE(local_host.on_worker);
  ASSERT_FALSE(local_host.ec) << local_host.ec.message();
  ASSERT_FALSE(local_host.endpoints.empty());
  bool loopback = false;
  for (const auto& ep : local_host.endpoints) {
    EXPECT_EQ(ep.port(), 8080);
    loopback = loopback || ep.address().is_loopback();
  }
  EXPECT_TRUE(loopback);
  const Answer none = ask("no-such-host.invalid");  // RFC 6761: never resolves
  EXPECT_TRUE(none.on_worker);
  EXPECT_TRUE(none.ec);
  EXPECT_TRUE(none.endpoints.empty());
  server.stop();
}

}  // namespace
}  // namespace sb::http
