// Request heads from arbitrary bytes: parse_request_head under small and default limits,
// split at several points (the resumed parse must equal a fresh one), then analyze_request
// and normalize_request_path (with and without merged slashes, on a copy); and
// ChunkedDecoder over the body (or the whole input) arriving in 1..7-byte pieces.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/correlation_id.hpp"
#include "fuzz_check.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"
#include "http/path.hpp"
#include "http_checks.hpp"

namespace {

namespace http = sb::http;
using sb::fuzz::within;

void check_complete(const http::RequestHead& head, const char* data, std::size_t size,
                    const http::HeadLimits& limits) {
  SB_FUZZ_CHECK(head.head_size >= 4 && head.head_size <= size);
  SB_FUZZ_CHECK(head.head_size <= limits.max_head_bytes);
  SB_FUZZ_CHECK(std::string_view(data + head.head_size - 4, 4) == "\r\n\r\n");
  SB_FUZZ_CHECK(http::is_token(head.method) && within(head.method, data, head.head_size));
  // The request line starts the head, after at most four empty lines.
  const auto skipped = static_cast<std::size_t>(head.method.data() - data);
  SB_FUZZ_CHECK(skipped % 2 == 0 && skipped <= 8);
  for (std::size_t i = 0; i < skipped; i += 2)
    SB_FUZZ_CHECK(data[i] == '\r' && data[i + 1] == '\n');
  SB_FUZZ_CHECK(!head.target.empty() && within(head.target, data, head.head_size));
  for (char c : head.target) {
    const auto u = static_cast<unsigned char>(c);
    SB_FUZZ_CHECK(u > 0x20 && u < 0x7f);
  }
  SB_FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
  // "METHOD SP target SP HTTP/1.x" fits the request-line limit.
  SB_FUZZ_CHECK(head.method.size() + head.target.size() + 10 <= limits.max_request_line);
  sb::fuzz::check_fields(head, data, limits.max_fields);
}

// Whether `v` lies in [from, from + n) (std::less: `v` may be a literal elsewhere).
bool inside(std::string_view v, const char* from, std::size_t n) {
  const std::less<const char*> lt;
  return !lt(v.data(), from) && !lt(from + n, v.data() + v.size());
}

// normalize_request_path on a copy of the head: either a 400 or a normal path (no dot
// segment, a fixed point of normalisation) with the query as it was, head.target the
// target's scheme and authority (if any) followed by that path and query, fields untouched.
void check_normalized(const http::RequestHead& parsed, const http::RequestInfo& analyzed,
                      const char* data, bool merge) {
  std::string copy(data, parsed.head_size);
  const auto rebase = [&](std::string_view v) {
    if (!inside(v, data, parsed.head_size)) return v;  // the "/" or "*" of "http://h"
    return std::string_view(copy.data() + (v.data() - data), v.size());
  };
  http::RequestHead head = parsed;
  head.target = rebase(parsed.target);
  for (std::size_t i = 0; i < head.field_count; ++i)
    head.fields[i] = {rebase(parsed.fields[i].name), rebase(parsed.fields[i].value)};
  http::RequestInfo info = analyzed;
  info.path = rebase(analyzed.path);
  info.query = rebase(analyzed.query);
  const std::string query(analyzed.query);
  const http::RequestError e = http::normalize_request_path(copy.data(), head, info, merge);
  if (e != http::RequestError::kNone) {
    SB_FUZZ_CHECK(http::status_for(e) == 400);
    return;
  }
  SB_FUZZ_CHECK(info.query == query);
  SB_FUZZ_CHECK(info.path.size() <= analyzed.path.size());
  for (std::size_t i = 0; i < head.field_count; ++i)
    SB_FUZZ_CHECK(head.fields[i].value == parsed.fields[i].value);
  if (!inside(analyzed.path, parsed.target.data(), parsed.target.size())) {
    SB_FUZZ_CHECK(head.target == parsed.target);  // nothing to normalise in "http://h"
    return;
  }
  const auto prefix = static_cast<std::size_t>(analyzed.path.data() - parsed.target.data());
  SB_FUZZ_CHECK(head.target ==
                std::string(parsed.target.substr(0, prefix)) + std::string(info.path) + query);
  if (info.path == "*") return;
  SB_FUZZ_CHECK(http::path_is_normal(info.path, merge));
  std::string again(info.path);
  std::size_t size = again.size();
  SB_FUZZ_CHECK(http::normalize_path(again.data(), size, merge) == http::PathError::kNone);
  SB_FUZZ_CHECK(std::string_view(again.data(), size) == info.path);
  SB_FUZZ_CHECK(info.path.find("/./") == std::string_view::npos);
  SB_FUZZ_CHECK(info.path.find("/../") == std::string_view::npos);
  SB_FUZZ_CHECK(!info.path.ends_with("/.") && !info.path.ends_with("/.."));
  SB_FUZZ_CHECK(info.path.find('\\') == std::string_view::npos);
  if (merge) SB_FUZZ_CHECK(info.path.find("//") == std::string_view::npos);
}

void check_analysis(const http::RequestHead& head, const char* data) {
  http::RequestInfo info;
  const http::RequestError e = http::analyze_request(head, info);
  for (std::size_t i = head.field_count; i < http::kMaxFields; ++i)
    SB_FUZZ_CHECK(!info.drop.test(i));
  if (e != http::RequestError::kNone) {
    const int status = http::status_for(e);
    SB_FUZZ_CHECK(status == 400 || status == 417 || status == 501);
    return;
  }
  sb::fuzz::check_kept_fields(head, info.drop);
  const std::size_t n = head.head_size;
  const bool origin_form = head.target.front() == '/';
  // An absolute-form target with an empty path has the path "/" (or "*"), not in the head.
  SB_FUZZ_CHECK(within(info.path, data, n) || (!origin_form && info.path.size() == 1));
  SB_FUZZ_CHECK(within(info.query, data, n));
  SB_FUZZ_CHECK(within(info.host, data, n) && within(info.forwarded_for, data, n));
  if (info.path == "*") {
    SB_FUZZ_CHECK(info.method == http::Method::kOptions && info.query.empty());
  } else {
    SB_FUZZ_CHECK(!info.path.empty() && info.path.front() == '/');
    SB_FUZZ_CHECK(info.path.find('?') == std::string_view::npos);
    SB_FUZZ_CHECK(info.query.empty() || info.query.front() == '?');
  }
  if (origin_form) {
    SB_FUZZ_CHECK(info.path.size() + info.query.size() == head.target.size());
  } else if (head.target != "*") {
    // absolute-form: the host is the authority, the path and query end the target.
    SB_FUZZ_CHECK(!info.host.empty() && head.target.find(info.host) != std::string_view::npos);
    const std::string_view tail = head.target.substr(head.target.size() - info.query.size());
    SB_FUZZ_CHECK(tail == info.query);
  }
  if (head.version_minor == 1) SB_FUZZ_CHECK(!info.host.empty());
  if (info.framing == http::Framing::kChunked) SB_FUZZ_CHECK(head.version_minor == 1);
  if (info.framing == http::Framing::kLength) SB_FUZZ_CHECK(info.content_length > 0);
  SB_FUZZ_CHECK(info.framing != http::Framing::kUntilClose);
  if (head.version_minor == 0) SB_FUZZ_CHECK(!info.expect_continue);
  SB_FUZZ_CHECK(info.correlation_id.empty() ||
                sb::core::is_valid_correlation_id(info.correlation_id));
  SB_FUZZ_CHECK(within(info.correlation_id, data, n));
  for (const bool merge : {false, true}) check_normalized(head, info, data, merge);
}

// One limit set: a fresh parse, then the same bytes arriving in two parts at each cut.
void parse_with(const char* data, std::size_t size, const http::HeadLimits& limits) {
  http::RequestHead fresh;
  std::size_t scan = 0;
  const http::ParseResult r = http::parse_request_head(data, size, limits, scan, fresh);
  SB_FUZZ_CHECK((r.status == http::ParseStatus::kError) == (r.error != http::HeadError::kNone));
  if (r.status == http::ParseStatus::kComplete) {
    check_complete(fresh, data, size, limits);
    check_analysis(fresh, data);
    const std::string_view rest(data + fresh.head_size, size - fresh.head_size);
    sb::fuzz::check_chunked(rest.data(), rest.size());
  }
  if (size < 2) return;
  const std::size_t cuts[] = {1, size / 3, size / 2, size - 1,
                              1 + static_cast<unsigned char>(data[0]) % (size - 1)};
  for (std::size_t cut : cuts) {
    http::RequestHead resumed;
    std::size_t scan_from = 0;
    const auto first = http::parse_request_head(data, cut, limits, scan_from, resumed);
    SB_FUZZ_CHECK(scan_from <= cut);
    if (first.status == http::ParseStatus::kError) {
      // An error in a prefix stays an error with more bytes.
      SB_FUZZ_CHECK(r.status == http::ParseStatus::kError);
      continue;
    }
    if (first.status == http::ParseStatus::kComplete) {
      SB_FUZZ_CHECK(r.status == http::ParseStatus::kComplete &&
                    sb::fuzz::same_fields(resumed, fresh));
      continue;
    }
    const auto second = http::parse_request_head(data, size, limits, scan_from, resumed);
    SB_FUZZ_CHECK(second.status == r.status && second.error == r.error);
    if (r.status == http::ParseStatus::kComplete) {
      SB_FUZZ_CHECK(sb::fuzz::same_fields(resumed, fresh));
      SB_FUZZ_CHECK(resumed.method == fresh.method && resumed.target == fresh.target);
      SB_FUZZ_CHECK(resumed.version_minor == fresh.version_minor);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const char* data = reinterpret_cast<const char*>(bytes);
  parse_with(data, size, {.max_request_line = 64, .max_head_bytes = 256, .max_fields = 8});
  parse_with(data, size, http::HeadLimits{});
  // The whole input as a chunked body too (seeds hold bare bodies as well as requests).
  sb::fuzz::check_chunked(data, size);
  return 0;
}
