#include "http/parser.hpp"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "http/byte_class.hpp"

namespace sb::http {
namespace {

// RFC 9110 section 5.6.2: tchar.
constexpr auto kToken = alnum_and("!#$%&'*+-.^_`|~");

// Field value bytes: HTAB, SP, VCHAR, obs-text. Everything else (CTLs, DEL) is refused.
constexpr std::array<bool, 256> make_value_table() {
  std::array<bool, 256> t{};
  t['\t'] = true;
  for (int c = 0x20; c <= 0x7e; ++c) t[c] = true;
  for (int c = 0x80; c <= 0xff; ++c) t[c] = true;
  return t;
}
constexpr auto kValue = make_value_table();

inline bool is_tchar(char c) { return kToken[static_cast<unsigned char>(c)]; }
inline bool is_vchar_or_obs(char c) { return kValue[static_cast<unsigned char>(c)]; }
inline bool is_ows(char c) { return c == ' ' || c == '\t'; }
// VCHAR (0x21-0x7e): the bytes a request-target may hold.
inline bool is_vchar(char c) {
  return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
}

// The first byte in [p, end) that may not appear in a field value (a control byte other
// than HTAB, or DEL), or `end`. In a well-formed line it is the CR before the line's LF, so
// one pass both finds the line's end and checks its value. Sixteen bytes at a time with
// SSE2 (every x86-64 has it), the rest byte by byte.
const char* find_value_end(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i bias = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i below_20 = _mm_set1_epi8(static_cast<char>(0x20 ^ 0x80));  // unsigned < 0x20
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i ctl = _mm_cmplt_epi8(_mm_xor_si128(v, bias), below_20);
    const __m128i bad =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl), _mm_cmpeq_epi8(v, del));
    const int mask = _mm_movemask_epi8(bad);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  for (; p < end; ++p)
    if (!is_vchar_or_obs(*p)) return p;
  return end;
}

// Parses field lines from `p` to the empty line that ends the head, in one pass: the name
// byte by byte, the value and the line's end together (find_value_end). Appends to
// out.fields (a resumed parse keeps the fields before `p`). Only whole lines are judged: a
// fault in the unfinished last line waits for its LF, so a head parses the same whether it
// arrives at once or in pieces. On kIncomplete, `stop` is the offset of the unfinished line.
template <class Head>
ParseResult parse_field_lines(const char* data, std::size_t size, const char* p,
                              std::size_t max_head_bytes, std::size_t max_fields, Head& out,
                              std::size_t& stop) {
  const char* end = data + size;
  const char* line = p;
  const auto incomplete = [&] {
    stop = static_cast<std::size_t>(line - data);
    return ParseResult{ParseStatus::kIncomplete};
  };
  // A fault at `at`: an error once the line is whole, until then more bytes are awaited.
  const auto fault = [&](const char* at, HeadError e) {
    if (std::memchr(at, '\n', static_cast<std::size_t>(end - at)) == nullptr) return incomplete();
    return ParseResult{ParseStatus::kError, e};
  };
  for (;; line = p) {
    if (p == end) return incomplete();
    if (*p == '\r') {  // the empty line that ends the head
      if (end - p < 2) return incomplete();
      if (p[1] != '\n') return fault(p + 1, HeadError::kBadField);
      if (static_cast<std::size_t>(p + 2 - data) > max_head_bytes)
        return {ParseStatus::kError, HeadError::kHeadTooLarge};
      out.head_size = static_cast<std::size_t>(p + 2 - data);
      return {ParseStatus::kComplete};
    }
    if (*p == '\n') return {ParseStatus::kError, HeadError::kBareLf};
    if (is_ows(*p)) return fault(p, HeadError::kObsFold);
    const char* name_begin = p;
    while (p < end && is_tchar(*p)) ++p;
    if (p == end) return incomplete();
    if (*p == '\n') return {ParseStatus::kError, HeadError::kBareLf};
    if (*p != ':' || p == name_begin) return fault(p, HeadError::kBadField);
    const std::string_view name(name_begin, static_cast<std::size_t>(p - name_begin));
    ++p;  // ':'
    while (p < end && is_ows(*p)) ++p;
    const char* value = p;
    const char* cr = find_value_end(p, end);
    if (cr == end) return incomplete();
    if (*cr == '\n') return {ParseStatus::kError, HeadError::kBareLf};
    if (*cr != '\r') return fault(cr, HeadError::kBadField);
    if (cr + 1 == end) return incomplete();
    if (cr[1] != '\n') return fault(cr + 1, HeadError::kBadField);  // a CR inside the value
    if (static_cast<std::size_t>(cr + 2 - data) > max_head_bytes)
      return {ParseStatus::kError, HeadError::kHeadTooLarge};
    const char* value_end = cr;
    while (value_end > value && is_ows(value_end[-1])) --value_end;
    if (out.field_count >= max_fields || out.field_count >= kMaxFields)
      return {ParseStatus::kError, HeadError::kTooManyFields};
    out.fields[out.field_count++] =
        Field{name, std::string_view(value, static_cast<std::size_t>(value_end - value))};
    p = cr + 2;
  }
}

// "HTTP/1.1" or "HTTP/1.0" at p (8 bytes). Returns the minor version, -1 for another
// well-formed version (HTTP/2.0, HTTP/0.9), -2 for garbage.
int parse_version(const char* p, const char* end) {
  if (end - p < 8 || std::memcmp(p, "HTTP/", 5) != 0) return -2;
  const char major = p[5], dot = p[6], minor = p[7];
  if (major < '0' || major > '9' || dot != '.' || minor < '0' || minor > '9') return -2;
  if (major != '1' || (minor != '0' && minor != '1')) return -1;
  return minor - '0';
}

}  // namespace

namespace {

// What an incomplete request head already breaks: the request-line limit (414, counted from
// `line`, where the request line starts) and the head limit (431).
ParseResult incomplete_request(const char* data, std::size_t size, const char* line,
                               const HeadLimits& limits) {
  const std::size_t line_bytes = size - static_cast<std::size_t>(line - data);
  const std::size_t window = std::min(line_bytes, limits.max_request_line + 2);
  if (std::memchr(line, '\n', window) == nullptr && line_bytes > limits.max_request_line + 1)
    return {ParseStatus::kError, HeadError::kUriTooLong};
  if (size >= limits.max_head_bytes) return {ParseStatus::kError, HeadError::kHeadTooLarge};
  return {ParseStatus::kIncomplete};
}

// RFC 9112 section 2.2: a server SHOULD ignore at least one empty line received before the
// request line (clients have sent a CRLF after a POST body). A few are skipped; more, and
// the connection is someone's game.
constexpr std::size_t kMaxLeadingEmptyLines = 4;

// The end of the request-target at `p` (its first byte that is not VCHAR), and whether it
// is plain: no '%', no '\\', and no '/' followed by '.' or '/' (then its path needs no
// normalising, and path_is_normal() need not read it again). Sixteen bytes at a time with
// SSE2 while 17 remain before `end` (each '/' is compared with the byte after it; the
// request line's " HTTP/1.1" is in the window, so a short target takes one step), the rest
// byte by byte. p[-1] is the space after the method.
const char* scan_target(const char* p, const char* end, bool& plain) {
#if defined(__SSE2__)
  const __m128i above_20 = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
  const __m128i slash = _mm_set1_epi8('/'), dot = _mm_set1_epi8('.');
  const __m128i pct = _mm_set1_epi8('%'), bsl = _mm_set1_epi8('\\');
  while (end - p >= 17) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    // VCHAR is 0x21-0x7e: above 0x20 and below 0x7f as signed bytes (obs-text is negative).
    const __m128i vchar = _mm_and_si128(_mm_cmpgt_epi8(v, above_20), _mm_cmplt_epi8(v, del));
    const __m128i odd = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, pct), _mm_cmpeq_epi8(v, bsl)),
        _mm_and_si128(_mm_cmpeq_epi8(v, slash),
                      _mm_or_si128(_mm_cmpeq_epi8(next, dot), _mm_cmpeq_epi8(next, slash))));
    const auto stop = static_cast<unsigned>(~_mm_movemask_epi8(vchar)) & 0xffffu;
    const auto odd_mask = static_cast<unsigned>(_mm_movemask_epi8(odd));
    if (stop != 0) {
      const unsigned at = static_cast<unsigned>(__builtin_ctz(stop));
      if ((odd_mask & ((1u << at) - 1)) != 0) plain = false;
      return p + at;
    }
    if (odd_mask != 0) plain = false;
    p += 16;
  }
#endif
  for (; p < end && is_vchar(*p); ++p) {
    const char c = *p;
    if (c == '%' || c == '\\' || ((c == '/' || c == '.') && p[-1] == '/')) plain = false;
  }
  return p;
}

ParseResult parse_request_line(const char* data, const char* line_end, RequestHead& out) {
  const char* p = data;
  if (line_end == p) return {ParseStatus::kError, HeadError::kBadRequestLine};  // empty line
  const char* m = p;
  while (p < line_end && is_tchar(*p)) ++p;
  if (p == m || p == line_end || *p != ' ')
    return {ParseStatus::kError, HeadError::kBadRequestLine};
  out.method = std::string_view(m, static_cast<std::size_t>(p - m));
  ++p;
  const char* t = p;
  bool plain = true;
  p = scan_target(p, line_end, plain);
  if (p == t || p == line_end || *p != ' ')
    return {ParseStatus::kError, HeadError::kBadRequestLine};
  out.target = std::string_view(t, static_cast<std::size_t>(p - t));
  out.target_plain = plain;
  ++p;
  const int minor = parse_version(p, line_end);
  if (line_end - p != 8 || minor < 0) {
    return {ParseStatus::kError, minor == -1 ? HeadError::kBadVersion : HeadError::kBadRequestLine};
  }
  out.version_minor = minor;
  return {ParseStatus::kComplete};
}

ParseResult parse_status_line(const char* data, const char* line_end, ResponseHead& out) {
  const char* p = data;
  const int minor = parse_version(p, line_end);
  if (minor < 0) return {ParseStatus::kError, HeadError::kBadStatusLine};
  p += 8;
  // SP 3DIGIT [SP reason]
  if (line_end - p < 4 || p[0] != ' ') return {ParseStatus::kError, HeadError::kBadStatusLine};
  int status = 0;
  for (int i = 1; i <= 3; ++i) {
    if (p[i] < '0' || p[i] > '9') return {ParseStatus::kError, HeadError::kBadStatusLine};
    status = status * 10 + (p[i] - '0');
  }
  if (status < 100 || status > 599) return {ParseStatus::kError, HeadError::kBadStatusLine};
  p += 4;
  if (p < line_end) {
    if (*p != ' ') return {ParseStatus::kError, HeadError::kBadStatusLine};
    ++p;
    if (find_value_end(p, line_end) != line_end)
      return {ParseStatus::kError, HeadError::kBadStatusLine};
  }
  out.status = status;
  out.reason = std::string_view(p, static_cast<std::size_t>(line_end - p));
  out.version_minor = minor;
  return {ParseStatus::kComplete};
}

// RFC 9110 section 5.6.4: qdtext and the byte after a '\\' in a quoted-pair.
inline bool is_qdtext(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || u == ' ' || u == 0x21 || (u >= 0x23 && u <= 0x5b) ||
         (u >= 0x5d && u <= 0x7e) || u >= 0x80;
}
inline bool is_quoted_pair_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// RFC 9112 section 7.1.1, for [p, end) = what follows the chunk size up to its CRLF:
//   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//   chunk-ext-name = token
//   chunk-ext-val  = token / quoted-string
bool valid_chunk_ext(const char* p, const char* end) {
  const auto skip_bws = [&] {
    while (p < end && is_ows(*p)) ++p;
  };
  const auto token = [&] {
    const char* from = p;
    while (p < end && is_tchar(*p)) ++p;
    return p != from;
  };
  while (p < end) {
    skip_bws();
    if (p == end || *p != ';') return false;  // also: whitespace with nothing after it
    ++p;
    skip_bws();
    if (!token()) return false;
    const char* after_name = p;
    skip_bws();
    if (p == end || *p != '=') {
      p = after_name;  // that whitespace, if any, must lead to the next ';'
      continue;
    }
    ++p;
    skip_bws();
    if (p < end && *p == '"') {
      for (++p;; ++p) {
        if (p == end) return false;
        if (*p == '"') break;
        if (*p == '\\') {
          if (++p == end || !is_quoted_pair_byte(*p)) return false;
        } else if (!is_qdtext(*p)) {
          return false;
        }
      }
      ++p;
    } else if (!token()) {
      return false;
    }
  }
  return true;
}

}  // namespace

// Heads usually arrive whole: the first call parses in one pass. When it finds the head
// unfinished, `scan_from` remembers the start of the unfinished line, and the next call
// resumes there (after one memchr says a new line has ended), keeping the request line and
// the fields before it: a head trickling in piece by piece is parsed once, and parses
// exactly as it would have whole. The bytes before `scan_from` must stay where they were
// between calls; a caller that moves them sets `scan_from` to 0.
ParseResult parse_request_head(const char* data, std::size_t size, const HeadLimits& limits,
                               std::size_t& scan_from, RequestHead& out) {
  // The request line starts after the empty lines before it (nearly always none). Offsets
  // (scan_from, head_size) stay those of `data`.
  const char* line = data;
  for (std::size_t n = 0;
       size - static_cast<std::size_t>(line - data) >= 2 && line[0] == '\r' && line[1] == '\n';
       ++n) {
    if (n == kMaxLeadingEmptyLines) return {ParseStatus::kError, HeadError::kBadRequestLine};
    line += 2;
  }
  const char* fields;
  if (scan_from > 0) {
    if (std::memchr(data + scan_from, '\n', size - scan_from) == nullptr)
      return incomplete_request(data, size, line, limits);
    fields = data + scan_from;
  } else {
    const std::size_t line_bytes = size - static_cast<std::size_t>(line - data);
    const std::size_t window = std::min(line_bytes, limits.max_request_line + 2);
    const char* lf = static_cast<const char*>(std::memchr(line, '\n', window));
    if (lf == nullptr) return incomplete_request(data, size, line, limits);
    if (lf == line || lf[-1] != '\r') return {ParseStatus::kError, HeadError::kBareLf};
    const ParseResult r = parse_request_line(line, lf - 1, out);
    if (r.status != ParseStatus::kComplete) return r;
    out.field_count = 0;
    fields = lf + 1;
  }
  std::size_t stop = 0;
  const ParseResult r =
      parse_field_lines(data, size, fields, limits.max_head_bytes, limits.max_fields, out, stop);
  if (r.status == ParseStatus::kIncomplete) {
    scan_from = stop;
    return incomplete_request(data, size, line, limits);
  }
  return r;
}

ParseResult parse_response_head(const char* data, std::size_t size, std::size_t max_head_bytes,
                                std::size_t& scan_from, ResponseHead& out) {
  const auto incomplete = [&]() -> ParseResult {
    if (size >= max_head_bytes) return {ParseStatus::kError, HeadError::kHeadTooLarge};
    return {ParseStatus::kIncomplete};
  };
  const char* fields;
  if (scan_from > 0) {  // resumed at the unfinished line: see parse_request_head
    if (std::memchr(data + scan_from, '\n', size - scan_from) == nullptr) return incomplete();
    fields = data + scan_from;
  } else {
    const char* lf = static_cast<const char*>(std::memchr(data, '\n', size));
    if (lf == nullptr) return incomplete();
    if (lf == data || lf[-1] != '\r') return {ParseStatus::kError, HeadError::kBareLf};
    const ParseResult line = parse_status_line(data, lf - 1, out);
    if (line.status != ParseStatus::kComplete) return line;
    out.field_count = 0;
    fields = lf + 1;
  }
  std::size_t stop = 0;
  const ParseResult r =
      parse_field_lines(data, size, fields, max_head_bytes, kMaxFields, out, stop);
  if (r.status == ParseStatus::kIncomplete) {
    scan_from = stop;
    return incomplete();
  }
  return r;
}

ChunkedDecoder::Step ChunkedDecoder::step(const char* p, std::size_t n) {
  constexpr std::size_t kMaxLine = 4096;  // chunk-size line with extensions
  constexpr std::size_t kMaxTrailer = 16384;
  std::size_t used = 0;
  for (;;) {
    const char* q = p + used;
    const std::size_t left = n - used;
    switch (state_) {
      case State::kSize: {
        const void* lf = std::memchr(q, '\n', std::min(left, kMaxLine));
        if (lf == nullptr) {
          if (left >= kMaxLine) break;  // error below
          return {Status::kNeedMore, {}, used};
        }
        const char* e = static_cast<const char*>(lf);
        if (e == q || e[-1] != '\r') break;
        const char* line_end = e - 1;
        std::uint64_t size = 0;
        const char* d = q;
        while (d < line_end) {
          const char c = *d;
          int v;
          if (c >= '0' && c <= '9')
            v = c - '0';
          else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
          else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
          else
            break;
          if (d - q >= 16) {
            state_ = State::kError;
            return {Status::kError, {}, used};
          }
          size = size * 16 + static_cast<std::uint64_t>(v);
          ++d;
        }
        if (d == q) break;
        // Extensions are checked against their grammar, then dropped: bodies are re-framed.
        if (!valid_chunk_ext(d, line_end)) break;
        used += static_cast<std::size_t>(e + 1 - q);
        if (size == 0) {
          state_ = State::kTrailer;
        } else {
          remaining_ = size;
          state_ = State::kData;
        }
        continue;
      }
      case State::kData: {
        if (left == 0) return {Status::kNeedMore, {}, used};
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, left));
        remaining_ -= take;
        body_bytes_ += take;
        if (remaining_ == 0) state_ = State::kDataCrlf;
        return {Status::kData, std::string_view(q, take), used + take};
      }
      case State::kDataCrlf: {
        if (left < 2) {
          if (left == 1 && q[0] != '\r') break;
          return {Status::kNeedMore, {}, used};
        }
        if (q[0] != '\r' || q[1] != '\n') break;
        used += 2;
        state_ = State::kSize;
        continue;
      }
      case State::kTrailer: {
        const void* lf = std::memchr(q, '\n', left);
        if (lf == nullptr) {
          if (trailer_bytes_ + left > kMaxTrailer) break;
          return {Status::kNeedMore, {}, used};
        }
        const char* e = static_cast<const char*>(lf);
        if (e == q || e[-1] != '\r') break;
        const std::size_t line = static_cast<std::size_t>(e + 1 - q);
        trailer_bytes_ += line;
        if (trailer_bytes_ > kMaxTrailer) break;
        if (line == 2) {
          used += 2;
          state_ = State::kDone;
          return {Status::kDone, {}, used};
        }
        // A trailer field: validated, then dropped (we do not forward trailers).
        const char* c = q;
        while (c < e - 1 && is_tchar(*c)) ++c;
        if (c == q || *c != ':') break;
        for (++c; c < e - 1; ++c)
          if (!is_vchar_or_obs(*c)) {
            state_ = State::kError;
            return {Status::kError, {}, used};
          }
        used += line;
        continue;
      }
      case State::kDone:
        return {Status::kDone, {}, used};
      case State::kError:
        return {Status::kError, {}, used};
    }
    state_ = State::kError;
    return {Status::kError, {}, used};
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool parse_content_length(std::string_view v, std::uint64_t& out) {
  if (v.empty() || v.size() > 19) return false;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = n;
  return true;
}

}  // namespace sb::http
