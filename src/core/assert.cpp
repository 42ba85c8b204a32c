#include "core/assert.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace sb::core {
namespace {
std::atomic<std::uint64_t> g_bugs{0};
}

void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}

void bug(const char* what, const char* file, int line, bool* logged) {
#ifndef NDEBUG
  (void)logged;
  std::fprintf(stderr, "%s:%d: bug: %s\n", file, line, what);
  std::fflush(stderr);
  std::abort();
#else
  g_bugs.fetch_add(1, std::memory_order_relaxed);
  // A racy first-time flag: at worst two threads both log the first occurrence.
  if (!*logged) {
    *logged = true;
    spdlog::error("internal error at {}:{}: {} (carrying on; please report it)", file, line, what);
  }
#endif
}

std::uint64_t bugs_seen() { return g_bugs.load(std::memory_order_relaxed); }

}  // namespace sb::core
