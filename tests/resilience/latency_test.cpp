#include "resilience/latency.hpp"

#include <gtest/gtest.h>

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;

TEST(LatencyEstimatorTest, EmptyIsZero) {
  LatencyEstimator e;
  EXPECT_EQ(e.count(), 0u);
  EXPECT_EQ(e.median(), 0ms);
  EXPECT_EQ(e.p95(), 0ms);
}

// Before the ring fills, each sample is reflected at once.
TEST(LatencyEstimatorTest, FewSamplesExact) {
  LatencyEstimator e;
  e.record(10ms);
  EXPECT_EQ(e.median(), 10ms);
  EXPECT_EQ(e.p95(), 10ms);
  e.record(30ms);
  e.record(20ms);
  EXPECT_EQ(e.median(), 20ms);
  EXPECT_EQ(e.p95(), 30ms);
}

// Nearest rank over 64 samples 1..64 ms: median 32, p95 the 61st.
TEST(LatencyEstimatorTest, NearestRankOverFullRing) {
  LatencyEstimator e;
  for (int i = 64; i >= 1; --i) e.record(std::chrono::milliseconds(i));
  EXPECT_EQ(e.count(), 64u);
  EXPECT_EQ(e.median(), 32ms);
  EXPECT_EQ(e.p95(), 61ms);
}

// Old samples leave the ring: after 64 fast samples the slow past is forgotten; a full ring
// refreshes every kRefresh samples.
TEST(LatencyEstimatorTest, ForgetsOldSamplesAndRefreshesInSteps) {
  LatencyEstimator e;
  for (int i = 0; i < 64; ++i) e.record(1s);
  EXPECT_EQ(e.median(), 1s);
  for (int i = 0; i < 7; ++i) e.record(1ms);
  EXPECT_EQ(e.p95(), 1s);  // 7 new samples: not yet refreshed
  for (int i = 0; i < 64; ++i) e.record(1ms);
  EXPECT_EQ(e.median(), 1ms);
  EXPECT_EQ(e.p95(), 1ms);
}

}  // namespace
}  // namespace sb::resilience
