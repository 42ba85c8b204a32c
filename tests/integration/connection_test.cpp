// Client connections: keep-alive and upstream connection reuse, pipelining, HTTP/1.0,
// HEAD, Connection: close and Expect: 100-continue.
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class ConnectionTest : public GatewayTest {};

// 50 requests on one client connection reuse pooled upstream connections: with one worker
// the upstream accepts at most two connections for them.
TEST_F(ConnectionTest, KeepAliveReusesUpstreamConnections) {
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {"--threads", "1"}));
  HttpClient c = client();
  for (int i = 0; i < 50; ++i) {
    Response r = c.get("/svc/x/echo?i=" + std::to_string(i));
    ASSERT_EQ(r.status, 200) << "request " << i << ": " << r.error;
    ASSERT_NE(r.header("Connection"), "close") << "request " << i;
  }
  Response r = c.get("/svc/x/stats");
  ASSERT_EQ(r.status, 200) << r.error;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_GE(json_int(*doc, "requests").value_or(0), 50) << r.body;
  EXPECT_LE(json_int(*doc, "connections_accepted").value_or(999), 2) << r.body;
}

// Issue 10: the instance closes a kept connection while it idles in the pool. The next
// request goes on a fresh connection at once (the dead one is found before use: the
// debug log says so), with no reset and no resend.
TEST_F(ConnectionTest, KeptConnectionClosedByUpstreamIsNotUsed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {"--threads", "1", "--log-level", "debug"}));
  HttpClient c = client();
  Response first = c.get("/svc/x/idle-close");
  ASSERT_EQ(first.status, 200) << first.error;
  ASSERT_TRUE(
      up_->process().wait_for_line(Stream::kStdout, std::regex("^CLOSED 1$"), default_timeout()));
  Response r = c.get("/svc/x/echo");
  ASSERT_EQ(r.status, 200) << r.error;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_int(*doc, "conn_id"), 2) << r.body;
  EXPECT_TRUE(sb_->process().wait_for_line(
      Stream::kStderr, std::regex("kept connection closed or dirty while idle; discarded"),
      default_timeout()))
      << "the closed connection was not found before use";
  EXPECT_FALSE(sb_->process().wait_for_line(
      Stream::kStderr, std::regex("closed or reset the connection"), std::chrono::milliseconds(0)));
  auto stats = stats_via_gateway();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->connections_accepted, 2);
}

// Issue 10: the instance writes a stray "HTTP/1.1 408" on a kept connection (as servers
// do just before closing an idle one; here the FIN has not come yet). That 408 answers no
// request of ours: the next request must not read it as its response, and goes on a
// fresh connection.
TEST_F(ConnectionTest, StrayBytesOnKeptConnectionAreNotTakenAsAResponse) {
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {"--threads", "1"}));
  HttpClient c = client();
  Response first = c.get("/svc/x/idle-close?stray=1");
  ASSERT_EQ(first.status, 200) << first.error;
  ASSERT_TRUE(
      up_->process().wait_for_line(Stream::kStdout, std::regex("^STRAY 1$"), default_timeout()));
  Response r = c.get("/svc/x/echo");
  ASSERT_EQ(r.status, 200) << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_int(*doc, "conn_id"), 2) << r.body;
  EXPECT_TRUE(up_->process().wait_for_line(Stream::kStdout, std::regex("^REQ 2 GET /echo$"),
                                           default_timeout()));
  EXPECT_FALSE(up_->process().wait_for_line(Stream::kStdout, std::regex("^REQ 1 GET /echo$"),
                                            std::chrono::milliseconds(0)))
      << "the request was sent on the dirty connection too";
}

// Pipelined requests are answered in order, even when the first is the slowest.
TEST_F(ConnectionTest, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  ASSERT_TRUE(c.send_raw(format_request("GET", "/svc/x/slow/300") +
                         format_request("GET", "/svc/x/echo?n=2") +
                         format_request("POST", "/svc/x/echo?n=3", {}, "three")));
  Response first = c.read_response();
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.body, "slow");
  for (const char* n : {"n=2", "n=3"}) {
    Response r = c.read_response();
    ASSERT_EQ(r.status, 200) << r.error;
    auto doc = parse_json(r.body);
    ASSERT_TRUE(doc) << r.body;
    EXPECT_EQ(json_string(*doc, "query"), n);
  }
}

// An HTTP/1.0 request gets an unchunked response (even from a chunked upstream) and the
// connection closes after it.
TEST_F(ConnectionTest, Http10IsUnchunkedAndClosed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  ASSERT_TRUE(c.send_raw("GET /svc/x/bytes/5000?chunked=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"));
  Response r = c.read_response();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.chunked) << r.raw.substr(0, 500);
  EXPECT_EQ(r.header("Transfer-Encoding"), "");
  EXPECT_EQ(r.body_len, 5000u);
  EXPECT_EQ(r.body_sha256, pattern_sha256(5000));
  EXPECT_TRUE(c.wait_closed(default_timeout()));
}

// HTTP/1.0 with Connection: keep-alive keeps the connection open for the next request
// (the upstream's body has a Content-Length; a chunked one would have to be
// close-delimited for a 1.0 client).
TEST_F(ConnectionTest, Http10KeepAliveStaysOpen) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  const std::string req =
      "GET /svc/x/bytes/100 HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n";
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.send_raw(req)) << "request " << i << ": " << c.last_error();
    Response r = c.read_response();
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(r.chunked);
    EXPECT_FALSE(r.close_delimited) << "a 1.0 keep-alive response needs Content-Length";
    EXPECT_EQ(r.body_len, 100u);
    EXPECT_NE(r.header("Connection").find("keep-alive"), std::string::npos)
        << "an HTTP/1.0 client only keeps the connection when told Connection: keep-alive";
  }
}

// Connection: close from the client is honoured after the response.
TEST_F(ConnectionTest, ClientConnectionCloseIsHonoured) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.get("/svc/x/echo", {{"Connection", "close"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("Connection"), "close");
  EXPECT_TRUE(c.wait_closed(default_timeout()));
}

// A client that sends its request and then half-closes (as `nc -N` does) gets the answer,
// and the connection closes right after it, not when keepalive_timeout (75 s) runs out:
// the FIN that came with the request is noticed although no new event follows it.
TEST_F(ConnectionTest, HalfClosedClientIsAnsweredThenClosed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  for (int round = 0; round < 3; ++round) {
    HttpClient c = client();
    // Request and FIN together, then (round 1) one answered request first, so that the
    // half-close comes on a kept-alive connection.
    if (round == 1) {
      ASSERT_EQ(c.get("/svc/x/echo?first").status, 200);
    }
    ASSERT_TRUE(c.send_raw(format_request("GET", "/svc/x/echo?n=1") +
                           (round == 2 ? format_request("GET", "/svc/x/echo?n=2") : "")));
    c.shutdown_write();
    for (int i = 0; i < (round == 2 ? 2 : 1); ++i) {
      Response r = c.read_response();
      ASSERT_EQ(r.status, 200) << "round " << round << ": " << r.error;
    }
    EXPECT_TRUE(c.wait_closed(std::chrono::seconds(2))) << "round " << round;
  }
}

// A body delimited by the upstream closing the connection is relayed whole and at once.
// The upstream writes head and body at once and closes, so its FIN often lands together
// with the last bytes: the read that takes them must not be taken for the socket's last.
TEST_F(ConnectionTest, CloseDelimitedUpstreamBodyEndsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  for (std::size_t n : {0u, 100u, 5000u}) {
    HttpClient c = client();
    const auto t0 = std::chrono::steady_clock::now();
    Response r = c.get("/svc/x/bytes/" + std::to_string(n) + "?until_close=1");
    ASSERT_TRUE(r.ok()) << n << ": " << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body_len, n);
    EXPECT_EQ(r.body_sha256, pattern_sha256(n));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2)) << n;
  }
}

// HEAD gets the head of the response without a body; the connection stays usable.
TEST_F(ConnectionTest, HeadHasNoBody) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.request("HEAD", "/svc/x/bytes/100");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_len, 0u);
  Response next = c.get("/svc/x/echo");
  EXPECT_EQ(next.status, 200) << next.error << next.raw;
}

// Expect: 100-continue gets "100 Continue" before the body is sent, then the response.
TEST_F(ConnectionTest, ExpectContinueGets100ThenFinal) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  ASSERT_TRUE(
      c.send_raw("POST /svc/x/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                 "Content-Length: 1000\r\n\r\n"));
  Response interim = c.read_response();
  ASSERT_TRUE(interim.ok()) << interim.error;
  EXPECT_EQ(interim.status, 100);
  EXPECT_EQ(interim.raw.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << interim.raw;
  ASSERT_TRUE(c.send_pattern_body(1000, false));
  Response r = c.read_response();
  ASSERT_EQ(r.status, 200) << r.error;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_int(*doc, "body_len"), 1000);
  EXPECT_EQ(json_string(*doc, "body_sha256"), pattern_sha256(1000));
}

}  // namespace
}  // namespace sb::testing
