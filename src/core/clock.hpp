// Time for Switchboard: steady time for intervals and deadlines, wall time for humans.
// Policies take `now` as a value; only drivers hold a Clock&. Nothing outside clock.cpp
// reads the system clocks directly (tools/check_clock.sh enforces it).
#pragma once

#include <chrono>

namespace sb::core {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Duration = std::chrono::nanoseconds;

/// Source of time. Thread-safe: both functions may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steady_now() const = 0;
  virtual WallTime wall_now() const = 0;
};

/// The real clocks.
class SystemClock final : public Clock {
 public:
  SteadyTime steady_now() const override;
  WallTime wall_now() const override;
  /// A process-wide instance.
  static SystemClock& instance();
};

}  // namespace sb::core
