// Small deterministic random sources for policies: jitter, P2C sampling, backoff. Seeded by
// the caller so tests and replays are reproducible; never a global generator.
#pragma once

#include <cstdint>

namespace sb::resilience {

/// SplitMix64's finaliser: a stateless, well-mixed hash of `x`. Thread-safe (pure); used
/// where shared objects need a deterministic draw without a shared generator's state.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// SplitMix64 generator. Not thread-safe: one per worker (or per object).
class Rng {
  __extension__ using U128 = unsigned __int128;

 public:
  explicit Rng(std::uint64_t seed = 0x5eed) : state_(seed) {}
  std::uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ull;
    return mix64(state_ - 0x9e3779b97f4a7c15ull);
  }
  /// Uniform in [0, bound) for bound > 0 (Lemire's multiply-shift; the bias is below
  /// 2^-32 for the bounds we use, which is irrelevant for load balancing and jitter).
  std::uint64_t below(std::uint64_t bound) {
    return static_cast<std::uint64_t>((static_cast<U128>(next()) * bound) >> 64);
  }
  /// Uniform double in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

/// Uniform double in [0, 1) from a 64-bit hash.
constexpr double unit_from(std::uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace sb::resilience
