// Metrics: counters, gauges and histograms with label sets, bumped on the request path
// without a lock or an allocation, summed over per-thread shards when scraped.
//
// A label set is resolved once (at view rebuild, at route match, at the first sight of a
// status code on a worker) into a handle; the request path only bumps the handle. Knows
// nothing of the gateway: it depends on core only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"

namespace sb::telemetry {

namespace detail {
struct Series;
struct Family;
struct RegistryState;
}  // namespace detail

/// The calling thread's shard. A worker calls set_thread_shard(worker_index + 1) once when it
/// starts; every other thread writes shard 0. Shards past the registry's count wrap around.
/// Any thread may bump any handle (a shard's cells are atomics): the shards only keep two
/// workers from writing the same cache line.
void set_thread_shard(unsigned shard);
unsigned thread_shard();

/// A handle that holds its series: the series is kept (and exposed) while any handle to it
/// lives, and dropped `series_idle_ttl` after the last one goes. Copyable; copies share the
/// series. An empty handle (default-constructed) ignores every update.
class SeriesRef {
 public:
  SeriesRef() = default;
  SeriesRef(const SeriesRef&);
  SeriesRef& operator=(const SeriesRef&);
  SeriesRef(SeriesRef&&) noexcept;
  SeriesRef& operator=(SeriesRef&&) noexcept;
  ~SeriesRef();
  explicit operator bool() const { return series_ != nullptr; }

 protected:
  explicit SeriesRef(detail::Series* s);  // adopts one reference, taken by the caller
  detail::Series* series_ = nullptr;
  friend struct detail::Family;
};

/// Monotonic counter. add() is one relaxed atomic add on the calling thread's shard.
class Counter : public SeriesRef {
 public:
  Counter() = default;
  void add(std::uint64_t n = 1) const;
  void inc() const { add(1); }
  /// The sum over shards (for tests and the status API).
  std::uint64_t value() const;

 private:
  using SeriesRef::SeriesRef;
  friend struct detail::Family;
};

/// A value that goes up and down. add() is sharded like a counter (in-flight requests, open
/// connections); set() stores a value measured by one thread (the control thread, a
/// collector). A gauge uses one or the other, not both (value() is the last set() plus the
/// sum of the add()s).
class Gauge : public SeriesRef {
 public:
  Gauge() = default;
  void add(std::int64_t delta) const;
  void sub(std::int64_t delta) const { add(-delta); }
  void set(double v) const;
  double value() const;

 private:
  using SeriesRef::SeriesRef;
  friend struct detail::Family;
};

/// The upper bounds (seconds) of the classic latency buckets, 0.5 ms to 60 s:
/// 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 60 (+Inf).
const std::vector<double>& latency_buckets();
/// Classic buckets for sizes in bytes: 64 B to 64 MiB, x4 steps.
const std::vector<double>& size_buckets();

/// What a histogram holds at one moment, summed over shards: exact count and sum, the classic
/// bucket counts, and the exponential (native) buckets. Differences of two snapshots of the
/// same series give the histogram of the samples between them (for windows).
struct HistogramSnapshot {
  static constexpr int kSchema = 6;  // Prometheus native histograms: base 2^(2^-6) = 1.0109
  static constexpr double kZeroThreshold = 1e-9;  // |v| <= this counts in the zero bucket

  std::uint64_t count = 0;
  double sum = 0;
  std::vector<double> bounds;          // classic upper bounds, ascending, without +Inf
  std::vector<std::uint64_t> classic;  // per classic bucket (NOT cumulative); size bounds+1
  std::uint64_t zero_count = 0;
  /// Native buckets with a count > 0, ascending by index. Bucket i holds values in
  /// (base^(i-1), base^i], base = 2^(2^-kSchema). Negative values are not recorded natively
  /// (they count in the zero bucket: a duration or a size is never negative).
  std::vector<std::pair<std::int32_t, std::uint64_t>> native;

  /// The q-quantile (0 <= q <= 1) by nearest rank over the native buckets: the bucket that
  /// holds the ceil(q * count)-th smallest sample, reported as the point of least relative
  /// error in it (2 * base^i / (base + 1)), so within 0.55% of the true sample. Zero when
  /// empty. Monotonic in q: p50 <= p95 <= p99 always.
  double quantile(double q) const;
  /// This minus `earlier` (a snapshot of the same series taken before): the samples between.
  HistogramSnapshot minus(const HistogramSnapshot& earlier) const;
};

/// A histogram over classic buckets and exponential native buckets at once. observe() costs
/// two small searches and three relaxed atomic adds on the thread's shard (the classic bucket,
/// the sum, the native bucket; the count is the classic buckets' total), no allocation once
/// the native bucket's chunk of 64 exists (a chunk is allocated the first time a value lands
/// in it: a few times per series in its life). NaN is ignored; values above 2^64 count in the
/// top native bucket (2^(64-1/64), 2^64].
class Histogram : public SeriesRef {
 public:
  Histogram() = default;
  void observe(double v) const;
  /// Seconds.
  void observe(core::Duration d) const { observe(std::chrono::duration<double>(d).count()); }
  HistogramSnapshot snapshot() const;

 private:
  using SeriesRef::SeriesRef;
  friend struct detail::Family;
};

/// The percentiles of a histogram over a sliding window, from snapshots of its cumulative
/// state: rotate() every window / steps (the control thread does), over_window() is the
/// current snapshot minus the one taken `steps` rotations ago. So the window covers between
/// `window` and `window + window / steps` of samples, most recent last. Not thread-safe.
class SlidingWindow {
 public:
  SlidingWindow(core::Duration window, int steps);
  /// Takes a new snapshot when the step is due (a no-op otherwise).
  void rotate(core::SteadyTime now, const HistogramSnapshot& cumulative);
  /// The samples since the oldest kept snapshot (all of them until `steps` rotations).
  HistogramSnapshot over_window(const HistogramSnapshot& cumulative) const;
  core::Duration window() const { return window_; }

 private:
  core::Duration window_;
  core::Duration step_;
  std::vector<HistogramSnapshot> ring_;
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
  std::optional<core::SteadyTime> last_;
};

template <class Handle>
class Family;

/// What a family is: its name (without _total for counters: the exposition adds it), help,
/// label names, and for a histogram its classic bounds.
struct FamilySpec {
  // Every field has an initializer, so designated initializers may leave any out (g++
  // -Wextra warns on a left-out field that has none).
  std::string name = {};
  std::string help = {};
  std::vector<std::string> labels = {};
  std::vector<double> bounds = {};  // histograms only; latency_buckets() when empty
  /// Series cap for this family; 0: the registry's (telemetry.series_limit, default 10,000).
  std::size_t series_limit = 0;
};

enum class Kind { kCounter, kGauge, kHistogram };

/// Formats a scrape can be written in.
enum class Format {
  kText,         // text/plain; version=0.0.4
  kOpenMetrics,  // application/openmetrics-text; version=1.0.0 (ends with # EOF)
  kProtobuf,     // delimited io.prometheus.client.MetricFamily, with native histograms
};

/// The format a scraper's Accept header asks for (Prometheus sends q-weighted lists): the
/// highest-q type we serve; kText when none matches or the header is empty.
Format negotiate(std::string_view accept);
/// The Content-Type header value for a format.
std::string_view content_type(Format f);

struct RegistryOptions {
  unsigned shards = 1;  // workers + 1: shard 0 is every thread that is not a worker
  std::size_t series_limit = 10'000;
  core::Duration series_idle_ttl = std::chrono::minutes(10);
};

/// Every metric of a process. Families are registered once at start (registering the same
/// name twice returns the same family when the spec matches, and throws std::logic_error
/// when it does not). Thread-safe: with() takes the family's lock, updates take none,
/// scrapes read atomics.
class Registry {
 public:
  explicit Registry(RegistryOptions options = {});
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>& counter(FamilySpec spec);
  Family<Gauge>& gauge(FamilySpec spec);
  Family<Histogram>& histogram(FamilySpec spec);

  /// Called at the start of every scrape, on the scraping thread, before anything is read:
  /// a collector sets gauges it measures then (process RSS, instances by state).
  void add_collector(std::function<void()> collect);

  /// Writes every series: families in registration order, series in label order.
  std::string expose(Format f);

  /// Drops series that have had no handle for `series_idle_ttl` (the control thread calls
  /// it; tests call it with a manual clock).
  void sweep(core::SteadyTime now);

  /// Series held now, over all families (the overflow series included).
  std::size_t series_count() const;
  const RegistryOptions& options() const;

 private:
  std::unique_ptr<detail::RegistryState> state_;
  template <class>
  friend class Family;
};

/// One metric name with its label names. with() resolves label values to a handle: the
/// existing series, a new one, or, once the family holds series_limit series, the overflow
/// series (every label empty but otel_metric_overflow="true"), counted in
/// switchboard_metric_series_overflow_total{metric="<name>"}.
template <class Handle>
class Family {
 public:
  /// `values` in the order of FamilySpec::labels; a wrong count throws std::logic_error.
  Handle with(std::initializer_list<std::string_view> values);
  Handle with(const std::vector<std::string>& values);
  const std::string& name() const;
  /// Every series the family holds now (the overflow series included), with its label
  /// values in the order of FamilySpec::labels: for readers that merge series (the status
  /// document's windows). Takes the family's lock; not for the request path.
  std::vector<std::pair<std::vector<std::string>, Handle>> series() const;

 private:
  friend class Registry;
  explicit Family(detail::Family* f) : f_(f) {}
  detail::Family* f_;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

/// gzip (RFC 1952) of `data`, for a scraper that sent Accept-Encoding: gzip.
std::string gzip(std::string_view data);

/// Process metrics (process_cpu_seconds_total, process_resident_memory_bytes,
/// process_open_fds, process_max_fds, process_virtual_memory_bytes,
/// process_start_time_seconds), as Prometheus' client libraries name them, read from /proc
/// at each scrape; and switchboard_build_info{version, commit} = 1.
void register_process_metrics(Registry& registry, std::string_view version,
                              std::string_view commit);

}  // namespace sb::telemetry
