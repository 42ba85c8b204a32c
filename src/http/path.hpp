// Request-path normalisation before routing, so that a route, the access log and the
// upstream all see the one path a request names: percent-decoding of unreserved characters
// and upper-case hex in the other escapes (RFC 3986 section 6.2.2), dot-segment removal
// (section 5.2.4) and, optionally, merged slashes. What cannot be normalised without
// guessing is refused. In place: the result is never longer than the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sb::http {

enum class PathError : std::uint8_t {
  kNone,
  kBadEscape,     // '%' not followed by two hex digits
  kNul,           // %00
  kEscapedSlash,  // %2F or %5C: a '/' or '\' that is not a separator (Envoy: REJECT_REQUEST)
  kBackslash,     // a literal '\' (some servers take it for '/')
  kAboveRoot,     // a ".." segment with nothing left to remove ("/../x", "/a/../../x")
};

/// True when `path` (starting with '/') is already what normalize_path() would make of it:
/// no dot segments, no escape of an unreserved character, lower-case hex digit, escaped
/// slash, NUL or backslash, and no empty segment when `merge_slashes`. One scan, nothing
/// written; the common case, so callers test this first.
bool path_is_normal(std::string_view path, bool merge_slashes);

/// Normalises the path in [p, p + size) (p[0] == '/') in place and sets `size` to its new
/// length (never more than before). "." segments go; ".." removes the segment before it;
/// with `merge_slashes`, runs of '/' become one as the segments are read (so an empty
/// segment never absorbs a ".."). %XX escapes of ALPHA, DIGIT, '-', '.', '_', '~' are
/// decoded before dot segments are looked for (so "%2e%2e" is ".."); the others keep
/// their escape with upper-case hex. On an error the bytes are left partly rewritten.
PathError normalize_path(char* p, std::size_t& size, bool merge_slashes);

const char* describe(PathError e);

}  // namespace sb::http
