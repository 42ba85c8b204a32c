// Several threads hammer the shared policies (breaker, retry budget, outlier hosts). Run
// under TSan (preset tsan) too. Time is a shared counter that every operation advances, so
// the breaker walks through all its states many times while threads race.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "resilience/circuit_breaker.hpp"
#include "resilience/outlier.hpp"
#include "resilience/random.hpp"
#include "resilience/retry.hpp"

namespace sb::resilience {
namespace {

using namespace std::chrono_literals;
using core::SteadyTime;

constexpr int kThreads = 4;

struct SharedTime {
  std::atomic<std::int64_t> ns{1'000'000'000'000};
  SteadyTime advance(core::Duration d) {
    return SteadyTime(core::Duration(ns.fetch_add(d.count()) + d.count()));
  }
  SteadyTime now() const { return SteadyTime(core::Duration(ns.load())); }
};

// Every real transition is reported exactly once: per state, transitions in minus
// transitions out equals (final state) - (initial state), and opens match times_opened.
TEST(ConcurrencyTest, BreakerReportsEachTransitionOnce) {
  CircuitBreaker b(core::BreakerConfig{.consecutive_failures = 5,
                                       .failure_rate = 50,
                                       .minimum_calls = 20,
                                       .window = 1s,
                                       .window_buckets = 10,
                                       .open_duration = 20ms,
                                       .max_open_duration = 200ms,
                                       .half_open_probes = 3,
                                       .half_open_timeout = 100ms},
                   7);
  SharedTime clock;
  std::vector<std::vector<BreakerTransition>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(static_cast<std::uint64_t>(t) + 1);
      for (int i = 0; i < 40'000; ++i) {
        SteadyTime now = clock.advance(20us);
        // Phases of 0.5 s: mostly failing, then mostly healthy.
        const bool bad_phase = (now.time_since_epoch() / 500ms) % 2 == 0;
        auto a = b.allow(now);
        if (a.transition) seen[t].push_back(*a.transition);
        if (!a.allowed()) continue;
        if (a.permit.kind == PermitKind::kProbe && rng.below(10) == 0) {
          b.release(a.permit);
          continue;
        }
        const bool failure = rng.unit() < (bad_phase ? 0.8 : 0.02);
        if (auto tr = b.record(clock.advance(10us), a.permit, failure, 1ms)) seen[t].push_back(*tr);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::map<BreakerState, long> balance;
  std::map<std::pair<BreakerState, BreakerState>, long> kinds;
  auto kind = [&](BreakerState from, BreakerState to) { return kinds[std::make_pair(from, to)]; };
  for (const auto& v : seen) {
    for (const auto& tr : v) {
      ++balance[tr.to];
      --balance[tr.from];
      ++kinds[std::make_pair(tr.from, tr.to)];
    }
  }
  const auto snap = b.snapshot(clock.now());
  for (auto s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
    const long expected = (snap.state == s ? 1 : 0) - (s == BreakerState::kClosed ? 1 : 0);
    EXPECT_EQ(balance[s], expected) << to_string(s);
  }
  const long opens = kind(BreakerState::kClosed, BreakerState::kOpen) +
                     kind(BreakerState::kHalfOpen, BreakerState::kOpen);
  EXPECT_EQ(static_cast<std::uint64_t>(opens), snap.times_opened);
  EXPECT_GT(kind(BreakerState::kClosed, BreakerState::kOpen), 0);
  EXPECT_GT(kind(BreakerState::kOpen, BreakerState::kHalfOpen), 0);
  EXPECT_GT(kind(BreakerState::kHalfOpen, BreakerState::kClosed), 0);
  for (const auto& [k, n] : kinds) {
    const bool valid = (k.first == BreakerState::kClosed && k.second == BreakerState::kOpen) ||
                       (k.first == BreakerState::kOpen && k.second == BreakerState::kHalfOpen) ||
                       (k.first == BreakerState::kHalfOpen && k.second == BreakerState::kClosed) ||
                       (k.first == BreakerState::kHalfOpen && k.second == BreakerState::kOpen);
    EXPECT_TRUE(valid) << to_string(k.first) << " -> " << to_string(k.second) << " x" << n;
  }
  EXPECT_LE(snap.probes_in_flight, 3u);
}

// Total outage with racing threads: retries stay near 20% of requests plus the floor.
TEST(ConcurrencyTest, RetryBudgetBoundUnderContention) {
  RetryBudget budget(core::RetryConfig{});
  SharedTime clock;
  std::atomic<std::uint64_t> requests{0}, retries{0};
  const SteadyTime start = clock.now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50'000; ++i) {
        const SteadyTime now = clock.advance(100us);
        budget.record_request(now);
        requests.fetch_add(1);
        for (int r = 0; r < 2; ++r) {
          if (budget.try_acquire(now)) retries.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(clock.now() - start).count();
  // Slack: the check-then-add race may over-grant by up to one per thread per check burst.
  EXPECT_LE(static_cast<double>(retries.load()),
            0.2 * static_cast<double>(requests.load()) * 1.05 + 10 * (seconds + 1) + 100);
  EXPECT_GE(static_cast<double>(retries.load()), 0.15 * static_cast<double>(requests.load()));
}

// Racing gateway errors on a few hosts: each ejection reported once, the cap holds.
TEST(ConcurrencyTest, OutlierEjectionsReportedOnceAndCapped) {
  OutlierDetector d(
      core::OutlierConfig{.consecutive_gateway_errors = 3, .max_ejection_percent = 50});
  std::vector<std::shared_ptr<OutlierHost>> hosts;
  for (int i = 0; i < 6; ++i) hosts.push_back(d.add_host(static_cast<std::uint64_t>(i)));
  SharedTime clock;
  std::atomic<std::uint64_t> ejections{0};
  std::atomic<std::uint32_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(static_cast<std::uint64_t>(t) + 9);
      for (int i = 0; i < 20'000; ++i) {
        const SteadyTime now = clock.advance(50us);
        auto& h = hosts[rng.below(hosts.size())];
        if (h->ejected(now)) continue;
        if (h->record(now, Outcome::response(503))) ejections.fetch_add(1);
        std::uint32_t e = d.ejected_count(), m = max_seen.load();
        while (e > m && !max_seen.compare_exchange_weak(m, e)) {
        }
      }
    });
  }
  // The control thread returns hosts meanwhile.
  std::atomic<bool> done{false};
  std::uint64_t returns = 0;
  std::thread control([&] {
    while (!done.load()) returns += d.evaluate(clock.now(), hosts).size();
  });
  for (auto& th : threads) th.join();
  done = true;
  control.join();
  std::uint64_t total = 0;
  for (auto& h : hosts) total += h->times_ejected();
  EXPECT_EQ(total, ejections.load());
  EXPECT_GT(total, 0u);
  EXPECT_LE(max_seen.load(), 3u);
  EXPECT_EQ(d.ejected_count(), total - returns);
}

}  // namespace
}  // namespace sb::resilience
