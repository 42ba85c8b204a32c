// Recent latency of one instance (or service), for hedging delays (p95) and deadline
// checks before a retry (median).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "core/clock.hpp"

namespace sb::resilience {

/// Median and p95 over the most recent kSamples latencies. Per worker, not thread-safe.
///
/// record() is O(1): one store into a ring. Queries are exact nearest-rank quantiles of the
/// samples in the ring, recomputed (copy + two nth_element over 64 values, ~0.3 us) only
/// after kRefresh new samples, so a query is O(1) amortised and may not yet reflect the last
/// kRefresh - 1 samples. Before the ring is full every new sample triggers a refresh, so
/// sparse traffic is reflected at once. Accuracy is that of 64 samples: the p95 is the 61st
/// smallest of the last 64, a noisy but unbiased estimate of a tail that moves with traffic.
class LatencyEstimator {
 public:
  static constexpr std::size_t kSamples = 64;
  static constexpr std::uint32_t kRefresh = 8;

  void record(core::Duration latency);
  /// Samples held (at most kSamples).
  std::size_t count() const {
    return total_ < kSamples ? static_cast<std::size_t>(total_) : kSamples;
  }
  /// Zero while there are no samples.
  core::Duration median();
  core::Duration p95();

 private:
  void refresh();

  std::array<core::Duration, kSamples> ring_{};
  std::uint64_t total_ = 0;
  std::uint32_t dirty_ = 0;
  core::Duration median_{};
  core::Duration p95_{};
};

}  // namespace sb::resilience
