// Graceful drain on SIGTERM: readiness fails, in-flight requests finish, idle
// connections close, and the process exits 0; a second SIGTERM exits at once.
#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <regex>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kDrainDelay1s = "drain:\n  delay: 1s\n";

class DrainTest : public GatewayTest {
 protected:
  // Starts the gateway and puts GET /svc/x/slow/<ms> in flight: it has reached the
  // upstream when this returns.
  void start_with_slow_request(int ms) {
    ASSERT_NO_FATAL_FAILURE(start_gateway(kDrainDelay1s));
    slow_ = std::make_unique<HttpClient>(sb_->port());
    const std::string target = "/svc/x/slow/" + std::to_string(ms);
    ASSERT_TRUE(slow_->send_raw(format_request("GET", target))) << slow_->last_error();
    ASSERT_TRUE(up_->process().wait_for_line(
        Stream::kStdout, std::regex("^REQ [0-9]+ GET /slow/" + std::to_string(ms) + "$"),
        default_timeout()))
        << "the slow request never reached the upstream";
  }

  // Asks /health/ready on new connections until it answers `status`. The drain delay
  // (1 s) bounds how long the listener accepts, so this deadline is not scaled.
  bool wait_ready_status(int status, milliseconds timeout = milliseconds(1000)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      HttpClient c = client();
      if (c.connected() && c.get("/health/ready").status == status) return true;
    }
    return false;
  }

  std::unique_ptr<HttpClient> slow_;
};

// A request in flight when SIGTERM arrives completes with 200.
TEST_F(DrainTest, InFlightRequestCompletes) {
  ASSERT_NO_FATAL_FAILURE(start_with_slow_request(2000));
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  Response r = slow_->read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "slow");
}

// During the drain delay the listener still accepts, and /health/ready answers 503.
TEST_F(DrainTest, ReadyIs503DuringDrain) {
  ASSERT_NO_FATAL_FAILURE(start_with_slow_request(2000));
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  EXPECT_TRUE(wait_ready_status(503));
}

// Once the in-flight request is done the process exits with status 0.
TEST_F(DrainTest, ExitsZeroAfterInFlightRequests) {
  ASSERT_NO_FATAL_FAILURE(start_with_slow_request(2000));
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  EXPECT_EQ(slow_->read_response().status, 200);
  EXPECT_EQ(sb_->process().wait_exit(default_timeout()), 0);
}

// A second SIGTERM during the drain ends the process at once.
TEST_F(DrainTest, SecondSigtermExitsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start_with_slow_request(10000));
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  ASSERT_TRUE(wait_ready_status(503)) << "the first SIGTERM did not start a drain";
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  EXPECT_TRUE(sb_->process().wait_exit(scaled(milliseconds(2000))).has_value())
      << "still running 2 s after the second SIGTERM";
}

// An idle keep-alive connection is closed by the drain, while a request is still in flight.
TEST_F(DrainTest, IdleKeepAliveConnectionIsClosed) {
  ASSERT_NO_FATAL_FAILURE(start_with_slow_request(4000));
  HttpClient idle = client();
  ASSERT_EQ(idle.get("/svc/x/echo").status, 200);
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  EXPECT_TRUE(idle.wait_closed(milliseconds(3000)))
      << "the idle connection was not closed before the in-flight request finished";
  EXPECT_FALSE(slow_->readable_within(milliseconds(0))) << "the slow request already ended";
  EXPECT_EQ(slow_->read_response().status, 200);
}

// Issue 10: a client stalled mid-head (not yet a request) and an idle keep-alive
// connection do not hold the drain: both are closed once the listener closes, and the
// process exits 0 at once, long before drain.timeout or limits.header_timeout would end it.
TEST_F(DrainTest, StalledHeadDoesNotHoldTheDrain) {
  ASSERT_NO_FATAL_FAILURE(
      start_gateway("drain:\n  delay: 100ms\n  timeout: 8s\nlimits:\n  header_timeout: 20s\n"));
  HttpClient idle = client();
  ASSERT_EQ(idle.get("/svc/x/echo").status, 200);
  HttpClient stalled = client();
  ASSERT_TRUE(stalled.send_raw("GET /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: "))
      << stalled.last_error();
  // The gateway reads the half head at once, long before drain.delay closes the listener.
  const auto start = Clock::now();
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  const auto code = sb_->process().wait_exit(scaled(milliseconds(4000)));
  ASSERT_TRUE(code.has_value()) << "still running 4 s after SIGTERM with no request in flight";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(Clock::now() - start, scaled(milliseconds(4000)));
  EXPECT_TRUE(stalled.wait_closed(milliseconds(1000)));  // at once: the process is gone
  EXPECT_TRUE(idle.wait_closed(milliseconds(1000)));
}

}  // namespace
}  // namespace sb::testing
