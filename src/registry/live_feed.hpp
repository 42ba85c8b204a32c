// How workers hand request outcomes to the registry's health trackers without a lock on the
// request path: one single-producer, single-consumer ring per worker. The worker pushes
// (two plain stores and a release store); the control loop drains all rings every 50 ms.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace sb::registry {

/// One live request's outcome. `ok` is false for connect errors, resets, timeouts and 5xx.
struct LiveSample {
  std::uint64_t instance_uid = 0;
  std::uint32_t latency_us = 0;
  bool ok = true;
};

class LiveFeed {
 public:
  static constexpr std::size_t kCapacity = 8192;  // per worker; ~160 ms at 50k req/s

  /// Producer side (one worker). False, and counted in dropped(), when the ring is full.
  bool push(const LiveSample& s) {
    const std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) >= kCapacity) {
      dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return false;
    }
    ring_[tail % kCapacity] = s;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  /// Consumer side (the control loop): calls `f(sample)` for everything pushed so far.
  template <class F>
  std::size_t drain(F&& f) {
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    for (std::uint64_t i = head; i < tail; ++i) f(ring_[i % kCapacity]);
    head_.store(tail, std::memory_order_release);
    return static_cast<std::size_t>(tail - head);
  }

  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::array<LiveSample, kCapacity> ring_{};
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // written by the producer
  alignas(64) std::atomic<std::uint64_t> head_{0};  // written by the consumer
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace sb::registry
