// Data integrity through the proxy: a request that must not be sent twice is not, a cut
// upstream body cuts the client's response (whatever its framing), and both deadline
// headers count.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class IntegrityTest : public GatewayTest {
 protected:
  // Whether a request head whose target contains `part` reaches the upstream: a bounded
  // wait on its "REQ <conn> <method> <target>" log line.
  bool reached_upstream(const std::string& part) const {
    return up_->process()
        .wait_for_line(Stream::kStdout, std::regex("^REQ [0-9]+ [A-Z]+ .*" + part),
                       scaled(std::chrono::seconds(5)))
        .has_value();
  }
};

// RFC 9110 9.2.2: a kept upstream connection that closes without an answer after a POST
// went out on it does not get the POST again: the upstream may have acted on it. The
// client gets 502. A GET in the same place is sent again on a new connection (safe).
TEST_F(IntegrityTest, PostOnAClosedKeptConnectionIsNotSentTwice) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "services:\n  x:\n    breaker: {enabled: false}\n    outlier: {enabled: false}\n",
      {"--threads", "1"}));
  HttpClient c = client();
  Response first = c.request("POST", "/svc/x/drop-reused/a", {}, "one");
  ASSERT_EQ(first.status, 200) << first.raw;  // the connection is kept in the pool now
  ASSERT_TRUE(reached_upstream("/drop-reused/a"));
  Response second = c.request("POST", "/svc/x/drop-reused/b", {}, "two");
  expect_problem(second, 502);
  EXPECT_TRUE(reached_upstream("/drop-reused/b"));
  // Give a (wrong) second send every chance to show: a request to the same upstream after
  // it on a fresh client connection is answered, so the worker is past the POST.
  EXPECT_EQ(client().get("/svc/x/echo").status, 200);
  EXPECT_EQ(up_->requests_logged("/drop-reused/b"), 1u) << "the POST was sent twice";

  // With an Idempotency-Key the client says a second send is safe. (The pool holds the
  // connection the GET above used, which drops the next request on it.)
  Response keyed = c.request("POST", "/svc/x/drop-reused/d", {{"Idempotency-Key", "k-1"}}, "three");
  EXPECT_EQ(keyed.status, 200) << keyed.raw;
  // A GET too (on the connection the keyed POST was sent again on).
  Response get = c.get("/svc/x/drop-reused/f");
  EXPECT_EQ(get.status, 200) << get.raw;
}

// An upstream body reset halfway never reaches the client as a whole one: no last chunk,
// no complete Content-Length body, and the client connection is closed.
TEST_F(IntegrityTest, CutUpstreamBodyCutsTheClientResponse) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "services:\n  x:\n    breaker: {enabled: false}\n    outlier: {enabled: false}\n"));
  for (const char* framing : {"until_close=1&", "chunked=1&", ""}) {
    HttpClient c = client();
    Response r = c.get(std::string("/svc/x/bytes/100000?") + framing + "cut=5000");
    EXPECT_FALSE(r.ok()) << framing << ": the cut body looked complete (" << r.body_len
                         << " bytes, chunked=" << r.chunked << ")";
    EXPECT_EQ(r.status, 200) << framing;
    EXPECT_GE(r.body_len, 5000u) << framing << ": the bytes before the cut are relayed";
    EXPECT_LT(r.body_len, 100000u) << framing;
  }
  // An HTTP/1.0 client reads a close-delimited body: the cut is a reset, not a clean close.
  HttpClient c = client();
  ASSERT_TRUE(c.send_raw("GET /svc/x/bytes/100000?until_close=1&cut=5000 HTTP/1.0\r\n\r\n"));
  Response r = c.read_response();
  EXPECT_FALSE(r.ok()) << "HTTP/1.0: a cut close-delimited body ended with a clean close ("
                       << r.body_len << " bytes)";
}

// request_buffering: a POST body (not retryable) that fits the 64 KiB request buffer is read
// whole before an upstream is called: a client that goes away halfway costs the upstream
// nothing. With request_buffering off the request goes out as the body comes.
TEST_F(IntegrityTest, SmallPostBodyIsReadWholeBeforeTheUpstreamIsCalled) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "services:\n  x: {}\nroutes:\n  - {prefix: /streamed, service: x, rewrite: /streamed,"
      " request_buffering: false}\n"));
  for (const char* path : {"/svc/x/echo/buffered", "/streamed/echo"}) {
    HttpClient c = client();
    ASSERT_TRUE(c.send_raw(std::string("POST ") + path +
                           " HTTP/1.1\r\nHost: t\r\nContent-Length: 30000\r\n\r\n" +
                           std::string(10000, 'a')));
    if (std::string_view(path) == "/streamed/echo") {
      EXPECT_TRUE(reached_upstream("/streamed/echo")) << "streamed: the upstream has it";
    }
    c.close();
  }
  // The buffered one never reached the upstream (the streamed one, sent after it, did).
  EXPECT_EQ(up_->requests_logged("/echo/buffered"), 0u);
  // And whole, it goes through.
  Response r = client().request("POST", "/svc/x/echo-body", {}, std::string(30000, 'b'));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body_len, 30000u);
}

// Both deadline headers: the smaller one counts (and is what goes on upstream).
TEST_F(IntegrityTest, BothDeadlineHeadersTheSmallerCounts) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response ok = c.get("/svc/x/echo", {{"X-Request-Timeout-Ms", "5000"}, {"grpc-timeout", "800m"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  auto doc = parse_json(ok.body);
  ASSERT_TRUE(doc.has_value());
  const auto& seen = doc->as_object().at("headers").as_object();
  ASSERT_TRUE(seen.contains("x-request-timeout-ms")) << ok.body;
  EXPECT_LE(std::stoi(std::string(seen.at("x-request-timeout-ms").as_array().at(0).as_string())),
            800)
      << ok.body;
  const auto began = std::chrono::steady_clock::now();
  expect_problem(
      c.get("/svc/x/slow/5000", {{"X-Request-Timeout-Ms", "5000"}, {"grpc-timeout", "200m"}}), 504);
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::milliseconds(3000));
  // Either one malformed: 400 naming it.
  Response bad = c.get("/svc/x/echo", {{"X-Request-Timeout-Ms", "100"}, {"grpc-timeout", "x"}});
  expect_problem(bad, 400);
  EXPECT_NE(bad.body.find("grpc-timeout"), std::string::npos) << bad.body;
}

}  // namespace
}  // namespace sb::testing
