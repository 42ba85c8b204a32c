#include "core/clock.hpp"

namespace sb::core {

SteadyTime SystemClock::steady_now() const { return std::chrono::steady_clock::now(); }
WallTime SystemClock::wall_now() const { return std::chrono::system_clock::now(); }

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

}  // namespace sb::core
