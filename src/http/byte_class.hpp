// Byte classes for the parsers: a 256-entry table built at compile time. Internal to http.
#pragma once

#include <array>
#include <string_view>

namespace sb::http {

/// The table of ALPHA, DIGIT and the bytes of `extra` (the shape of RFC 9110's tchar,
/// RFC 3986's unreserved and the Host bytes: each adds its own punctuation).
constexpr std::array<bool, 256> alnum_and(std::string_view extra) {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : extra) t[static_cast<unsigned char>(c)] = true;
  return t;
}

}  // namespace sb::http
