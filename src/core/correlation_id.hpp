// Correlation ids: keep a well-formed incoming one, otherwise make one.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace sb::core {

/// Longest incoming id we keep; longer ones are replaced.
inline constexpr std::size_t kMaxCorrelationIdLength = 128;

/// An incoming id is kept when it is 1..128 characters of [A-Za-z0-9._:@/+=-]: enough for
/// UUIDs, ULIDs, W3C trace ids and base64 ids, and nothing that could split a header or a
/// log line.
bool is_valid_correlation_id(std::string_view id);

/// Generates random version-4 UUIDs ("0b9f5c3e-...-..."). Not thread-safe: one per worker.
class CorrelationIdGenerator {
 public:
  using Id = std::array<char, 36>;
  explicit CorrelationIdGenerator(std::uint64_t seed);
  /// Writes a new id into `out`.
  void next(Id& out);

 private:
  std::uint64_t s_[4];
  std::uint64_t next_u64();
};

}  // namespace sb::core
