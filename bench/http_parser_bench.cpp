// Request/response head parsing and chunked decoding on realistic messages. Each parser
// benchmark has a Beast (boost 1.81) baseline on the same bytes, so a noisy machine still
// gives a meaningful ratio.
#include <benchmark/benchmark.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "http/message.hpp"
#include "http/parser.hpp"
#include "http/path.hpp"

namespace {

namespace http = sb::http;
namespace bhttp = boost::beast::http;

// curl 7.88 with no options: 3 fields.
constexpr std::string_view kCurlGet =
    "GET /api/v1/users/42 HTTP/1.1\r\n"
    "Host: gateway.example.com\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

// A Chrome navigation through the gateway: 12 fields, ~700 bytes.
constexpr std::string_view kBrowserGet =
    "GET /api/v1/dashboard/widgets?include=stats&limit=20 HTTP/1.1\r\n"
    "Host: app.example.com\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "*/*;q=0.8\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Referer: https://app.example.com/dashboard\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Cookie: session=3f9a1c7e5b2d4a6f8e0c1b3d5f7a9c2e; theme=dark; "
    "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000\r\n"
    "\r\n";

// A JSON API call from python-requests with a body announced by Content-Length.
constexpr std::string_view kPostWithLength =
    "POST /llm/v1/chat/completions HTTP/1.1\r\n"
    "Host: gateway.example.com\r\n"
    "User-Agent: python-requests/2.31.0\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: application/json\r\n"
    "Connection: keep-alive\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 348\r\n"
    "X-Correlation-ID: 0b9f5c3e-8d2a-4c1b-9f3e-5a6b7c8d9e0f\r\n"
    "\r\n";

// nginx 1.22 serving a JSON document.
constexpr std::string_view kNginxOk =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Mon, 15 Jan 2024 10:00:00 GMT\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: 1234\r\n"
    "Connection: keep-alive\r\n"
    "Vary: Accept-Encoding\r\n"
    "ETag: \"65a4f2b0-4d2\"\r\n"
    "Cache-Control: no-cache\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "\r\n";

void set_counters(benchmark::State& state, std::size_t bytes_per_item) {
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes_per_item));
  state.counters["head_bytes"] = static_cast<double>(bytes_per_item);
}

// parse_request_head alone: scanning, request line, field splitting.
void bm_parse_request_head(benchmark::State& state, std::string_view head) {
  const http::HeadLimits limits{};
  http::RequestHead out;
  for (auto _ : state) {
    std::size_t scan_from = 0;
    auto r = http::parse_request_head(head.data(), head.size(), limits, scan_from, out);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out.field_count);
    if (r.status != http::ParseStatus::kComplete) state.SkipWithError("head did not parse");
  }
  set_counters(state, head.size());
}
BENCHMARK_CAPTURE(bm_parse_request_head, curl_get, kCurlGet);
BENCHMARK_CAPTURE(bm_parse_request_head, browser_get, kBrowserGet);
BENCHMARK_CAPTURE(bm_parse_request_head, post_content_length, kPostWithLength);

// What the server does per request: parse_request_head, then analyze_request.
void bm_parse_and_analyze_request(benchmark::State& state, std::string_view head) {
  const http::HeadLimits limits{};
  http::RequestHead out;
  http::RequestInfo info;
  for (auto _ : state) {
    std::size_t scan_from = 0;
    auto r = http::parse_request_head(head.data(), head.size(), limits, scan_from, out);
    auto e = http::analyze_request(out, info);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(info);
    if (r.status != http::ParseStatus::kComplete || e != http::RequestError::kNone)
      state.SkipWithError("head refused");
  }
  set_counters(state, head.size());
}
BENCHMARK_CAPTURE(bm_parse_and_analyze_request, curl_get, kCurlGet);
BENCHMARK_CAPTURE(bm_parse_and_analyze_request, browser_get, kBrowserGet);
BENCHMARK_CAPTURE(bm_parse_and_analyze_request, post_content_length, kPostWithLength);

// The same plus normalize_request_path, as the server runs it: on these (already normal)
// paths, what normalisation adds to every request is its one scan.
void bm_parse_analyze_normalize_request(benchmark::State& state, std::string_view head) {
  const http::HeadLimits limits{};
  std::string buffer(head);
  http::RequestHead out;
  http::RequestInfo info;
  for (auto _ : state) {
    std::size_t scan_from = 0;
    auto r = http::parse_request_head(buffer.data(), buffer.size(), limits, scan_from, out);
    auto e = http::analyze_request(out, info);
    if (e == http::RequestError::kNone)
      e = http::normalize_request_path(buffer.data(), out, info, false);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(info);
    if (r.status != http::ParseStatus::kComplete || e != http::RequestError::kNone)
      state.SkipWithError("head refused");
  }
  set_counters(state, head.size());
}
BENCHMARK_CAPTURE(bm_parse_analyze_normalize_request, curl_get, kCurlGet);
BENCHMARK_CAPTURE(bm_parse_analyze_normalize_request, browser_get, kBrowserGet);

// path_is_normal alone: the one scan every request pays.
void bm_path_is_normal(benchmark::State& state, std::string_view path) {
  for (auto _ : state) {
    bool normal = http::path_is_normal(path, false);
    benchmark::DoNotOptimize(normal);
    if (!normal) state.SkipWithError("path is not normal");
  }
  set_counters(state, path.size());
}
BENCHMARK_CAPTURE(bm_path_is_normal, short_16B, std::string_view("/api/v1/users/42"));
BENCHMARK_CAPTURE(bm_path_is_normal, escaped_55B,
                  std::string_view("/api/v1/files/reports%202024/q3%20summary%20final.pdf"));

// normalize_path on paths that must be rewritten (each iteration copies the path into a
// fresh buffer first; the copy is part of the time).
void bm_normalize_path(benchmark::State& state, std::string_view path) {
  char buf[128];
  for (auto _ : state) {
    std::memcpy(buf, path.data(), path.size());
    std::size_t size = path.size();
    auto e = http::normalize_path(buf, size, false);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(buf);
    if (e != http::PathError::kNone) state.SkipWithError("path refused");
  }
  set_counters(state, path.size());
}
BENCHMARK_CAPTURE(bm_normalize_path, dot_segments_34B,
                  std::string_view("/public/../admin/./secret/%2e%2e/x"));
BENCHMARK_CAPTURE(bm_normalize_path, escapes_35B,
                  std::string_view("/%7euser/docs/%41%42%43/file%2dname"));

// Baseline: Beast's request_parser<empty_body> on the same head (it copies the fields into
// a basic_fields container, so it also allocates).
void bm_beast_request_parser(benchmark::State& state, std::string_view head) {
  for (auto _ : state) {
    bhttp::request_parser<bhttp::empty_body> parser;
    parser.header_limit(32768);
    boost::beast::error_code ec;
    const auto n = parser.put(boost::asio::buffer(head.data(), head.size()), ec);
    benchmark::DoNotOptimize(n);
    if (ec || !parser.is_header_done()) state.SkipWithError("beast refused the head");
  }
  set_counters(state, head.size());
}
BENCHMARK_CAPTURE(bm_beast_request_parser, curl_get, kCurlGet);
BENCHMARK_CAPTURE(bm_beast_request_parser, browser_get, kBrowserGet);
BENCHMARK_CAPTURE(bm_beast_request_parser, post_content_length, kPostWithLength);

// parse_response_head + analyze_response on an upstream's 200 to a GET.
void bm_parse_and_analyze_response(benchmark::State& state, std::string_view head) {
  http::ResponseHead out;
  http::ResponseInfo info;
  for (auto _ : state) {
    std::size_t scan_from = 0;
    auto r = http::parse_response_head(head.data(), head.size(), 65536, scan_from, out);
    auto e = http::analyze_response(out, http::Method::kGet, info);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(e);
    benchmark::DoNotOptimize(info);
    if (r.status != http::ParseStatus::kComplete || e != http::ResponseError::kNone)
      state.SkipWithError("head refused");
  }
  set_counters(state, head.size());
}
BENCHMARK_CAPTURE(bm_parse_and_analyze_response, nginx_200, kNginxOk);

// Baseline: Beast's response_parser<empty_body> on the same head.
void bm_beast_response_parser(benchmark::State& state, std::string_view head) {
  for (auto _ : state) {
    bhttp::response_parser<bhttp::empty_body> parser;
    parser.header_limit(65536);
    boost::beast::error_code ec;
    const auto n = parser.put(boost::asio::buffer(head.data(), head.size()), ec);
    benchmark::DoNotOptimize(n);
    if (ec || !parser.is_header_done()) state.SkipWithError("beast refused the head");
  }
  set_counters(state, head.size());
}
BENCHMARK_CAPTURE(bm_beast_response_parser, nginx_200, kNginxOk);

// A 16 KiB body chunk-encoded in `chunks` equal chunks, then "0\r\n\r\n".
std::string chunked_body(std::size_t body_size, std::size_t chunks) {
  std::string out;
  const std::size_t per = body_size / chunks;
  for (std::size_t i = 0; i < chunks; ++i) {
    char line[24];
    const int n = std::snprintf(line, sizeof line, "%zx\r\n", per);
    out.append(line, static_cast<std::size_t>(n));
    out.append(per, static_cast<char>('a' + i % 26));
    out.append("\r\n");
  }
  out.append("0\r\n\r\n");
  return out;
}

// ChunkedDecoder over a whole 16 KiB body held in one buffer; bytes/s counts body bytes.
void bm_chunked_decode(benchmark::State& state) {
  constexpr std::size_t kBody = 16 * 1024;
  const auto chunks = static_cast<std::size_t>(state.range(0));
  const std::string encoded = chunked_body(kBody, chunks);
  for (auto _ : state) {
    http::ChunkedDecoder decoder;
    const char* p = encoded.data();
    std::size_t n = encoded.size();
    for (;;) {
      const auto s = decoder.step(p, n);
      p += s.consumed;
      n -= s.consumed;
      if (s.status != http::ChunkedDecoder::Status::kData) break;
      benchmark::DoNotOptimize(s.data.data());
    }
    if (!decoder.done() || decoder.body_bytes() != kBody) state.SkipWithError("decode failed");
  }
  // Items are chunks: the decoder hands out views, so its cost follows the chunk count.
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(chunks));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(kBody));
  state.counters["encoded_bytes"] = static_cast<double>(encoded.size());
}
BENCHMARK(bm_chunked_decode)->RangeMultiplier(4)->Range(1, 1024);

}  // namespace
