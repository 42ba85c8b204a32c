#include "resilience/latency.hpp"

#include <algorithm>

namespace sb::resilience {

void LatencyEstimator::record(core::Duration latency) {
  ring_[static_cast<std::size_t>(total_ % kSamples)] =
      latency < core::Duration::zero() ? core::Duration::zero() : latency;
  ++total_;
  ++dirty_;
}

void LatencyEstimator::refresh() {
  if (dirty_ == 0 || (dirty_ < kRefresh && total_ >= kSamples)) return;
  dirty_ = 0;
  const std::size_t n = count();
  std::array<core::Duration, kSamples> copy;
  std::copy_n(ring_.begin(), n, copy.begin());
  // Nearest rank: the ceil(q x n)-th smallest, 1-based.
  const std::size_t mid = (n + 1) / 2 - 1;
  const std::size_t hi = (95 * n + 99) / 100 - 1;
  std::nth_element(copy.begin(), copy.begin() + static_cast<std::ptrdiff_t>(hi),
                   copy.begin() + static_cast<std::ptrdiff_t>(n));
  p95_ = copy[hi];
  std::nth_element(copy.begin(), copy.begin() + static_cast<std::ptrdiff_t>(mid),
                   copy.begin() + static_cast<std::ptrdiff_t>(hi));
  median_ = copy[mid];
}

core::Duration LatencyEstimator::median() {
  refresh();
  return median_;
}

core::Duration LatencyEstimator::p95() {
  refresh();
  return p95_;
}

}  // namespace sb::resilience
