// The health checker's loop sleeps until its next deadline, not on a fixed tick: when it
// looks again is a plain function of its deadlines.
#include "gateway/health_checker.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace sb::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const core::SteadyTime kNow{seconds(1000)};

// Nothing to check: it wakes for the next harvest (50 ms away), not 10 ms from now.
TEST(HealthCheckerTest, IdleLoopWakesForItsNextDeadlineOnly) {
  EXPECT_EQ(HealthChecker::next_wake(kNow + milliseconds(50), kNow + seconds(10), std::nullopt),
            kNow + milliseconds(50));
  EXPECT_EQ(HealthChecker::next_wake(kNow + seconds(20), kNow + seconds(10), std::nullopt),
            kNow + seconds(10));
}

// A check due before the harvest wakes it for the check; one due later does not.
TEST(HealthCheckerTest, ADueCheckWakesItWhenEarlier) {
  EXPECT_EQ(
      HealthChecker::next_wake(kNow + milliseconds(50), kNow + seconds(10), kNow + milliseconds(5)),
      kNow + milliseconds(5));
  EXPECT_EQ(
      HealthChecker::next_wake(kNow + milliseconds(50), kNow + seconds(10), kNow + seconds(30)),
      kNow + milliseconds(50));
  // A check already due (the loop fell behind) is due now.
  EXPECT_EQ(
      HealthChecker::next_wake(kNow + milliseconds(50), kNow + seconds(10), kNow - milliseconds(3)),
      kNow - milliseconds(3));
}

}  // namespace
}  // namespace sb::gateway
