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

namespace {
// Two hex digits per byte, looked up at once.
struct HexPairs {
  char pairs[256][2];
  constexpr HexPairs() : pairs() {
    constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      pairs[i][0] = kHex[i >> 4];
      pairs[i][1] = kHex[i & 0xf];
    }
  }
};
constexpr HexPairs kHexPairs;

// Writes the 8 bytes of `v` (most significant first) as 16 hex digits, with a '-' before
// the bytes whose index is in `dash_before` (a bit mask).
char* put_hex(char* o, std::uint64_t v, unsigned dash_before) {
  for (int i = 0; i < 8; ++i) {
    if (dash_before & (1u << i)) *o++ = '-';
    const auto* p = kHexPairs.pairs[(v >> (56 - 8 * i)) & 0xff];
    *o++ = p[0];
    *o++ = p[1];
  }
  return o;
}
}  // namespace

void CorrelationIdGenerator::next(Id& out) {
  std::uint64_t hi = next_u64(), lo = next_u64();
  hi = (hi & ~0xf000ull) | 0x4000ull;              // version 4
  lo = (lo & ~(0xc0ull << 56)) | (0x80ull << 56);  // RFC 4122 variant
  // 8-4-4-4-12: dashes before bytes 4 and 6 of `hi`, and bytes 0 and 2 of `lo`.
  char* o = put_hex(out.data(), hi, (1u << 4) | (1u << 6));
  put_hex(o, lo, (1u << 0) | (1u << 2));
}

}  // namespace sb::core
