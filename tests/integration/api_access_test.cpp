// Who may use the registry API (issue 10, section 2), against the real binary: registered
// URLs must be in api.allowed_networks (loopback by default; names are resolved), writes
// need the bearer token when api.token is set (and come from loopback otherwise), reads
// need it too with api.open_reads false, and with server.admin_listen the API is served on
// the admin listener only. Every client here is on 127.0.0.1.
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>
#include <vector>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

const std::string kToken = "s3cret-Token-0123456789abcdef";

std::string instance_path(std::string_view service, std::string_view id) {
  return "/api/services/" + std::string(service) + "/instances/" + std::string(id);
}

Headers json_headers(std::string_view authorization = {}) {
  Headers h{{"Content-Type", "application/json"}};
  if (!authorization.empty()) h.emplace("Authorization", std::string(authorization));
  return h;
}

std::string detail_of(const Response& r) {
  auto doc = parse_json(r.body);
  return doc ? json_string(*doc, "detail").value_or("") : "";
}

class ApiAccessTest : public GatewayTest {
 protected:
  /// `method target` on port `port` (the proxy listener by default), JSON body, optional
  /// Authorization value.
  Response call(std::string_view method, std::string_view target, std::string_view body = {},
                std::string_view authorization = {}, std::uint16_t port = 0) const {
    HttpClient c(port != 0 ? port : sb_->port());
    return c.request(method, target, json_headers(authorization), body);
  }
  Response put(std::string_view service, std::string_view id, const std::string& url,
               std::string_view authorization = {}, std::uint16_t port = 0) const {
    return call("PUT", instance_path(service, id), R"({"url":")" + url + R"("})", authorization,
                port);
  }
  /// Whether switchboard's log has a line matching `re` (waits for it: logs are written by
  /// another thread than the one that answered).
  bool logged(const std::string& re) const {
    return sb_->process()
        .wait_for_line(Stream::kStderr, std::regex(re), default_timeout())
        .has_value();
  }
};

// The issue's report: a registration pointing at 10.9.9.9 from a loopback client without a
// token was answered 201. It is refused with 403 naming the rule, logged with the client's
// address, and changes nothing.
TEST_F(ApiAccessTest, RegistrationOutsideAllowedNetworksIsRefused) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  Response r = put("evil", "i1", "http://10.9.9.9:80");
  expect_problem(r, 403);
  EXPECT_NE(detail_of(r).find("10.9.9.9"), std::string::npos) << r.body;
  EXPECT_NE(detail_of(r).find("api.allowed_networks"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"field\":\"url\""), std::string::npos) << r.body;
  expect_problem(call("GET", "/api/services/evil"), 404);
  EXPECT_TRUE(logged(R"(refused .*PUT /api/services/evil/instances/i1 from 127\.0\.0\.1)"))
      << sb_->describe();
  // Also an IPv6 address outside ::1/128, and a replacement of an allowed instance.
  expect_problem(put("evil", "i2", "http://[fe80::1]:80"), 403);
  ASSERT_EQ(put("good", "g1", up_->url()).status, 201);
  expect_problem(put("good", "g1", "http://10.9.9.9:80"), 403);
  Response good = call("GET", "/api/services/good");
  EXPECT_NE(good.body.find(up_->url()), std::string::npos) << good.body;
}

// A deployment on a private network lists its ranges; then only those are allowed.
TEST_F(ApiAccessTest, AllowedNetworksAreConfigurable) {
  ASSERT_NO_FATAL_FAILURE(start_gateway("api:\n  allowed_networks: [10.9.0.0/16, \"fd00::/8\"]\n"));
  EXPECT_EQ(put("priv", "i1", "http://10.9.9.9:80").status, 201);
  EXPECT_EQ(put("priv", "i2", "http://[fd12::7]:80").status, 201);
  Response r = put("priv", "i3", up_->url());  // 127.0.0.1 is not listed any more
  expect_problem(r, 403);
  EXPECT_NE(detail_of(r).find("10.9.0.0/16, fd00::/8"), std::string::npos) << r.body;
}

// A host name is resolved and each of its addresses checked: localhost is loopback.
TEST_F(ApiAccessTest, HostNameResolvingToLoopbackIsAllowed) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  const std::string url = "http://localhost:" + std::to_string(up_->port());
  Response r = put("named", "n1", url);
  EXPECT_EQ(r.status, 201) << r.raw;
  EXPECT_NE(call("GET", "/api/services/named").body.find(url), std::string::npos);
}

// With api.token set, a write without the token or with another one is 401 with a Bearer
// challenge (problem+json), the right one is accepted; reads stay open by default.
TEST_F(ApiAccessTest, TokenGuardsWrites) {
  SwitchboardOptions o;
  o.env["SWITCHBOARD_API_TOKEN"] = kToken;
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {}, std::move(o)));
  const std::string bearer = "Bearer " + kToken;

  Response none = put("tok", "t1", up_->url());
  expect_problem(none, 401);
  EXPECT_EQ(none.header("WWW-Authenticate").rfind("Bearer", 0), 0u) << none.raw;
  Response wrong = put("tok", "t1", up_->url(), "Bearer " + kToken + "x");
  expect_problem(wrong, 401);
  EXPECT_NE(wrong.header("WWW-Authenticate").find("invalid_token"), std::string::npos) << wrong.raw;
  expect_problem(put("tok", "t1", up_->url(), "Basic " + kToken), 401);
  expect_problem(call("GET", "/api/services/tok"), 404);  // nothing was registered

  Response ok = put("tok", "t1", up_->url(), bearer);
  EXPECT_EQ(ok.status, 201) << ok.raw;
  EXPECT_EQ(put("tok", "t1", up_->url(), "bearer " + kToken).status, 200);  // scheme: any case

  // Every write needs it: heartbeat, breaker actions, deregistration.
  expect_problem(call("PUT", instance_path("tok", "t1") + "/heartbeat"), 401);
  expect_problem(call("POST", "/api/services/tok/breaker", R"({"action":"open"})"), 401);
  expect_problem(call("DELETE", instance_path("tok", "t1")), 401);
  EXPECT_EQ(call("PUT", instance_path("tok", "t1") + "/heartbeat", {}, bearer).status, 200);
  ASSERT_EQ(client().get("/svc/x/echo").status, 200);  // x's breaker exists once it had traffic
  EXPECT_EQ(call("POST", "/api/services/x/breaker", R"({"action":"reset"})", bearer).status, 200);

  // Reads are open (api.open_reads defaults to true).
  EXPECT_EQ(call("GET", "/api/services").status, 200);
  EXPECT_EQ(call("GET", "/api/services/status").status, 200);

  EXPECT_EQ(call("DELETE", instance_path("tok", "t1"), {}, bearer).status, 204);
  EXPECT_TRUE(logged(R"(refused .*DELETE /api/services/tok/instances/t1 from 127\.0\.0\.1: 401)"))
      << sb_->describe();
  // The token is never logged, not even the wrong one a client sent.
  EXPECT_EQ(sb_->process().output(Stream::kStderr).find(kToken), std::string::npos)
      << sb_->describe();
  EXPECT_EQ(sb_->process().output(Stream::kStdout).find(kToken), std::string::npos);
}

// With api.open_reads false, the reads need the token too: the registry, one service, the
// status document and the event stream.
TEST_F(ApiAccessTest, ClosedReadsNeedTheToken) {
  ASSERT_NO_FATAL_FAILURE(
      start_gateway("api:\n  token: \"" + kToken + "\"\n  open_reads: false\n"));
  for (const char* target :
       {"/api/services", "/api/services/x", "/api/services/status", "/api/services/events"}) {
    SCOPED_TRACE(target);
    Response r = call("GET", target);
    expect_problem(r, 401);
    EXPECT_EQ(r.header("WWW-Authenticate").rfind("Bearer", 0), 0u) << r.raw;
  }
  EXPECT_EQ(call("GET", "/api/services", {}, "Bearer " + kToken).status, 200);
  EXPECT_EQ(call("GET", "/api/services/status", {}, "Bearer " + kToken).status, 200);
  // The event stream with the token: its head says 200 (the stream itself does not end).
  // The reads time out after 500 ms of silence, with what came kept in `raw`.
  HttpClient c(sb_->port(), std::chrono::milliseconds(500));
  ASSERT_TRUE(c.send_raw(
      format_request("GET", "/api/services/events", {{"Authorization", "Bearer " + kToken}})));
  ASSERT_TRUE(c.readable_within(default_timeout()));
  Response head = c.read_response();
  EXPECT_EQ(head.raw.rfind("HTTP/1.1 200", 0), 0u) << head.raw;
}

// With server.admin_listen set, the API lives on the admin listener: the proxy listener
// answers 404 (problem+json saying where it is) for every API path and method, and the
// admin listener serves it (with the same rules).
TEST_F(ApiAccessTest, AdminListenerServesTheApiAndTheProxyListenerDoesNot) {
  SwitchboardOptions o;
  o.expect_admin = true;
  ASSERT_NO_FATAL_FAILURE(
      start_gateway("server:\n  admin_listen: 127.0.0.1:0\n", {}, std::move(o)));
  const std::uint16_t admin = sb_->admin_port();
  ASSERT_NE(admin, 0);

  Response r = put("adm", "a1", up_->url());
  expect_problem(r, 404);
  EXPECT_NE(detail_of(r).find("admin listener"), std::string::npos) << r.body;
  expect_problem(call("GET", "/api/services"), 404);
  expect_problem(call("GET", "/api/services/status"), 404);
  expect_problem(call("GET", "/api/services/events"), 404);
  expect_problem(call("POST", "/api/services/x/breaker", R"({"action":"open"})"), 404);

  EXPECT_EQ(put("adm", "a1", up_->url(), {}, admin).status, 201);
  EXPECT_EQ(call("GET", "/api/services/adm", {}, {}, admin).status, 200);
  expect_problem(put("adm", "a2", "http://10.9.9.9:80", {}, admin), 403);
  // The proxy listener still proxies, to the instance registered on the admin one.
  EXPECT_EQ(client().get("/svc/adm/echo").status, 200);
  EXPECT_EQ(client().get("/health/ready").status, 200);
}

// Registrations kept in the data directory are checked again at start against the current
// api.allowed_networks: one whose range was taken out (or one kept by a version that did not
// check) is dropped, with a warning; the others come back.
TEST_F(ApiAccessTest, StoredRegistrationsOutsideTheNetworksAreDroppedAtStart) {
  const std::string data = dir_.path() + "/data";
  const std::string wide =
      write_config("api:\n  allowed_networks: [10.9.0.0/16, 127.0.0.0/8]\n", "wide.yaml");
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {"--config", wide, "--data-dir", data}));
  ASSERT_EQ(put("kept", "far", "http://10.9.9.9:80").status, 201);
  ASSERT_EQ(put("kept", "near", up_->url()).status, 201);
  sb_.reset();  // SIGKILL with the process group: the store has committed both already

  SwitchboardOptions o;
  o.args = {"--service", "x=" + up_->url(), "--data-dir", data};
  sb_ = std::make_unique<Switchboard>(std::move(o));
  ASSERT_TRUE(sb_->started()) << sb_->error();
  EXPECT_TRUE(logged(R"(dropping stored registration kept/far .*10\.9\.9\.9 is not in )"
                     R"(api\.allowed_networks)"))
      << sb_->describe();
  const Response r = call("GET", "/api/services/kept");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body.find("10.9.9.9"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(up_->url()), std::string::npos) << r.body;
}

// Without a token, Switchboard says at start that writes are accepted from loopback only.
TEST_F(ApiAccessTest, WarnsAtStartWithoutAToken) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  EXPECT_TRUE(logged("api.token is not set")) << sb_->describe();
}

// --print-config renders the token redacted, whichever layer set it; the redacted value
// itself is refused as a token, so a printed config cannot silently run with it.
TEST_F(ApiAccessTest, PrintConfigRedactsTheToken) {
  const std::string file = write_config("api:\n  token: \"" + kToken + "\"\n");
  RunResult r =
      run_switchboard({"serve", "--listen", "127.0.0.1:0", "--config", file, "--print-config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find(kToken), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token: \"<redacted>\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("allowed_networks: [\"127.0.0.0/8\", \"::1/128\"]"), std::string::npos)
      << r.out;

  RunResult env = run_switchboard({"serve", "--listen", "127.0.0.1:0", "--print-config"},
                                  {{"SWITCHBOARD_API_TOKEN", kToken}});
  ASSERT_EQ(env.exit_code, 0) << env.err;
  EXPECT_EQ(env.out.find(kToken), std::string::npos) << env.out;
  EXPECT_NE(env.out.find("token: \"<redacted>\"  # env SWITCHBOARD_API_TOKEN"), std::string::npos)
      << env.out;

  const std::string printed = write_config(r.out, "printed.yaml");
  RunResult again = run_switchboard({"validate", printed});
  EXPECT_EQ(again.exit_code, 2) << again.out << again.err;
  EXPECT_NE(again.err.find("api.token"), std::string::npos) << again.err;
}

}  // namespace
}  // namespace sb::testing
