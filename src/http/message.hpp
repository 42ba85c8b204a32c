// What a parsed head means: framing, persistence, hop-by-hop fields, and the few fields the
// gateway acts on; and the writer that builds forwarded heads. All views point into the
// read buffer that holds the head.
#pragma once

#include <bitset>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "http/head_buffer.hpp"
#include "http/parser.hpp"

namespace sb::http {

enum class Framing : std::uint8_t {
  kNone,        // no body
  kLength,      // Content-Length bytes
  kChunked,     // Transfer-Encoding: chunked
  kUntilClose,  // responses only: read until the upstream closes
};

enum class Method : std::uint8_t { kGet, kHead, kPost, kPut, kDelete, kOptions, kPatch, kOther };

/// Why a request head is refused after it parsed (each answers 400 unless noted).
enum class RequestError : std::uint8_t {
  kNone,
  kMissingHost,  // HTTP/1.1 without Host
  kDuplicateHost,
  kBadHost,
  kBadContentLength,     // not digits, repeated, or a list
  kContentLengthAndTe,   // both present: a smuggling vector
  kBadTransferEncoding,  // anything but a single "chunked" (501), or on HTTP/1.0
  kUnsupportedExpect,    // Expect other than 100-continue (417)
  kBadTarget,         // not origin-form ("/..."), absolute-form (http/https), nor "*" for OPTIONS
  kUpgrade,           // protocol upgrades are not proxied (501)
  kDuplicateTimeout,  // X-Request-Timeout-Ms or grpc-timeout more than once
  // The path cannot be normalised (normalize_request_path; see http/path.hpp):
  kBadPercentEncoding,  // '%' not followed by two hex digits
  kNulInPath,           // %00
  kEscapedSlash,        // %2F or %5C
  kBackslashInPath,     // '\'
  kPathAboveRoot,       // ".." with nothing left to remove
};

struct RequestInfo {
  Method method = Method::kOther;
  std::string_view path;   // the target's path (up to '?'; "/" for "http://h"), or "*"
  std::string_view query;  // from '?' (included), or empty
  std::string_view host;   // the authority of an absolute-form target, else the Host value
  Framing framing = Framing::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;
  bool expect_continue = false;
  std::string_view correlation_id;      // a valid incoming X-Correlation-ID / X-Request-ID
  std::string_view forwarded_for;       // incoming X-Forwarded-For
  std::string_view request_timeout_ms;  // incoming X-Request-Timeout-Ms (raw; not forwarded)
  std::string_view grpc_timeout;        // incoming grpc-timeout (raw; not forwarded)
  bool has_request_timeout = false;     // (an empty value is present, and malformed)
  bool has_grpc_timeout = false;
  bool idempotency_key = false;  // an Idempotency-Key field is present
  std::bitset<kMaxFields> drop;  // fields not forwarded (hop-by-hop and rewritten ones)
};

/// Reads the request target and the head's fields. Never fails on a field it does not know.
/// An absolute-form target ("http://host/path?q", RFC 9112 section 3.2.2) is taken apart:
/// `host` is its authority (the Host field, still required on HTTP/1.1, is ignored),
/// `path` and `query` its path and query, so it is routed like origin-form.
RequestError analyze_request(const RequestHead& head, RequestInfo& out);

/// Normalises info.path (see http/path.hpp) where it lies: `buffer` is the writable buffer
/// that `head` was parsed from. A path already in normal form (nearly every one) costs one
/// scan and stays as it is. Otherwise the path is rewritten in place, the query moved up
/// to follow it, and info.path, info.query and head.target narrowed to match: routing, the
/// access log (head.target) and the upstream request line then all see the normalised
/// target. Call once, after analyze_request() succeeded and once the buffer will not move
/// again (the bytes between the new and the old end of the target are stale). A path that
/// cannot be normalised is an error (400), and may be left partly rewritten.
RequestError normalize_request_path(char* buffer, RequestHead& head, RequestInfo& info,
                                    bool merge_slashes);

/// Why an upstream response head is refused (every one answers 502).
enum class ResponseError : std::uint8_t {
  kNone,
  kBadContentLength,
  kContentLengthAndTe,
  kBadTransferEncoding,
  kUnexpectedUpgrade,  // 101 to a request that did not ask for it
};

struct ResponseInfo {
  Framing framing = Framing::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;  // the upstream connection may be reused
  std::bitset<kMaxFields> drop;
};

/// Reads an upstream response head; `request_method` decides whether a body follows.
ResponseError analyze_response(const ResponseHead& head, Method request_method, ResponseInfo& out);

int status_for(HeadError e, bool request);
int status_for(RequestError e);
const char* describe(HeadError e);
const char* describe(RequestError e);
const char* describe(ResponseError e);
/// The standard reason phrase for a status ("Not Found"); "" when unknown.
std::string_view reason_phrase(int status);

/// Writes a head into a HeadBuffer (cleared first) that the caller reuses.
class HeadWriter {
 public:
  explicit HeadWriter(HeadBuffer& out) : out_(out) { out_.clear(); }
  HeadWriter& raw(std::string_view s) {
    out_.append(s);
    return *this;
  }
  HeadWriter& field(std::string_view name, std::string_view value) {
    char* p = out_.extend(name.size() + value.size() + 4);
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    if (!value.empty()) std::memcpy(p, value.data(), value.size());  // data() may be null
    p += value.size();
    *p++ = '\r';
    *p = '\n';
    return *this;
  }
  HeadWriter& field(std::string_view name, std::uint64_t value);
  HeadWriter& status_line(int status, std::string_view reason);
  /// The fields of a parsed head not in `drop`, as the lines they came in: a run of kept
  /// fields is one copy (the parser's lines are adjacent, each value followed by optional
  /// whitespace and CRLF, nothing unchecked in them).
  template <class Head>
  HeadWriter& kept_fields(const Head& head, const std::bitset<kMaxFields>& drop) {
    for (std::size_t i = 0; i < head.field_count;) {
      if (drop.test(i)) {
        ++i;
        continue;
      }
      std::size_t last = i;
      while (last + 1 < head.field_count && !drop.test(last + 1)) ++last;
      const char* from = head.fields[i].name.data();
      const char* to = head.fields[last].value.data() + head.fields[last].value.size();
      while (*to == ' ' || *to == '\t') ++to;
      out_.append(from, static_cast<std::size_t>(to + 2 - from));  // through the CRLF
      i = last + 1;
    }
    return *this;
  }
  void end() { out_.append("\r\n", 2); }

 private:
  HeadBuffer& out_;
};

/// Appends a chunk-size line ("1a2b\r\n") to `out` (at least 18 bytes); returns its length.
std::size_t format_chunk_size(std::uint64_t size, char* out);

}  // namespace sb::http
