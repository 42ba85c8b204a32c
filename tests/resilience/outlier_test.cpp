#include "resilience/outlier.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;
using core::OutlierConfig;
using core::SteadyTime;

const SteadyTime t0 = SteadyTime{} + 1000s;
constexpr Outcome k503 = Outcome::response(503);
constexpr Outcome k200 = Outcome::response(200);

std::vector<std::shared_ptr<OutlierHost>> hosts(OutlierDetector& d, int n) {
  std::vector<std::shared_ptr<OutlierHost>> v;
  for (int i = 0; i < n; ++i) v.push_back(d.add_host(static_cast<std::uint64_t>(i)));
  return v;
}

// Feeds `n` outcomes and returns the last transition, if any.
std::optional<OutlierTransition> feed(OutlierHost& h, SteadyTime now, int n, Outcome o) {
  std::optional<OutlierTransition> last;
  for (int i = 0; i < n; ++i) {
    if (auto t = h.record(now, o)) last = std::move(t);
  }
  return last;
}

TEST(OutlierTest, GatewayErrors) {
  EXPECT_TRUE(is_gateway_error(Outcome::response(502)));
  EXPECT_TRUE(is_gateway_error(Outcome::response(503)));
  EXPECT_TRUE(is_gateway_error(Outcome::response(504)));
  EXPECT_TRUE(is_gateway_error(Outcome::failed(TransportError::kConnectFailure)));
  EXPECT_TRUE(is_gateway_error(Outcome::failed(TransportError::kReset)));
  EXPECT_TRUE(is_gateway_error(Outcome::failed(TransportError::kTimeout)));
  EXPECT_FALSE(is_gateway_error(Outcome::response(500)));
  EXPECT_FALSE(is_gateway_error(Outcome::response(404)));
  EXPECT_STREQ(to_string(OutlierState::kEjected), "ejected");
  EXPECT_STREQ(to_string(OutlierState::kActive), "active");
}

// 4 gateway errors in a row keep it; the 5th ejects for base_ejection_time (30 s).
TEST(OutlierTest, ConsecutiveGatewayErrorsEject) {
  OutlierDetector d(OutlierConfig{});
  auto hs = hosts(d, 4);
  EXPECT_FALSE(feed(*hs[0], t0, 4, k503));
  EXPECT_EQ(hs[0]->consecutive_gateway_errors(), 4u);
  auto t = hs[0]->record(t0, Outcome::failed(TransportError::kConnectFailure));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host_id, 0u);
  EXPECT_EQ(t->from, OutlierState::kActive);
  EXPECT_EQ(t->to, OutlierState::kEjected);
  EXPECT_EQ(t->reason, "5 consecutive gateway errors (ejected for 30 s)");
  EXPECT_TRUE(hs[0]->ejected(t0));
  EXPECT_TRUE(hs[0]->ejected(t0 + 30s - 1ns));
  EXPECT_FALSE(hs[0]->ejected(t0 + 30s));
  EXPECT_EQ(d.ejected_count(), 1u);
  EXPECT_FALSE(hs[0]->record(t0, k503));  // already ejected: nothing more
}

// A non-gateway outcome breaks the run (a 500 too: it is not a gateway error).
TEST(OutlierTest, OtherOutcomeResetsRun) {
  OutlierDetector d(OutlierConfig{});
  auto hs = hosts(d, 4);
  feed(*hs[0], t0, 4, k503);
  hs[0]->record(t0, Outcome::response(500));
  EXPECT_FALSE(feed(*hs[0], t0, 4, k503));
  EXPECT_FALSE(hs[0]->ejected(t0));
}

// The return is reported by evaluate() once the time is up, not one ns before.
TEST(OutlierTest, ReturnAfterEjectionTime) {
  OutlierDetector d(OutlierConfig{});
  auto hs = hosts(d, 4);
  feed(*hs[1], t0, 5, k503);
  EXPECT_TRUE(d.evaluate(t0 + 30s - 1ns, hs).empty());
  auto ts = d.evaluate(t0 + 30s, hs);
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_EQ(ts[0].host_id, 1u);
  EXPECT_EQ(ts[0].from, OutlierState::kEjected);
  EXPECT_EQ(ts[0].to, OutlierState::kActive);
  EXPECT_EQ(ts[0].reason, "ejection time of 30 s elapsed");
  EXPECT_EQ(d.ejected_count(), 0u);
  EXPECT_FALSE(hs[1]->ejected_until());
}

// Ejection time grows with each ejection (30, 60, 90 s ...) up to max (300 s).
TEST(OutlierTest, EjectionTimeGrowsAndCaps) {
  OutlierDetector d(OutlierConfig{});
  auto hs = hosts(d, 4);
  SteadyTime now = t0;
  for (int k = 1; k <= 12; ++k) {
    auto t = feed(*hs[0], now, 5, k503);
    ASSERT_TRUE(t) << k;
    const auto expected = std::min<core::Duration>(30s * k, 300s);
    EXPECT_EQ(*hs[0]->ejected_until() - now, expected) << k;
    now = *hs[0]->ejected_until();
    ASSERT_EQ(d.evaluate(now, hs).size(), 1u);  // returns; no decay yet (not a full interval)
  }
  EXPECT_EQ(hs[0]->times_ejected(), 12u);
}

// The level decays by one per interval spent active, so the next ejection is shorter.
TEST(OutlierTest, EjectionLevelDecaysWhileHealthy) {
  OutlierDetector d(OutlierConfig{.interval = 10s});
  auto hs = hosts(d, 4);
  feed(*hs[0], t0, 5, k503);
  d.evaluate(t0 + 30s, hs);  // returns
  feed(*hs[0], t0 + 30s, 5, k503);
  EXPECT_EQ(hs[0]->ejection_level(), 2u);
  d.evaluate(t0 + 90s, hs);  // returns (60 s)
  EXPECT_EQ(hs[0]->ejection_level(), 2u);
  d.evaluate(t0 + 100s - 1ns, hs);
  EXPECT_EQ(hs[0]->ejection_level(), 2u);
  d.evaluate(t0 + 100s, hs);
  EXPECT_EQ(hs[0]->ejection_level(), 1u);
  d.evaluate(t0 + 110s, hs);
  EXPECT_EQ(hs[0]->ejection_level(), 0u);
  d.evaluate(t0 + 120s, hs);
  EXPECT_EQ(hs[0]->ejection_level(), 0u);
  feed(*hs[0], t0 + 120s, 5, k503);
  EXPECT_EQ(*hs[0]->ejected_until(), t0 + 150s);
}

// max_ejection_percent 50 of 4 hosts: 2 at once, the third waits for a return.
TEST(OutlierTest, MaxEjectionPercent) {
  OutlierDetector d(OutlierConfig{.max_ejection_percent = 50});
  auto hs = hosts(d, 4);
  EXPECT_EQ(d.max_ejected(), 2u);
  EXPECT_TRUE(feed(*hs[0], t0, 5, k503));
  EXPECT_TRUE(feed(*hs[1], t0, 5, k503));
  EXPECT_FALSE(feed(*hs[2], t0, 5, k503));
  EXPECT_FALSE(hs[2]->ejected(t0));
  EXPECT_EQ(d.ejected_count(), 2u);
  d.evaluate(t0 + 30s, hs);
  EXPECT_TRUE(hs[2]->record(t0 + 30s, k503));  // its run continues; now there is room
}

// At least one ejection for >= 2 hosts even when the percentage rounds to zero; none with 1.
TEST(OutlierTest, CapAllowsOneForSmallServices) {
  OutlierDetector d(OutlierConfig{.max_ejection_percent = 10});
  auto one = hosts(d, 1);
  EXPECT_EQ(d.max_ejected(), 0u);
  EXPECT_FALSE(feed(*one[0], t0, 5, k503));
  auto more = d.add_host(9);
  EXPECT_EQ(d.max_ejected(), 1u);
  EXPECT_TRUE(feed(*more, t0, 5, k503));
  // A host destroyed while ejected gives its slot back.
  more.reset();
  EXPECT_EQ(d.ejected_count(), 0u);
  EXPECT_EQ(d.host_count(), 1u);
  OutlierDetector zero(OutlierConfig{.max_ejection_percent = 0});
  auto z = hosts(zero, 5);
  EXPECT_FALSE(feed(*z[0], t0, 5, k503));
}

// Success rate: 4 hosts at ~99%, one at 70% is ejected; below the volume nothing happens.
TEST(OutlierTest, SuccessRateEjection) {
  OutlierDetector d(OutlierConfig{.consecutive_gateway_errors = 0});
  auto hs = hosts(d, 5);
  for (int i = 0; i < 4; ++i) {
    feed(*hs[static_cast<std::size_t>(i)], t0, 99 - i, k200);
    feed(*hs[static_cast<std::size_t>(i)], t0, 1 + i, Outcome::response(500));
  }
  feed(*hs[4], t0, 70, k200);
  feed(*hs[4], t0, 30, Outcome::response(500));
  auto ts = d.evaluate(t0 + 10s, hs);
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_EQ(ts[0].host_id, 4u);
  EXPECT_EQ(ts[0].to, OutlierState::kEjected);
  EXPECT_NE(ts[0].reason.find("success rate 70.0% below threshold"), std::string::npos)
      << ts[0].reason;
  EXPECT_TRUE(hs[4]->ejected(t0 + 10s));
  // The interval's counters were reset: the next evaluate has no volume.
  EXPECT_TRUE(d.evaluate(t0 + 20s, hs).empty());
}

// Success rate needs success_rate_minimum_hosts hosts with success_rate_request_volume.
TEST(OutlierTest, SuccessRateNeedsVolumeAndHosts) {
  OutlierDetector d(OutlierConfig{.consecutive_gateway_errors = 0});
  auto hs = hosts(d, 5);
  // Only 2 hosts with >= 100 requests: not enough to compare.
  feed(*hs[0], t0, 100, k200);
  feed(*hs[1], t0, 100, Outcome::response(500));
  feed(*hs[2], t0, 99, k200);
  EXPECT_TRUE(d.evaluate(t0 + 10s, hs).empty());
  // 3 hosts with volume, all equal: stdev 0, nobody below the mean.
  for (int i = 0; i < 3; ++i) feed(*hs[static_cast<std::size_t>(i)], t0, 100, k200);
  EXPECT_TRUE(d.evaluate(t0 + 20s, hs).empty());
}

// A disabled detector never ejects.
TEST(OutlierTest, DisabledNeverEjects) {
  OutlierDetector d(OutlierConfig{.enabled = false});
  auto hs = hosts(d, 4);
  EXPECT_FALSE(feed(*hs[0], t0, 50, k503));
}

}  // namespace
}  // namespace sb::resilience
