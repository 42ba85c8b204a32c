// The metrics library on the request path and at scrape time: counter add and histogram
// observe on one thread (asked to stay under 20 ns, no lock), a with() lookup among 10,000
// series, and a scrape of 10,000 series (time, and bytes per series in each format). The
// memory a series costs is reported as a counter (heap bytes, mallinfo2, per series).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "telemetry/metrics.hpp"

namespace {

using sb::telemetry::Counter;
using sb::telemetry::Format;
using sb::telemetry::Histogram;
using sb::telemetry::Registry;

constexpr int kSeries = 10'000;

// Baseline: one relaxed atomic increment.
void bm_atomic_increment(benchmark::State& state) {
  std::atomic<std::uint64_t> n{0};
  for (auto _ : state) n.fetch_add(1, std::memory_order_relaxed);
  benchmark::DoNotOptimize(n.load());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_atomic_increment);

void bm_counter_add(benchmark::State& state) {
  Registry r({.shards = 3});
  sb::telemetry::set_thread_shard(1);
  Counter c = r.counter({.name = "b_requests", .help = "h", .labels = {"code"}}).with({"200"});
  for (auto _ : state) c.inc();
  benchmark::DoNotOptimize(c.value());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_counter_add);

// Latencies from a log-normal around 20 ms (1 ms .. 1 s mostly): the classic search, the
// native index and the chunk pointer all vary as they would.
void bm_histogram_observe(benchmark::State& state) {
  Registry r({.shards = 3});
  sb::telemetry::set_thread_shard(1);
  Histogram h =
      r.histogram({.name = "b_duration_seconds", .help = "h", .labels = {"route"}}).with({"/a"});
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> d(std::log(0.02), 1.0);
  std::vector<double> values(4096);
  for (double& v : values) v = d(rng);
  std::size_t i = 0;
  for (auto _ : state) h.observe(values[i++ & 4095]);
  benchmark::DoNotOptimize(h.snapshot().count);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_histogram_observe);

// with() on an existing label set (two labels) among 10,000: lock, ordered lookup, a ref.
void bm_with_lookup(benchmark::State& state) {
  Registry r;
  auto& f = r.counter({.name = "b_calls", .help = "h", .labels = {"service", "route"}});
  std::vector<Counter> held;
  std::vector<std::string> routes;
  for (int i = 0; i < kSeries; ++i) routes.push_back("/api/v1/items/" + std::to_string(i));
  for (int i = 0; i < kSeries; ++i) held.push_back(f.with({"catalog", routes[i]}));
  std::size_t i = 0;
  for (auto _ : state) {
    Counter c = f.with({"catalog", routes[(i += 7919) % kSeries]});
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_with_lookup);

// A scrape of 10,000 series. range(0): 0 counters, 1 histograms (16 classic buckets, samples
// over ~10 octaves, so ~10 native chunks per shard touched). range(1): the format.
void bm_scrape(benchmark::State& state) {
  const bool histograms = state.range(0) == 1;
  const auto format = static_cast<Format>(state.range(1));
  Registry r({.shards = 3});
  std::vector<Counter> counters;
  std::vector<Histogram> hs;
  auto& cf = r.counter({.name = "b_requests", .help = "h", .labels = {"route", "code"}});
  auto& hf = r.histogram({.name = "b_duration_seconds", .help = "h", .labels = {"route"}});
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(std::log(0.02), 1.5);
  for (int i = 0; i < kSeries; ++i) {
    std::string route = "/api/v1/items/" + std::to_string(i);
    if (histograms) {
      hs.push_back(hf.with({route}));
      for (int k = 0; k < 20; ++k) hs.back().observe(d(rng));
    } else {
      counters.push_back(cf.with({route, "200"}));
      counters.back().add(static_cast<std::uint64_t>(i));
    }
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out = r.expose(format);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes_per_series"] = static_cast<double>(bytes) / kSeries;
  state.SetItemsProcessed(state.iterations() * kSeries);
}
BENCHMARK(bm_scrape)
    ->ArgsProduct({{0, 1}, {0, 1, 2}})
    ->ArgNames({"hist", "format"})
    ->Unit(benchmark::kMillisecond);

// Heap bytes per series (mallinfo2 before and after creating 10,000 and holding them), for
// 1 and 9 shards (8 workers). Histograms get samples over ~10 octaves, as latencies do.
void bm_memory_per_series(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));  // 0 counter, 1 gauge, 2 histogram
  const auto shards = static_cast<unsigned>(state.range(1));
  double per_series = 0;
  for (auto _ : state) {
    Registry r({.shards = shards});
    auto& cf = r.counter({.name = "b_c", .help = "h", .labels = {"service", "route"}});
    auto& gf = r.gauge({.name = "b_g", .help = "h", .labels = {"service", "route"}});
    auto& hf = r.histogram({.name = "b_h_seconds", .help = "h", .labels = {"service", "route"}});
    std::vector<std::string> routes;
    for (int i = 0; i < kSeries; ++i) routes.push_back("/api/v1/items/" + std::to_string(i));
    std::vector<sb::telemetry::SeriesRef> held;
    held.reserve(kSeries);
    std::vector<double> samples;
    for (int e = -10; e <= 0; ++e) samples.push_back(std::exp2(e) * 1.3);
    const std::size_t before = mallinfo2().uordblks;
    for (int i = 0; i < kSeries; ++i) {
      if (kind == 0) {
        held.push_back(cf.with({"catalog", routes[i]}));
      } else if (kind == 1) {
        held.push_back(gf.with({"catalog", routes[i]}));
      } else {
        Histogram h = hf.with({"catalog", routes[i]});
        for (unsigned s = 0; s < shards; ++s) {  // every shard sees every octave
          sb::telemetry::set_thread_shard(s);
          for (double v : samples) h.observe(v);
        }
        sb::telemetry::set_thread_shard(0);
        held.push_back(h);
      }
    }
    const std::size_t after = mallinfo2().uordblks;
    per_series = static_cast<double>(after - before) / kSeries;
  }
  state.counters["heap_bytes_per_series"] = per_series;
}
BENCHMARK(bm_memory_per_series)
    ->ArgsProduct({{0, 1, 2}, {1, 9}})
    ->ArgNames({"kind", "shards"})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
