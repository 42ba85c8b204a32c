// The operations endpoints on the proxy listener: /health, /health/live, /health/ready.
#include <gtest/gtest.h>

#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class HealthTest : public GatewayTest {};

// /health reports status, version, uptime and each service with its instance count.
TEST_F(HealthTest, HealthReportsServices) {
  ASSERT_NO_FATAL_FAILURE(start_gateway(
      {}, {"--service", "two=" + std::string("http://127.0.0.1:1/a,http://127.0.0.1:2/b")}));
  HttpClient c = client();
  Response r = c.get("/health");
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  EXPECT_EQ(r.header("Content-Type").rfind("application/json", 0), 0u) << r.header("Content-Type");
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc && doc->is_object()) << r.body;
  const auto& o = doc->as_object();
  EXPECT_TRUE(json_string(*doc, "status").has_value()) << r.body;
  EXPECT_TRUE(json_string(*doc, "version").has_value()) << r.body;
  ASSERT_TRUE(o.contains("uptime_seconds")) << r.body;
  EXPECT_TRUE(o.at("uptime_seconds").is_number()) << r.body;
  const auto* services = o.if_contains("services");
  ASSERT_TRUE(services && services->is_object()) << r.body;
  const auto* x = services->as_object().if_contains("x");
  const auto* two = services->as_object().if_contains("two");
  ASSERT_TRUE(x && two) << r.body;
  EXPECT_EQ(json_int(*x, "instances"), 1) << r.body;
  EXPECT_EQ(json_int(*two, "instances"), 2) << r.body;
}

// /health/live answers 200 while the process runs.
TEST_F(HealthTest, LiveIs200) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.get("/health/live");
  EXPECT_EQ(r.status, 200) << r.error << r.raw;
}

// /health/ready answers 200 once the gateway has started.
TEST_F(HealthTest, ReadyIs200AfterStart) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  Response r = c.get("/health/ready");
  EXPECT_EQ(r.status, 200) << r.error << r.raw;
}

// With server.admin_listen the operations endpoints are served on the admin port, which
// does not proxy.
TEST_F(HealthTest, AdminListenerServesHealthOnly) {
  SwitchboardOptions options;
  options.expect_admin = true;
  ASSERT_NO_FATAL_FAILURE(
      start_gateway("server:\n  admin_listen: 127.0.0.1:0\n", {}, std::move(options)));
  ASSERT_NE(sb_->admin_port(), 0);
  HttpClient admin(sb_->admin_port());
  Response r = admin.get("/health/ready");
  EXPECT_EQ(r.status, 200) << r.error << r.raw;
  Response proxied = admin.get("/svc/x/echo");
  EXPECT_TRUE(proxied.ok()) << proxied.error;
  EXPECT_NE(proxied.status, 200) << proxied.raw;
  EXPECT_EQ(up_->requests_logged("/echo"), 0u);
}

}  // namespace
}  // namespace sb::testing
