// Native bucket indexing against its definition, quantiles against exact nearest-rank
// percentiles of random and adversarial streams, snapshot differences and the window.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "telemetry/detail/series.hpp"
#include "telemetry/metrics.hpp"
#include "testing/manual_clock.hpp"

namespace sb::telemetry {
namespace {

using namespace std::chrono_literals;

// The definition (Prometheus' client): v = frac * 2^exp with frac in [0.5, 1); the index is
// (exp - 1) * 64 + the first k with 2^(k/64) / 2 >= frac (64 when none).
std::int32_t reference_index(double v) {
  int exp = 0;
  double frac = std::frexp(v, &exp);
  int k = 0;
  while (k < 64 && std::exp2(k / 64.0) / 2 < frac) ++k;
  return (exp - 1) * 64 + k;
}

std::int32_t fast_index(double v) {
  detail::NativeSlot s = detail::native_slot(v);
  return (s.chunk + detail::kMinOctave) * 64 + s.slot + 1;
}

TEST(NativeIndexTest, MatchesTheDefinition) {
  std::vector<double> values;
  for (int e = -29; e < 63; e += 7)
    for (int k = 0; k < 64; ++k) {
      double b = std::ldexp(std::exp2(k / 64.0), e);  // a bucket's upper bound
      values.insert(values.end(), {b, std::nextafter(b, 0.0), std::nextafter(b, 1e300)});
    }
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> log2v(-29.8, 63.9);
  for (int i = 0; i < 200'000; ++i) values.push_back(std::exp2(log2v(rng)));
  for (double v : values) ASSERT_EQ(fast_index(v), reference_index(v)) << v;
}

double exact_percentile(std::vector<double> sorted, double q) {
  std::sort(sorted.begin(), sorted.end());
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()) - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

const std::vector<double> kQuantiles = {0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};

// Every quantile of the stream within 0.6% of the exact nearest-rank percentile (values in
// the zero bucket read as 0), and monotonic in q.
void expect_close_to_exact(const std::vector<double>& stream, const char* what) {
  Registry r;
  Histogram h = r.histogram({.name = "t_stream_seconds", .help = "h"}).with({});
  for (double v : stream) h.observe(v);
  HistogramSnapshot s = h.snapshot();
  ASSERT_EQ(s.count, stream.size()) << what;
  double previous = -1;
  for (double q : kQuantiles) {
    double exact = exact_percentile(stream, q);
    double got = s.quantile(q);
    if (exact <= HistogramSnapshot::kZeroThreshold) {
      EXPECT_EQ(got, 0) << what << " q=" << q;
    } else {
      EXPECT_LE(std::abs(got - exact) / exact, 0.006)
          << what << " q=" << q << " exact=" << exact << " got=" << got;
    }
    EXPECT_GE(got, previous) << what << " q=" << q;
    previous = got;
  }
}

TEST(QuantileTest, RandomStreams) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> lognormal(std::log(0.05), 1.5);
  std::uniform_real_distribution<double> uniform(0.001, 2);
  std::exponential_distribution<double> exponential(10);
  for (int round = 0; round < 5; ++round) {
    std::vector<double> a, b, c;
    for (int i = 0; i < 20'000; ++i) {
      a.push_back(lognormal(rng));
      b.push_back(uniform(rng));
      c.push_back(exponential(rng));
    }
    expect_close_to_exact(a, "lognormal");
    expect_close_to_exact(b, "uniform");
    expect_close_to_exact(c, "exponential");
    for (const auto* s : {&a, &b, &c}) {
      Registry r;
      Histogram h = r.histogram({.name = "t_m_seconds", .help = "h"}).with({});
      for (double v : *s) h.observe(v);
      HistogramSnapshot snap = h.snapshot();
      EXPECT_LE(snap.quantile(0.5), snap.quantile(0.95));
      EXPECT_LE(snap.quantile(0.95), snap.quantile(0.99));
    }
  }
}

TEST(QuantileTest, AdversarialStreams) {
  expect_close_to_exact(std::vector<double>(1000, 0.123), "constant");
  expect_close_to_exact({0.7}, "one sample");

  std::vector<double> boundaries;  // exactly on bucket bounds, and just above them
  for (int k = 0; k < 64 * 3; ++k) {
    double b = std::exp2(k / 64.0 - 10);
    boundaries.push_back(b);
    boundaries.push_back(std::nextafter(b, 1e300));
  }
  expect_close_to_exact(boundaries, "bucket boundaries");

  std::vector<double> bimodal(9900, 0.001);
  bimodal.insert(bimodal.end(), 100, 10.0);
  expect_close_to_exact(bimodal, "bimodal 1 ms / 10 s");

  std::vector<double> wide;  // geometric, 1e-8 .. 1e12, descending
  for (double v = 1e12; v > 1e-8; v /= 1.37) wide.push_back(v);
  expect_close_to_exact(wide, "geometric descending");

  std::vector<double> with_zeros;
  for (int i = 0; i < 3000; ++i) with_zeros.push_back(i % 3 == 0 ? 0.0 : 0.002 * i);
  expect_close_to_exact(with_zeros, "a third zeros");

  std::vector<double> outlier(999, 0.01);
  outlier.push_back(3600);
  expect_close_to_exact(outlier, "one outlier");
}

TEST(QuantileTest, EmptyIsZero) {
  HistogramSnapshot empty;
  EXPECT_EQ(empty.quantile(0.99), 0);
}

// later.minus(earlier) is the histogram of the samples in between.
TEST(SnapshotTest, MinusGivesTheSamplesBetween) {
  Registry r;
  auto& f = r.histogram({.name = "t_d_seconds", .help = "h", .labels = {"k"}});
  Histogram all = f.with({"all"});
  Histogram later_only = f.with({"later"});
  for (int i = 1; i <= 500; ++i) all.observe(0.001 * i);
  all.observe(0);
  HistogramSnapshot earlier = all.snapshot();
  for (int i = 1; i <= 300; ++i) {
    all.observe(0.003 * i);
    later_only.observe(0.003 * i);
  }
  all.observe(0);
  later_only.observe(0);
  HistogramSnapshot d = all.snapshot().minus(earlier);
  HistogramSnapshot want = later_only.snapshot();
  EXPECT_EQ(d.count, want.count);
  EXPECT_NEAR(d.sum, want.sum, 1e-9);
  EXPECT_EQ(d.classic, want.classic);
  EXPECT_EQ(d.zero_count, want.zero_count);
  EXPECT_EQ(d.native, want.native);
  EXPECT_EQ(d.bounds, want.bounds);
}

// rotate() every step; over_window() is everything until `steps` rotations, then the
// samples since the snapshot `steps` rotations ago.
TEST(SlidingWindowTest, CoversTheLastWindow) {
  testing::ManualClock clock;
  Registry r;
  Histogram h = r.histogram({.name = "t_w_seconds", .help = "h"}).with({});
  SlidingWindow w(60s, 6);
  EXPECT_EQ(w.window(), core::Duration(60s));
  w.rotate(clock.steady_now(), h.snapshot());
  for (int i = 0; i < 100; ++i) h.observe(1.0);
  clock.advance(5s);
  w.rotate(clock.steady_now(), h.snapshot());  // not due: no snapshot
  EXPECT_EQ(w.over_window(h.snapshot()).count, 100u);
  for (int step = 1; step <= 6; ++step) {
    clock.advance(step == 1 ? 5s : 10s);
    w.rotate(clock.steady_now(), h.snapshot());
  }
  // 6 rotations after the first: the oldest kept is the one before the 100 samples.
  EXPECT_EQ(w.over_window(h.snapshot()).count, 100u);
  clock.advance(5s);
  for (int i = 0; i < 50; ++i) h.observe(2.0);
  HistogramSnapshot in_window = w.over_window(h.snapshot());  // still since the first
  EXPECT_EQ(in_window.count, 150u);
  EXPECT_NEAR(in_window.quantile(0.5), 1.0, 0.006);
  clock.advance(5s);
  w.rotate(clock.steady_now(), h.snapshot());  // the oldest is now the one after the 100
  in_window = w.over_window(h.snapshot());
  EXPECT_EQ(in_window.count, 50u);
  EXPECT_NEAR(in_window.quantile(0.5), 2.0, 0.012);
}

}  // namespace
}  // namespace sb::telemetry
