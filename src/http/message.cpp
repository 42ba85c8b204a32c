#include "http/message.hpp"

#include <array>
#include <cstring>

#include "core/correlation_id.hpp"
#include "core/text.hpp"
#include "http/byte_class.hpp"
#include "http/path.hpp"

namespace sb::http {
namespace {

using core::trim;

enum class Known : std::uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kUpgrade,
  kExpect,
  kXCorrelationId,
  kXRequestId,
  kXForwardedFor,
  kXForwardedProto,
  kXForwardedHost,
  kXRequestTimeoutMs,
  kGrpcTimeout,
  kIdempotencyKey,
};

// Compares a field name with a lower-case literal of the same length, eight bytes at a
// time. OR-ing 0x20 lower-cases letters; for the characters our literals use (letters,
// digits, '-') no other token character maps onto them, so the test is exact.
inline bool name_is(std::string_view n, std::string_view lower) {
  if (n.size() != lower.size()) return false;
  std::size_t i = 0;
  for (; i + 8 <= n.size(); i += 8) {
    std::uint64_t a, b;
    std::memcpy(&a, n.data() + i, 8);
    std::memcpy(&b, lower.data() + i, 8);
    if ((a | 0x2020202020202020ull) != b) return false;
  }
  for (; i < n.size(); ++i)
    if ((static_cast<unsigned char>(n[i]) | 0x20) != static_cast<unsigned char>(lower[i]))
      return false;
  return true;
}

Known classify(std::string_view n) {
  // Dispatch on length first: one comparison for most fields.
  switch (n.size()) {
    case 2:
      if (name_is(n, "te")) return Known::kTe;
      break;
    case 4:
      if (name_is(n, "host")) return Known::kHost;
      break;
    case 6:
      if (name_is(n, "expect")) return Known::kExpect;
      break;
    case 7:
      if (name_is(n, "upgrade")) return Known::kUpgrade;
      break;
    case 10:
      if (name_is(n, "connection")) return Known::kConnection;
      if (name_is(n, "keep-alive")) return Known::kKeepAlive;
      break;
    case 12:
      if (name_is(n, "x-request-id")) return Known::kXRequestId;
      if (name_is(n, "grpc-timeout")) return Known::kGrpcTimeout;
      break;
    case 14:
      if (name_is(n, "content-length")) return Known::kContentLength;
      break;
    case 15:
      if (name_is(n, "x-forwarded-for")) return Known::kXForwardedFor;
      if (name_is(n, "idempotency-key")) return Known::kIdempotencyKey;
      break;
    case 16:
      if (name_is(n, "x-correlation-id")) return Known::kXCorrelationId;
      if (name_is(n, "x-forwarded-host")) return Known::kXForwardedHost;
      if (name_is(n, "proxy-connection")) return Known::kProxyConnection;
      break;
    case 17:
      if (name_is(n, "transfer-encoding")) return Known::kTransferEncoding;
      if (name_is(n, "x-forwarded-proto")) return Known::kXForwardedProto;
      break;
    case 20:
      if (name_is(n, "x-request-timeout-ms")) return Known::kXRequestTimeoutMs;
      break;
  }
  return Known::kOther;
}

// Connection option names (RFC 9110 section 7.6.1), at most kMax of them.
struct ConnectionOptions {
  static constexpr std::size_t kMax = 16;
  std::string_view names[kMax];
  std::size_t count = 0;
  bool close = false;
  bool keep_alive = false;
  bool upgrade = false;
  bool overflow = false;

  void add_list(std::string_view v) {
    // Nearly every Connection field says just one of these: no list to split.
    if (v.size() == 10 && iequals(v, "keep-alive")) {
      keep_alive = true;
      return;
    }
    if (v.size() == 5 && iequals(v, "close")) {
      close = true;
      return;
    }
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      const std::string_view tok = trim(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (tok.empty()) continue;
      // close and keep-alive are options, not field names worth dropping (a Keep-Alive
      // field is dropped anyway); upgrade names the Upgrade field, dropped anyway too.
      if (iequals(tok, "close"))
        close = true;
      else if (iequals(tok, "keep-alive"))
        keep_alive = true;
      else if (iequals(tok, "upgrade"))
        upgrade = true;
      else if (count < kMax)
        names[count++] = tok;
      else
        overflow = true;
    }
  }
  bool lists(std::string_view name) const {
    for (std::size_t i = 0; i < count; ++i)
      if (iequals(names[i], name)) return true;
    return false;
  }
};

Method parse_method(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::kGet;
      if (m == "PUT") return Method::kPut;
      break;
    case 4:
      if (m == "HEAD") return Method::kHead;
      if (m == "POST") return Method::kPost;
      break;
    case 5:
      if (m == "PATCH") return Method::kPatch;
      break;
    case 6:
      if (m == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (m == "OPTIONS") return Method::kOptions;
      break;
  }
  return Method::kOther;
}

// Host = uri-host [ ":" port ]: a reg-name, IPv4 or [IPv6], no userinfo, no spaces.
constexpr auto kHostByte = alnum_and("-.:[]_~%");

bool valid_host(std::string_view h) {
  if (h.empty()) return false;
  for (char c : h)
    if (!kHostByte[static_cast<unsigned char>(c)]) return false;
  return true;
}

// Transfer-Encoding must be exactly one "chunked" coding: anything else cannot be
// forwarded without re-coding, and lists are where smuggling hides.
bool is_single_chunked(std::string_view v) { return iequals(trim(v), "chunked"); }

// absolute-form = absolute-URI (RFC 9112 section 3.2.2), for the "http" and "https" schemes
// only (case-insensitive): "://", an authority with a host and no userinfo, then the path
// (maybe empty) and query. `rest` becomes what follows the authority.
bool split_absolute_form(std::string_view target, std::string_view& authority,
                         std::string_view& rest) {
  std::size_t colon;
  if (target.size() > 7 && iequals(target.substr(0, 7), "http://"))
    colon = 4;
  else if (target.size() > 8 && iequals(target.substr(0, 8), "https://"))
    colon = 5;
  else
    return false;
  const std::string_view after = target.substr(colon + 3);
  const std::size_t end = after.find_first_of("/?");
  authority = after.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view{} : after.substr(end);
  return valid_host(authority) && authority.front() != ':';
}

}  // namespace

RequestError analyze_request(const RequestHead& head, RequestInfo& out) {
  out = RequestInfo{};
  out.method = parse_method(head.method);
  const std::string_view target = head.target;
  std::string_view authority;  // of an absolute-form target
  if (target.front() == '/') {
    const std::size_t q = target.find('?');
    out.path = target.substr(0, q);
    out.query = q == std::string_view::npos ? std::string_view{} : target.substr(q);
  } else if (target == "*" && out.method == Method::kOptions) {
    out.path = target;
  } else if (std::string_view rest; split_absolute_form(target, authority, rest)) {
    const std::size_t q = rest.find('?');
    out.path = rest.substr(0, q);
    out.query = q == std::string_view::npos ? std::string_view{} : rest.substr(q);
    // An empty path is "/" (RFC 9112 section 3.2.1), or "*" for OPTIONS (section 3.2.4).
    if (out.path.empty())
      out.path = out.method == Method::kOptions && out.query.empty() ? "*" : "/";
  } else {
    return RequestError::kBadTarget;
  }

  ConnectionOptions conn;
  bool have_host = false, have_cl = false, have_te = false, upgrade = false;
  std::string_view request_id;
  for (std::size_t i = 0; i < head.field_count; ++i) {
    const Field& f = head.fields[i];
    switch (classify(f.name)) {
      case Known::kHost:
        if (have_host) return RequestError::kDuplicateHost;
        if (!valid_host(f.value)) return RequestError::kBadHost;
        have_host = true;
        out.host = f.value;
        out.drop.set(i);
        break;
      case Known::kContentLength:
        if (have_cl || !parse_content_length(f.value, out.content_length))
          return RequestError::kBadContentLength;
        have_cl = true;
        out.drop.set(i);
        break;
      case Known::kTransferEncoding:
        if (have_te || !is_single_chunked(f.value)) return RequestError::kBadTransferEncoding;
        have_te = true;
        out.drop.set(i);
        break;
      case Known::kConnection:
        conn.add_list(f.value);
        out.drop.set(i);
        break;
      case Known::kKeepAlive:
      case Known::kProxyConnection:
      case Known::kTe:
        out.drop.set(i);
        break;
      case Known::kUpgrade:
        upgrade = true;
        out.drop.set(i);
        break;
      case Known::kExpect:
        if (!iequals(trim(f.value), "100-continue")) return RequestError::kUnsupportedExpect;
        out.expect_continue = true;
        out.drop.set(i);
        break;
      case Known::kXCorrelationId:
        if (core::is_valid_correlation_id(f.value) && out.correlation_id.empty())
          out.correlation_id = f.value;
        out.drop.set(i);
        break;
      case Known::kXRequestId:
        if (core::is_valid_correlation_id(f.value) && request_id.empty()) request_id = f.value;
        break;
      case Known::kXForwardedFor:
        // Several X-Forwarded-For fields are one list (RFC 9110 section 5.3); keep the
        // first and refuse to guess at more.
        if (!out.forwarded_for.empty()) return RequestError::kBadHost;
        out.forwarded_for = f.value;
        out.drop.set(i);
        break;
      case Known::kXForwardedProto:
      case Known::kXForwardedHost:
        out.drop.set(i);
        break;
      // Deadlines are forwarded reduced by the time spent here, so the fields are rewritten;
      // two of them would be two deadlines to choose from.
      case Known::kXRequestTimeoutMs:
        if (out.has_request_timeout) return RequestError::kDuplicateTimeout;
        out.has_request_timeout = true;
        out.request_timeout_ms = f.value;
        out.drop.set(i);
        break;
      case Known::kGrpcTimeout:
        if (out.has_grpc_timeout) return RequestError::kDuplicateTimeout;
        out.has_grpc_timeout = true;
        out.grpc_timeout = f.value;
        out.drop.set(i);
        break;
      case Known::kIdempotencyKey:
        out.idempotency_key = true;
        break;
      case Known::kOther:
        break;
    }
  }
  if (out.correlation_id.empty()) out.correlation_id = request_id;
  // RFC 9112 section 3.2.2: the target's authority wins over the Host field, which is
  // still dropped (the upstream gets its own Host).
  if (!authority.empty()) out.host = authority;
  if (have_cl && have_te) return RequestError::kContentLengthAndTe;
  if (have_te && head.version_minor == 0) return RequestError::kBadTransferEncoding;
  if (!have_host && head.version_minor == 1) return RequestError::kMissingHost;
  if (upgrade && conn.upgrade) return RequestError::kUpgrade;
  if (conn.overflow) return RequestError::kBadHost;

  out.framing = have_te                               ? Framing::kChunked
                : (have_cl && out.content_length > 0) ? Framing::kLength
                                                      : Framing::kNone;
  out.keep_alive = head.version_minor == 1 ? !conn.close : (conn.keep_alive && !conn.close);
  if (head.version_minor == 0) out.expect_continue = false;  // HTTP/1.0 has no 100

  if (conn.count > 0) {
    for (std::size_t i = 0; i < head.field_count; ++i)
      if (!out.drop.test(i) && conn.lists(head.fields[i].name)) out.drop.set(i);
  }
  return RequestError::kNone;
}

RequestError normalize_request_path(char* buffer, RequestHead& head, RequestInfo& info,
                                    bool merge_slashes) {
  if (head.target_plain || info.path.front() != '/' || path_is_normal(info.path, merge_slashes))
    return RequestError::kNone;  // "*", or already normal: nothing to write
  char* const path = buffer + (info.path.data() - buffer);
  std::size_t size = info.path.size();
  switch (normalize_path(path, size, merge_slashes)) {
    case PathError::kNone:
      break;
    case PathError::kBadEscape:
      return RequestError::kBadPercentEncoding;
    case PathError::kNul:
      return RequestError::kNulInPath;
    case PathError::kEscapedSlash:
      return RequestError::kEscapedSlash;
    case PathError::kBackslash:
      return RequestError::kBackslashInPath;
    case PathError::kAboveRoot:
      return RequestError::kPathAboveRoot;
  }
  const std::size_t removed = info.path.size() - size;
  if (!info.query.empty()) {
    std::memmove(path + size, info.query.data(), info.query.size());
    info.query = std::string_view(path + size, info.query.size());
  }
  info.path = std::string_view(path, size);
  head.target = std::string_view(head.target.data(), head.target.size() - removed);
  return RequestError::kNone;
}

ResponseError analyze_response(const ResponseHead& head, Method request_method, ResponseInfo& out) {
  out = ResponseInfo{};
  ConnectionOptions conn;
  bool have_cl = false, have_te = false;
  std::size_t cl_index = 0;
  for (std::size_t i = 0; i < head.field_count; ++i) {
    const Field& f = head.fields[i];
    switch (classify(f.name)) {
      case Known::kContentLength:
        if (have_cl || !parse_content_length(f.value, out.content_length))
          return ResponseError::kBadContentLength;
        have_cl = true;
        cl_index = i;
        out.drop.set(i);
        break;
      case Known::kTransferEncoding:
        if (have_te || !is_single_chunked(f.value)) return ResponseError::kBadTransferEncoding;
        have_te = true;
        out.drop.set(i);
        break;
      case Known::kConnection:
        conn.add_list(f.value);
        out.drop.set(i);
        break;
      case Known::kKeepAlive:
      case Known::kProxyConnection:
      case Known::kTe:
      case Known::kUpgrade:
      case Known::kXCorrelationId:  // the client gets its own id back, not the upstream's
        out.drop.set(i);
        break;
      default:
        break;
    }
  }
  if (have_cl && have_te) return ResponseError::kContentLengthAndTe;
  if (head.status == 101) return ResponseError::kUnexpectedUpgrade;
  if (conn.overflow) return ResponseError::kBadTransferEncoding;

  const bool no_body = request_method == Method::kHead ||
                       (head.status >= 100 && head.status < 200) || head.status == 204 ||
                       head.status == 304;
  if (no_body) {
    // The length of the body a GET would get (HEAD, 304) is information for the client.
    out.framing = Framing::kNone;
    if (have_cl) out.drop.reset(cl_index);
  } else if (have_te) {
    out.framing = Framing::kChunked;
  } else if (have_cl) {
    out.framing = out.content_length > 0 ? Framing::kLength : Framing::kNone;
  } else {
    out.framing = Framing::kUntilClose;
  }
  out.keep_alive = out.framing != Framing::kUntilClose && !conn.close &&
                   (head.version_minor == 1 || conn.keep_alive);
  if (conn.count > 0) {
    for (std::size_t i = 0; i < head.field_count; ++i)
      if (!out.drop.test(i) && conn.lists(head.fields[i].name)) out.drop.set(i);
  }
  return ResponseError::kNone;
}

int status_for(HeadError e, bool request) {
  switch (e) {
    case HeadError::kNone:
      return 200;
    case HeadError::kUriTooLong:
      return 414;
    case HeadError::kHeadTooLarge:
    case HeadError::kTooManyFields:
      return request ? 431 : 502;
    case HeadError::kBadVersion:
      return request ? 505 : 502;
    default:
      return request ? 400 : 502;
  }
}

int status_for(RequestError e) {
  switch (e) {
    case RequestError::kNone:
      return 200;
    case RequestError::kBadTransferEncoding:
    case RequestError::kUpgrade:
      return 501;
    case RequestError::kUnsupportedExpect:
      return 417;
    default:
      return 400;
  }
}

const char* describe(HeadError e) {
  switch (e) {
    case HeadError::kNone:
      return "ok";
    case HeadError::kBadRequestLine:
      return "malformed request line";
    case HeadError::kBadVersion:
      return "unsupported HTTP version (only HTTP/1.0 and HTTP/1.1)";
    case HeadError::kUriTooLong:
      return "request line longer than limits.max_request_line";
    case HeadError::kHeadTooLarge:
      return "header section larger than the limit";
    case HeadError::kTooManyFields:
      return "more header fields than limits.max_headers";
    case HeadError::kBadField:
      return "malformed header field";
    case HeadError::kObsFold:
      return "obsolete line folding in a header field";
    case HeadError::kBareLf:
      return "line ending without CR";
    case HeadError::kBadStatusLine:
      return "malformed status line";
  }
  return "malformed head";
}

const char* describe(RequestError e) {
  switch (e) {
    case RequestError::kNone:
      return "ok";
    case RequestError::kMissingHost:
      return "HTTP/1.1 request without Host";
    case RequestError::kDuplicateHost:
      return "more than one Host field";
    case RequestError::kBadHost:
      return "malformed Host, Connection or X-Forwarded-For field";
    case RequestError::kBadContentLength:
      return "malformed or repeated Content-Length";
    case RequestError::kContentLengthAndTe:
      return "both Content-Length and Transfer-Encoding present";
    case RequestError::kBadTransferEncoding:
      return "Transfer-Encoding other than a single \"chunked\" on HTTP/1.1";
    case RequestError::kUnsupportedExpect:
      return "Expect other than 100-continue";
    case RequestError::kBadTarget:
      return "request target must be a path (/...), an http:// or https:// URL, or * for "
             "OPTIONS";
    case RequestError::kUpgrade:
      return "protocol upgrade is not supported";
    case RequestError::kDuplicateTimeout:
      return "more than one X-Request-Timeout-Ms or grpc-timeout field";
    case RequestError::kBadPercentEncoding:
      return describe(PathError::kBadEscape);
    case RequestError::kNulInPath:
      return describe(PathError::kNul);
    case RequestError::kEscapedSlash:
      return describe(PathError::kEscapedSlash);
    case RequestError::kBackslashInPath:
      return describe(PathError::kBackslash);
    case RequestError::kPathAboveRoot:
      return describe(PathError::kAboveRoot);
  }
  return "bad request";
}

const char* describe(ResponseError e) {
  switch (e) {
    case ResponseError::kNone:
      return "ok";
    case ResponseError::kBadContentLength:
      return "malformed or repeated Content-Length";
    case ResponseError::kContentLengthAndTe:
      return "both Content-Length and Transfer-Encoding present";
    case ResponseError::kBadTransferEncoding:
      return "unsupported Transfer-Encoding";
    case ResponseError::kUnexpectedUpgrade:
      return "unexpected protocol switch";
  }
  return "bad response";
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
  }
  return "";
}

HeadWriter& HeadWriter::field(std::string_view name, std::uint64_t value) {
  char buf[24];
  char* e = buf + sizeof buf;
  char* p = e;
  do {
    *--p = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  return field(name, std::string_view(p, static_cast<std::size_t>(e - p)));
}

HeadWriter& HeadWriter::status_line(int status, std::string_view reason) {
  char code[4] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                  static_cast<char>('0' + status % 10), ' '};
  out_.append("HTTP/1.1 ", 9).append(code, 4).append(reason).append("\r\n", 2);
  return *this;
}

std::size_t format_chunk_size(std::uint64_t size, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char tmp[16];
  std::size_t n = 0;
  do {
    tmp[n++] = kHex[size & 0xf];
    size >>= 4;
  } while (size != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  out[n] = '\r';
  out[n + 1] = '\n';
  return n + 2;
}

}  // namespace sb::http
