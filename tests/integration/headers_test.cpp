// Correlation ids, hop-by-hop headers and X-Forwarded-* between client and upstream.
#include <gtest/gtest.h>

#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class HeadersTest : public GatewayTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(start_gateway()); }

  // GET /svc/x/echo with `headers`; returns the response (and the echo document).
  Response echo(const Headers& headers, boost::json::value* doc = nullptr) {
    HttpClient c = client();
    Response r = c.get("/svc/x/echo", headers);
    EXPECT_EQ(r.status, 200) << r.error << r.raw;
    if (doc != nullptr) {
      auto v = parse_json(r.body);
      EXPECT_TRUE(v) << r.body;
      if (v) *doc = *v;
    }
    return r;
  }

  // The values the upstream received for `name` (lower case), joined with ", ".
  static std::string upstream_saw(const boost::json::value& doc, const std::string& name) {
    const auto* h = doc.as_object().if_contains("headers");
    if (h == nullptr || !h->is_object()) return "<no headers>";
    const auto* v = h->as_object().if_contains(name);
    if (v == nullptr) return "";
    std::string out;
    for (const auto& item : v->as_array()) {
      if (!out.empty()) out += ", ";
      out += std::string(item.as_string());
    }
    return out;
  }
};

// Without an incoming id the response carries a generated UUID, also sent upstream.
TEST_F(HeadersTest, GeneratesCorrelationId) {
  Response r = echo({});
  const std::string id = r.header("X-Correlation-ID");
  EXPECT_TRUE(is_generated_uuid(id)) << "X-Correlation-ID: " << id;
  EXPECT_EQ(r.header("X-Upstream-Saw-Correlation-ID"), id);
}

// A valid incoming X-Correlation-ID is kept and forwarded.
TEST_F(HeadersTest, KeepsValidCorrelationId) {
  Response r = echo({{"X-Correlation-ID", "client-abc.123:xyz"}});
  EXPECT_EQ(r.header("X-Correlation-ID"), "client-abc.123:xyz");
  EXPECT_EQ(r.header("X-Upstream-Saw-Correlation-ID"), "client-abc.123:xyz");
}

// Without X-Correlation-ID, a valid X-Request-ID becomes the correlation id.
TEST_F(HeadersTest, UsesRequestIdWhenNoCorrelationId) {
  Response r = echo({{"X-Request-ID", "req-42"}});
  EXPECT_EQ(r.header("X-Correlation-ID"), "req-42");
  EXPECT_EQ(r.header("X-Upstream-Saw-Correlation-ID"), "req-42");
}

// X-Correlation-ID wins over X-Request-ID when both are present.
TEST_F(HeadersTest, PrefersCorrelationIdOverRequestId) {
  Response r = echo({{"X-Correlation-ID", "corr-1"}, {"X-Request-ID", "req-1"}});
  EXPECT_EQ(r.header("X-Correlation-ID"), "corr-1");
  EXPECT_EQ(r.header("X-Upstream-Saw-Correlation-ID"), "corr-1");
}

// An incoming id of 200 characters is replaced by a generated UUID.
TEST_F(HeadersTest, ReplacesOverlongCorrelationId) {
  Response r = echo({{"X-Correlation-ID", std::string(200, 'a')}});
  const std::string id = r.header("X-Correlation-ID");
  EXPECT_TRUE(is_generated_uuid(id)) << "X-Correlation-ID: " << id;
  EXPECT_EQ(r.header("X-Upstream-Saw-Correlation-ID"), id);
}

// An incoming id containing spaces is replaced by a generated UUID.
TEST_F(HeadersTest, ReplacesCorrelationIdWithSpaces) {
  Response r = echo({{"X-Correlation-ID", "two words"}});
  const std::string id = r.header("X-Correlation-ID");
  EXPECT_TRUE(is_generated_uuid(id)) << "X-Correlation-ID: " << id;
  EXPECT_EQ(r.header("X-Upstream-Saw-Correlation-ID"), id);
}

// Responses Switchboard makes itself carry the incoming id too, in header and body.
TEST_F(HeadersTest, ProblemResponsesCarryCorrelationId) {
  HttpClient c = client();
  Response r = c.get("/svc/nope/echo", {{"X-Correlation-ID", "problem-7"}});
  expect_problem(r, 404);
  EXPECT_EQ(r.header("X-Correlation-ID"), "problem-7");
}

// Each request on one connection gets its own generated id.
TEST_F(HeadersTest, GeneratedIdsDifferPerRequest) {
  HttpClient c = client();
  Response a = c.get("/svc/x/echo");
  Response b = c.get("/svc/x/echo");
  ASSERT_EQ(a.status, 200) << a.error;
  ASSERT_EQ(b.status, 200) << b.error;
  EXPECT_NE(a.header("X-Correlation-ID"), b.header("X-Correlation-ID"));
}

// Hop-by-hop headers, and headers the client's Connection names, stay on the first hop.
TEST_F(HeadersTest, HopByHopHeadersAreNotForwarded) {
  boost::json::value doc;
  echo({{"Connection", "keep-alive, x-secret"},
        {"X-Secret", "1"},
        {"Keep-Alive", "timeout=5"},
        {"Proxy-Connection", "keep-alive"},
        {"TE", "trailers"},
        {"Upgrade", "h2c"},
        {"X-Kept", "yes"}},
       &doc);
  for (const char* name : {"x-secret", "keep-alive", "proxy-connection", "te", "upgrade"}) {
    EXPECT_EQ(upstream_saw(doc, name), "") << name << " reached the upstream";
  }
  EXPECT_EQ(upstream_saw(doc, "connection").find("x-secret"), std::string::npos)
      << "Connection: " << upstream_saw(doc, "connection");
  EXPECT_EQ(upstream_saw(doc, "x-kept"), "yes");
}

// X-Forwarded-For, -Proto and -Host describe the client's hop.
TEST_F(HeadersTest, AddsForwardedHeaders) {
  boost::json::value doc;
  echo({{"Host", "client.example:8080"}}, &doc);
  EXPECT_EQ(upstream_saw(doc, "x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(upstream_saw(doc, "x-forwarded-proto"), "http");
  EXPECT_EQ(upstream_saw(doc, "x-forwarded-host"), "client.example:8080");
}

// The client's address is appended to an incoming X-Forwarded-For.
TEST_F(HeadersTest, AppendsToIncomingForwardedFor) {
  boost::json::value doc;
  echo({{"X-Forwarded-For", "203.0.113.7"}}, &doc);
  EXPECT_EQ(upstream_saw(doc, "x-forwarded-for"), "203.0.113.7, 127.0.0.1");
}

// Issue 10: an empty line before the request line on a kept connection is ignored (RFC 9112
// section 2.2), a few of them at most; more is a 400.
TEST_F(HeadersTest, LeadingEmptyLinesBeforeRequestLineAreIgnored) {
  HttpClient c = client();
  ASSERT_TRUE(c.send_raw(format_request("GET", "/svc/x/echo")));
  ASSERT_EQ(c.read_response().status, 200);
  // The extra CRLF some clients send after a body, then the next request.
  ASSERT_TRUE(c.send_raw("\r\n" + format_request("GET", "/svc/x/echo/2")));
  Response r = c.read_response();
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  EXPECT_NE(r.body.find("/echo/2"), std::string::npos) << r.body;
  ASSERT_TRUE(c.send_raw("\r\n\r\n\r\n\r\n" + format_request("GET", "/svc/x/echo/3")));
  EXPECT_EQ(c.read_response().status, 200);
  // Five empty lines are beyond the bound.
  ASSERT_TRUE(c.send_raw("\r\n\r\n\r\n\r\n\r\n" + format_request("GET", "/svc/x/echo/4")));
  expect_problem(c.read_response(), 400);
  EXPECT_EQ(up_->requests_logged("/echo/4"), 0u);
}

}  // namespace
}  // namespace sb::testing
