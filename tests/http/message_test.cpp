#include "http/message.hpp"

#include <gtest/gtest.h>

#include <string>

namespace sb::http {
namespace {

struct Parsed {
  std::string text;
  RequestHead head;
  RequestInfo info;
  RequestError error = RequestError::kNone;
};

// Parses and analyzes a request head (the test owns the bytes the views point into).
std::unique_ptr<Parsed> request(std::string text) {
  auto p = std::make_unique<Parsed>();
  p->text = std::move(text);
  std::size_t scan = 0;
  const auto r = parse_request_head(p->text.data(), p->text.size(), HeadLimits{}, scan, p->head);
  EXPECT_EQ(r.status, ParseStatus::kComplete) << p->text;
  p->error = analyze_request(p->head, p->info);
  return p;
}

RequestError error_of(const std::string& text) { return request(text)->error; }

std::vector<std::string> forwarded(const Parsed& p) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < p.head.field_count; ++i)
    if (!p.info.drop.test(i)) names.emplace_back(p.head.fields[i].name);
  return names;
}

TEST(AnalyzeRequestTest, SplitsPathAndQuery) {
  auto p = request("GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  EXPECT_EQ(p->info.path, "/a/b");
  EXPECT_EQ(p->info.query, "?x=1&y");
  EXPECT_EQ(p->info.method, Method::kGet);
  EXPECT_EQ(p->info.framing, Framing::kNone);
  EXPECT_TRUE(p->info.keep_alive);
}

// Hop-by-hop fields, and those named in Connection, are not forwarded (RFC 9110 7.6.1).
TEST(AnalyzeRequestTest, DropsHopByHopAndConnectionListedFields) {
  auto p = request(
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-secret, keep-alive\r\nKeep-Alive: 5\r\n"
      "Proxy-Connection: x\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Secret: 1\r\nAccept: */*\r\n"
      "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  EXPECT_EQ(forwarded(*p), std::vector<std::string>{"Accept"});
}

TEST(AnalyzeRequestTest, PersistenceByVersionAndConnection) {
  EXPECT_FALSE(request("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")->info.keep_alive);
  EXPECT_FALSE(request("GET / HTTP/1.0\r\n\r\n")->info.keep_alive);
  EXPECT_TRUE(request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")->info.keep_alive);
}

TEST(AnalyzeRequestTest, Framing) {
  auto cl = request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n");
  EXPECT_EQ(cl->info.framing, Framing::kLength);
  EXPECT_EQ(cl->info.content_length, 10u);
  auto zero = request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(zero->info.framing, Framing::kNone);
  auto te = request("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
  EXPECT_EQ(te->info.framing, Framing::kChunked);
}

// Everything ambiguous about the body's length is refused.
TEST(AnalyzeRequestTest, RefusesAmbiguousFraming) {
  EXPECT_EQ(
      error_of(
          "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
      RequestError::kContentLengthAndTe);
  EXPECT_EQ(
      error_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
      RequestError::kBadContentLength);
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n"),
            RequestError::kBadContentLength);
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            RequestError::kBadTransferEncoding);
  EXPECT_EQ(error_of("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
                     "chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestError::kBadTransferEncoding);
  EXPECT_EQ(error_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            RequestError::kBadTransferEncoding);
  EXPECT_EQ(status_for(RequestError::kBadTransferEncoding), 501);
  EXPECT_EQ(status_for(RequestError::kContentLengthAndTe), 400);
}

TEST(AnalyzeRequestTest, HostRules) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\n\r\n"), RequestError::kMissingHost);
  EXPECT_EQ(error_of("GET / HTTP/1.0\r\n\r\n"), RequestError::kNone);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), RequestError::kDuplicateHost);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), RequestError::kBadHost);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"), RequestError::kBadHost);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), RequestError::kNone);
}

TEST(AnalyzeRequestTest, TargetForms) {
  EXPECT_EQ(error_of("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), RequestError::kNone);
  EXPECT_EQ(error_of("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), RequestError::kBadTarget);
  EXPECT_EQ(error_of("GET x/y HTTP/1.1\r\nHost: h\r\n\r\n"), RequestError::kBadTarget);
  // Authority-form is CONNECT's, which is not proxied.
  EXPECT_EQ(error_of("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), RequestError::kBadTarget);
}

// Issue 10: absolute-form (RFC 9112 section 3.2.2) is routed like origin-form: the path and
// query come from the URL, the host from its authority, whatever the Host field says.
TEST(AnalyzeRequestTest, AbsoluteFormTakesHostFromAuthority) {
  auto p = request("GET http://api.example:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  EXPECT_EQ(p->info.path, "/a/b");
  EXPECT_EQ(p->info.query, "?x=1");
  EXPECT_EQ(p->info.host, "api.example:8080");
  EXPECT_TRUE(p->info.drop.test(0));  // the Host field is not forwarded as it came
  auto s = request("GET HTTPS://[::1]:8443/ HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n");
  ASSERT_EQ(s->error, RequestError::kNone);
  EXPECT_EQ(s->info.host, "[::1]:8443");
  EXPECT_EQ(s->info.path, "/");
  // An empty path is "/" (RFC 9112 section 3.2.1), but "*" for OPTIONS (section 3.2.4).
  auto e = request("GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(e->error, RequestError::kNone);
  EXPECT_EQ(e->info.path, "/");
  EXPECT_EQ(e->info.query, "?q");
  auto o = request("OPTIONS http://h HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(o->error, RequestError::kNone);
  EXPECT_EQ(o->info.path, "*");
  // HTTP/1.0 needs no Host field.
  auto old = request("GET http://h/x HTTP/1.0\r\n\r\n");
  ASSERT_EQ(old->error, RequestError::kNone);
  EXPECT_EQ(old->info.host, "h");
}

// Only http and https URLs with a host (and no userinfo) are accepted; the Host field rules
// still apply (RFC 9112 section 3.2).
TEST(AnalyzeRequestTest, AbsoluteFormRefusals) {
  for (const char* target : {"ftp://h/x", "http:/h/x", "http:h/x", "http://", "http:///x",
                             "http://u@h/x", "http://:80/x", "httpx://h/x", "ws://h/x", "//h/x"}) {
    const std::string text = std::string("GET ") + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    auto p = request(text);
    if (std::string_view(target) == "//h/x") {  // origin-form with an empty first segment
      EXPECT_EQ(p->error, RequestError::kNone);
      continue;
    }
    EXPECT_EQ(p->error, RequestError::kBadTarget) << target;
  }
  EXPECT_EQ(error_of("GET http://h/x HTTP/1.1\r\n\r\n"), RequestError::kMissingHost);
  EXPECT_EQ(error_of("GET http://h/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            RequestError::kDuplicateHost);
}

// Parses, analyzes and normalises the path of a request head, as the server does.
std::unique_ptr<Parsed> normalized(std::string text, bool merge_slashes = false) {
  auto p = request(std::move(text));
  if (p->error == RequestError::kNone)
    p->error = normalize_request_path(p->text.data(), p->head, p->info, merge_slashes);
  return p;
}

// Issue 10: the normalised path replaces the raw one in the buffer: info.path, the query
// after it and head.target all show it (so routing, the access log and the upstream agree).
TEST(NormalizeRequestPathTest, RewritesPathInPlaceAndKeepsQuery) {
  auto p = normalized("GET /public/%2e%2e/admin/%7e/x%3a?q=%2e%2e/y HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  EXPECT_EQ(p->info.path, "/admin/~/x%3A");
  EXPECT_EQ(p->info.query, "?q=%2e%2e/y");
  EXPECT_EQ(p->head.target, "/admin/~/x%3A?q=%2e%2e/y");
  EXPECT_EQ(p->info.path.data(), p->head.target.data());
  EXPECT_EQ(p->info.query.data(), p->info.path.data() + p->info.path.size());
  EXPECT_EQ(p->head.fields[0].value, "h");  // the fields are where they were
  auto a = normalized("GET http://h/a/./b/../c HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(a->error, RequestError::kNone);
  EXPECT_EQ(a->info.path, "/a/c");
  EXPECT_EQ(a->head.target, "http://h/a/c");
}

// A path already normal is left exactly where it is.
TEST(NormalizeRequestPathTest, NormalPathIsUntouched) {
  auto p = normalized("GET /a/b%20c/.d/..e/?x=/../ HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  EXPECT_EQ(p->info.path, "/a/b%20c/.d/..e/");
  EXPECT_EQ(p->head.target, "/a/b%20c/.d/..e/?x=/../");
  auto o = normalized("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_EQ(o->error, RequestError::kNone);
  EXPECT_EQ(o->info.path, "*");
}

TEST(NormalizeRequestPathTest, MergesSlashesWhenAsked) {
  EXPECT_EQ(normalized("GET /a//b/ HTTP/1.1\r\nHost: h\r\n\r\n")->info.path, "/a//b/");
  EXPECT_EQ(normalized("GET /a//b/ HTTP/1.1\r\nHost: h\r\n\r\n", true)->info.path, "/a/b/");
}

// Each path that cannot be normalised has its own error, and every one answers 400.
TEST(NormalizeRequestPathTest, RefusalsAre400) {
  const std::pair<const char*, RequestError> cases[] = {
      {"/../a", RequestError::kPathAboveRoot},      {"/a/../..", RequestError::kPathAboveRoot},
      {"/a%2Fb", RequestError::kEscapedSlash},      {"/a%2fb", RequestError::kEscapedSlash},
      {"/a%5Cb", RequestError::kEscapedSlash},      {"/a\\b", RequestError::kBackslashInPath},
      {"/a%zz", RequestError::kBadPercentEncoding}, {"/a%", RequestError::kBadPercentEncoding},
      {"/a%4", RequestError::kBadPercentEncoding},  {"/a%00b", RequestError::kNulInPath},
  };
  for (const auto& [path, want] : cases) {
    auto p = normalized(std::string("GET ") + path + "?q HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(p->error, want) << path;
    EXPECT_EQ(status_for(p->error), 400) << path;
  }
}

TEST(AnalyzeRequestTest, ExpectAndUpgrade) {
  EXPECT_TRUE(
      request("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
          ->info.expect_continue);
  EXPECT_EQ(error_of("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"),
            RequestError::kUnsupportedExpect);
  EXPECT_EQ(status_for(RequestError::kUnsupportedExpect), 417);
  EXPECT_EQ(
      error_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
      RequestError::kUpgrade);
}

// Deadline fields are taken out (the gateway forwards reduced ones); two of one kind are
// ambiguous; Idempotency-Key is noticed and forwarded.
TEST(AnalyzeRequestTest, DeadlineAndIdempotencyFields) {
  auto p = request(
      "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Timeout-Ms: 250\r\ngrpc-timeout: 1S\r\n"
      "Idempotency-Key: k1\r\nX-Other: o\r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  EXPECT_TRUE(p->info.has_request_timeout);
  EXPECT_EQ(p->info.request_timeout_ms, "250");
  EXPECT_TRUE(p->info.has_grpc_timeout);
  EXPECT_EQ(p->info.grpc_timeout, "1S");
  EXPECT_TRUE(p->info.idempotency_key);
  EXPECT_EQ(forwarded(*p), (std::vector<std::string>{"Idempotency-Key", "X-Other"}));
  auto empty = request("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Timeout-Ms:\r\n\r\n");
  EXPECT_TRUE(empty->info.has_request_timeout);  // present and empty: the gateway refuses it
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Timeout-Ms: 1\r\n"
                     "x-request-timeout-ms: 2\r\n\r\n"),
            RequestError::kDuplicateTimeout);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: h\r\ngrpc-timeout: 1S\r\nGRPC-Timeout: 1S\r\n\r\n"),
            RequestError::kDuplicateTimeout);
  EXPECT_EQ(status_for(RequestError::kDuplicateTimeout), 400);
  EXPECT_FALSE(request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")->info.has_request_timeout);
}

// A valid X-Correlation-ID wins; X-Request-ID is the fallback; invalid ones are ignored.
TEST(AnalyzeRequestTest, CorrelationIdRules) {
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: r1\r\nX-Correlation-ID: c1\r\n\r\n")
                ->info.correlation_id,
            "c1");
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: r1\r\n\r\n")->info.correlation_id,
            "r1");
  EXPECT_EQ(
      request("GET / HTTP/1.1\r\nHost: h\r\nX-Correlation-ID: bad id\r\nX-Request-ID: r1\r\n\r\n")
          ->info.correlation_id,
      "r1");
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Correlation-ID: " + std::string(129, 'a') +
                    "\r\n\r\n")
                ->info.correlation_id,
            "");
  // The incoming X-Correlation-ID is not forwarded as-is: the gateway writes its own.
  auto p = request("GET / HTTP/1.1\r\nHost: h\r\nX-Correlation-ID: c1\r\n\r\n");
  EXPECT_TRUE(forwarded(*p).empty());
}

struct ParsedResponse {
  std::string text;
  ResponseHead head;
  ResponseInfo info;
  ResponseError error = ResponseError::kNone;
};

std::unique_ptr<ParsedResponse> response(std::string text, Method m = Method::kGet) {
  auto p = std::make_unique<ParsedResponse>();
  p->text = std::move(text);
  std::size_t scan = 0;
  EXPECT_EQ(parse_response_head(p->text.data(), p->text.size(), 65536, scan, p->head).status,
            ParseStatus::kComplete);
  p->error = analyze_response(p->head, m, p->info);
  return p;
}

TEST(AnalyzeResponseTest, FramingRules) {
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")->info.framing,
            Framing::kLength);
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")->info.framing,
            Framing::kChunked);
  auto until_close = response("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(until_close->info.framing, Framing::kUntilClose);
  EXPECT_FALSE(until_close->info.keep_alive);
  EXPECT_EQ(response("HTTP/1.1 204 No Content\r\n\r\n")->info.framing, Framing::kNone);
  EXPECT_EQ(response("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")->info.framing,
            Framing::kNone);
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::kHead)->info.framing,
            Framing::kNone);
  EXPECT_FALSE(response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")->info.keep_alive);
  EXPECT_FALSE(response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n")
                   ->info.keep_alive);
}

TEST(AnalyzeResponseTest, RefusesAmbiguousFraming) {
  EXPECT_EQ(
      response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")->error,
      ResponseError::kContentLengthAndTe);
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")->error,
            ResponseError::kBadContentLength);
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")->error,
            ResponseError::kBadTransferEncoding);
  EXPECT_EQ(response("HTTP/1.1 101 Switching Protocols\r\n\r\n")->error,
            ResponseError::kUnexpectedUpgrade);
}

TEST(HeadWriterTest, WritesStatusLineAndFields) {
  HeadBuffer out(8);  // small, so that writing grows it
  out.append("garbage");
  HeadWriter w(out);
  w.status_line(503, "Service Unavailable")
      .field("A", "b")
      .field("Content-Length", std::uint64_t{1234});
  w.end();
  EXPECT_EQ(out.view(), "HTTP/1.1 503 Service Unavailable\r\nA: b\r\nContent-Length: 1234\r\n\r\n");
}

// Kept fields go out as the lines they came in, runs of them in one copy; dropped ones
// (hop-by-hop, rewritten) leave gaps, whatever their position and whitespace.
TEST(HeadWriterTest, KeptFieldsAreCopiedAsTheyCame) {
  auto p = request(
      "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB:\t two  \r\nConnection: close, X\r\n"
      "X: dropped\r\nC:\r\nKeep-Alive: 5\r\nD: 4 \r\n\r\n");
  ASSERT_EQ(p->error, RequestError::kNone);
  HeadBuffer out;
  HeadWriter w(out);
  w.kept_fields(p->head, p->info.drop);
  EXPECT_EQ(out.view(), "A: 1\r\nB:\t two  \r\nC:\r\nD: 4 \r\n");
  HeadBuffer none;
  HeadWriter w2(none);
  auto all_dropped = request("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  w2.kept_fields(all_dropped->head, all_dropped->info.drop);
  EXPECT_EQ(none.view(), "");
}

TEST(HeadBufferTest, InsertAndGrow) {
  HeadBuffer b(4);
  b.append("bc");
  b.insert(0, 1, 'a');
  b += std::string_view("defgh");
  b += 'i';
  EXPECT_EQ(b.view(), "abcdefghi");
  EXPECT_EQ(b.back(), 'i');
  b.clear();
  EXPECT_TRUE(b.empty());
}

TEST(ChunkSizeTest, Formats) {
  char buf[20];
  EXPECT_EQ(std::string(buf, format_chunk_size(0, buf)), "0\r\n");
  EXPECT_EQ(std::string(buf, format_chunk_size(0x1a2b, buf)), "1a2b\r\n");
  EXPECT_EQ(std::string(buf, format_chunk_size(~0ull, buf)), "ffffffffffffffff\r\n");
}

}  // namespace
}  // namespace sb::http
