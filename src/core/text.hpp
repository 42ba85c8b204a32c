// Small text helpers shared across the code: trimming, quoting a value for a message,
// durations and sizes for people and for config files, and "did you mean" hints.
// One copy each (config loading, dotenv, the HTTP parser and the resilience reasons use them).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb::core {

/// Space or horizontal tab (HTTP's OWS, and the blanks of dotenv and config lists).
constexpr bool is_blank(char c) { return c == ' ' || c == '\t'; }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/// `s` without leading and trailing blanks (spaces and tabs only). No allocation.
constexpr std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

/// `s` as a double-quoted string with JSON escapes (also a valid YAML double-quoted
/// scalar): for messages that show a value exactly, and for `--print-config`.
std::string quote(std::string_view s);

/// A duration for people, in event reasons: "10 s" for whole seconds, else "1500 ms".
std::string human(std::chrono::nanoseconds d);

/// A duration in config syntax, the largest exact unit: "2h", "5m", "30s", "250ms", "0s".
std::string format_duration(std::chrono::milliseconds d);

/// A byte size in config syntax, the largest exact binary unit: "64MiB", "512KiB", "100".
std::string format_size(std::uint64_t bytes);

/// The whole of `s` as a decimal number; false when empty, not all digits or too large
/// (more than 19 digits). `out` is set only on success.
bool parse_digits(std::string_view s, std::uint64_t* out);

/// " (did you mean \"x\"?)" when one candidate is within two edits of `word` (and fewer
/// edits than `word` has characters), else "".
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

/// "a, b, c".
std::string join(const std::vector<std::string_view>& items);

/// Splits "a, b,c" on commas; blanks around each item are dropped ("a,,b" keeps the
/// empty item, so callers can report it).
std::vector<std::string> split_list(std::string_view text);

}  // namespace sb::core
