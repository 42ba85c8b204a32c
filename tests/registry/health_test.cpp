#include "registry/health.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace sb::registry {
namespace {

using namespace std::chrono_literals;
using core::Duration;
using core::SteadyTime;

// Aligned to the default 10 s window step, so a sample at t0 drops out exactly at t0 + 60 s.
const SteadyTime t0 = SteadyTime{} + 600s;

HealthTracker healthy_tracker(const HealthSettings& s, SteadyTime now) {
  HealthTracker t(s, now);
  for (int i = 0; i < s.rise; ++i) t.record_check(now, true, 1ms, "HTTP 200");
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  return t;
}

// Records `n` live samples at `now` with the given outcome and latency.
void record_n(HealthTracker& t, SteadyTime now, int n, bool ok, Duration latency) {
  for (int i = 0; i < n; ++i) t.record_live(now, ok, latency);
}

// Settings for degradation tests: failures never reach `fall`, so only the window decides.
HealthSettings window_settings() { return HealthSettings{.fall = 1'000'000}; }

// ---------------------------------------------------------------------------------------------
// States and rise/fall

// Every state has its lower-case name.
TEST(HealthTrackerTest, ToStringNamesEveryState) {
  EXPECT_STREQ(to_string(InstanceState::kUnknown), "unknown");
  EXPECT_STREQ(to_string(InstanceState::kHealthy), "healthy");
  EXPECT_STREQ(to_string(InstanceState::kDegraded), "degraded");
  EXPECT_STREQ(to_string(InstanceState::kUnhealthy), "unhealthy");
  EXPECT_STREQ(to_string(InstanceState::kDraining), "draining");
}

// A new instance is unknown since its creation and gets no traffic until proven.
TEST(HealthTrackerTest, NewInstanceIsUnknownAndTakesNoTraffic) {
  HealthTracker t(HealthSettings{}, t0);
  EXPECT_EQ(t.state(), InstanceState::kUnknown);
  EXPECT_EQ(t.since(), t0);
  EXPECT_EQ(t.reason(), "");
  EXPECT_FALSE(t.takes_traffic());
  EXPECT_FALSE(t.last_check().has_value());
}

// With traffic_before_first_check, an unknown instance takes traffic; unhealthy still does not.
TEST(HealthTrackerTest, TrafficBeforeFirstCheckLetsUnknownTakeTraffic) {
  HealthTracker t(HealthSettings{.traffic_before_first_check = true}, t0);
  EXPECT_TRUE(t.takes_traffic());
  for (int i = 0; i < 3; ++i) t.record_check(t0, false, 1ms, "connect: refused");
  EXPECT_EQ(t.state(), InstanceState::kUnhealthy);
  EXPECT_FALSE(t.takes_traffic());
}

// rise 2: one success leaves the instance unknown, the second makes it healthy.
TEST(HealthTrackerTest, UnknownBecomesHealthyAtRise) {
  HealthTracker t(HealthSettings{.rise = 2}, t0);
  EXPECT_FALSE(t.record_check(t0 + 1s, true, 3ms, "HTTP 200"));
  EXPECT_EQ(t.state(), InstanceState::kUnknown);
  auto tr = t.record_check(t0 + 2s, true, 3ms, "HTTP 200");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, InstanceState::kUnknown);
  EXPECT_EQ(tr->to, InstanceState::kHealthy);
  EXPECT_EQ(tr->at, t0 + 2s);
  EXPECT_EQ(tr->reason, "2 consecutive successes");
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  EXPECT_EQ(t.since(), t0 + 2s);
  EXPECT_EQ(t.reason(), "2 consecutive successes");
  EXPECT_TRUE(t.takes_traffic());
}

// A failure between successes restarts the rise count.
TEST(HealthTrackerTest, FailureRestartsRiseCount) {
  HealthTracker t(HealthSettings{.rise = 2}, t0);
  t.record_check(t0, true, 1ms, "");
  t.record_check(t0, false, 1ms, "timeout");
  t.record_check(t0, true, 1ms, "");
  EXPECT_EQ(t.state(), InstanceState::kUnknown);
  EXPECT_EQ(t.consecutive_successes(), 1);
  t.record_check(t0, true, 1ms, "");
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// fall 3: two failures keep a healthy instance healthy, the third makes it unhealthy.
TEST(HealthTrackerTest, HealthyBecomesUnhealthyAtFall) {
  HealthTracker t = healthy_tracker(HealthSettings{.fall = 3}, t0);
  EXPECT_FALSE(t.record_check(t0 + 1s, false, 2s, "timeout"));
  EXPECT_FALSE(t.record_check(t0 + 2s, false, 2s, "timeout"));
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  auto tr = t.record_check(t0 + 3s, false, 1ms, "connect: refused");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, InstanceState::kHealthy);
  EXPECT_EQ(tr->to, InstanceState::kUnhealthy);
  EXPECT_EQ(tr->reason, "check failed: connect: refused (3 consecutive failures)");
  EXPECT_EQ(t.since(), t0 + 3s);
  EXPECT_FALSE(t.takes_traffic());
}

// A success between failures restarts the fall count.
TEST(HealthTrackerTest, SuccessRestartsFallCount) {
  HealthTracker t = healthy_tracker(HealthSettings{.fall = 3}, t0);
  t.record_check(t0, false, 1ms, "x");
  t.record_check(t0, false, 1ms, "x");
  t.record_check(t0, true, 1ms, "");
  t.record_check(t0, false, 1ms, "x");
  t.record_check(t0, false, 1ms, "x");
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  EXPECT_EQ(t.consecutive_failures(), 2);
}

// An unknown instance that keeps failing turns unhealthy at fall, not before.
TEST(HealthTrackerTest, UnknownBecomesUnhealthyAtFall) {
  HealthTracker t(HealthSettings{.fall = 3}, t0);
  t.record_check(t0, false, 1ms, "refused");
  t.record_check(t0, false, 1ms, "refused");
  EXPECT_EQ(t.state(), InstanceState::kUnknown);
  auto tr = t.record_check(t0, false, 1ms, "refused");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, InstanceState::kUnknown);
  EXPECT_EQ(tr->to, InstanceState::kUnhealthy);
}

// An unhealthy instance comes back after rise successes, not one before.
TEST(HealthTrackerTest, UnhealthyRecoversAtRise) {
  HealthTracker t = healthy_tracker(HealthSettings{.rise = 2, .fall = 1}, t0);
  t.record_check(t0 + 1s, false, 1ms, "refused");
  ASSERT_EQ(t.state(), InstanceState::kUnhealthy);
  EXPECT_FALSE(t.record_check(t0 + 2s, true, 1ms, "HTTP 200"));
  EXPECT_EQ(t.state(), InstanceState::kUnhealthy);
  auto tr = t.record_check(t0 + 3s, true, 1ms, "HTTP 200");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, InstanceState::kUnhealthy);
  EXPECT_EQ(tr->to, InstanceState::kHealthy);
}

// Live connect errors / 5xx feed the same fall counter as checks, and say so in the reason.
TEST(HealthTrackerTest, LiveFailuresCountTowardFall) {
  HealthTracker t = healthy_tracker(HealthSettings{.fall = 3}, t0);
  t.record_check(t0 + 1s, false, 1ms, "timeout");
  t.record_live(t0 + 2s, false, 1ms, "HTTP 503");
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  auto tr = t.record_live(t0 + 3s, false, 1ms, "connect: reset");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kUnhealthy);
  EXPECT_EQ(tr->reason, "live request failed: connect: reset (3 consecutive failures)");
}

// Live successes count toward rise, so an instance in traffic (panic mode) can come back.
TEST(HealthTrackerTest, LiveSuccessesCountTowardRise) {
  HealthTracker t(HealthSettings{.rise = 2, .traffic_before_first_check = true}, t0);
  t.record_live(t0, true, 1ms);
  EXPECT_EQ(t.state(), InstanceState::kUnknown);
  t.record_live(t0, true, 1ms);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// The last check is kept, and live success since it is tracked for check stretching.
TEST(HealthTrackerTest, KeepsLastCheckAndLiveSuccessSinceIt) {
  HealthTracker t(HealthSettings{}, t0);
  t.record_check(t0 + 1s, false, 7ms, "HTTP 500");
  ASSERT_TRUE(t.last_check());
  EXPECT_EQ(t.last_check()->at, t0 + 1s);
  EXPECT_FALSE(t.last_check()->ok);
  EXPECT_EQ(t.last_check()->latency, 7ms);
  EXPECT_EQ(t.last_check()->reason, "HTTP 500");
  EXPECT_FALSE(t.live_ok_since_last_check());
  t.record_live(t0 + 2s, true, 1ms);
  EXPECT_TRUE(t.live_ok_since_last_check());
  t.record_live(t0 + 2s, false, 1ms);
  EXPECT_FALSE(t.live_ok_since_last_check());
  t.record_live(t0 + 2s, true, 1ms);
  t.record_check(t0 + 3s, true, 2ms, "HTTP 200");
  EXPECT_FALSE(t.live_ok_since_last_check());
  EXPECT_EQ(t.last_check()->reason, "HTTP 200");
}

// Draining is final: it takes no traffic and later results change nothing but stats.
TEST(HealthTrackerTest, DrainingIsFinal) {
  HealthTracker t = healthy_tracker(HealthSettings{.fall = 1}, t0);
  auto tr = t.set_draining(t0 + 1s);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, InstanceState::kHealthy);
  EXPECT_EQ(tr->to, InstanceState::kDraining);
  EXPECT_EQ(t.reason(), "draining");
  EXPECT_FALSE(t.takes_traffic());
  EXPECT_FALSE(t.set_draining(t0 + 2s));
  EXPECT_FALSE(t.record_check(t0 + 3s, false, 1ms, "refused"));
  EXPECT_FALSE(t.record_live(t0 + 3s, true, 1ms));
  EXPECT_EQ(t.state(), InstanceState::kDraining);
  EXPECT_EQ(t.since(), t0 + 1s);
  EXPECT_EQ(t.stats(t0 + 3s).count, 4u);  // 2 rise checks + 2 after draining
}

// ---------------------------------------------------------------------------------------------
// Degradation

// 19 slow samples (min_samples 20) leave the instance healthy; the 20th makes it degraded.
TEST(HealthTrackerTest, DegradedByP95NeedsMinSamples) {
  HealthTracker t = healthy_tracker(window_settings(), t0);  // 2 fast samples already
  record_n(t, t0, 17, true, 1500ms);
  EXPECT_EQ(t.stats(t0).count, 19u);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  auto tr = t.record_live(t0, true, 1500ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kDegraded);
  EXPECT_EQ(tr->reason, "p95 latency at or above 1000ms (18 of 20 samples)");
  EXPECT_TRUE(t.takes_traffic());
}

// Samples recorded without judging the window count toward it; update() then judges it
// once, as a harvest of many samples does.
TEST(HealthTrackerTest, UnjudgedSamplesAreJudgedByUpdate) {
  HealthTracker t = healthy_tracker(window_settings(), t0);  // 2 fast samples already
  for (int i = 0; i < 18; ++i)
    EXPECT_FALSE(t.record_live(t0, true, 1500ms, {}, /*judge_window=*/false));
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
  auto tr = t.update(t0);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kDegraded);
  EXPECT_EQ(tr->reason, "p95 latency at or above 1000ms (18 of 20 samples)");
}

// Fall is counted per sample even when the window is not judged.
TEST(HealthTrackerTest, UnjudgedSamplesStillFall) {
  HealthTracker t = healthy_tracker(HealthSettings{}, t0);
  std::optional<Transition> tr;
  for (int i = 0; i < 3 && !tr; ++i) tr = t.record_live(t0, false, 1ms, "HTTP 503", false);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kUnhealthy);
}

// p95 edge over 100 samples: 5 at the threshold keep p95 below it, a 6th makes p95 reach it.
TEST(HealthTrackerTest, DegradedWhenP95ReachesThreshold) {
  HealthTracker t(window_settings(), t0);
  record_n(t, t0, 2, true, 10ms);  // healthy after rise
  ASSERT_EQ(t.state(), InstanceState::kHealthy);
  record_n(t, t0, 93, true, 10ms);
  for (int i = 0; i < 5; ++i) {  // exactly the threshold counts as slow
    t.record_live(t0, true, 1s);
    ASSERT_EQ(t.state(), InstanceState::kHealthy) << "after slow sample " << i + 1;
  }
  EXPECT_LT(t.stats(t0).p95, 1s);
  t.record_live(t0, true, 1s);  // 6 of 101: p95 is now the threshold
  EXPECT_EQ(t.state(), InstanceState::kDegraded);
}

// A latency one nanosecond under the threshold does not count as slow.
TEST(HealthTrackerTest, JustUnderP95ThresholdIsNotSlow) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 100, true, 1s - 1ns);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// Error rate edge at min_samples: 4 of 20 (20%) stays healthy, 5 of 20 (25%) degrades.
TEST(HealthTrackerTest, DegradedWhenErrorRateReachesThreshold) {
  HealthTracker t = healthy_tracker(window_settings(), t0);  // 2 successes
  record_n(t, t0, 14, true, 1ms);
  record_n(t, t0, 4, false, 1ms);
  EXPECT_EQ(t.stats(t0).count, 20u);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);

  HealthTracker u = healthy_tracker(window_settings(), t0);
  record_n(u, t0, 13, true, 1ms);
  record_n(u, t0, 4, false, 1ms);
  auto tr = u.record_live(t0, false, 1ms, "HTTP 502");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kDegraded);
  EXPECT_EQ(tr->reason, "error rate 25.0% at or above 25% (5 of 20 samples)");
}

// A zero threshold turns that signal off.
TEST(HealthTrackerTest, ZeroThresholdsTurnSignalsOff) {
  HealthSettings s = window_settings();
  s.degraded_p95 = 0s;
  s.degraded_error_rate = 0.0;
  HealthTracker t = healthy_tracker(s, t0);
  record_n(t, t0, 50, false, 10s);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// p95 hysteresis: at 0.9x the threshold a degraded instance stays degraded, at 0.79x it heals.
TEST(HealthTrackerTest, P95Hysteresis) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 30, true, 1200ms);
  ASSERT_EQ(t.state(), InstanceState::kDegraded);

  const SteadyTime t1 = t0 + 60s;  // the slow samples have left the window
  record_n(t, t1, 100, true, 900ms);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);

  const SteadyTime t2 = t1 + 60s;
  record_n(t, t2, 19, true, 790ms);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);  // 19 < min_samples: no decision yet
  auto tr = t.record_live(t2, true, 790ms);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->from, InstanceState::kDegraded);
  EXPECT_EQ(tr->to, InstanceState::kHealthy);
  EXPECT_EQ(tr->reason, "p95 latency and error rate below 0.8x their thresholds (20 samples)");
}

// The recovery edge for p95 is exact: 0.8x the threshold is not below it, 1 ns less is.
TEST(HealthTrackerTest, P95RecoveryEdgeIsExact) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 30, true, 1200ms);
  ASSERT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 60s, 40, true, 800ms);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 120s, 40, true, 800ms - 1ns);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// Recovery at the p95 rank edge over 100 samples: 6 at 0.9x keep it degraded, 5 heal it.
TEST(HealthTrackerTest, P95RecoveryAtRankEdge) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 30, true, 1200ms);
  ASSERT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 60s, 6, true, 900ms);  // slow ones first: the running p95 only falls
  record_n(t, t0 + 60s, 94, true, 1ms);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 120s, 5, true, 900ms);
  record_n(t, t0 + 120s, 94, true, 1ms);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);  // 5 of 99: p95 is still 900 ms
  auto tr = t.record_live(t0 + 120s, true, 1ms);   // 5 of 100: p95 is 1 ms
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kHealthy);
}

// Error-rate hysteresis: 22.5% (0.9x) keeps it degraded, 19.75% (0.79x) makes it healthy.
TEST(HealthTrackerTest, ErrorRateHysteresis) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 20, true, 1ms);
  record_n(t, t0, 10, false, 1ms);
  ASSERT_EQ(t.state(), InstanceState::kDegraded);

  // Errors first, then successes: the running rate only falls, ending at 45/200.
  const SteadyTime t1 = t0 + 60s;
  record_n(t, t1, 45, false, 1ms);
  record_n(t, t1, 155, true, 1ms);
  EXPECT_EQ(t.stats(t1).error_rate, 0.225);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);

  const SteadyTime t2 = t1 + 60s;
  record_n(t, t2, 79, false, 1ms);
  record_n(t, t2, 321, true, 1ms);
  EXPECT_EQ(t.stats(t2).error_rate, 0.1975);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// Below min_samples a degraded instance stays degraded: sparse data does not clear it either.
TEST(HealthTrackerTest, RecoveryNeedsMinSamples) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 30, true, 2s);
  ASSERT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 60s, 19, true, 1ms);
  EXPECT_EQ(t.state(), InstanceState::kDegraded);
  t.record_live(t0 + 60s, true, 1ms);
  EXPECT_EQ(t.state(), InstanceState::kHealthy);
}

// update() heals a degraded instance once its slow samples rotate out, without new samples.
TEST(HealthTrackerTest, UpdateReevaluatesAsWindowRotates) {
  HealthTracker t = healthy_tracker(window_settings(), t0);
  record_n(t, t0, 20, true, 2s);  // step 0
  ASSERT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 10s, 100, true, 1ms);  // step 1: 20 of 122 still slow
  ASSERT_EQ(t.state(), InstanceState::kDegraded);
  EXPECT_FALSE(t.update(t0 + 60s - 1ns));
  auto tr = t.update(t0 + 60s);
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kHealthy);
  EXPECT_EQ(tr->at, t0 + 60s);
}

// An unhealthy instance proven again while its window still shows errors comes back degraded.
TEST(HealthTrackerTest, RiseIntoDegradedWhenWindowIsBad) {
  HealthSettings s{.rise = 2, .fall = 3};
  HealthTracker t = healthy_tracker(s, t0);
  for (int i = 0; i < 20; ++i) {  // never 3 failures in a row, 50% errors
    t.record_live(t0, false, 1ms);
    t.record_live(t0, true, 1ms);
  }
  ASSERT_EQ(t.state(), InstanceState::kDegraded);
  record_n(t, t0 + 1s, 3, false, 1ms);
  ASSERT_EQ(t.state(), InstanceState::kUnhealthy);
  t.record_check(t0 + 2s, true, 1ms, "HTTP 200");
  auto tr = t.record_check(t0 + 3s, true, 1ms, "HTTP 200");
  ASSERT_TRUE(tr);
  EXPECT_EQ(tr->to, InstanceState::kDegraded);
  EXPECT_EQ(tr->reason.rfind("2 consecutive successes, but error rate", 0), 0u) << tr->reason;
}

// ---------------------------------------------------------------------------------------------
// Window and percentiles

// A sample counts until exactly `window` after its step began, then drops out.
TEST(HealthTrackerTest, OldSamplesLeaveTheWindow) {
  HealthTracker t(HealthSettings{}, t0);
  record_n(t, t0, 10, false, 5ms);
  record_n(t, t0 + 10s, 3, true, 5ms);
  EXPECT_EQ(t.stats(t0 + 60s - 1ns).count, 13u);
  EXPECT_EQ(t.stats(t0 + 60s - 1ns).errors, 10u);
  WindowStats s = t.stats(t0 + 60s);
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.error_rate, 0.0);
  EXPECT_EQ(t.stats(t0 + 70s).count, 0u);
  EXPECT_EQ(t.stats(t0 + 70s).p95, 0ns);
}

// A ring slot reused after a full turn holds only the new step's samples.
TEST(HealthTrackerTest, ReusedBucketStartsEmpty) {
  HealthTracker t(HealthSettings{}, t0);
  record_n(t, t0, 10, true, 5ms);
  t.record_live(t0 + 60s, true, 5ms);  // same slot, next turn
  EXPECT_EQ(t.stats(t0 + 60s).count, 1u);
  t.record_live(t0 + 5s, true, 5ms);  // late sample for a step already reused: dropped
  EXPECT_EQ(t.stats(t0 + 60s).count, 1u);
}

// The window rotates with `window_buckets` steps of window/buckets each.
TEST(HealthTrackerTest, CustomWindowSteps) {
  HealthTracker t(HealthSettings{.window = 10s, .window_buckets = 2}, t0);
  t.record_live(t0, true, 1ms);
  t.record_live(t0 + 5s, true, 1ms);
  EXPECT_EQ(t.stats(t0 + 9s).count, 2u);
  EXPECT_EQ(t.stats(t0 + 10s).count, 1u);
  EXPECT_EQ(t.stats(t0 + 15s).count, 0u);
}

// p50/p95/p99 of 1..1000 ms are within the histogram's 12.5% of 500, 950 and 990 ms.
TEST(HealthTrackerTest, PercentilesWithinHistogramResolution) {
  HealthTracker t(HealthSettings{.fall = 1'000'000}, t0);
  for (int ms = 1; ms <= 1000; ++ms) t.record_live(t0, ms % 10 != 0, std::chrono::milliseconds(ms));
  WindowStats s = t.stats(t0);
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.errors, 100u);
  EXPECT_DOUBLE_EQ(s.error_rate, 0.1);
  auto near = [](Duration got, Duration want) {
    return std::abs(static_cast<double>(got.count() - want.count())) <=
           0.125 * static_cast<double>(want.count());
  };
  EXPECT_TRUE(near(s.p50, 500ms)) << s.p50.count();
  EXPECT_TRUE(near(s.p95, 950ms)) << s.p95.count();
  EXPECT_TRUE(near(s.p99, 990ms)) << s.p99.count();
  EXPECT_LE(s.p50, s.p95);
  EXPECT_LE(s.p95, s.p99);
}

// Every latency from 16.4 us to 137 s reads back within 12.5%; outside, it is clamped.
TEST(LatencyHistogramTest, BinValueWithinOneEighth) {
  for (double ns = 1 << 14; ns < std::ldexp(1.0, 37); ns *= 1.01) {
    const Duration d(static_cast<Duration::rep>(ns));
    const Duration v = LatencyHistogram::bin_value(LatencyHistogram::bin_of(d));
    EXPECT_LE(std::abs(static_cast<double>((v - d).count())),
              0.125 * static_cast<double>(d.count()))
        << d.count();
  }
  EXPECT_EQ(LatencyHistogram::bin_of(0ns), 0);
  EXPECT_EQ(LatencyHistogram::bin_of(-5ns), 0);
  EXPECT_EQ(LatencyHistogram::bin_of(16383ns), 0);
  EXPECT_EQ(LatencyHistogram::bin_of(16384ns), 1);
  EXPECT_EQ(LatencyHistogram::bin_of(1h), LatencyHistogram::kBins - 1);
  EXPECT_EQ(LatencyHistogram::kBins, 93);
}

// ---------------------------------------------------------------------------------------------
// Check scheduling

// A new instance is checked at once.
TEST(CheckSchedulerTest, NewInstanceIsCheckedAtOnce) {
  HealthSettings s;
  CheckScheduler sched(s, 42);
  HealthTracker t(s, t0);
  EXPECT_EQ(sched.first_check(t0), t0);
  EXPECT_EQ(sched.next_check(t0, t), t0);
  t.record_check(t0, true, 1ms, "HTTP 200");
  EXPECT_GT(sched.next_check(t0, t), t0);  // checked once: no longer "at once"
}

// Over 10000 draws every healthy interval lies in [27 s, 33 s] and the range is used.
TEST(CheckSchedulerTest, JitterStaysWithinBounds) {
  CheckScheduler sched(HealthSettings{}, 12345);
  Duration lo = Duration::max(), hi = Duration::min();
  for (int i = 0; i < 10'000; ++i) {
    const Duration d = sched.next_check(t0, InstanceState::kHealthy) - t0;
    ASSERT_GE(d, 27s);
    ASSERT_LE(d, 33s);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_LT(lo, 27100ms);
  EXPECT_GT(hi, 32900ms);
}

// The draw maps linearly: 0 gives interval x 0.9, 0.5 the interval, 0.999 almost x 1.1.
TEST(CheckSchedulerTest, InjectedRandomSourceMapsLinearly) {
  std::vector<double> draws{0.0, 0.5, 0.999};
  std::size_t i = 0;
  CheckScheduler sched(HealthSettings{}, [&] { return draws[i++]; });
  EXPECT_EQ(sched.next_check(t0, InstanceState::kHealthy), t0 + 27s);
  EXPECT_EQ(sched.next_check(t0, InstanceState::kDegraded), t0 + 30s);
  EXPECT_EQ(sched.next_check(t0, InstanceState::kHealthy), t0 + 32994ms);
}

// Unknown and unhealthy instances are checked every unhealthy_interval (jittered too).
TEST(CheckSchedulerTest, UnhealthyIntervalWhileUnknownOrUnhealthy) {
  CheckScheduler exact(HealthSettings{.jitter = 0.0}, 1);
  EXPECT_EQ(exact.next_check(t0, InstanceState::kUnhealthy), t0 + 5s);
  EXPECT_EQ(exact.next_check(t0, InstanceState::kUnknown), t0 + 5s);
  EXPECT_EQ(exact.next_check(t0, InstanceState::kHealthy), t0 + 30s);
  CheckScheduler sched(HealthSettings{}, 7);
  for (int i = 0; i < 1000; ++i) {
    const Duration d = sched.next_check(t0, InstanceState::kUnhealthy) - t0;
    ASSERT_GE(d, 4500ms);
    ASSERT_LE(d, 5500ms);
  }
}

// With stretching on, live success since the last check doubles a healthy instance's interval.
TEST(CheckSchedulerTest, LiveSuccessStretchesInterval) {
  HealthSettings s{.jitter = 0.0, .stretch_on_live_success = 2.0};
  CheckScheduler sched(s, 1);
  EXPECT_EQ(sched.next_check(t0, InstanceState::kHealthy, true), t0 + 60s);
  EXPECT_EQ(sched.next_check(t0, InstanceState::kDegraded, true), t0 + 60s);
  EXPECT_EQ(sched.next_check(t0, InstanceState::kHealthy, false), t0 + 30s);
  EXPECT_EQ(sched.next_check(t0, InstanceState::kUnhealthy, true), t0 + 5s);
  HealthTracker t = healthy_tracker(s, t0);
  t.record_live(t0 + 1s, true, 1ms);
  EXPECT_EQ(sched.next_check(t0 + 2s, t), t0 + 62s);
  CheckScheduler off(HealthSettings{.jitter = 0.0}, 1);  // default 1.0: off
  EXPECT_EQ(off.next_check(t0, InstanceState::kHealthy, true), t0 + 30s);
}

// The same seed gives the same schedule (reproducible tests and runs).
TEST(CheckSchedulerTest, SeededSchedulesRepeat) {
  CheckScheduler a(HealthSettings{}, 99), b(HealthSettings{}, 99);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(a.next_check(t0, InstanceState::kHealthy), b.next_check(t0, InstanceState::kHealthy));
}

// ---------------------------------------------------------------------------------------------
// TTL

// A TTL expires exactly at its deadline, not one nanosecond before.
TEST(TtlTrackerTest, ExpiresExactlyAtDeadline) {
  TtlTracker ttl;
  ttl.start(t0, 10s);
  ASSERT_TRUE(ttl.deadline());
  EXPECT_EQ(*ttl.deadline(), t0 + 10s);
  EXPECT_EQ(ttl.ttl(), 10s);
  EXPECT_FALSE(ttl.expired(t0 + 10s - 1ns));
  EXPECT_TRUE(ttl.expired(t0 + 10s));
}

// A renewal moves the deadline to now + ttl.
TEST(TtlTrackerTest, RenewMovesDeadline) {
  TtlTracker ttl;
  ttl.start(t0, 10s);
  EXPECT_TRUE(ttl.renew(t0 + 10s - 1ns));
  EXPECT_EQ(*ttl.deadline(), t0 + 20s - 1ns);
  EXPECT_FALSE(ttl.expired(t0 + 20s - 2ns));
  EXPECT_TRUE(ttl.expired(t0 + 20s - 1ns));
}

// A renewal at or after the deadline is refused: the instance has expired.
TEST(TtlTrackerTest, RenewAfterExpiryIsRefused) {
  TtlTracker ttl;
  ttl.start(t0, 10s);
  EXPECT_FALSE(ttl.renew(t0 + 10s));
  EXPECT_EQ(*ttl.deadline(), t0 + 10s);
  EXPECT_TRUE(ttl.expired(t0 + 10s));
}

// A zero TTL (and a default tracker) never expires; renewing it is harmless.
TEST(TtlTrackerTest, ZeroTtlNeverExpires) {
  TtlTracker none;
  EXPECT_FALSE(none.expired(t0 + 1000h));
  TtlTracker zero;
  zero.start(t0, 0s);
  EXPECT_FALSE(zero.deadline());
  EXPECT_TRUE(zero.renew(t0));
  EXPECT_FALSE(zero.expired(t0 + 1000h));
}

// A restored deadline that lapsed while Switchboard was down is expired at once.
TEST(TtlTrackerTest, RestoredPastDeadlineIsExpired) {
  TtlTracker ttl;
  ttl.restore(30s, t0 - 1s);
  EXPECT_TRUE(ttl.expired(t0));
  TtlTracker later;
  later.restore(30s, t0 + 5s);
  EXPECT_FALSE(later.expired(t0));
  EXPECT_TRUE(later.renew(t0));
  EXPECT_EQ(*later.deadline(), t0 + 30s);
}

// ---------------------------------------------------------------------------------------------
// Settings

// The defaults are valid.
TEST(HealthSettingsTest, DefaultsAreValid) { EXPECT_EQ(HealthSettings{}.validate(), std::nullopt); }

// Each bad field is named with its reason.
TEST(HealthSettingsTest, ValidateNamesTheBadField) {
  struct Case {
    std::function<void(HealthSettings&)> mutate;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](HealthSettings& s) { s.rise = 0; }, "health.rise: must be at least 1"},
      {[](HealthSettings& s) { s.fall = 0; }, "health.fall: must be at least 1"},
      {[](HealthSettings& s) { s.interval = 0s; }, "health.interval: must be positive"},
      {[](HealthSettings& s) { s.unhealthy_interval = -1s; },
       "health.unhealthy_interval: must be positive"},
      {[](HealthSettings& s) { s.jitter = 1.0; }, "health.jitter: must be at least 0 and below 1"},
      {[](HealthSettings& s) { s.jitter = -0.1; }, "health.jitter: must be at least 0 and below 1"},
      {[](HealthSettings& s) { s.stretch_on_live_success = 0.5; },
       "health.stretch_on_live_success: must be between 1 (off) and 100"},
      {[](HealthSettings& s) { s.window = 999us; }, "health.window: must be at least 1ms"},
      {[](HealthSettings& s) { s.window_buckets = 0; },
       "health.window_buckets: must be between 1 and 60"},
      {[](HealthSettings& s) { s.window_buckets = 61; },
       "health.window_buckets: must be between 1 and 60"},
      {[](HealthSettings& s) { s.degraded_p95 = -1ms; },
       "health.degraded_p95: must not be negative (0 turns it off)"},
      {[](HealthSettings& s) { s.degraded_error_rate = 1.5; },
       "health.degraded_error_rate: must be between 0 (off) and 1"},
      {[](HealthSettings& s) { s.recover_factor = 0.0; },
       "health.recover_factor: must be above 0 and at most 1"},
      {[](HealthSettings& s) { s.recover_factor = 1.1; },
       "health.recover_factor: must be above 0 and at most 1"},
      {[](HealthSettings& s) { s.min_samples = 0; }, "health.min_samples: must be at least 1"},
  };
  for (const Case& c : cases) {
    HealthSettings s;
    c.mutate(s);
    EXPECT_EQ(s.validate(), c.message);
  }
  // Edges that are allowed.
  EXPECT_EQ((HealthSettings{.rise = 1, .fall = 1, .jitter = 0.0}.validate()), std::nullopt);
  EXPECT_EQ((HealthSettings{.window = 1ms,
                            .window_buckets = 60,
                            .degraded_p95 = 0s,
                            .degraded_error_rate = 1.0,
                            .recover_factor = 1.0,
                            .min_samples = 1}
                 .validate()),
            std::nullopt);
}

}  // namespace
}  // namespace sb::registry
