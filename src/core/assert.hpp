// Invariants. SB_ASSERT(cond) checks what the code relies on in debug builds (tests,
// sanitizers) and costs nothing in release. SB_BUG("what") marks a branch that must never
// run: a debug build aborts there; a release build logs it (the first time per call site)
// and counts it, then carries on with the branch's safe fallback.
#pragma once

#include <cstdint>

namespace sb::core {

[[noreturn]] void assert_failed(const char* expr, const char* file, int line);
/// Debug: aborts. Release: counts, and logs the first time `*logged` is false.
void bug(const char* what, const char* file, int line, bool* logged);
/// How many SB_BUG branches ran in this process (release builds).
std::uint64_t bugs_seen();

}  // namespace sb::core

#ifdef NDEBUG
#define SB_ASSERT(cond) static_cast<void>(0)
#else
#define SB_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::sb::core::assert_failed(#cond, __FILE__, __LINE__))
#endif

#define SB_BUG(what)                                              \
  do {                                                            \
    static bool sb_bug_logged_ = false;                           \
    ::sb::core::bug((what), __FILE__, __LINE__, &sb_bug_logged_); \
  } while (0)
