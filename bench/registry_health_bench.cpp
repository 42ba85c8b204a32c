// Health policies on the live-traffic path: recording a request, reading window stats, and
// scheduling a check.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstdint>

#include "registry/health.hpp"

namespace {

using namespace std::chrono_literals;
using sb::core::Duration;
using sb::core::SteadyTime;
using sb::registry::CheckScheduler;
using sb::registry::HealthSettings;
using sb::registry::HealthTracker;
using sb::registry::InstanceState;
using sb::registry::LatencyHistogram;

// 64 latencies from 200 us to ~1.5 s (log-spread) with 1 in 16 failing: a realistic mix.
struct Samples {
  std::array<Duration, 64> latency{};
  std::array<bool, 64> ok{};
  Samples() {
    double ns = 200'000;
    for (std::size_t i = 0; i < latency.size(); ++i, ns *= 1.15) {
      latency[i] = Duration(static_cast<Duration::rep>(ns));
      ok[i] = i % 16 != 7;
    }
  }
};

HealthTracker healthy_tracker(SteadyTime now) {
  HealthTracker t(HealthSettings{.fall = 1'000'000}, now);
  t.record_check(now, true, 1ms, "HTTP 200");
  t.record_check(now, true, 1ms, "HTTP 200");
  return t;
}

// Baseline: mapping one latency to its histogram bin.
void bm_histogram_bin_of(benchmark::State& state) {
  const Samples s;
  std::size_t i = 0;
  for (auto _ : state) {
    int bin = LatencyHistogram::bin_of(s.latency[i++ & 63]);
    benchmark::DoNotOptimize(bin);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_histogram_bin_of);

// One live request recorded; time advances range(0) us per request, so the window rotates
// (1000 us: 1000 requests/s on this instance).
void bm_record_live(benchmark::State& state) {
  const Samples s;
  const Duration step = std::chrono::microseconds(state.range(0));
  SteadyTime now = SteadyTime{} + 600s;
  HealthTracker t = healthy_tracker(now);
  std::size_t i = 0;
  for (auto _ : state) {
    now += step;
    const std::size_t k = i++ & 63;
    auto tr = t.record_live(now, s.ok[k], s.latency[k]);
    benchmark::DoNotOptimize(tr);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["degraded"] = t.state() == InstanceState::kDegraded;
}
BENCHMARK(bm_record_live)->Arg(1)->Arg(1000);

// Count, error rate and p50/p95/p99 over a full window (all buckets in use).
void bm_stats(benchmark::State& state) {
  const Samples s;
  SteadyTime now = SteadyTime{} + 600s;
  HealthTracker t = healthy_tracker(now);
  for (int i = 0; i < 6000; ++i) {
    now += 10ms;
    t.record_live(now, s.ok[i & 63], s.latency[i & 63]);
  }
  for (auto _ : state) {
    auto st = t.stats(now);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["window_count"] = static_cast<double>(t.stats(now).count);
}
BENCHMARK(bm_stats);

// record_live followed by stats(): what a status scrape per request would cost.
void bm_record_live_and_stats(benchmark::State& state) {
  const Samples s;
  SteadyTime now = SteadyTime{} + 600s;
  HealthTracker t = healthy_tracker(now);
  std::size_t i = 0;
  for (auto _ : state) {
    now += 1ms;
    const std::size_t k = i++ & 63;
    auto tr = t.record_live(now, s.ok[k], s.latency[k]);
    auto st = t.stats(now);
    benchmark::DoNotOptimize(tr);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_record_live_and_stats);

// The next check time for a healthy instance (xorshift draw + jitter).
void bm_next_check(benchmark::State& state) {
  CheckScheduler sched(HealthSettings{}, 42);
  const SteadyTime now = SteadyTime{} + 600s;
  for (auto _ : state) {
    auto at = sched.next_check(now, InstanceState::kHealthy);
    benchmark::DoNotOptimize(at);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_next_check);

}  // namespace
