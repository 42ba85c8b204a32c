// Routing /svc/<service>/... to upstreams, and the problem responses when that fails.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class RoutingTest : public GatewayTest {};

// /svc/x/<rest> reaches service x as /<rest>, with the method and query unchanged.
TEST_F(RoutingTest, ServicePrefixIsStrippedAndQueryKept) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.request("PUT", "/svc/x/echo/a/b?q=1&r=two%20words", {}, "hi");
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_string(*doc, "method"), "PUT");
  EXPECT_EQ(json_string(*doc, "path"), "/echo/a/b");
  EXPECT_EQ(json_string(*doc, "query"), "q=1&r=two%20words");
  EXPECT_EQ(json_int(*doc, "body_len"), 2);
}

// The upstream's status and body are relayed as they are.
TEST_F(RoutingTest, UpstreamStatusIsRelayed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.get("/svc/x/status/404");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "status 404\n");
  EXPECT_EQ(r.header("X-Upstream-Name"), "up");
}

// A service that is not configured is a 404 problem.
TEST_F(RoutingTest, UnknownServiceIsProblem404) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.get("/svc/nope/echo");
  expect_problem(r, 404);
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

// An instance that refuses connections is a 502 problem.
TEST_F(RoutingTest, RefusedUpstreamIsProblem502) {
  Switchboard sb(
      std::vector<std::string>{"--service", "x=http://127.0.0.1:" + std::to_string(unused_port())});
  ASSERT_TRUE(sb.started()) << sb.error();
  HttpClient c(sb.port());
  expect_problem(c.get("/svc/x/echo"), 502);
}

// Issue 10: an instance given by host name (http://localhost:PORT) is resolved, off the
// worker thread, and proxied to; it answered 502 "name resolution failed" before.
TEST_F(RoutingTest, InstanceGivenByHostNameIsResolved) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  Switchboard sb(
      std::vector<std::string>{"--service", "x=http://localhost:" + std::to_string(up.port())});
  ASSERT_TRUE(sb.started()) << sb.error();
  HttpClient c(sb.port());
  for (int i = 0; i < 3; ++i) {  // the first resolves; the others use the cached address
    Response r = c.get("/svc/x/echo");
    ASSERT_EQ(r.status, 200) << r.error << r.raw;
  }
}

// An upstream that resets the connection instead of answering is a 502 problem.
TEST_F(RoutingTest, UpstreamResetIsProblem502) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  expect_problem(c.get("/svc/x/bad/reset"), 502);
}

// An upstream slower than upstream.timeouts.response is a 504 problem, sent on time.
TEST_F(RoutingTest, SlowUpstreamIsProblem504) {
  ASSERT_NO_FATAL_FAILURE(start_gateway("upstream:\n  timeouts:\n    response: 500ms\n"));
  HttpClient c = client();
  const auto start = Clock::now();
  Response r = c.get("/svc/x/slow/5000");
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  expect_problem(r, 504);
  EXPECT_GE(elapsed, milliseconds(450));
  EXPECT_LT(elapsed, scaled(milliseconds(3000)));
}

// A service whose only instance is unusable (its connections all busy, pool of one) is a
// 503 problem rather than a wait.
TEST_F(RoutingTest, NoUsableInstanceIsProblem503) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "upstream:\n  pool:\n    max_connections: 1\n    max_idle: 1\n", {"--threads", "1"}));
  HttpClient busy = client();
  ASSERT_TRUE(busy.send_raw(format_request("GET", "/svc/x/slow/1500")));
  ASSERT_TRUE(up_->process().wait_for_line(Stream::kStdout, std::regex("REQ .* /slow/1500"),
                                           default_timeout()))
      << "the slow request never reached the upstream";
  HttpClient c = client();
  expect_problem(c.get("/svc/x/echo"), 503);
  EXPECT_EQ(busy.read_response().status, 200);
}

class MalformedUpstreamTest : public GatewayTest,
                              public ::testing::WithParamInterface<const char*> {};

// Each kind of malformed upstream response is a 502 problem; none of its bytes reach the
// client.
TEST_P(MalformedUpstreamTest, IsProblem502AndNotRelayed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.get(std::string("/svc/x/bad/") + GetParam());
  expect_problem(r, 502);
  EXPECT_EQ(r.raw.find("MALFORMED"), std::string::npos) << r.raw;
  EXPECT_EQ(r.raw.find("X-Malformed"), std::string::npos) << r.raw;
  EXPECT_EQ(r.raw.find("2OO"), std::string::npos) << r.raw;
}

INSTANTIATE_TEST_SUITE_P(Kinds, MalformedUpstreamTest,
                         ::testing::Values("status-line", "cl-te", "two-cl", "header-bytes",
                                           "obs-fold"),
                         [](const auto& p) {
                           std::string name = p.param;
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace sb::testing

namespace sb::testing {
namespace {

// Regression: only /api/services is Switchboard's; the rest of /api/ routes like any path
// (the platform's backend API lives there).
class ApiPrefixTest : public GatewayTest {};

TEST_F(ApiPrefixTest, OnlyApiServicesIsReserved) {
  ASSERT_NO_FATAL_FAILURE(start_gateway("routes:\n  - {prefix: /api, service: x}\n"));
  Response r = client().get("/api/users/echo");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_NE(r.body.find("\"path\""), std::string::npos) << "the upstream answered: " << r.body;
  EXPECT_EQ(client().get("/api/services").status, 200);
  EXPECT_EQ(client().get("/api/services").header("Content-Type"), "application/json");
}

}  // namespace
}  // namespace sb::testing

namespace sb::testing {
namespace {

// Issue 10: routes see the normalised path (dot segments removed, unreserved escapes
// decoded), and the upstream gets that path; what cannot be normalised is a 400.
class PathNormalisationTest : public GatewayTest {
 protected:
  static constexpr std::string_view kRoutes =
      "routes:\n"
      "  - {prefix: /public/, service: x, rewrite: /pub/}\n"
      "  - {prefix: /admin/, service: x, rewrite: /adm/}\n";

  // The path and query the upstream saw for GET `target`; "<status>" when it was not 200.
  std::pair<std::string, std::string> upstream_path(std::string_view target) {
    Response r = client().get(target);
    if (r.status != 200) return {"<" + std::to_string(r.status) + ">", r.raw};
    auto doc = parse_json(r.body);
    if (!doc) return {"<bad json>", r.body};
    return {json_string(*doc, "path").value_or("<none>"),
            json_string(*doc, "query").value_or("<none>")};
  }
};

TEST_F(PathNormalisationTest, DotSegmentsAreRemovedBeforeRouting) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kRoutes));
  EXPECT_EQ(upstream_path("/public/echo").first, "/pub/echo");
  EXPECT_EQ(upstream_path("/public/../admin/echo").first, "/adm/echo");
  EXPECT_EQ(upstream_path("/public/%2e%2e/admin/echo").first, "/adm/echo");
  EXPECT_EQ(upstream_path("/public/%2E./admin/./x/../echo").first, "/adm/echo");
  EXPECT_EQ(upstream_path("/public/a/b/../../echo/.").first, "/pub/echo/");
  // Without merge_slashes an empty segment is a segment: ".." removes it.
  EXPECT_EQ(upstream_path("/public//../echo").first, "/pub/echo");
}

// Unreserved characters are decoded, other escapes kept with upper-case hex; the query is
// not touched.
TEST_F(PathNormalisationTest, EscapesAreNormalisedAndQueryKept) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kRoutes));
  const auto [path, query] = upstream_path("/public/%7euser/%3a%41%20/../echo?a=%2e%2e/b&c=%7e");
  EXPECT_EQ(path, "/pub/~user/echo");
  EXPECT_EQ(query, "a=%2e%2e/b&c=%7e");
  EXPECT_EQ(upstream_path("/public/%3a%41/echo").first, "/pub/%3AA/echo");
}

// What cannot be normalised without guessing is refused before any upstream sees it.
TEST_F(PathNormalisationTest, UnnormalisablePathsAre400) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(kRoutes));
  for (const char* target :
       {"/../public/echo", "/public/../../echo", "/public/a%2F..%2F..%2Fadmin/echo",
        "/public/a%5c../echo", "/public/a\\..\\echo", "/public/%zz/echo", "/public/echo%",
        "/public/echo%4", "/public/%00/echo"}) {
    Response r = client().get(target);
    expect_problem(r, 400);
    EXPECT_NE(r.body.find("path"), std::string::npos) << target << ": " << r.body;
  }
  EXPECT_EQ(up_->requests_logged("echo"), 0u);
}

// server.merge_slashes: runs of '/' become one before dot segments are removed.
TEST_F(PathNormalisationTest, MergeSlashes) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(std::string(kRoutes) + "server:\n  merge_slashes: true\n"));
  EXPECT_EQ(upstream_path("/public//..//admin///echo").first, "/adm/echo");
  EXPECT_EQ(upstream_path("//public/echo//").first, "/pub/echo/");
}

// Issue 10: absolute-form targets (RFC 9112 section 3.2.2) are routed like origin-form;
// their authority is the request's host, whatever the Host field says.
class AbsoluteFormTest : public GatewayTest {};

TEST_F(AbsoluteFormTest, AuthorityReplacesHostAndPathIsRouted) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      "routes:\n  - {host: api.example, prefix: /, service: x, rewrite: /by-host/}\n"));
  HttpClient c = client();
  ASSERT_TRUE(c.send_raw(
      "GET http://API.example:8080/a/../echo?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n"));
  Response r = c.read_response();
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_string(*doc, "path"), "/by-host/echo");
  EXPECT_EQ(json_string(*doc, "query"), "q=1");
  EXPECT_NE(r.body.find("\"x-forwarded-host\": [\"API.example:8080\"]"), std::string::npos)
      << r.body;
  // https too, and the /svc/ form; the connection stays usable.
  ASSERT_TRUE(c.send_raw("GET https://h/svc/x/echo HTTP/1.1\r\nHost: h\r\n\r\n"));
  r = c.read_response();
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  EXPECT_NE(r.body.find("\"path\": \"/echo\""), std::string::npos) << r.body;
}

TEST_F(AbsoluteFormTest, OtherSchemesAndAuthorityFormAre400) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  for (const char* line : {"GET ftp://h/svc/x/echo HTTP/1.1", "GET http:///svc/x/echo HTTP/1.1",
                           "GET http://u@h/svc/x/echo HTTP/1.1", "CONNECT h:443 HTTP/1.1"}) {
    HttpClient c = client();
    ASSERT_TRUE(c.send_raw(std::string(line) + "\r\nHost: h\r\n\r\n"));
    expect_problem(c.read_response(), 400);
  }
  EXPECT_EQ(up_->requests_logged("echo"), 0u);
}

}  // namespace
}  // namespace sb::testing
