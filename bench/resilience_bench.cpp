// Resilience policies on the request path: breaker allow+record on a closed breaker, a P2C
// pick over N instances (peak-EWMA and least request), and a retry-budget check. Each is
// asked to stay under 50 ns on one thread.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "resilience/balancer.hpp"
#include "resilience/circuit_breaker.hpp"
#include "resilience/epoch_window.hpp"
#include "resilience/retry.hpp"

namespace {

using namespace std::chrono_literals;
using sb::core::SteadyTime;
using sb::resilience::Balancer;
using sb::resilience::BalancerEndpoint;
using sb::resilience::CircuitBreaker;
using sb::resilience::RetryBudget;

// Baseline: one relaxed atomic increment, the least a shared counter can cost.
void bm_atomic_increment(benchmark::State& state) {
  std::atomic<std::uint64_t> n{0};
  for (auto _ : state) n.fetch_add(1, std::memory_order_relaxed);
  benchmark::DoNotOptimize(n.load());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_atomic_increment);

// allow() + record(success) on a closed breaker; time advances 10 us per request, so the
// window rotates (100 000 requests/s on one breaker).
void bm_breaker_allow_record(benchmark::State& state) {
  CircuitBreaker b(sb::core::BreakerConfig{}, 1);
  SteadyTime now = SteadyTime{} + 1000s;
  for (auto _ : state) {
    now += 10us;
    auto a = b.allow(now);
    auto tr = b.record(now, a.permit, false, 2ms);
    benchmark::DoNotOptimize(tr);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_breaker_allow_record);

// One pick over range(0) instances, all with samples; the availability predicate reads a
// flag vector (every 10th instance unavailable), as the gateway's breaker/ejection check
// would. range(1): 0 peak-EWMA, 1 least request.
void bm_p2c_pick(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  sb::core::BalancerConfig c;
  c.kind = state.range(1) == 0 ? sb::core::BalancerKind::kPeakEwma
                               : sb::core::BalancerKind::kLeastRequest;
  Balancer b(c, "", 42);
  std::vector<BalancerEndpoint> e(n);
  for (std::size_t i = 0; i < n; ++i) e[i].id = i;
  SteadyTime now = SteadyTime{} + 1000s;
  b.set_endpoints(e, now);
  for (std::size_t i = 0; i < n; ++i) {
    b.on_start(i);
    b.on_finish(i, now, std::chrono::microseconds(500 + 37 * (i % 50)));
  }
  std::vector<char> up(n);
  for (std::size_t i = 0; i < n; ++i) up[i] = i % 10 != 3;
  auto available = [&](std::size_t i) { return up[i] != 0; };
  for (auto _ : state) {
    now += 1us;
    std::size_t i = b.pick(now, available);
    benchmark::DoNotOptimize(i);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_p2c_pick)
    ->Args({1, 0})
    ->Args({10, 0})
    ->Args({100, 0})
    ->Args({1000, 0})
    ->Args({100, 1});

// The full per-request balancer cycle: pick, on_start, on_finish (EWMA update).
void bm_p2c_pick_start_finish(benchmark::State& state) {
  Balancer b(sb::core::BalancerConfig{}, "", 42);
  std::vector<BalancerEndpoint> e(100);
  for (std::size_t i = 0; i < e.size(); ++i) e[i].id = i;
  SteadyTime now = SteadyTime{} + 1000s;
  b.set_endpoints(e, now);
  auto available = [](std::size_t) { return true; };
  for (auto _ : state) {
    now += 1us;
    std::size_t i = b.pick(now, available);
    b.on_start(i);
    b.on_finish(i, now, 1ms);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_p2c_pick_start_finish);

// A retry-budget check with a full window (10 buckets in use).
void bm_budget_try_acquire(benchmark::State& state) {
  RetryBudget budget(sb::core::RetryConfig{});
  SteadyTime now = SteadyTime{} + 1000s;
  for (int i = 0; i < 10'000; ++i) {
    now += 1ms;
    budget.record_request(now);
  }
  for (auto _ : state) {
    now += 1us;
    bool ok = budget.try_acquire(now);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_budget_try_acquire);

// record_request(): what every request pays for the budget.
void bm_budget_record_request(benchmark::State& state) {
  RetryBudget budget(sb::core::RetryConfig{});
  SteadyTime now = SteadyTime{} + 1000s;
  for (auto _ : state) {
    now += 1us;
    budget.record_request(now);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_budget_record_request);

// The shared sliding-window counter on its own. add(): what the breaker pays per recorded
// outcome and the retry budget per request; totals(): per breaker trip check and budget ask.
void bm_epoch_window_add(benchmark::State& state) {
  sb::resilience::EpochWindow<3> w(std::chrono::seconds(10), 10);
  SteadyTime now = SteadyTime{} + 1000s;
  for (auto _ : state) {
    now += 1us;
    bool ok = w.add(w.epoch_of(now), 0);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_epoch_window_add);

void bm_epoch_window_totals(benchmark::State& state) {
  sb::resilience::EpochWindow<3> w(std::chrono::seconds(10), 10);
  SteadyTime now = SteadyTime{} + 1000s;
  for (int i = 0; i < 10'000; ++i) {
    now += 1ms;
    w.add(w.epoch_of(now), static_cast<std::size_t>(i % 3));
  }
  for (auto _ : state) {
    auto t = w.totals(w.epoch_of(now));
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_epoch_window_totals);

}  // namespace
