#include "http/path.hpp"

#include <array>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sb::http {
namespace {

// RFC 3986 section 2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
constexpr std::array<bool, 256> make_unreserved_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("-._~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr auto kUnreserved = make_unreserved_table();

// The bytes the normal-form scan stops at; everything else passes untouched.
constexpr std::array<bool, 256> make_special_table() {
  std::array<bool, 256> t{};
  t['/'] = t['%'] = t['\\'] = true;
  return t;
}
constexpr auto kSpecial = make_special_table();

constexpr char kUpperHex[] = "0123456789ABCDEF";

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
// As hex_value, but a lower-case digit counts as "not normal" (-1).
inline int upper_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The first byte at or after `p` where path_is_normal() must look closer: a '%' or '\\',
// or a '/' followed by '.' (or by '/' when merging). Sixteen bytes at a time with SSE2
// while 17 remain (each '/' is compared with the byte after it); the rest byte by byte
// (the caller's loop). A stop is only a candidate: "/.a" is normal.
const char* next_candidate(const char* p, const char* end, bool merge_slashes) {
#if defined(__SSE2__)
  const __m128i slash = _mm_set1_epi8('/'), dot = _mm_set1_epi8('.');
  const __m128i pct = _mm_set1_epi8('%'), bsl = _mm_set1_epi8('\\');
  const __m128i merge = merge_slashes ? _mm_set1_epi8(-1) : _mm_setzero_si128();
  while (end - p >= 17) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    const __m128i after_slash =
        _mm_or_si128(_mm_cmpeq_epi8(next, dot), _mm_and_si128(merge, _mm_cmpeq_epi8(next, slash)));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, pct), _mm_cmpeq_epi8(v, bsl)),
                                     _mm_and_si128(_mm_cmpeq_epi8(v, slash), after_slash));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#else
  (void)merge_slashes;
#endif
  return p;
}

}  // namespace

bool path_is_normal(std::string_view path, bool merge_slashes) {
  const char* p = path.data();
  const char* const end = p + path.size();
  for (;; ++p) {
    p = next_candidate(p, end, merge_slashes);
    while (p < end && !kSpecial[static_cast<unsigned char>(*p)]) ++p;
    if (p == end) return true;
    switch (*p) {
      case '/': {
        // Does a dot segment (or, when merging, an empty one) start after this slash?
        const char* s = p + 1;
        if (s == end) break;
        if (*s == '/') {
          if (merge_slashes) return false;
        } else if (*s == '.') {
          const char* t = s + 1;
          if (t == end || *t == '/') return false;                       // "."
          if (*t == '.' && (t + 1 == end || t[1] == '/')) return false;  // ".."
        }
        break;
      }
      case '%': {
        if (end - p < 3) return false;
        const int hi = upper_hex_value(p[1]), lo = upper_hex_value(p[2]);
        if (hi < 0 || lo < 0) return false;
        const auto v = static_cast<unsigned char>(hi * 16 + lo);
        if (v == 0 || v == '/' || v == '\\' || kUnreserved[v]) return false;
        p += 2;
        break;
      }
      default:  // '\\'
        return false;
    }
  }
}

// One pass over the segments, reading at `r` and writing at `w` <= `r`: each segment is
// copied (escapes decoded or upper-cased) behind a '/', then, if it turns out to be "." or
// "..", taken back off the output, with the segment before it for "..". A dot segment at
// the end leaves the trailing '/' ("/a/b/.." is "/a/", as in RFC 3986 section 5.2.4).
PathError normalize_path(char* p, std::size_t& size, bool merge_slashes) {
  const std::size_t n = size;
  std::size_t r = 0, w = 0;
  while (r < n) {  // p[r] == '/'
    ++r;
    if (merge_slashes)
      while (r < n && p[r] == '/') ++r;
    p[w++] = '/';
    const std::size_t seg = w;
    while (r < n && p[r] != '/') {
      const char c = p[r];
      if (c == '\\') return PathError::kBackslash;
      if (c != '%') {
        p[w++] = c;
        ++r;
        continue;
      }
      if (n - r < 3) return PathError::kBadEscape;
      const int hi = hex_value(p[r + 1]), lo = hex_value(p[r + 2]);
      if (hi < 0 || lo < 0) return PathError::kBadEscape;
      const auto v = static_cast<unsigned char>(hi * 16 + lo);
      if (v == 0) return PathError::kNul;
      if (v == '/' || v == '\\') return PathError::kEscapedSlash;
      if (kUnreserved[v]) {
        p[w++] = static_cast<char>(v);
      } else {
        p[w++] = '%';
        p[w++] = kUpperHex[hi];
        p[w++] = kUpperHex[lo];
      }
      r += 3;
    }
    const std::size_t len = w - seg;
    if (len == 1 && p[seg] == '.') {
      w = seg - 1;
      if (r == n) p[w++] = '/';
    } else if (len == 2 && p[seg] == '.' && p[seg + 1] == '.') {
      w = seg - 1;  // "/.." off
      if (w == 0) return PathError::kAboveRoot;
      do --w;  // and the segment before it, with its '/' (p[0] is '/')
      while (p[w] != '/');
      if (r == n) p[w++] = '/';
    }
  }
  size = w;
  return PathError::kNone;
}

const char* describe(PathError e) {
  switch (e) {
    case PathError::kNone:
      return "ok";
    case PathError::kBadEscape:
      return "malformed percent-encoding in the path ('%' must be followed by two hex digits)";
    case PathError::kNul:
      return "%00 in the path";
    case PathError::kEscapedSlash:
      return "encoded slash or backslash (%2F, %5C) in the path";
    case PathError::kBackslash:
      return "backslash in the path";
    case PathError::kAboveRoot:
      return "'..' in the path climbs above the root";
  }
  return "path cannot be normalised";
}

}  // namespace sb::http
