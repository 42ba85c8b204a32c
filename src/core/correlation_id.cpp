#include "core/correlation_id.hpp"

namespace sb::core {

bool is_valid_correlation_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxCorrelationIdLength) return false;
  for (unsigned char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '/' ||
                    c == '+' || c == '=';
    if (!ok) return false;
  }
  return true;
}

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

CorrelationIdGenerator::CorrelationIdGenerator(std::uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

// xoshiro256**: fast, and ids only need to be unique, not unpredictable.
std::uint64_t CorrelationIdGenerator::next_u64() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void CorrelationIdGenerator::next(Id& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t hi = next_u64(), lo = next_u64();
  hi = (hi & ~0xf000ull) | 0x4000ull;                 // version 4
  lo = (lo & ~(0xc0ull << 56)) | (0x80ull << 56);     // RFC 4122 variant
  unsigned char bytes[16];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
  for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  std::size_t o = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = kHex[bytes[i] >> 4];
    out[o++] = kHex[bytes[i] & 0xf];
  }
}

}  // namespace sb::core
