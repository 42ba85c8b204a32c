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
