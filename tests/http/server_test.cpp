#include "http/server.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "http/exchange.hpp"
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

}  // namespace
}  // namespace sb::http
