// Strict HTTP/1.1 message-head parsing and chunked decoding, in place: every view points
// into the caller's buffer, nothing is allocated or copied. What RFC 9112 calls ambiguous
// (obs-fold, bare LF, whitespace before ':', repeated or listed Content-Length, Content-Length
// with Transfer-Encoding, any transfer coding but a single "chunked") is refused, never
// passed on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sb::http {

inline constexpr std::size_t kMaxFields = 128;  // hard cap; the configured cap is lower

struct Field {
  std::string_view name;
  std::string_view value;  // leading and trailing whitespace removed
};

/// What went wrong in a head. Each maps to one status (see status_for()).
enum class HeadError : std::uint8_t {
  kNone,
  kBadRequestLine,  // 400
  kBadVersion,      // 505 for requests (HTTP/2, HTTP/0.9), 502 for responses
  kUriTooLong,      // 414
  kHeadTooLarge,    // 431
  kTooManyFields,   // 431
  kBadField,        // 400: bad name, bad bytes in a value, whitespace before ':'
  kObsFold,         // 400
  kBareLf,          // 400
  kBadStatusLine,   // responses only
};

/// The request line and fields of a request, as views into the read buffer.
struct RequestHead {
  std::string_view method;
  std::string_view target;
  int version_minor = 1;  // HTTP/1.<minor>; only 0 and 1 are accepted
  /// The target holds no '%', no '\\', no "/." and no "//": its path is in normal form
  /// (path_is_normal() holds, with or without merged slashes), seen by the parser's pass
  /// over the request line. False says nothing (the path is checked then).
  bool target_plain = false;
  std::array<Field, kMaxFields> fields;
  std::size_t field_count = 0;
  std::size_t head_size = 0;  // bytes including the final CRLFCRLF
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
  std::array<Field, kMaxFields> fields;
  std::size_t field_count = 0;
  std::size_t head_size = 0;
};

struct HeadLimits {
  std::size_t max_request_line = 8192;
  std::size_t max_head_bytes = 32768;
  std::size_t max_fields = 100;
};

enum class ParseStatus : std::uint8_t { kComplete, kIncomplete, kError };

struct ParseResult {
  ParseStatus status;
  HeadError error = HeadError::kNone;
};

/// Parses a request head from data[0, size). Start with `scan_from` 0; after kIncomplete it
/// holds where the unfinished line starts, and the next call (with more bytes, the same
/// `out`) resumes there, so a head arriving in many pieces is parsed once and exactly as it
/// would be whole. Bytes before `scan_from` must not move between calls (set it to 0 after
/// moving them).
/// Up to four empty lines (CRLF) before the request line are skipped (RFC 9112 section 2.2:
/// some clients send a CRLF after a body); a fifth is kBadRequestLine. `method` then starts
/// after them; `head_size` and `scan_from` still count from `data`.
ParseResult parse_request_head(const char* data, std::size_t size, const HeadLimits& limits,
                               std::size_t& scan_from, RequestHead& out);

/// Parses a response head; `max_head_bytes` bounds it (kHeadTooLarge beyond). `scan_from`
/// as for parse_request_head.
ParseResult parse_response_head(const char* data, std::size_t size, std::size_t max_head_bytes,
                                std::size_t& scan_from, ResponseHead& out);

/// Decodes a chunked body in place. Feed it bytes; it hands back the data parts as views.
/// Chunk extensions must follow RFC 9112 section 7.1.1 (`;name`, `;name=token`,
/// `;name="quoted string"`, BWS around ';' and '='); they are checked, never handed out.
class ChunkedDecoder {
 public:
  enum class Status : std::uint8_t { kData, kNeedMore, kDone, kError };
  struct Step {
    Status status;
    std::string_view data;  // with kData: body bytes (a view into the input)
    std::size_t consumed;   // input bytes used by this step
  };
  /// Processes input from `p` (at most `n` bytes). Call again with the rest after each
  /// kData; after kNeedMore, call again with more input (unconsumed bytes included).
  Step step(const char* p, std::size_t n);
  bool done() const { return state_ == State::kDone; }
  void reset() { *this = ChunkedDecoder{}; }
  /// Total body bytes decoded so far.
  std::uint64_t body_bytes() const { return body_bytes_; }

 private:
  enum class State : std::uint8_t { kSize, kData, kDataCrlf, kTrailer, kDone, kError };
  State state_ = State::kSize;
  std::uint64_t remaining_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
};

/// Case-insensitive ASCII comparison (inline: it runs for every header field).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (static_cast<unsigned>(x - 'A') < 26u) x |= 0x20;
    if (static_cast<unsigned>(y - 'A') < 26u) y |= 0x20;
    if (x != y) return false;
  }
  return true;
}
/// RFC 9110 token characters.
bool is_token(std::string_view s);
/// Parses a Content-Length value: 1..19 decimal digits, nothing else.
bool parse_content_length(std::string_view v, std::uint64_t& out);

}  // namespace sb::http
