// Invariant checks for fuzz targets: a violated one prints the condition and aborts, which
// libFuzzer (and the replay main) report as a crash with the input that caused it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#define SB_FUZZ_CHECK(cond)                                                                  \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace sb::fuzz {

/// True when `v` is empty or lies entirely inside [data, data + size).
inline bool within(std::string_view v, const char* data, std::size_t size) {
  return v.empty() || (v.data() >= data && v.data() + v.size() <= data + size);
}

}  // namespace sb::fuzz
