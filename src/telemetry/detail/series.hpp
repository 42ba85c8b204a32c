// Inside the metrics library: how a series lays out its per-shard cells, the families that
// own series, and the registry state. Only src/telemetry/*.cpp includes this.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "telemetry/metrics.hpp"

namespace sb::telemetry::detail {

inline constexpr std::size_t kLine = 64;  // one (series, shard) block starts on its own line

/// Native buckets are kept per octave (2^c, 2^(c+1)]: 64 buckets of schema 6, one chunk. The
/// octaves kept span 2^-30 (below the zero threshold 1e-9) to 2^64; a larger value counts in
/// the top bucket.
inline constexpr int kMinOctave = -30;
inline constexpr int kMaxOctave = 63;
inline constexpr int kOctaves = kMaxOctave - kMinOctave + 1;
inline constexpr int kPerChunk = 64;
static_assert(kOctaves <= 128, "HistogramShard::present holds 128 bits");

struct alignas(kLine) Chunk {
  std::atomic<std::uint64_t> n[kPerChunk] = {};
};

/// The head of a histogram's block on one shard; the classic counters follow it.
struct HistogramShard {
  std::atomic<double> sum{0};
  std::atomic<std::uint64_t> zero{0};
  std::atomic<Chunk*> chunks[kOctaves] = {};
  // Bit c set once chunks[c] is: a scrape reads only the chunks that exist (a series has a
  // few of its 94), not every pointer of every shard.
  std::atomic<std::uint64_t> present[2] = {};
  std::atomic<std::uint64_t>* classic() {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(this + 1);
  }
};

/// The native bucket of v > kZeroThreshold: chunk (octave - kMinOctave) and slot in it.
/// Bucket index = (octave * 64) + slot + 1.
struct NativeSlot {
  int chunk;
  int slot;
};
NativeSlot native_slot(double v);

struct Family;

/// One label set of a family. `refs` counts the registry's own reference (dropped by sweep()
/// or at ~Registry) plus one per handle and per scrape in progress; the last one frees it.
struct alignas(kLine) Series {
  // Read by every update.
  std::byte* cells = nullptr;  // shards * stride bytes, aligned to kLine
  std::size_t stride = 0;
  unsigned shards = 1;
  Kind kind = Kind::kCounter;
  const double* bounds = nullptr;  // histograms: the classic bounds (own_bounds' data)
  std::size_t nbounds = 0;

  // Rarely written.
  alignas(kLine) std::atomic<std::int64_t> refs{1};
  std::atomic<double> set_value{0};  // Gauge::set; the base of a counter read from outside
  bool overflow = false;
  // The series' own copy of its family's bounds: a handle may outlive the registry.
  std::vector<double> own_bounds;
  std::vector<std::string> values;
  std::string labels_text;                     // a="x",b="y" (escaped), the overflow label included
  std::optional<core::SteadyTime> idle_since;  // guarded by the family's mutex

  Series(Kind k, unsigned nshards, const std::vector<double>& family_bounds);
  ~Series();
  Series(const Series&) = delete;
  Series& operator=(const Series&) = delete;

  unsigned shard() const;
  std::byte* block(unsigned s) const { return cells + s * stride; }
  std::atomic<std::uint64_t>& counter_cell(unsigned s) const {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(block(s));
  }
  std::atomic<std::int64_t>& gauge_cell(unsigned s) const {
    return *reinterpret_cast<std::atomic<std::int64_t>*>(block(s));
  }
  HistogramShard& histogram_shard(unsigned s) const {
    return *reinterpret_cast<HistogramShard*>(block(s));
  }

  double counter_value() const;
  double gauge_value() const;
  /// The text formats need no native buckets: `with_native` false skips reading them.
  HistogramSnapshot histogram_snapshot(bool with_native = true) const;
};

void acquire(Series* s);
void release(Series* s);

struct VectorLess {
  using is_transparent = void;
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    return a < b;
  }
  bool operator()(const std::vector<std::string>& a, std::span<const std::string_view> b) const;
  bool operator()(std::span<const std::string_view> a, const std::vector<std::string>& b) const;
};

struct Family {
  Family(RegistryState* state, FamilySpec s, Kind k);
  ~Family();

  /// A handle on the series of `values` (a new one, or the overflow series past the cap).
  Series* resolve(std::span<const std::string_view> values);
  /// The series to write, each with a reference the caller releases.
  std::vector<Series*> acquire_all();
  void sweep(core::SteadyTime now, core::Duration ttl);
  std::size_t size() const;

  template <class Handle>
  static Handle make(Series* s) {
    return Handle(s);
  }
  static Series* series_of(const SeriesRef& r) { return r.series_; }

  RegistryState* state;
  const FamilySpec spec;  // bounds filled in for histograms
  const Kind kind;
  std::size_t limit;
  std::unique_ptr<telemetry::Family<Counter>> as_counter;
  std::unique_ptr<telemetry::Family<Gauge>> as_gauge;
  std::unique_ptr<telemetry::Family<Histogram>> as_histogram;

  mutable std::mutex mu;
  std::map<std::vector<std::string>, Series*, VectorLess> series;
  Series* overflow = nullptr;
  Counter overflow_count;  // switchboard_metric_series_overflow_total{metric=<name>}
};

struct RegistryState {
  explicit RegistryState(RegistryOptions o) : options(o) {}
  RegistryOptions options;
  mutable std::mutex mu;
  std::vector<std::unique_ptr<Family>> families;  // registration order
  std::vector<std::shared_ptr<const std::function<void()>>> collectors;
  Family* overflow_family = nullptr;

  std::vector<Family*> family_list() const;
};

/// Label value escaping, the same in the text format and OpenMetrics: \ " and newline.
void append_escaped_label_value(std::string& out, std::string_view v);

}  // namespace sb::telemetry::detail
