// Client-side limits and malformed requests: each is answered by the gateway itself with
// the documented status, and nothing reaches the upstream.
#include <gtest/gtest.h>

#include <chrono>
#include <ostream>
#include <regex>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kSmallLimits =
    "limits:\n"
    "  max_request_line: 256\n"
    "  max_header_bytes: 1024\n"
    "  max_headers: 10\n"
    "  max_body_bytes: 1000\n"
    "  header_timeout: 500ms\n";

class LimitsTest : public GatewayTest {
 protected:
  // Sends `raw` on a new connection and reads the answer.
  Response send(const std::string& raw) {
    HttpClient c = client();
    EXPECT_TRUE(c.send_raw(raw)) << c.last_error();
    return c.read_response();
  }
};

// A request line longer than limits.max_request_line is answered 414.
TEST_F(LimitsTest, LongRequestLineIs414) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kSmallLimits));
  Response r = send(format_request("GET", "/svc/x/echo?q=" + std::string(400, 'a')));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 414);
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

// A request head larger than limits.max_header_bytes is answered 431.
TEST_F(LimitsTest, LargeHeadIs431) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kSmallLimits));
  Headers h;
  for (int i = 0; i < 5; ++i) h.emplace("X-Big-" + std::to_string(i), std::string(300, 'b'));
  Response r = send(format_request("GET", "/svc/x/echo", h));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

// More header fields than limits.max_headers is answered 431.
TEST_F(LimitsTest, TooManyHeadersIs431) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kSmallLimits));
  Headers h;
  for (int i = 0; i < 12; ++i) h.emplace("X-H" + std::to_string(i), "1");
  Response r = send(format_request("GET", "/svc/x/echo", h));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

// A Content-Length above limits.max_body_bytes is answered 413 before the body is sent.
TEST_F(LimitsTest, LargeContentLengthIs413) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kSmallLimits));
  Response r = send("POST /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

// A client that sends half a head and stalls gets 408 after limits.header_timeout, then
// the connection is closed.
TEST_F(LimitsTest, StalledHeadIs408ThenClosed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kSmallLimits));
  HttpClient c = client();
  const auto start = Clock::now();
  ASSERT_TRUE(c.send_raw("GET /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  Response r = c.read_response();
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 408);
  EXPECT_GE(elapsed, milliseconds(450));
  EXPECT_LT(elapsed, scaled(milliseconds(5000)));
  EXPECT_TRUE(c.wait_closed(default_timeout()));
}

// Issue 10: a body trickled a few bytes at a time, each gap well inside
// limits.body_timeout, falls below limits.min_body_rate and is answered 408 once the grace
// and what its bytes earned are spent: 5 bytes per 100 ms (50 B/s) against 100 B/s after a
// 500 ms grace runs out after about 1 s of waiting.
TEST_F(LimitsTest, TrickledBodyBelowMinRateIs408) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "limits:\n  body_timeout: 30s\n  min_body_rate: 100\n  body_rate_grace: 500ms\n"));
  HttpClient c = client();
  const auto start = Clock::now();
  ASSERT_TRUE(
      c.send_raw("POST /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Length: 100000\r\n\r\n"));
  // The pace of the trickle is the test's input; the answer is the event it waits for.
  const auto give_up = start + scaled(milliseconds(5000));
  while (!c.readable_within(milliseconds(100)) && Clock::now() < give_up)
    if (!c.send_raw("xxxxx")) break;  // the gateway may close while a piece is on its way
  Response r = c.read_response();
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_NO_FATAL_FAILURE(expect_problem(r, 408));
  EXPECT_GE(elapsed, milliseconds(500)) << "cut before the grace was spent";
  EXPECT_LT(elapsed, scaled(milliseconds(4000)));
  EXPECT_TRUE(sb_->process().wait_for_line(
      Stream::kStderr, std::regex("slower than limits.min_body_rate"), default_timeout()));
  EXPECT_TRUE(c.wait_closed(default_timeout()));
}

// A body sent at a good pace in pieces is not cut by the rate limit: 20 pieces of 50 bytes
// 50 ms apart (1000 B/s against 100 B/s) arrive whole.
TEST_F(LimitsTest, PacedBodyAboveMinRateArrives) {
  ASSERT_NO_FATAL_FAILURE(
      start_gateway("limits:\n  min_body_rate: 100\n  body_rate_grace: 200ms\n"));
  HttpClient c = client();
  ASSERT_TRUE(
      c.send_raw("POST /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Content-Length: 1000\r\n\r\n"));
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(c.readable_within(milliseconds(50))) << "answered after " << i << " pieces";
    ASSERT_TRUE(c.send_raw(std::string(50, 'y'))) << c.last_error();
  }
  Response r = c.read_response();
  ASSERT_EQ(r.status, 200) << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_int(*doc, "body_len"), 1000);
}

// With limits.max_connections open, one more connection gets 503 and is closed.
TEST_F(LimitsTest, ConnectionOverLimitGets503AndIsClosed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway("limits:\n  max_connections: 2\n"));
  HttpClient a = client();
  HttpClient b = client();
  ASSERT_EQ(a.get("/svc/x/echo").status, 200);
  ASSERT_EQ(b.get("/svc/x/echo").status, 200);
  HttpClient extra = client();
  ASSERT_TRUE(extra.connected()) << extra.last_error();
  // The gateway answers when it accepts the connection, before any request: wait for that
  // answer (sending a request into a socket being closed could turn it into a reset).
  Response r = extra.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(extra.wait_closed(default_timeout()));
  // The two admitted connections still work.
  EXPECT_EQ(a.get("/svc/x/echo").status, 200);
}

// A response the gateway makes for a bad request still carries a correlation id.
TEST_F(LimitsTest, RejectionCarriesCorrelationId) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kSmallLimits));
  Response r = send(format_request("GET", "/svc/x/echo?q=" + std::string(400, 'a')));
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_FALSE(r.header("X-Correlation-ID").empty()) << r.raw;
}

struct BadRequest {
  const char* name;
  const char* raw;
};

// Names the case in test output instead of dumping the struct's bytes.
void PrintTo(const BadRequest& b, std::ostream* os) { *os << b.name; }

class MalformedRequestTest : public GatewayTest,
                             public ::testing::WithParamInterface<BadRequest> {};

// A malformed request is answered 400 and never reaches the upstream.
TEST_P(MalformedRequestTest, Is400AndNotForwarded) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  auto before = stats_via_gateway();
  ASSERT_TRUE(before.has_value());
  HttpClient c = client();
  ASSERT_TRUE(c.send_raw(GetParam().raw)) << c.last_error();
  Response r = c.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 400) << r.raw;
  auto after = stats_via_gateway();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->requests, before->requests) << "the malformed request reached the upstream";
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, MalformedRequestTest,
    ::testing::Values(
        BadRequest{"BadRequestLine", "GET /svc/x/echo HTTP/1.1 extra\r\nHost: 127.0.0.1\r\n\r\n"},
        BadRequest{"BadHeaderName",
                   "GET /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nBad[Name]: 1\r\n\r\n"},
        BadRequest{"ContentLengthAndChunked",
                   "POST /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
        BadRequest{"TwoContentLengths",
                   "POST /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
                   "Content-Length: 6\r\n\r\nhello!"},
        BadRequest{"ObsFold",
                   "GET /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Folded: a\r\n b\r\n\r\n"},
        BadRequest{"MissingHost", "GET /svc/x/echo HTTP/1.1\r\nX-Other: 1\r\n\r\n"},
        BadRequest{"BareLf", "GET /svc/x/echo HTTP/1.1\nHost: 127.0.0.1\n\n"}),
    [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace sb::testing
