// Counters, gauges, histograms, families, the series cap and idle eviction, on a manual
// clock; shards summed while several threads update (run under TSan too).
#include "telemetry/metrics.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "testing/manual_clock.hpp"

namespace sb::telemetry {
namespace {

using namespace std::chrono_literals;

// Restores the calling thread's shard (tests run on one thread, one after the other).
struct ShardScope {
  explicit ShardScope(unsigned s) : saved(thread_shard()) { set_thread_shard(s); }
  ~ShardScope() { set_thread_shard(saved); }
  unsigned saved;
};

std::uint64_t overflow_count(Registry& r, std::string_view metric) {
  return r
      .counter({.name = "switchboard_metric_series_overflow",
                .help = "Label sets that went to a metric's overflow series "
                        "(otel_metric_overflow=\"true\") because the metric held its "
                        "series cap",
                .labels = {"metric"},
                .series_limit = std::numeric_limits<std::size_t>::max()})
      .with({metric})
      .value();
}

// A counter sums what every shard added; an empty handle ignores updates.
TEST(CounterTest, AddsOnEveryShardAndSums) {
  Registry r({.shards = 3});
  Counter c = r.counter({.name = "t_requests", .help = "h", .labels = {"code"}}).with({"200"});
  for (unsigned s = 0; s < 5; ++s) {  // shards 3 and 4 wrap onto 0 and 1
    ShardScope scope(s);
    c.add(10);
    c.inc();
  }
  EXPECT_EQ(c.value(), 55u);
  Counter empty;
  EXPECT_FALSE(empty);
  empty.add(3);
  EXPECT_EQ(empty.value(), 0u);
}

// Handles of one label set share the series; another label set is another series.
TEST(CounterTest, SameLabelsSameSeries) {
  Registry r;
  auto& f = r.counter({.name = "t_calls", .help = "h", .labels = {"a", "b"}});
  f.with({"x", "y"}).add(2);
  f.with(std::vector<std::string>{"x", "y"}).add(3);
  Counter other = f.with({"x", "z"});
  EXPECT_EQ(f.with({"x", "y"}).value(), 5u);
  EXPECT_EQ(other.value(), 0u);
  EXPECT_EQ(f.name(), "t_calls");
}

// add() is sharded, set() stores one value; the value is their sum.
TEST(GaugeTest, AddSubAndSet) {
  Registry r({.shards = 2});
  auto& f = r.gauge({.name = "t_in_flight", .help = "h"});
  Gauge g = f.with({});
  g.add(5);
  {
    ShardScope scope(1);
    g.sub(2);
  }
  EXPECT_EQ(g.value(), 3);
  Gauge measured = r.gauge({.name = "t_temperature_ratio", .help = "h"}).with({});
  measured.set(0.25);
  EXPECT_EQ(measured.value(), 0.25);
  measured.set(-1.5);
  EXPECT_EQ(measured.value(), -1.5);
}

// Classic buckets count v <= bound; native buckets are (base^(i-1), base^i].
TEST(HistogramTest, ClassicAndNativeBuckets) {
  Registry r({.shards = 2});
  Histogram h = r.histogram({.name = "t_size_bytes", .help = "h", .bounds = {1, 2, 4}}).with({});
  h.observe(1.0);  // le=1; native index 0: (2^(-1/64), 1]
  h.observe(1.5);  // le=2; native ceil(64 * log2 1.5) = 38
  {
    ShardScope scope(1);
    h.observe(2.0);  // le=2; native 64
    h.observe(100);  // +Inf; native ceil(64 * log2 100) = 426
  }
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.sum, 104.5);
  EXPECT_EQ(s.bounds, (std::vector<double>{1, 2, 4}));
  EXPECT_EQ(s.classic, (std::vector<std::uint64_t>{1, 2, 0, 1}));
  EXPECT_EQ(s.zero_count, 0u);
  using P = std::pair<std::int32_t, std::uint64_t>;
  EXPECT_EQ(s.native, (std::vector<P>{{0, 1}, {38, 1}, {64, 1}, {426, 1}}));
}

// Zero, tiny and negative values count in the zero bucket; NaN is dropped; a duration is
// observed in seconds; a huge value lands in the top native bucket.
TEST(HistogramTest, ZeroBucketNanDurationAndHugeValues) {
  Registry r;
  Histogram h = r.histogram({.name = "t_latency_seconds", .help = "h"}).with({});
  h.observe(0.0);
  h.observe(1e-9);
  h.observe(-3);
  h.observe(std::nan(""));
  h.observe(core::Duration(250ms));
  h.observe(1e300);
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 5u);
  EXPECT_EQ(s.zero_count, 3u);
  EXPECT_EQ(s.bounds, latency_buckets());
  ASSERT_EQ(s.native.size(), 2u);
  EXPECT_EQ(s.native[0].first, -128);     // 0.25 = 2^-2
  EXPECT_EQ(s.native[1].first, 64 * 64);  // the top bucket: (2^(64-1/64), 2^64]
  EXPECT_EQ(s.classic.front(), 3u);       // le=0.0005
  EXPECT_EQ(s.classic.back(), 1u);        // +Inf
}

TEST(HistogramTest, DefaultBucketsAreDocumented) {
  EXPECT_EQ(latency_buckets(), (std::vector<double>{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}));
  EXPECT_EQ(size_buckets().front(), 64);
  EXPECT_EQ(size_buckets().back(), 64.0 * 1024 * 1024);
  EXPECT_EQ(size_buckets().size(), 11u);
}

TEST(FamilyTest, SameSpecSameFamilyOtherSpecThrows) {
  Registry r;
  auto& a = r.counter({.name = "t_x", .help = "h", .labels = {"a"}});
  auto& b = r.counter({.name = "t_x", .help = "h", .labels = {"a"}});
  EXPECT_EQ(&a, &b);
  EXPECT_THROW(r.counter({.name = "t_x", .help = "other", .labels = {"a"}}), std::logic_error);
  EXPECT_THROW(r.gauge({.name = "t_x", .help = "h", .labels = {"a"}}), std::logic_error);
  // Same exposed sample name through another kind.
  EXPECT_THROW(r.gauge({.name = "t_x_total", .help = "h"}), std::logic_error);
  auto& hist = r.histogram({.name = "t_h_seconds", .help = "h"});
  EXPECT_EQ(&hist, &r.histogram({.name = "t_h_seconds", .help = "h", .bounds = latency_buckets()}));
  EXPECT_THROW(r.gauge({.name = "t_h_seconds_count", .help = "h"}), std::logic_error);
}

TEST(FamilyTest, BadSpecsAndLabelCountsThrow) {
  Registry r;
  EXPECT_THROW(r.counter({.name = "t_requests_total", .help = "h"}), std::logic_error);
  EXPECT_THROW(r.counter({.name = "9lives", .help = "h"}), std::logic_error);
  EXPECT_THROW(r.counter({.name = "t_a", .help = "h", .labels = {"a", "a"}}), std::logic_error);
  EXPECT_THROW(r.counter({.name = "t_b", .help = "h", .labels = {"__a"}}), std::logic_error);
  EXPECT_THROW(r.counter({.name = "t_c", .help = "h", .labels = {"otel_metric_overflow"}}),
               std::logic_error);
  EXPECT_THROW(r.histogram({.name = "t_d", .help = "h", .labels = {"le"}}), std::logic_error);
  EXPECT_THROW(r.histogram({.name = "t_e", .help = "h", .bounds = {2, 1}}), std::logic_error);
  EXPECT_THROW(r.gauge({.name = "t_f", .help = "h", .bounds = {1}}), std::logic_error);
  auto& f = r.counter({.name = "t_g", .help = "h", .labels = {"a", "b"}});
  EXPECT_THROW(f.with({"only one"}), std::logic_error);
  EXPECT_THROW(f.with(std::vector<std::string>{"1", "2", "3"}), std::logic_error);
}

// Past the cap, new label sets share the overflow series, counted per metric; label sets
// already held keep their series.
TEST(CardinalityTest, OverflowSeriesPastTheCap) {
  Registry r({.series_limit = 100});
  auto& f = r.counter({.name = "t_routes", .help = "h", .labels = {"route"}, .series_limit = 2});
  Counter a = f.with({"/a"});
  Counter b = f.with({"/b"});
  Counter c = f.with({"/c"});
  Counter d = f.with({"/d"});
  c.inc();
  d.add(2);
  a.inc();
  EXPECT_EQ(c.value(), 3u);  // c and d are the same (overflow) series
  EXPECT_EQ(f.with({"/a"}).value(), 1u);
  EXPECT_EQ(overflow_count(r, "t_routes"), 2u);
  // 2 series + the overflow series + the overflow counter's series.
  EXPECT_EQ(r.series_count(), 4u);
  std::string text = r.expose(Format::kText);
  EXPECT_NE(text.find("t_routes_total{route=\"\",otel_metric_overflow=\"true\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("switchboard_metric_series_overflow_total{metric=\"t_routes\"} 2\n"),
            std::string::npos)
      << text;
}

// A family without its own limit takes the registry's.
TEST(CardinalityTest, RegistryDefaultLimit) {
  Registry r({.series_limit = 3});
  auto& f = r.gauge({.name = "t_instances", .help = "h", .labels = {"id"}});
  std::vector<Gauge> held;
  for (int i = 0; i < 5; ++i) held.push_back(f.with({std::to_string(i)}));
  held[3].add(1);
  held[4].add(1);
  EXPECT_EQ(held[3].value(), 2);
  EXPECT_EQ(overflow_count(r, "t_instances"), 2u);
}

// A series without handles goes series_idle_ttl after a sweep first saw it so, not before.
TEST(EvictionTest, IdleSeriesDroppedAfterTtl) {
  testing::ManualClock clock;
  Registry r({.series_idle_ttl = 10min});
  auto& f = r.counter({.name = "t_by_instance", .help = "h", .labels = {"instance"}});
  f.with({"gone"}).add(7);
  Counter kept = f.with({"kept"});
  const std::size_t base = r.series_count();
  r.sweep(clock.steady_now());  // first seen idle
  clock.advance(10min - 1ns);
  r.sweep(clock.steady_now());
  EXPECT_EQ(r.series_count(), base);
  clock.advance(1ns);
  r.sweep(clock.steady_now());
  EXPECT_EQ(r.series_count(), base - 1);
  EXPECT_EQ(r.expose(Format::kText).find("gone"), std::string::npos);
  EXPECT_EQ(f.with({"gone"}).value(), 0u);  // a new series
  clock.advance(1h);
  r.sweep(clock.steady_now());
  kept.inc();  // a held handle is never dropped
  EXPECT_EQ(f.with({"kept"}).value(), 1u);
}

// with() before the TTL keeps the series (and its count), and restarts the idle time.
TEST(EvictionTest, ReacquiredBeforeTtlKeepsContinuity) {
  testing::ManualClock clock;
  Registry r({.series_idle_ttl = 10min});
  auto& f = r.counter({.name = "t_flaky", .help = "h", .labels = {"instance"}});
  f.with({"i1"}).add(5);
  r.sweep(clock.steady_now());
  clock.advance(9min);
  f.with({"i1"}).add(1);  // idle again right after
  clock.advance(1min);
  r.sweep(clock.steady_now());  // 10 min since first idle, but seen again: restarts
  EXPECT_EQ(f.with({"i1"}).value(), 6u);
  clock.advance(10min - 1ns);
  r.sweep(clock.steady_now());
  EXPECT_EQ(f.with({"i1"}).value(), 6u);  // and this with() restarts it once more
  r.sweep(clock.steady_now());
  clock.advance(10min);
  r.sweep(clock.steady_now());
  EXPECT_EQ(f.with({"i1"}).value(), 0u);
}

// Evicting frees room under the cap; the overflow series is evicted like any other.
TEST(EvictionTest, EvictionMakesRoomUnderTheCap) {
  testing::ManualClock clock;
  Registry r({.series_idle_ttl = 0ns});
  auto& f = r.counter({.name = "t_capped", .help = "h", .labels = {"k"}, .series_limit = 1});
  f.with({"a"}).inc();
  f.with({"b"}).inc();  // overflow
  r.sweep(clock.steady_now());
  Counter b = f.with({"b"});
  b.inc();
  EXPECT_EQ(b.value(), 1u);
  std::string text = r.expose(Format::kText);
  EXPECT_NE(text.find("t_capped_total{k=\"b\"} 1"), std::string::npos) << text;
  EXPECT_EQ(text.find("otel_metric_overflow=\"true\"}"), std::string::npos) << text;
}

// A handle kept past its registry stays valid (it holds the series).
TEST(LifetimeTest, HandleOutlivesRegistry) {
  Counter c;
  Histogram h;
  {
    Registry r;
    c = r.counter({.name = "t_c", .help = "h"}).with({});
    h = r.histogram({.name = "t_h_seconds", .help = "h"}).with({});
  }
  c.add(2);
  h.observe(0.5);
  EXPECT_EQ(c.value(), 2u);
  EXPECT_EQ(h.snapshot().count, 1u);
}

TEST(LifetimeTest, CopiesAndMovesShareTheSeries) {
  testing::ManualClock clock;
  Registry r({.series_idle_ttl = 0ns});
  auto& f = r.counter({.name = "t_shared", .help = "h", .labels = {"k"}});
  Counter a = f.with({"v"});
  Counter b = a;
  Counter c = std::move(b);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  Counter d;
  d = c;
  a = Counter();
  c = std::move(d);
  c.add(4);
  r.sweep(clock.steady_now());
  EXPECT_EQ(f.with({"v"}).value(), 4u);  // c kept it
  c = Counter();
  r.sweep(clock.steady_now());
  EXPECT_EQ(f.with({"v"}).value(), 0u);
}

TEST(RegistryTest, CollectorsRunAtEachScrape) {
  Registry r;
  Gauge g = r.gauge({.name = "t_measured", .help = "h"}).with({});
  int runs = 0;
  r.add_collector([&] { g.set(++runs); });
  EXPECT_NE(r.expose(Format::kText).find("t_measured 1\n"), std::string::npos);
  EXPECT_NE(r.expose(Format::kOpenMetrics).find("t_measured 2\n"), std::string::npos);
  EXPECT_EQ(runs, 2);
}

// Threads on their own shards (and two sharing one, past the shard count) update the same
// series, resolve new ones and copy handles while another thread scrapes and sweeps: the
// sums are exact at the end.
TEST(ConcurrencyTest, ShardsSumUnderConcurrentUpdates) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 20'000;
  testing::ManualClock clock;
  Registry r({.shards = 3, .series_limit = 50, .series_idle_ttl = 0ns});
  auto& cf = r.counter({.name = "t_c", .help = "h", .labels = {"k"}});
  auto& gf = r.gauge({.name = "t_g", .help = "h"});
  auto& hf = r.histogram({.name = "t_h_seconds", .help = "h"});
  Counter c = cf.with({"shared"});
  Gauge g = gf.with({});
  Histogram h = hf.with({});
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done.load()) {
      (void)r.expose(Format::kText);
      (void)r.expose(Format::kProtobuf);
      r.sweep(clock.steady_now());
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      set_thread_shard(static_cast<unsigned>(t + 1));  // 4 wraps onto shard 1
      for (int i = 0; i < kIterations; ++i) {
        Counter copy = c;
        copy.inc();
        g.add(1);
        h.observe(0.001 * (i % 1000 + 1));  // 1 ms .. 1 s: many native chunks
        if (i % 100 == 0) cf.with({"k" + std::to_string(t * 1000 + i % 7000)}).inc();
      }
    });
  }
  for (auto& w : workers) w.join();
  done = true;
  scraper.join();
  EXPECT_EQ(c.value(), std::uint64_t{kThreads} * kIterations);
  EXPECT_EQ(g.value(), double{kThreads} * kIterations);
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, std::uint64_t{kThreads} * kIterations);
  std::uint64_t native = s.zero_count;
  for (const auto& [i, n] : s.native) native += n;
  EXPECT_EQ(native, s.count);
}

}  // namespace
}  // namespace sb::telemetry
