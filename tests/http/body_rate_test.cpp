#include "http/body_rate.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "testing/manual_clock.hpp"

namespace sb::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A read of `bytes` that waits `d` on the clock.
void read(BodyRate& rate, testing::ManualClock& clock, core::Duration d, std::uint64_t bytes) {
  const auto began = clock.steady_now();
  clock.advance(d);
  rate.record(began, clock.steady_now(), bytes);
}

// Off (rate 0): no read ever has a deadline.
TEST(BodyRateTest, ZeroRateIsOff) {
  testing::ManualClock clock;
  BodyRate rate(0, seconds(1));
  read(rate, clock, seconds(100), 1);
  EXPECT_FALSE(rate.enabled());
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), core::SteadyTime::max());
}

// Before any byte, the first read may wait the whole grace.
TEST(BodyRateTest, FirstReadGetsTheGrace) {
  testing::ManualClock clock;
  BodyRate rate(100, milliseconds(500));
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now() + milliseconds(500));
}

// Each byte earns 1/rate seconds of waiting: 50 bytes at 100 B/s are worth 500 ms more.
TEST(BodyRateTest, BytesEarnWaitingTime) {
  testing::ManualClock clock;
  BodyRate rate(100, milliseconds(500));
  read(rate, clock, milliseconds(200), 50);  // allowance 500 + 500, 200 spent
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now() + milliseconds(800));
}

// A trickle below the rate runs out of allowance: 5 bytes every 100 ms (50 B/s) against
// 100 B/s with 500 ms of grace is cut after 1 s of waiting, and not a read before.
TEST(BodyRateTest, TrickleBelowTheRateRunsOut) {
  testing::ManualClock clock;
  BodyRate rate(100, milliseconds(500));
  int reads = 0;
  while (rate.read_deadline(clock.steady_now()) >= clock.steady_now() + milliseconds(100)) {
    read(rate, clock, milliseconds(100), 5);
    ++reads;
    ASSERT_LT(reads, 100) << "never ran out";
  }
  // After k reads, 500 ms + 50k ms were earned and 100k ms spent: 50 ms are left at k = 9.
  EXPECT_EQ(reads, 9);
  EXPECT_EQ(rate.waited(), milliseconds(900));
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now() + milliseconds(50));
  read(rate, clock, milliseconds(100), 5);  // 1 s waited, 50 bytes: exactly spent
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now());
}

// A body at the rate never runs out, however long it is.
TEST(BodyRateTest, BodyAtTheRateNeverRunsOut) {
  testing::ManualClock clock;
  BodyRate rate(100, milliseconds(500));
  for (int i = 0; i < 1000; ++i) {
    read(rate, clock, milliseconds(100), 10);
    ASSERT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now() + milliseconds(500))
        << "read " << i;
  }
}

// Time the gateway spends not reading (an upstream slow to take the body) is not counted:
// only the reads' own waiting is.
TEST(BodyRateTest, TimeOutsideReadsIsNotCounted) {
  testing::ManualClock clock;
  BodyRate rate(100, milliseconds(500));
  read(rate, clock, milliseconds(100), 0);
  clock.advance(seconds(60));
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now() + milliseconds(400));
}

// reset() starts a new body with the full grace.
TEST(BodyRateTest, ResetForgetsThePreviousBody) {
  testing::ManualClock clock;
  BodyRate rate(100, milliseconds(500));
  read(rate, clock, seconds(5), 1);
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now());
  rate.reset();
  EXPECT_EQ(rate.read_deadline(clock.steady_now()), clock.steady_now() + milliseconds(500));
  EXPECT_EQ(rate.received(), 0u);
}

}  // namespace
}  // namespace sb::http
