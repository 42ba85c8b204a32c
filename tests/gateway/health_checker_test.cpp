// The health checker's loop over a real io_context: with nothing to check it sleeps until
// its next deadline (the 50 ms harvest of live samples) instead of waking every 10 ms.
#include "gateway/health_checker.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/config.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {
namespace {

// Idle for 600 ms: at most one wake-up per 50 ms harvest (12, plus the first and slack), not
// the 60 that a 10 ms tick would take. Real time has to pass for the count to mean anything.
TEST(HealthCheckerTest, IdleLoopWakesOnlyForItsDeadlines) {
  core::Config config;
  config.health.default_check = core::HealthConfig::DefaultCheck::kNone;
  auto& clock = core::SystemClock::instance();
  registry::Registry reg(config, clock, nullptr, std::nullopt);
  HealthChecker checker(reg, clock, [](std::string_view) { return nullptr; });
  checker.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const auto wakeups = checker.wakeups_for_test();
  checker.stop();
  EXPECT_GE(wakeups, 5u) << "the harvest must still run";
  EXPECT_LE(wakeups, 20u) << "woke more often than its deadlines";
}

}  // namespace
}  // namespace sb::gateway
