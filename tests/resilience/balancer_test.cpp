#include "resilience/balancer.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>
#include <vector>

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;
using core::BalancerConfig;
using core::BalancerKind;
using core::SteadyTime;

const SteadyTime t0 = SteadyTime{} + 1000s;

std::vector<BalancerEndpoint> endpoints(std::size_t n, std::string_view zone = "") {
  std::vector<BalancerEndpoint> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back({.id = 100 + i, .zone = zone});
  return v;
}

Balancer make(BalancerKind kind, std::size_t n, BalancerConfig c = {}) {
  c.kind = kind;
  Balancer b(c, "", 42);
  b.set_endpoints(endpoints(n), t0);
  return b;
}

const auto all = [](std::size_t) { return true; };

// Counts picks per index over `n` picks.
template <class F>
std::map<std::size_t, int> histogram(Balancer& b, int n, F&& available,
                                     std::span<const std::size_t> exclude = {}) {
  std::map<std::size_t, int> h;
  for (int i = 0; i < n; ++i) ++h[b.pick(t0, available, exclude)];
  return h;
}

TEST(BalancerTest, EmptyPicksNone) {
  Balancer b(BalancerConfig{}, "", 1);
  EXPECT_EQ(b.pick(t0, all), Balancer::kNone);
}

// One instance: picked while available, none while not, for both P2C kinds; an avoided
// one is still picked when nothing else is left (the second pass ignores avoidance).
TEST(BalancerTest, OneCandidate) {
  for (const auto kind : {BalancerKind::kPeakEwma, BalancerKind::kLeastRequest}) {
    auto b = make(kind, 1);
    EXPECT_EQ(b.pick(t0, all), 0u);
    EXPECT_EQ(b.pick(t0, [](std::size_t) { return false; }), Balancer::kNone);
    b.avoid_until(0, t0 + 1s);
    EXPECT_EQ(b.pick(t0, all), 0u);
  }
}

TEST(BalancerTest, RoundRobinCyclesAndSkipsUnavailable) {
  auto b = make(BalancerKind::kRoundRobin, 3);
  EXPECT_EQ(b.pick(t0, all), 0u);
  EXPECT_EQ(b.pick(t0, all), 1u);
  EXPECT_EQ(b.pick(t0, all), 2u);
  EXPECT_EQ(b.pick(t0, all), 0u);
  auto not1 = [](std::size_t i) { return i != 1; };
  auto h = histogram(b, 30, not1);
  EXPECT_EQ(h.count(1), 0u);
  EXPECT_EQ(h[0] + h[2], 30);
}

// Smooth WRR: weights 5,1,1 give the sequence a a b a c a a (nginx's example).
TEST(BalancerTest, SmoothWeightedRoundRobin) {
  Balancer b(BalancerConfig{.kind = BalancerKind::kWeightedRoundRobin}, "", 1);
  std::vector<BalancerEndpoint> e = {
      {.id = 1, .weight = 5}, {.id = 2, .weight = 1}, {.id = 3, .weight = 1}};
  b.set_endpoints(e, t0);
  std::vector<std::size_t> seq;
  for (int i = 0; i < 7; ++i) seq.push_back(b.pick(t0, all));
  EXPECT_EQ(seq, (std::vector<std::size_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(BalancerTest, RandomSpreadsAndFiltersUnavailable) {
  auto b = make(BalancerKind::kRandom, 4);
  auto only2 = [](std::size_t i) { return i == 2; };
  EXPECT_EQ(b.pick(t0, only2), 2u);
  auto h = histogram(b, 4000, all);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_GT(h[i], 800) << i;
}

// Least request: the instance with requests in flight loses every P2C duel.
TEST(BalancerTest, LeastRequestPrefersFewerInFlight) {
  auto b = make(BalancerKind::kLeastRequest, 2);
  for (int i = 0; i < 5; ++i) b.on_start(0);
  auto h = histogram(b, 100, all);
  EXPECT_EQ(h[1], 100);
  for (int i = 0; i < 5; ++i) b.on_abandon(0);
  EXPECT_EQ(b.in_flight(0), 0u);
}

// Peak EWMA: with two instances every pick is a duel, and the faster one always wins.
TEST(BalancerTest, PeakEwmaPrefersCheaperInstance) {
  auto b = make(BalancerKind::kPeakEwma, 2);
  b.on_start(0);
  b.on_finish(0, t0, 50ms);
  b.on_start(1);
  b.on_finish(1, t0, 5ms);
  EXPECT_LT(b.cost(1, t0), b.cost(0, t0));
  auto h = histogram(b, 100, all);
  EXPECT_EQ(h[1], 100);
  // Load counts too: 20 in flight on the fast one (5 ms x 21 > 50 ms x 1).
  for (int i = 0; i < 20; ++i) b.on_start(1);
  EXPECT_EQ(b.pick(t0, all), 0u);
}

// Over many instances P2C still favours the cheap ones: the slowest half gets little traffic.
TEST(BalancerTest, PeakEwmaOverManyInstancesFavoursFast) {
  auto b = make(BalancerKind::kPeakEwma, 10);
  for (std::size_t i = 0; i < 10; ++i) b.on_finish(i, t0, std::chrono::milliseconds(1 + 10 * i));
  auto h = histogram(b, 10000, all);
  int slow_half = 0;
  for (std::size_t i = 5; i < 10; ++i) slow_half += h[i];
  EXPECT_LT(slow_half, 2500);
  EXPECT_GT(h[0], h[9]);
}

double ms_of(core::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The EWMA jumps to a peak, mixes lower samples by exp(-dt/decay) and decays toward zero idle.
TEST(BalancerTest, EwmaPeakAndDecay) {
  auto b = make(BalancerKind::kPeakEwma, 1, BalancerConfig{.decay = 10s, .default_rtt = 30ms});
  EXPECT_EQ(b.ewma(0, t0), 30ms);  // default before any sample
  b.on_finish(0, t0, 10ms);
  EXPECT_EQ(b.ewma(0, t0), 10ms);
  b.on_finish(0, t0, 100ms);  // peak: taken in full
  EXPECT_EQ(b.ewma(0, t0), 100ms);
  // Idle for one decay time: 100 ms x e^-1.
  EXPECT_NEAR(ms_of(b.ewma(0, t0 + 10s)), 100.0 * std::exp(-1.0), 0.01);
  // A lower sample after 10 s: 100 x e^-1 + 10 x (1 - e^-1).
  b.on_finish(0, t0 + 10s, 10ms);
  EXPECT_NEAR(ms_of(b.ewma(0, t0 + 10s)), 100.0 * std::exp(-1.0) + 10.0 * (1 - std::exp(-1.0)),
              0.01);
  // A lower sample right after the previous one barely moves it.
  const auto before = b.ewma(0, t0 + 10s);
  b.on_finish(0, t0 + 10s + 1ms, 1ms);
  EXPECT_NEAR(static_cast<double>(b.ewma(0, t0 + 10s + 1ms).count()),
              static_cast<double>(before.count()), 0.001 * static_cast<double>(before.count()));
}

// An unmeasured instance is probed first, one request at a time; once measured it competes
// on its latency.
TEST(BalancerTest, UnmeasuredInstanceIsProbedOneAtATime) {
  Balancer b(BalancerConfig{}, "", 1);
  b.set_endpoints(std::vector<BalancerEndpoint>{{.id = 1}, {.id = 2}}, t0);
  b.on_finish(0, t0, 1ms);  // measured and fast; instance 1 never measured
  EXPECT_EQ(b.cost(1, t0), 0.0);
  EXPECT_EQ(b.pick(t0, all), 1u);
  b.on_start(1);  // its probe is in flight: now it costs default_rtt x 2
  EXPECT_GT(b.cost(1, t0), b.cost(0, t0));
  EXPECT_EQ(b.pick(t0, all), 0u);
  b.on_finish(1, t0, 5ms);
  EXPECT_GT(b.cost(1, t0), b.cost(0, t0));  // measured slower
}

// Weight divides the cost: weight 4 at 4x the latency costs the same as weight 1.
TEST(BalancerTest, WeightDividesCost) {
  Balancer b(BalancerConfig{}, "", 1);
  std::vector<BalancerEndpoint> e = {{.id = 1, .weight = 1}, {.id = 2, .weight = 4}};
  b.set_endpoints(e, t0);
  b.on_finish(0, t0, 10ms);
  b.on_finish(1, t0, 40ms);
  EXPECT_DOUBLE_EQ(b.cost(0, t0), b.cost(1, t0));
  b.set_endpoints(std::vector<BalancerEndpoint>{{.id = 1, .weight = 1}, {.id = 2, .weight = 5}},
                  t0);
  EXPECT_LT(b.cost(1, t0), b.cost(0, t0));  // state kept across set_endpoints by id
}

// Unavailable instances are never picked, even when they are the cheapest.
TEST(BalancerTest, UnavailableNeverPicked) {
  auto b = make(BalancerKind::kPeakEwma, 100);
  b.on_finish(7, t0, 1us);
  std::size_t calls = 0;
  auto odd = [&](std::size_t i) {
    ++calls;
    return i % 2 == 1;
  };
  auto h = histogram(b, 1000, odd);
  for (auto [i, n] : h) EXPECT_EQ(i % 2, 1u) << i;
  EXPECT_LT(calls, 1000u * Balancer::kSampleTries);  // sampled, not scanned
  auto none = [](std::size_t) { return false; };
  EXPECT_EQ(b.pick(t0, none), Balancer::kNone);
  auto only42 = [](std::size_t i) { return i == 42; };
  EXPECT_EQ(b.pick(t0, only42), 42u);  // found by the fallback scan
}

// A retry excludes the tried instance when another exists, and falls back to it otherwise.
TEST(BalancerTest, ExclusionOfTriedInstances) {
  auto b = make(BalancerKind::kPeakEwma, 3);
  const std::array<std::size_t, 2> tried = {0, 1};
  auto h = histogram(b, 100, all, tried);
  EXPECT_EQ(h[2], 100);
  auto not2 = [](std::size_t i) { return i != 2; };
  const std::size_t i = b.pick(t0, not2, tried);
  EXPECT_TRUE(i == 0 || i == 1);  // nothing else: back to a tried one
  for (auto kind : {BalancerKind::kRoundRobin, BalancerKind::kRandom,
                    BalancerKind::kWeightedRoundRobin, BalancerKind::kLeastRequest}) {
    auto bk = make(kind, 3);
    EXPECT_EQ(histogram(bk, 50, all, tried)[2], 50) << core::to_string(kind);
  }
}

// Slow start: weight ramps linearly from 10% to 100% over slow_start.
TEST(BalancerTest, SlowStartRamp) {
  Balancer b(BalancerConfig{.slow_start = 10s}, "", 1);
  std::vector<BalancerEndpoint> e = {{.id = 1, .weight = 2, .available_since = t0}, {.id = 2}};
  b.set_endpoints(e, t0);
  EXPECT_DOUBLE_EQ(b.effective_weight(0, t0), 0.2);
  EXPECT_DOUBLE_EQ(b.effective_weight(0, t0 + 5s), 2 * 0.55);
  EXPECT_LT(b.effective_weight(0, t0 + 10s - 1ns), 2);
  EXPECT_DOUBLE_EQ(b.effective_weight(0, t0 + 10s), 2);
  EXPECT_DOUBLE_EQ(b.effective_weight(1, t0), 1);  // no available_since: no ramp
  // Both at the same latency: the ramping one loses at first.
  b.on_finish(0, t0, 10ms);
  b.on_finish(1, t0, 10ms);
  EXPECT_EQ(b.pick(t0 + 1s, all), 1u);
  b.set_available_since(1, t0 + 1s);  // back from ejection: now 1 ramps
  EXPECT_EQ(b.pick(t0 + 1s, all), 0u);
  Balancer off(BalancerConfig{.slow_start = 0s}, "", 1);
  off.set_endpoints(e, t0);
  EXPECT_DOUBLE_EQ(off.effective_weight(0, t0), 2);
}

// Zone awareness: local instances only, until fewer than 70% of them are available.
TEST(BalancerTest, ZoneSpillOver) {
  Balancer b(BalancerConfig{.zone_min_available = 70}, "a", 1);
  std::vector<BalancerEndpoint> e;
  for (std::uint64_t i = 0; i < 10; ++i) e.push_back({.id = i, .zone = i < 5 ? "a" : "b"});
  b.set_endpoints(e, t0);
  auto h = histogram(b, 500, all);
  for (std::size_t i = 5; i < 10; ++i) EXPECT_EQ(h.count(i), 0u) << i;
  EXPECT_TRUE(b.prefers_local_zone());
  // 4 of 5 local available (80%): still local. Rechecked once per second.
  auto four = [](std::size_t i) { return i != 0; };
  SteadyTime now = t0 + 1s;
  for (int i = 0; i < 200; ++i) EXPECT_LT(b.pick(now, four), 5u);
  // 3 of 5 (60%): spill over to all available instances.
  auto three = [](std::size_t i) { return i > 1; };
  now += 1s;
  std::map<std::size_t, int> h2;
  for (int i = 0; i < 1000; ++i) ++h2[b.pick(now, three)];
  EXPECT_FALSE(b.prefers_local_zone());
  int remote = 0;
  for (std::size_t i = 5; i < 10; ++i) remote += h2[i];
  EXPECT_GT(remote, 300);
  EXPECT_EQ(h2.count(0) + h2.count(1), 0u);
  // No local zone configured: no preference at all.
  Balancer off(BalancerConfig{}, "", 1);
  off.set_endpoints(e, t0);
  EXPECT_FALSE(off.prefers_local_zone());
}

// Even while the zone is preferred, a pick whose local candidates are all unavailable spills.
TEST(BalancerTest, ZonePreferredButLocalGoneSpills) {
  Balancer b(BalancerConfig{.zone_min_available = 0}, "a", 1);
  std::vector<BalancerEndpoint> e = {{.id = 1, .zone = "a"}, {.id = 2, .zone = "b"}};
  b.set_endpoints(e, t0);
  EXPECT_EQ(b.pick(t0, all), 0u);
  auto remote_only = [](std::size_t i) { return i == 1; };
  EXPECT_EQ(b.pick(t0, remote_only), 1u);
}

// Retry-After: the instance is avoided until then, unless nothing else is available.
TEST(BalancerTest, RetryAfterAvoidance) {
  auto b = make(BalancerKind::kPeakEwma, 2);
  b.on_finish(0, t0, 1ms);
  b.on_finish(1, t0, 100ms);
  b.avoid_until(0, t0 + 5s);
  EXPECT_EQ(b.pick(t0, all), 1u);
  EXPECT_EQ(b.pick(t0 + 5s - 1ns, all), 1u);
  EXPECT_EQ(b.pick(t0 + 5s, all), 0u);
  auto only0 = [](std::size_t i) { return i == 0; };
  EXPECT_EQ(b.pick(t0, only0), 0u);  // nothing else: used despite Retry-After
  b.avoid_until(0, t0 + 1s);         // an earlier time does not shorten it
  EXPECT_EQ(b.pick(t0 + 2s, all), 1u);
}

// set_endpoints keeps state by id and drops instances that left.
TEST(BalancerTest, SetEndpointsKeepsStateById) {
  auto b = make(BalancerKind::kPeakEwma, 3);
  b.on_start(2);
  b.on_finish(1, t0, 77ms);
  std::vector<BalancerEndpoint> e = {{.id = 102}, {.id = 101}};
  b.set_endpoints(e, t0);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b.in_flight(0), 1u);
  EXPECT_EQ(b.ewma(1, t0), 77ms);
}

// Deterministic for a seed.
TEST(BalancerTest, DeterministicForSeed) {
  auto a = make(BalancerKind::kRandom, 10);
  auto c = make(BalancerKind::kRandom, 10);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.pick(t0, all), c.pick(t0, all));
}

}  // namespace
}  // namespace sb::resilience
