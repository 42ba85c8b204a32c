// A clock that moves only when a test says so.
#pragma once

#include <atomic>

#include "core/clock.hpp"

namespace sb::testing {

class ManualClock final : public core::Clock {
 public:
  core::SteadyTime steady_now() const override { return core::SteadyTime(core::Duration(steady_.load())); }
  core::WallTime wall_now() const override {
    return core::WallTime(std::chrono::duration_cast<core::WallTime::duration>(core::Duration(wall_.load())));
  }
  /// Moves both clocks forward by `d`.
  void advance(core::Duration d) {
    steady_ += d.count();
    wall_ += d.count();
  }

 private:
  std::atomic<core::Duration::rep> steady_{1'000'000'000};
  std::atomic<core::Duration::rep> wall_{1'700'000'000'000'000'000};
};

}  // namespace sb::testing
