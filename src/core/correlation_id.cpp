#include "core/correlation_id.hpp"

#include <cstring>

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

namespace {
// The 8 hex digits of `v`, most significant first, computed in one 64-bit word: each nibble
// is spread into its own byte, then turned into '0'-'9' or 'a'-'f' without a branch.
void put_hex32(char* o, std::uint32_t v) {
  std::uint64_t x = v;
  x = ((x & 0xffff0000ull) << 16) | (x & 0x0000ffffull);
  x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
  x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
  // Bytes now hold nibbles, the most significant in the highest byte. A nibble above 9
  // carries into bit 4 once 6 is added: that bit selects the 'a' - '0' - 10 extra.
  const std::uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
  x += 0x3030303030303030ull + letters * ('a' - '0' - 10);
  x = __builtin_bswap64(x);  // the highest byte first in memory
  std::memcpy(o, &x, 8);
}
}  // namespace

void CorrelationIdGenerator::next(Id& out) {
  std::uint64_t hi = next_u64(), lo = next_u64();
  hi = (hi & ~0xf000ull) | 0x4000ull;              // version 4
  lo = (lo & ~(0xc0ull << 56)) | (0x80ull << 56);  // RFC 4122 variant
  char hex[32];
  put_hex32(hex, static_cast<std::uint32_t>(hi >> 32));
  put_hex32(hex + 8, static_cast<std::uint32_t>(hi));
  put_hex32(hex + 16, static_cast<std::uint32_t>(lo >> 32));
  put_hex32(hex + 24, static_cast<std::uint32_t>(lo));
  // 8-4-4-4-12.
  char* o = out.data();
  std::memcpy(o, hex, 8);
  o[8] = '-';
  std::memcpy(o + 9, hex + 8, 4);
  o[13] = '-';
  std::memcpy(o + 14, hex + 12, 4);
  o[18] = '-';
  std::memcpy(o + 19, hex + 16, 4);
  o[23] = '-';
  std::memcpy(o + 24, hex + 20, 12);
}

}  // namespace sb::core
