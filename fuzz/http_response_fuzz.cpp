// Upstream response heads from arbitrary bytes: parse_response_head under a small and the
// default head limit, split at several points, then analyze_response for every request
// Method; a chunked body after the head goes through ChunkedDecoder.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"
#include "http_checks.hpp"

namespace {

namespace http = sb::http;
using sb::fuzz::within;

constexpr http::Method kMethods[] = {
    http::Method::kGet,    http::Method::kHead,    http::Method::kPost,  http::Method::kPut,
    http::Method::kDelete, http::Method::kOptions, http::Method::kPatch, http::Method::kOther};

void check_complete(const http::ResponseHead& head, const char* data, std::size_t size,
                    std::size_t max_head_bytes) {
  SB_FUZZ_CHECK(head.head_size >= 4 && head.head_size <= size);
  SB_FUZZ_CHECK(head.head_size <= max_head_bytes);
  SB_FUZZ_CHECK(std::string_view(data + head.head_size - 4, 4) == "\r\n\r\n");
  SB_FUZZ_CHECK(head.status >= 100 && head.status <= 599);
  SB_FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
  SB_FUZZ_CHECK(within(head.reason, data, head.head_size));
  for (char c : head.reason) SB_FUZZ_CHECK(sb::fuzz::is_value_byte(c));
  sb::fuzz::check_fields(head, data, http::kMaxFields);
}

void check_analysis(const http::ResponseHead& head, http::Method method) {
  http::ResponseInfo info;
  const http::ResponseError e = http::analyze_response(head, method, info);
  for (std::size_t i = head.field_count; i < http::kMaxFields; ++i)
    SB_FUZZ_CHECK(!info.drop.test(i));
  if (e != http::ResponseError::kNone) return;
  sb::fuzz::check_kept_fields(head, info.drop);
  SB_FUZZ_CHECK(head.status != 101);
  const bool no_body = method == http::Method::kHead || head.status < 200 || head.status == 204 ||
                       head.status == 304;
  if (no_body) SB_FUZZ_CHECK(info.framing == http::Framing::kNone);
  if (info.framing == http::Framing::kLength) SB_FUZZ_CHECK(info.content_length > 0);
  if (info.framing == http::Framing::kUntilClose) SB_FUZZ_CHECK(!info.keep_alive);
}

void parse_with(const char* data, std::size_t size, std::size_t max_head_bytes) {
  http::ResponseHead fresh;
  std::size_t scan = 0;
  const auto r = http::parse_response_head(data, size, max_head_bytes, scan, fresh);
  SB_FUZZ_CHECK((r.status == http::ParseStatus::kError) == (r.error != http::HeadError::kNone));
  if (r.status == http::ParseStatus::kComplete) {
    check_complete(fresh, data, size, max_head_bytes);
    for (http::Method m : kMethods) check_analysis(fresh, m);
    http::ResponseInfo info;
    if (http::analyze_response(fresh, http::Method::kGet, info) == http::ResponseError::kNone &&
        info.framing == http::Framing::kChunked)
      sb::fuzz::check_chunked(data + fresh.head_size, size - fresh.head_size);
  }
  if (size < 2) return;
  const std::size_t cuts[] = {1, size / 2, size - 1,
                              1 + static_cast<unsigned char>(data[size - 1]) % (size - 1)};
  for (std::size_t cut : cuts) {
    http::ResponseHead resumed;
    std::size_t scan_from = 0;
    const auto first = http::parse_response_head(data, cut, max_head_bytes, scan_from, resumed);
    SB_FUZZ_CHECK(scan_from <= cut);
    if (first.status == http::ParseStatus::kError) {
      SB_FUZZ_CHECK(r.status == http::ParseStatus::kError);
      continue;
    }
    if (first.status == http::ParseStatus::kComplete) {
      SB_FUZZ_CHECK(r.status == http::ParseStatus::kComplete &&
                    sb::fuzz::same_fields(resumed, fresh));
      continue;
    }
    const auto second = http::parse_response_head(data, size, max_head_bytes, scan_from, resumed);
    SB_FUZZ_CHECK(second.status == r.status && second.error == r.error);
    if (r.status == http::ParseStatus::kComplete) {
      SB_FUZZ_CHECK(sb::fuzz::same_fields(resumed, fresh));
      SB_FUZZ_CHECK(resumed.status == fresh.status && resumed.reason == fresh.reason);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const char* data = reinterpret_cast<const char*>(bytes);
  parse_with(data, size, 256);
  parse_with(data, size, 65536);
  return 0;
}
