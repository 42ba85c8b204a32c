// is_valid_correlation_id against an independent charset loop (both directions), and ids
// from a generator seeded by the input: 36 characters, UUID v4 layout, always valid.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/correlation_id.hpp"
#include "fuzz_check.hpp"

namespace {

// [A-Za-z0-9._:@/+=-], written as a list rather than as ranges.
bool reference_valid(std::string_view id) {
  static constexpr std::string_view kCharset =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@/+=-";
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (kCharset.find(c) == std::string_view::npos) return false;
  return true;
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  SB_FUZZ_CHECK(sb::core::is_valid_correlation_id(input) == reference_valid(input));
  // Every prefix too: a long input that is refused only for its length has valid prefixes.
  for (std::size_t n : {std::size_t{1}, std::size_t{36}, std::size_t{128}, std::size_t{129}})
    if (n <= size)
      SB_FUZZ_CHECK(sb::core::is_valid_correlation_id(input.substr(0, n)) ==
                    reference_valid(input.substr(0, n)));

  std::uint64_t seed = 0;
  std::memcpy(&seed, bytes, size < sizeof seed ? size : sizeof seed);
  sb::core::CorrelationIdGenerator gen(seed);
  sb::core::CorrelationIdGenerator::Id prev{};
  for (int i = 0; i < 4; ++i) {
    sb::core::CorrelationIdGenerator::Id id;
    gen.next(id);
    const std::string_view s(id.data(), id.size());
    SB_FUZZ_CHECK(sb::core::is_valid_correlation_id(s));
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23)
        SB_FUZZ_CHECK(s[k] == '-');
      else
        SB_FUZZ_CHECK(is_lower_hex(s[k]));
    }
    SB_FUZZ_CHECK(s[14] == '4');                                                  // version 4
    SB_FUZZ_CHECK(s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b');  // variant
    SB_FUZZ_CHECK(id != prev);
    prev = id;
  }
  return 0;
}
