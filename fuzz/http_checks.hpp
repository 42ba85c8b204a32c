// Checks shared by the HTTP fuzz targets: field invariants of a parsed head, and the
// ChunkedDecoder driven piecewise against the same input decoded in one go.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/head_buffer.hpp"
#include "http/message.hpp"
#include "http/parser.hpp"

namespace sb::fuzz {

inline bool is_value_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

/// Every field of a complete head: a token name, a value of field-value bytes with no
/// surrounding whitespace, both inside the head.
template <class Head>
void check_fields(const Head& head, const char* data, std::size_t max_fields) {
  SB_FUZZ_CHECK(head.field_count <= max_fields && head.field_count <= http::kMaxFields);
  for (std::size_t i = 0; i < head.field_count; ++i) {
    const http::Field& f = head.fields[i];
    SB_FUZZ_CHECK(http::is_token(f.name));
    SB_FUZZ_CHECK(within(f.name, data, head.head_size));
    SB_FUZZ_CHECK(within(f.value, data, head.head_size));
    for (char c : f.value) SB_FUZZ_CHECK(is_value_byte(c));
    if (!f.value.empty()) {
      SB_FUZZ_CHECK(f.value.front() != ' ' && f.value.front() != '\t');
      SB_FUZZ_CHECK(f.value.back() != ' ' && f.value.back() != '\t');
    }
  }
}

/// The kept fields, written as the lines they came in (HeadWriter::kept_fields), parse
/// back to exactly those fields, in order: the raw copy forwards nothing else.
template <class Head>
void check_kept_fields(const Head& head, const std::bitset<http::kMaxFields>& drop) {
  http::HeadBuffer out;
  http::HeadWriter w(out);
  w.raw("GET / HTTP/1.1\r\n");
  w.kept_fields(head, drop);
  w.end();
  http::RequestHead again;
  std::size_t scan = 0;
  const http::HeadLimits limits{out.size(), out.size() + 1, http::kMaxFields};
  const auto r = http::parse_request_head(out.data(), out.size(), limits, scan, again);
  SB_FUZZ_CHECK(r.status == http::ParseStatus::kComplete && again.head_size == out.size());
  std::size_t k = 0;
  for (std::size_t i = 0; i < head.field_count; ++i) {
    if (drop.test(i)) continue;
    SB_FUZZ_CHECK(k < again.field_count);
    SB_FUZZ_CHECK(again.fields[k].name == head.fields[i].name);
    SB_FUZZ_CHECK(again.fields[k].value == head.fields[i].value);
    ++k;
  }
  SB_FUZZ_CHECK(k == again.field_count);
}

/// Two heads parsed from the same bytes are the same (views included).
template <class Head>
bool same_fields(const Head& a, const Head& b) {
  if (a.field_count != b.field_count || a.head_size != b.head_size) return false;
  for (std::size_t i = 0; i < a.field_count; ++i) {
    if (a.fields[i].name.data() != b.fields[i].name.data() ||
        a.fields[i].name.size() != b.fields[i].name.size() ||
        a.fields[i].value.data() != b.fields[i].value.data() ||
        a.fields[i].value.size() != b.fields[i].value.size())
      return false;
  }
  return true;
}

struct ChunkedOutcome {
  http::ChunkedDecoder::Status status = http::ChunkedDecoder::Status::kNeedMore;
  std::string body;
  std::size_t consumed = 0;
};

/// Decodes [data, data + size) as a chunked body. `piece` > 0 makes the input arrive in
/// pieces of 1..`piece` bytes (sizes taken from the data itself), as from a socket: the
/// caller keeps unconsumed bytes and appends the next piece to them.
inline ChunkedOutcome decode_chunked(const char* data, std::size_t size, std::size_t piece) {
  using Status = http::ChunkedDecoder::Status;
  http::ChunkedDecoder decoder;
  ChunkedOutcome out;
  std::size_t pos = 0;  // first unconsumed byte
  std::size_t avail = piece == 0 ? size : 0;
  std::size_t k = 0;
  auto grow = [&] {
    const std::size_t step = 1 + static_cast<unsigned char>(data[k++ % size]) % piece;
    avail = avail + step > size ? size : avail + step;
  };
  if (size == 0) return out;
  if (piece != 0) grow();
  for (int guard = 0;; ++guard) {
    SB_FUZZ_CHECK(guard < 1'000'000);  // every step makes progress or asks for more
    const std::size_t n = avail - pos;
    const auto s = decoder.step(data + pos, n);
    SB_FUZZ_CHECK(s.consumed <= n);
    if (s.status == Status::kData) {
      SB_FUZZ_CHECK(!s.data.empty());
      SB_FUZZ_CHECK(within(s.data, data + pos, s.consumed));
      SB_FUZZ_CHECK(s.data.data() + s.data.size() == data + pos + s.consumed);
      out.body.append(s.data);
    } else {
      SB_FUZZ_CHECK(s.data.empty());
    }
    pos += s.consumed;
    SB_FUZZ_CHECK(decoder.body_bytes() == out.body.size());
    SB_FUZZ_CHECK(decoder.body_bytes() <= size);
    if (s.status == Status::kData) continue;
    if (s.status == Status::kNeedMore && avail < size) {
      grow();
      continue;
    }
    out.status = s.status;
    break;
  }
  SB_FUZZ_CHECK(decoder.done() == (out.status == Status::kDone));
  out.consumed = pos;
  return out;
}

/// The decoder gives the same body, outcome and consumed count however the input arrives.
inline void check_chunked(const char* data, std::size_t size) {
  const ChunkedOutcome whole = decode_chunked(data, size, 0);
  for (std::size_t piece : {1u, 3u, 7u}) {
    const ChunkedOutcome parts = decode_chunked(data, size, piece);
    SB_FUZZ_CHECK(parts.status == whole.status);
    SB_FUZZ_CHECK(parts.body == whole.body);
    if (whole.status != http::ChunkedDecoder::Status::kError)
      SB_FUZZ_CHECK(parts.consumed == whole.consumed);
  }
}

}  // namespace sb::fuzz
