// The minimum-rate rule for request bodies (limits.min_body_rate, limits.body_rate_grace):
// a policy that says by when the next body read must finish. limits.body_timeout bounds
// each gap between two reads; this bounds the whole body, so a client trickling a few
// bytes just inside every gap is still cut (mod_reqtimeout's MinRate, nginx's and Envoy's
// slow-body limits). Plain object: the Exchange feeds it the time and the bytes of each
// read; no I/O, no clock of its own.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/clock.hpp"

namespace sb::http {

class BodyRate {
 public:
  /// `min_bytes_per_second` 0: off (read_deadline() is always SteadyTime::max()).
  BodyRate(std::uint64_t min_bytes_per_second, core::Duration grace)
      : rate_(min_bytes_per_second), grace_(grace) {}

  /// Forgets the previous body (a new request).
  void reset() {
    received_ = 0;
    waited_ = core::Duration::zero();
  }

  /// When a read that starts at `now` must have finished: the body may have cost
  /// `grace + received / rate` of waiting so far. Only time spent in reads counts, so a
  /// handler that stops reading (an upstream slow to take the body, a 100-continue not
  /// yet asked for) never makes the client look slow. `now` itself when the allowance is
  /// already spent; SteadyTime::max() when off.
  core::SteadyTime read_deadline(core::SteadyTime now) const {
    if (rate_ == 0) return core::SteadyTime::max();
    const core::Duration allowed = grace_ + earned();
    return allowed > waited_ ? now + (allowed - waited_) : now;
  }

  /// Records one read: it waited from `began` to `ended` and brought `bytes`.
  void record(core::SteadyTime began, core::SteadyTime ended, std::uint64_t bytes) {
    if (ended > began) waited_ += ended - began;
    received_ += bytes;
  }

  bool enabled() const { return rate_ != 0; }
  std::uint64_t received() const { return received_; }
  core::Duration waited() const { return waited_; }

 private:
  // The waiting time `received_` bytes are worth at the minimum rate.
  core::Duration earned() const {
    using std::chrono::nanoseconds;
    // Bytes up to 2^63 / 1e9 (~9 GB) before the product overflows: bodies are capped far
    // below by limits.max_body_bytes, but saturate rather than wrap.
    constexpr std::uint64_t kMaxExact = static_cast<std::uint64_t>(INT64_MAX) / 1'000'000'000;
    if (received_ > kMaxExact) return core::Duration::max() / 2;
    return std::chrono::duration_cast<core::Duration>(
        nanoseconds(static_cast<std::int64_t>(received_ * 1'000'000'000 / rate_)));
  }

  std::uint64_t rate_;
  core::Duration grace_;
  std::uint64_t received_ = 0;
  core::Duration waited_ = core::Duration::zero();
};

}  // namespace sb::http
