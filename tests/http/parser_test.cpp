#include "http/parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sb::http {
namespace {

const HeadLimits kLimits{.max_request_line = 64, .max_head_bytes = 256, .max_fields = 8};

ParseResult parse(const std::string& s, RequestHead& head, const HeadLimits& lim = kLimits) {
  std::size_t scan = 0;
  return parse_request_head(s.data(), s.size(), lim, scan, head);
}

HeadError error_of(const std::string& s) {
  RequestHead head;
  const auto r = parse(s, head);
  EXPECT_EQ(r.status, ParseStatus::kError) << s;
  return r.error;
}

// A well-formed request yields views into the buffer.
TEST(RequestHeadTest, ParsesRequestLineAndFields) {
  const std::string s =
      "GET /a/b?c=d HTTP/1.1\r\nHost: example\r\nX-Y:  v w \t\r\nEmpty:\r\n\r\nBODY";
  RequestHead head;
  ASSERT_EQ(parse(s, head).status, ParseStatus::kComplete);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/a/b?c=d");
  EXPECT_EQ(head.version_minor, 1);
  ASSERT_EQ(head.field_count, 3u);
  EXPECT_EQ(head.fields[0].name, "Host");
  EXPECT_EQ(head.fields[0].value, "example");
  EXPECT_EQ(head.fields[1].value, "v w");  // surrounding whitespace trimmed, inner kept
  EXPECT_EQ(head.fields[2].value, "");
  EXPECT_EQ(head.head_size, s.size() - 4);
  EXPECT_GE(head.method.data(), s.data());
  EXPECT_LT(head.method.data(), s.data() + s.size());
}

// Every split point of a valid head gives kIncomplete before the end and the same result at
// the end, however the bytes arrive (the scan position is carried between calls).
TEST(RequestHeadTest, AnySplitGivesSameResult) {
  const std::string s = "POST /x HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\nA: b\r\n\r\nabc";
  const std::size_t head_len = s.size() - 3;
  for (std::size_t cut = 0; cut < head_len; ++cut) {
    RequestHead head;
    std::size_t scan = 0;
    if (cut > 0) {
      const auto r1 = parse_request_head(s.data(), cut, kLimits, scan, head);
      ASSERT_EQ(r1.status, ParseStatus::kIncomplete) << "cut " << cut;
    }
    const auto r2 = parse_request_head(s.data(), s.size(), kLimits, scan, head);
    ASSERT_EQ(r2.status, ParseStatus::kComplete) << "cut " << cut;
    EXPECT_EQ(head.head_size, head_len);
    EXPECT_EQ(head.version_minor, 0);
    EXPECT_EQ(head.field_count, 3u);
  }
}

// A head that arrives in two parts names the same, first, error as the whole head does,
// even when a later line has a bare LF (found first when only the rest is scanned). Found
// by the request fuzzer.
TEST(RequestHeadTest, SplitHeadNamesTheFirstError) {
  const std::string s = "POST / HTTP/1.0\r\nHost: h\r\nNoColon\r\nA: b\nC: d\r\n\r\n";
  RequestHead whole;
  std::size_t scan = 0;
  const auto r = parse_request_head(s.data(), s.size(), kLimits, scan, whole);
  ASSERT_EQ(r.error, HeadError::kBadField);
  for (std::size_t cut = 1; cut < s.size(); ++cut) {
    RequestHead head;
    std::size_t from = 0;
    const auto r1 = parse_request_head(s.data(), cut, kLimits, from, head);
    if (r1.status == ParseStatus::kError) {
      EXPECT_EQ(r1.error, HeadError::kBadField) << "cut " << cut;
      continue;
    }
    const auto r2 = parse_request_head(s.data(), s.size(), kLimits, from, head);
    EXPECT_EQ(r2.error, HeadError::kBadField) << "cut " << cut;
  }
}

// Only whole lines are judged: a bad byte in the unfinished last line waits for its LF
// (then it is refused), so the result never depends on how the head was split. Found by
// the request fuzzer.
TEST(RequestHeadTest, UnfinishedLineIsJudgedWhenWhole) {
  const std::string partial = std::string("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b", 31);
  RequestHead head;
  std::size_t scan = 0;
  EXPECT_EQ(parse_request_head(partial.data(), partial.size(), kLimits, scan, head).status,
            ParseStatus::kIncomplete);
  const std::string whole = partial + "\r\n\r\n";
  EXPECT_EQ(parse_request_head(whole.data(), whole.size(), kLimits, scan, head).error,
            HeadError::kBadField);
}

// Byte-by-byte arrival parses too.
TEST(RequestHeadTest, ByteByByte) {
  const std::string s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestHead head;
  std::size_t scan = 0;
  for (std::size_t n = 1; n < s.size(); ++n)
    ASSERT_EQ(parse_request_head(s.data(), n, kLimits, scan, head).status,
              ParseStatus::kIncomplete);
  EXPECT_EQ(parse_request_head(s.data(), s.size(), kLimits, scan, head).status,
            ParseStatus::kComplete);
}

// The request line's pass marks a target with no '%', '\\', "/." or "//" as plain (its
// path needs no normalising). Each odd piece at every offset of targets from 1 to 40 bytes
// (the SSE2 steps and the byte-by-byte tail, and the seam between them) clears it, and a
// target without one keeps it.
TEST(RequestHeadTest, PlainTargetAtEveryOffset) {
  const HeadLimits lim{.max_request_line = 256, .max_head_bytes = 1024, .max_fields = 8};
  const auto plain_of = [&](const std::string& target) {
    const std::string s = "GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestHead head;
    EXPECT_EQ(parse(s, head, lim).status, ParseStatus::kComplete) << target;
    EXPECT_EQ(head.target, target);
    return head.target_plain;
  };
  for (std::size_t len = 1; len <= 40; ++len) {
    std::string base(len, 'a');
    base[0] = '/';
    EXPECT_TRUE(plain_of(base)) << base;
    for (const std::string odd : {"%", "\\", "/.", "//"}) {
      for (std::size_t at = 1; at + odd.size() <= len; ++at) {
        std::string t = base;
        t.replace(at, odd.size(), odd);
        EXPECT_FALSE(plain_of(t)) << t;
      }
    }
    // Slashes and dots that are not a dot segment's start leave it plain.
    std::string spaced = base;
    for (std::size_t i = 2; i < len; i += 3) spaced[i] = i % 2 == 0 ? '/' : '.';
    const bool odd_in =
        spaced.find("/.") != std::string::npos || spaced.find("//") != std::string::npos;
    EXPECT_EQ(plain_of(spaced), !odd_in) << spaced;
  }
  EXPECT_TRUE(plain_of("/a/"));  // a '/' before the space
  EXPECT_TRUE(plain_of("/a.b/c.d?e=.f"));
  EXPECT_FALSE(plain_of("/a?b=/.c"));           // in the query: plain is only ever conservative
  EXPECT_FALSE(plain_of("http://h/svc/echo"));  // absolute form
}

TEST(RequestHeadTest, RefusesBareLf) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\nHost: h\r\n\r\n"), HeadError::kBareLf);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost: h\n\r\n"), HeadError::kBareLf);
}

TEST(RequestHeadTest, RefusesObsFold) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), HeadError::kObsFold);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\n\tA: b\r\n\r\n"), HeadError::kObsFold);
}

TEST(RequestHeadTest, RefusesWhitespaceBeforeColonAndBadNames) {
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), HeadError::kBadField);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nHo(st: h\r\n\r\n"), HeadError::kBadField);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\n: h\r\n\r\n"), HeadError::kBadField);
  EXPECT_EQ(error_of("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), HeadError::kBadField);
}

TEST(RequestHeadTest, RefusesControlBytesInValues) {
  EXPECT_EQ(error_of(std::string("GET / HTTP/1.1\r\nA: b\x01"
                                 "c\r\n\r\n")),
            HeadError::kBadField);
  EXPECT_EQ(error_of(std::string("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n")), HeadError::kBadField);
  EXPECT_EQ(error_of(std::string("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n")), HeadError::kBadField);
  EXPECT_EQ(error_of(std::string("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 26)), HeadError::kBadField);
  // obs-text (bytes >= 0x80) is allowed in values.
  RequestHead head;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: caf\xc3\xa9\r\n\r\n", head).status, ParseStatus::kComplete);
}

TEST(RequestHeadTest, RefusesMalformedRequestLines) {
  EXPECT_EQ(error_of("GET  / HTTP/1.1\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("GET / HTTP/1.1 \r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("GET /\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("G(T / HTTP/1.1\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("GET /a\x01 HTTP/1.1\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("GET / http/1.1\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("GET / HTTP/2.0\r\n\r\n"), HeadError::kBadVersion);
  EXPECT_EQ(error_of("GET / HTTP/1.2\r\n\r\n"), HeadError::kBadVersion);
}

// The request-line limit answers 414 even before the head is complete, and not one byte
// before the limit.
// Issue 10: up to four empty lines before the request line are skipped (RFC 9112 section
// 2.2: a client may send a CRLF after a body); the head then starts after them.
TEST(RequestHeadTest, LeadingEmptyLinesAreSkipped) {
  for (const std::string lead : {"\r\n", "\r\n\r\n", "\r\n\r\n\r\n\r\n"}) {
    const std::string s = lead + "GET /x HTTP/1.1\r\nHost: h\r\n\r\nBODY";
    RequestHead head;
    ASSERT_EQ(parse(s, head).status, ParseStatus::kComplete) << lead.size();
    EXPECT_EQ(head.method, "GET");
    EXPECT_EQ(head.method.data(), s.data() + lead.size());
    EXPECT_EQ(head.target, "/x");
    ASSERT_EQ(head.field_count, 1u);
    EXPECT_EQ(head.head_size, s.size() - 4);  // offsets stay those of the buffer
    // And split anywhere.
    for (std::size_t cut = 1; cut < s.size() - 4; ++cut) {
      RequestHead h;
      std::size_t scan = 0;
      ASSERT_EQ(parse_request_head(s.data(), cut, kLimits, scan, h).status,
                ParseStatus::kIncomplete)
          << "cut " << cut;
      ASSERT_EQ(parse_request_head(s.data(), s.size(), kLimits, scan, h).status,
                ParseStatus::kComplete)
          << "cut " << cut;
      EXPECT_EQ(h.head_size, s.size() - 4);
      EXPECT_EQ(h.target, "/x");
    }
  }
}

// More than four empty lines, or an empty line ended by a bare LF, is refused.
TEST(RequestHeadTest, LeadingEmptyLinesAreBounded) {
  EXPECT_EQ(error_of("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("\r\n\r\n\r\n\r\n\r\n"), HeadError::kBadRequestLine);
  EXPECT_EQ(error_of("\nGET / HTTP/1.1\r\n\r\n"), HeadError::kBareLf);
  EXPECT_EQ(error_of("\r\n\nGET / HTTP/1.1\r\n\r\n"), HeadError::kBareLf);
  EXPECT_EQ(error_of("\r\n\rGET / HTTP/1.1\r\n\r\n"), HeadError::kBadRequestLine);
  // Only empty lines so far: more is awaited.
  RequestHead head;
  EXPECT_EQ(parse("\r\n\r\n\r", head).status, ParseStatus::kIncomplete);
}

// The request-line limit counts from the request line, not from the empty lines before it.
TEST(RequestHeadTest, RequestLineLimitAfterEmptyLines) {
  const std::string line = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";  // 64 bytes
  RequestHead head;
  EXPECT_EQ(parse("\r\n\r\n" + line + "\r\nHost: h\r\n\r\n", head).status, ParseStatus::kComplete);
  EXPECT_EQ(error_of("\r\n\r\n" + line + std::string(200, 'a')), HeadError::kUriTooLong);
}

TEST(RequestHeadTest, RequestLineLimitEdges) {
  const std::string at_limit = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";  // 64 bytes
  ASSERT_EQ(at_limit.size(), 64u);
  RequestHead head;
  EXPECT_EQ(parse(at_limit + "\r\nHost: h\r\n\r\n", head).status, ParseStatus::kComplete);
  const std::string over = "GET /" + std::string(65 - 14, 'a') + " HTTP/1.1";
  EXPECT_EQ(error_of(over + "\r\nHost: h\r\n\r\n"), HeadError::kUriTooLong);
  // Incomplete, but already too long.
  std::size_t scan = 0;
  const std::string partial = "GET /" + std::string(100, 'a');
  EXPECT_EQ(parse_request_head(partial.data(), partial.size(), kLimits, scan, head).error,
            HeadError::kUriTooLong);
}

TEST(RequestHeadTest, HeadSizeLimitEdges) {
  std::string base = "GET / HTTP/1.1\r\nA: ";
  const std::string fits = base + std::string(256 - base.size() - 4, 'x') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), 256u);
  RequestHead head;
  EXPECT_EQ(parse(fits, head).status, ParseStatus::kComplete);
  const std::string over = base + std::string(256 - base.size() - 3, 'x') + "\r\n\r\n";
  EXPECT_EQ(error_of(over), HeadError::kHeadTooLarge);
  // Incomplete and at the limit: too large.
  const std::string incomplete = base + std::string(300, 'x');
  EXPECT_EQ(error_of(incomplete), HeadError::kHeadTooLarge);
}

TEST(RequestHeadTest, FieldCountLimitEdges) {
  std::string s = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 8; ++i) s += "A: b\r\n";
  RequestHead head;
  EXPECT_EQ(parse(s + "\r\n", head).status, ParseStatus::kComplete);
  EXPECT_EQ(error_of(s + "A: b\r\n\r\n"), HeadError::kTooManyFields);
}

TEST(ResponseHeadTest, ParsesStatusLine) {
  const std::string s = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  ResponseHead head;
  std::size_t scan = 0;
  ASSERT_EQ(parse_response_head(s.data(), s.size(), 1024, scan, head).status,
            ParseStatus::kComplete);
  EXPECT_EQ(head.status, 404);
  EXPECT_EQ(head.reason, "Not Found");
  EXPECT_EQ(head.field_count, 1u);
  // No reason phrase at all is accepted.
  const std::string bare = "HTTP/1.0 204\r\n\r\n";
  scan = 0;
  ASSERT_EQ(parse_response_head(bare.data(), bare.size(), 1024, scan, head).status,
            ParseStatus::kComplete);
  EXPECT_EQ(head.status, 204);
  EXPECT_EQ(head.version_minor, 0);
}

// A whole bad line is refused at once, whether the rest of the head is there yet or comes
// later (a resumed parse starts at the unfinished line and keeps what came before). Found
// by the response fuzzer.
TEST(ResponseHeadTest, SplitHeadParsesAsWhole) {
  const std::string s = "HTTP/1.1 200 OK\r\nA: 1\r\nNoColon\r\nContent-Length: 2\r\n";
  for (std::size_t cut = 1; cut <= s.size(); ++cut) {
    ResponseHead head;
    std::size_t scan = 0;
    auto r = parse_response_head(s.data(), cut, 1024, scan, head);
    if (r.status == ParseStatus::kIncomplete)
      r = parse_response_head(s.data(), s.size(), 1024, scan, head);
    EXPECT_EQ(r.error, HeadError::kBadField) << "cut " << cut;
  }
  const std::string good = "HTTP/1.1 200 OK\r\nA: 1\r\nB:  2 \r\n\r\n";
  for (std::size_t cut = 1; cut < good.size(); ++cut) {
    ResponseHead head;
    std::size_t scan = 0;
    ASSERT_EQ(parse_response_head(good.data(), cut, 1024, scan, head).status,
              ParseStatus::kIncomplete);
    ASSERT_EQ(parse_response_head(good.data(), good.size(), 1024, scan, head).status,
              ParseStatus::kComplete)
        << "cut " << cut;
    ASSERT_EQ(head.field_count, 2u);
    EXPECT_EQ(head.fields[1].name, "B");
    EXPECT_EQ(head.fields[1].value, "2");
  }
}

TEST(ResponseHeadTest, RefusesMalformedStatusLines) {
  for (const std::string& s : std::vector<std::string>{
           "HTTP/1.1 2OO OK\r\n\r\n", "HTTP/1.1 99 Low\r\n\r\n", "HTTP/1.1 600 High\r\n\r\n",
           "HTTP/1.1  200 OK\r\n\r\n", "HTTP/2 200 OK\r\n\r\n", "ICY 200 OK\r\n\r\n",
           "HTTP/1.1 200OK\r\n\r\n", std::string("HTTP/1.1 200 O\x01K\r\n\r\n")}) {
    ResponseHead head;
    std::size_t scan = 0;
    EXPECT_EQ(parse_response_head(s.data(), s.size(), 1024, scan, head).status, ParseStatus::kError)
        << s;
  }
}

std::string decode_all(const std::string& in, std::size_t piece, ChunkedDecoder::Status* last) {
  // Feeds `in` in pieces of at most `piece` bytes, keeping unconsumed bytes like the proxy.
  ChunkedDecoder dec;
  std::string out, pending;
  std::size_t fed = 0;
  for (;;) {
    const auto step = dec.step(pending.data(), pending.size());
    if (step.status == ChunkedDecoder::Status::kData) out.append(step.data);  // view into pending
    pending.erase(0, step.consumed);
    if (step.status == ChunkedDecoder::Status::kData) continue;
    if (step.status != ChunkedDecoder::Status::kNeedMore || fed == in.size()) {
      *last = step.status;
      return out;
    }
    const std::size_t n = std::min(piece, in.size() - fed);
    pending.append(in, fed, n);
    fed += n;
  }
}

// Chunked bodies decode identically whatever the read sizes.
TEST(ChunkedDecoderTest, DecodesAtEveryPieceSize) {
  const std::string body =
      "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
  for (std::size_t piece = 1; piece <= body.size(); ++piece) {
    ChunkedDecoder::Status last;
    EXPECT_EQ(decode_all(body, piece, &last), "hello 0123456789") << piece;
    EXPECT_EQ(last, ChunkedDecoder::Status::kDone) << piece;
  }
}

TEST(ChunkedDecoderTest, RefusesMalformedFraming) {
  for (const std::string s :
       {"x\r\n", "5\r\nhelloXX", "5\nhello\r\n0\r\n\r\n", "\r\n", "5 \r\nhello\r\n", "-1\r\n",
        "0\r\nBad Trailer\r\n\r\n", "11111111111111111\r\n"}) {
    ChunkedDecoder::Status last;
    decode_all(s, s.size(), &last);
    EXPECT_EQ(last, ChunkedDecoder::Status::kError) << s;
  }
}

// Issue 10: chunk extensions as RFC 9112 section 7.1.1 writes them are accepted (and not
// passed on): a token name, an optional token or quoted-string value, BWS around ';' and
// '='.
TEST(ChunkedDecoderTest, AcceptsChunkExtensionsOfTheGrammar) {
  for (const std::string ext :
       {";a", ";a=b", ";a=\"\"", ";a=\"quoted string\"", ";a=\"q\\\"e\\\\s\\ c\"", ";a;b=1;c=\"x\"",
        " ;a", "\t; a", " ; a = b", ";a =b", ";a= \"v\"", ";a ;b", ";!#$%&'*+-.^_`|~=x",
        ";a=\"tab\there\"", ";a=\"obs\xc3\xa9\"", ";a=\"(),/:;<=>?@[]{}\""}) {
    const std::string body = "5" + ext + "\r\nhello\r\n0" + ext + "\r\n\r\n";
    for (std::size_t piece = 1; piece <= body.size(); ++piece) {
      ChunkedDecoder::Status last;
      EXPECT_EQ(decode_all(body, piece, &last), "hello") << ext << " piece " << piece;
      ASSERT_EQ(last, ChunkedDecoder::Status::kDone) << ext << " piece " << piece;
    }
  }
}

// Anything else after the chunk size is refused, on data chunks and the last chunk alike.
TEST(ChunkedDecoderTest, RefusesChunkExtensionsOutsideTheGrammar) {
  for (const std::string ext : {";",
                                "; ",
                                ";=b",
                                ";a=",
                                ";a= ",
                                ";a=b c",
                                ";a=\"unterminated",
                                ";a=\"x\"y",
                                ";a b",
                                ";a;",
                                ";a=\"bad\\\x01\"",
                                ";a=\"ctl\x01\"",
                                ";a=\"cr\rlf\"",
                                ";a=b\r",
                                ";a\x7f",
                                ";a=(b)",
                                ";a=\"x\";",
                                "x",
                                " ",
                                ";a ",
                                ";a=b ;",
                                ";a=\"\\\"",
                                ";@",
                                ";a=b,c",
                                ",a",
                                " ; a = b "}) {
    for (const std::string& body : {"5" + ext + "\r\nhello\r\n0\r\n\r\n", "0" + ext + "\r\n\r\n"}) {
      ChunkedDecoder::Status last;
      decode_all(body, body.size(), &last);
      EXPECT_EQ(last, ChunkedDecoder::Status::kError) << "[" << ext << "]";
    }
  }
}

TEST(ChunkedDecoderTest, LargestSizeAcceptedAndCounted) {
  ChunkedDecoder dec;
  const std::string s = "ffffffffffffffff\r\nab";
  const auto step = dec.step(s.data(), s.size());
  EXPECT_EQ(step.status, ChunkedDecoder::Status::kData);
  EXPECT_EQ(step.data, "ab");
  EXPECT_EQ(dec.body_bytes(), 2u);
}

TEST(ContentLengthTest, DigitsOnly) {
  std::uint64_t v = 0;
  EXPECT_TRUE(parse_content_length("0", v));
  EXPECT_TRUE(parse_content_length("1234567890123456789", v));
  EXPECT_EQ(v, 1234567890123456789ull);
  EXPECT_FALSE(parse_content_length("", v));
  EXPECT_FALSE(parse_content_length("12345678901234567890", v));
  EXPECT_FALSE(parse_content_length("5, 5", v));
  EXPECT_FALSE(parse_content_length("+5", v));
  EXPECT_FALSE(parse_content_length("0x10", v));
}

}  // namespace
}  // namespace sb::http
