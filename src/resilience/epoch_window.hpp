// A sliding-window counter made of epoch buckets: time is cut into steps of `window /
// buckets`, each bucket holds the counts of one step, and the window is the last `buckets`
// steps. The oldest step leaves as a whole. Shared by the circuit breaker (calls, failures,
// slow calls) and the retry budget (requests, retries).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>

#include "core/clock.hpp"

namespace sb::resilience {

/// `N` counters per bucket over a window of `buckets` steps. A policy piece: every call
/// takes the step (from epoch_of(now)); nothing reads a clock.
///
/// Thread-safety: any thread, lock-free, no allocation after construction. A bucket is
/// recycled for a newer step by one CAS; increments racing with the recycle may be lost (an
/// approximation bounded by the threads recording in the same instant); a sample for a step
/// older than the bucket already holds is dropped, never misfiled. Single-threaded use is
/// exact.
template <std::size_t N>
class EpochWindow {
 public:
  using Counts = std::array<std::uint64_t, N>;

  /// `window` split into `buckets` steps (at least one, each at least 1 ns wide).
  EpochWindow(core::Duration window, std::uint32_t buckets)
      : n_(std::max<std::uint32_t>(1, buckets)),
        width_(std::max<core::Duration::rep>(1, window.count() / n_)),
        buckets_(new Bucket[n_]) {}

  EpochWindow(const EpochWindow&) = delete;
  EpochWindow& operator=(const EpochWindow&) = delete;

  /// The step `now` falls in (floor division: steps before the epoch are negative).
  std::int64_t epoch_of(core::SteadyTime now) const {
    const core::Duration::rep ns = now.time_since_epoch().count();
    const core::Duration::rep w = width_.count();
    return ns >= 0 ? ns / w : -((-ns + w - 1) / w);
  }

  /// Adds `delta` to counter `i` of step `epoch`. False when the sample was dropped (its
  /// bucket already holds a later step).
  bool add(std::int64_t epoch, std::size_t i, std::uint32_t delta = 1) {
    Bucket* b = claim(epoch);
    if (b == nullptr) return false;
    b->counts[i].fetch_add(delta, std::memory_order_acq_rel);
    return true;
  }

  /// Takes back `delta` of counter `i` of step `epoch` (after add() returned true for it).
  /// Nothing when the bucket moved on meanwhile.
  void sub(std::int64_t epoch, std::size_t i, std::uint32_t delta = 1) {
    Bucket& b = bucket(epoch);
    if (b.epoch.load(std::memory_order_acquire) == epoch)
      b.counts[i].fetch_sub(delta, std::memory_order_acq_rel);
  }

  /// The counts of the window that ends with step `epoch` (its `buckets` last steps).
  Counts totals(std::int64_t epoch) const {
    Counts t{};
    for (std::uint32_t k = 0; k < n_; ++k) {
      const Bucket& b = buckets_[k];
      const std::int64_t e = b.epoch.load(std::memory_order_acquire);
      if (e > epoch || e <= epoch - static_cast<std::int64_t>(n_)) continue;
      for (std::size_t i = 0; i < N; ++i) t[i] += b.counts[i].load(std::memory_order_relaxed);
    }
    return t;
  }

  /// Empties every bucket.
  void clear() {
    for (std::uint32_t k = 0; k < n_; ++k) {
      buckets_[k].epoch.store(kEmpty, std::memory_order_release);
      for (auto& c : buckets_[k].counts) c.store(0, std::memory_order_relaxed);
    }
  }

  core::Duration step() const { return width_; }
  std::uint32_t steps() const { return n_; }

 private:
  static constexpr std::int64_t kEmpty = INT64_MIN;

  struct Bucket {
    std::atomic<std::int64_t> epoch{kEmpty};  // the step this bucket holds
    std::array<std::atomic<std::uint32_t>, N> counts{};
  };

  Bucket& bucket(std::int64_t epoch) {
    const auto n = static_cast<std::int64_t>(n_);
    return buckets_[static_cast<std::size_t>(((epoch % n) + n) % n)];
  }

  // The bucket of `epoch`, recycled from an older step if need be; nullptr when it already
  // holds a later step (the sample belongs to a window that has moved on).
  Bucket* claim(std::int64_t epoch) {
    Bucket& b = bucket(epoch);
    std::int64_t held = b.epoch.load(std::memory_order_acquire);
    while (held != epoch) {
      if (held > epoch) return nullptr;
      if (b.epoch.compare_exchange_weak(held, epoch, std::memory_order_acq_rel)) {
        for (auto& c : b.counts) c.store(0, std::memory_order_relaxed);
        return &b;
      }
    }
    return &b;
  }

  std::uint32_t n_;
  core::Duration width_;
  std::unique_ptr<Bucket[]> buckets_;
};

}  // namespace sb::resilience
