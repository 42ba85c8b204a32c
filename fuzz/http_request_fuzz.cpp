// Request heads from arbitrary bytes: parse_request_head under small and default limits,
// split at several points (the resumed parse must equal a fresh one), then analyze_request;
// and ChunkedDecoder over the body (or the whole input) arriving in 1..7-byte pieces.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/correlation_id.hpp"
#include "fuzz_check.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"
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
  SB_FUZZ_CHECK(head.method.data() == data);
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
  SB_FUZZ_CHECK(within(info.path, data, n) && within(info.query, data, n));
  SB_FUZZ_CHECK(within(info.host, data, n) && within(info.forwarded_for, data, n));
  if (info.path == "*") {
    SB_FUZZ_CHECK(info.method == http::Method::kOptions && info.query.empty());
  } else {
    SB_FUZZ_CHECK(!info.path.empty() && info.path.front() == '/');
    SB_FUZZ_CHECK(info.path.find('?') == std::string_view::npos);
    SB_FUZZ_CHECK(info.query.empty() || info.query.front() == '?');
    SB_FUZZ_CHECK(info.path.size() + info.query.size() == head.target.size());
  }
  if (head.version_minor == 1) SB_FUZZ_CHECK(!info.host.empty());
  if (info.framing == http::Framing::kChunked) SB_FUZZ_CHECK(head.version_minor == 1);
  if (info.framing == http::Framing::kLength) SB_FUZZ_CHECK(info.content_length > 0);
  SB_FUZZ_CHECK(info.framing != http::Framing::kUntilClose);
  if (head.version_minor == 0) SB_FUZZ_CHECK(!info.expect_continue);
  SB_FUZZ_CHECK(info.correlation_id.empty() ||
                sb::core::is_valid_correlation_id(info.correlation_id));
  SB_FUZZ_CHECK(within(info.correlation_id, data, n));
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
