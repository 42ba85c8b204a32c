// http_call() and its Deadline over loopback: a deadline that expires in the same io_context
// turn as the read that completes the exchange (the race that once ran the timer's handler
// on a freed coroutine frame; ASan reports it if it comes back).
#include "gateway/http_call.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <thread>

namespace sb::gateway {
namespace {

namespace asio = http::asio;
using http::kUse;

// The server answers the request, then holds the io_context's only thread for longer than
// the client's timeout, so that when the thread returns to the reactor the response and the
// expired timer are both ready in the same turn. Blocking the thread is the mechanism here,
// not a wait for an outcome: nothing is decided by the time it takes.
TEST(HttpCallTest, DeadlineExpiringInTheTurnOfTheLastReadIsHarmless) {
  constexpr auto kTimeout = std::chrono::milliseconds(50);
  for (int round = 0; round < 5; ++round) {
    asio::io_context ctx(1);
    http::Acceptor acceptor(ctx.get_executor(),
                            asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto port = acceptor.local_endpoint().port();
    asio::co_spawn(
        ctx,
        [&]() -> http::Task<void> {
          auto [aec, peer] = co_await acceptor.async_accept(kUse);
          if (aec) co_return;
          char buf[1024];
          std::string got;
          while (got.find("\r\n\r\n") == std::string::npos) {
            auto [rec, n] = co_await peer.async_read_some(asio::buffer(buf), kUse);
            if (rec) co_return;
            got.append(buf, n);
          }
          const std::string answer = "HTTP/1.1 204 No Content\r\nRetry-After: 7\r\n\r\n";
          http::error_code wec;
          asio::write(peer, asio::buffer(answer), wec);
          std::this_thread::sleep_for(kTimeout * 3);  // see the test's comment
          // Keep the connection open until the client is done with it.
          co_await peer.async_read_some(asio::buffer(buf), kUse);
        },
        asio::detached);
    core::UpstreamUrl url;
    url.host = "127.0.0.1";
    url.port = port;
    url.text = "http://127.0.0.1:" + std::to_string(port);
    CallResult result;
    bool done = false;
    asio::co_spawn(
        ctx,
        [&]() -> http::Task<void> {
          CallOptions options;
          options.timeout = kTimeout;
          result = co_await http_call(url, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", options);
          done = true;
        },
        asio::detached);
    ctx.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(done);
    // Both endings are correct; what must not happen is the handler touching the freed frame.
    if (result.error.empty()) {
      EXPECT_EQ(result.status, 204);
      EXPECT_EQ(result.retry_after, "7");
    } else {
      EXPECT_EQ(result.error, "timeout after 50 ms");
    }
  }
}

// A deadline that fires closes the socket and says so; one disarmed first never touches it.
TEST(HttpCallTest, DeadlineFiresOrStaysQuiet) {
  asio::io_context ctx(1);
  http::Socket a(ctx.get_executor());
  a.open(asio::ip::tcp::v4());
  {
    Deadline d(ctx.get_executor(), std::chrono::milliseconds(1), a);
    ctx.run_for(std::chrono::seconds(5));  // returns once the timer's handler ran
    EXPECT_TRUE(d.fired());
    EXPECT_FALSE(a.is_open());
  }
  ctx.restart();
  http::Socket b(ctx.get_executor());
  b.open(asio::ip::tcp::v4());
  {
    Deadline d(ctx.get_executor(), std::chrono::milliseconds(1), b);
    d.disarm();
  }
  ctx.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(b.is_open());
}

}  // namespace
}  // namespace sb::gateway
