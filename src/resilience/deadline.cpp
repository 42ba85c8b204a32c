#include "resilience/deadline.hpp"

#include <limits>

namespace sb::resilience {
namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

ParsedTimeout fail(std::string_view why) { return ParsedTimeout{std::nullopt, why}; }

}  // namespace

ParsedTimeout parse_request_timeout_ms(std::string_view value) {
  if (value.empty()) return fail("empty");
  if (value.size() > 10) return fail("too large (max 86400000)");
  std::int64_t ms = 0;
  for (char c : value) {
    if (!is_digit(c)) return fail("not a decimal number of milliseconds");
    ms = ms * 10 + (c - '0');
  }
  if (ms > kMaxRequestTimeoutMs) return fail("too large (max 86400000)");
  return ParsedTimeout{std::chrono::milliseconds(ms), {}};
}

ParsedTimeout parse_grpc_timeout(std::string_view value) {
  if (value.empty()) return fail("empty");
  const char unit = value.back();
  const std::string_view digits = value.substr(0, value.size() - 1);
  if (is_digit(unit)) return fail("missing unit");
  std::int64_t ns_per_unit = 0;
  switch (unit) {
    case 'H':
      ns_per_unit = 3'600'000'000'000;
      break;
    case 'M':
      ns_per_unit = 60'000'000'000;
      break;
    case 'S':
      ns_per_unit = 1'000'000'000;
      break;
    case 'm':
      ns_per_unit = 1'000'000;
      break;
    case 'u':
      ns_per_unit = 1'000;
      break;
    case 'n':
      ns_per_unit = 1;
      break;
    default:
      return fail("bad unit");
  }
  if (digits.empty() || digits.size() > 8) return fail("not 1 to 8 digits");
  std::int64_t n = 0;
  for (char c : digits) {
    if (!is_digit(c)) return fail("not 1 to 8 digits");
    n = n * 10 + (c - '0');
  }
  // Saturate far below the representable maximum so that now + value cannot overflow.
  constexpr std::int64_t kMaxNs = std::numeric_limits<std::int64_t>::max() / 4;
  const std::int64_t ns = n > kMaxNs / ns_per_unit ? kMaxNs : n * ns_per_unit;
  return ParsedTimeout{core::Duration(ns), {}};
}

std::int64_t Deadline::forward_timeout_ms(core::SteadyTime now) const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(remaining(now)).count();
}

std::string Deadline::forward_header_value(core::SteadyTime now) const {
  return std::to_string(forward_timeout_ms(now));
}

std::string Deadline::grpc_timeout_value(core::SteadyTime now) const {
  constexpr std::int64_t kMax = 99'999'999;
  std::int64_t v = forward_timeout_ms(now);
  if (v <= kMax) return std::to_string(v) + 'm';
  v /= 1000;
  if (v <= kMax) return std::to_string(v) + 'S';
  v /= 60;
  if (v <= kMax) return std::to_string(v) + 'M';
  v /= 60;
  return std::to_string(std::min(v, kMax)) + 'H';
}

}  // namespace sb::resilience
