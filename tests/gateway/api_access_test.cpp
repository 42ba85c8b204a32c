#include "gateway/api_access.hpp"

#include <gtest/gtest.h>

#include <cctype>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sb::gateway {
namespace {

const std::string kToken = "0123456789abcdef-token";

core::UpstreamUrl url_with_host(std::string host) {
  core::UpstreamUrl u;
  u.host = std::move(host);
  u.text = "http://" + u.host + ":80";
  return u;
}

core::IpAddress ip(std::string_view text) { return core::IpAddress::parse(text).value(); }

// tokens_equal: equal only for the same bytes and length, wherever they differ.
TEST(TokensEqualTest, EqualOnlyForTheSameBytes) {
  EXPECT_TRUE(tokens_equal(kToken, kToken));
  EXPECT_FALSE(tokens_equal("", kToken));
  EXPECT_FALSE(tokens_equal(kToken.substr(0, kToken.size() - 1), kToken));  // a prefix
  EXPECT_FALSE(tokens_equal(kToken + "x", kToken));                         // longer
  EXPECT_FALSE(tokens_equal(kToken + kToken, kToken));  // the expected bytes repeated
  std::string first = kToken, last = kToken;
  first.front() ^= 1;
  last.back() ^= 1;
  EXPECT_FALSE(tokens_equal(first, kToken));
  EXPECT_FALSE(tokens_equal(last, kToken));
  EXPECT_FALSE(tokens_equal("", ""));  // no token configured matches nothing
  EXPECT_FALSE(tokens_equal("x", ""));
}

// One row of the decision table: listener x method x token x peer (x open_reads, admin).
struct Row {
  const char* label;
  bool admin_configured;
  bool on_admin;
  const char* method;
  bool token_configured;
  const char* authorization;
  const char* peer;
  bool open_reads;
  int status;  // 0: allowed
  bool invalid_token_challenge = false;
};

class ApiAccessDecisionTest : public ::testing::TestWithParam<Row> {};

TEST_P(ApiAccessDecisionTest, Decides) {
  const Row& row = GetParam();
  core::ApiConfig api;
  api.open_reads = row.open_reads;
  if (row.token_configured) api.token = kToken;
  const ApiAccess access({api, row.admin_configured});
  const auto r = access.check({row.on_admin, row.method, row.peer, row.authorization});
  if (row.status == 0) {
    EXPECT_FALSE(r.has_value()) << r->status << " " << r->detail;
    return;
  }
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, row.status) << r->detail;
  EXPECT_EQ(r->detail.find(kToken), std::string::npos) << r->detail;
  if (row.status == 401) {
    EXPECT_EQ(r->challenge.rfind("Bearer realm=\"switchboard\"", 0), 0u);
    EXPECT_EQ(r->challenge.find("invalid_token") != std::string::npos, row.invalid_token_challenge)
        << r->challenge;
  } else {
    EXPECT_EQ(r->challenge, "");
  }
  if (row.status == 403) {
    EXPECT_NE(r->detail.find("loopback clients only"), std::string::npos) << r->detail;
    EXPECT_NE(r->detail.find("api.token"), std::string::npos) << r->detail;
  }
  if (row.status == 404) {
    EXPECT_NE(r->detail.find("admin listener (server.admin_listen)"), std::string::npos);
  }
}

const std::string kBearer = "Bearer " + kToken;
const std::string kLower = "bearer  " + kToken + " ";
const std::string kWrong = "Bearer " + kToken + "x";
const std::string kBasic = "Basic " + kToken;
const std::string kGlued = "Bearer" + kToken;

// clang-format off
INSTANTIATE_TEST_SUITE_P(Table, ApiAccessDecisionTest, ::testing::Values(
  //   label                                   admin  on_adm method   token  authorization    peer         open   status
  // No admin listener, no token: reads open, writes from loopback only.
  Row{"read, remote",                          false, false, "GET",    false, "",              "10.1.2.3",  true,  0},
  Row{"head, remote",                          false, false, "HEAD",   false, "",              "10.1.2.3",  true,  0},
  Row{"put, loopback v4",                      false, false, "PUT",    false, "",              "127.0.0.1", true,  0},
  Row{"put, loopback 127/8",                   false, false, "PUT",    false, "",              "127.9.9.9", true,  0},
  Row{"put, loopback v6",                      false, false, "PUT",    false, "",              "::1",       true,  0},
  Row{"put, remote",                           false, false, "PUT",    false, "",              "10.1.2.3",  true,  403},
  Row{"put, remote v6",                        false, false, "PUT",    false, "",              "fd00::5",   true,  403},
  Row{"delete, remote",                        false, false, "DELETE", false, "",              "10.1.2.3",  true,  403},
  Row{"post (breaker), remote",                false, false, "POST",   false, "",              "192.168.0.4", true, 403},
  Row{"patch counts as a write",               false, false, "PATCH",  false, "",              "10.1.2.3",  true,  403},
  Row{"unknown peer",                          false, false, "PUT",    false, "",              "",          true,  403},
  Row{"a token sent, none configured",         false, false, "PUT",    false, kBearer.c_str(), "10.1.2.3",  true,  403},
  // Token configured: writes need it from anywhere, loopback included.
  Row{"put, token, loopback, none sent",       false, false, "PUT",    true,  "",              "127.0.0.1", true,  401},
  Row{"put, token, remote, right",             false, false, "PUT",    true,  kBearer.c_str(), "10.1.2.3",  true,  0},
  Row{"put, token, scheme in lower case",      false, false, "PUT",    true,  kLower.c_str(),  "10.1.2.3",  true,  0},
  Row{"put, token, wrong",                     false, false, "PUT",    true,  kWrong.c_str(),  "127.0.0.1", true,  401, true},
  Row{"put, token, empty bearer",              false, false, "PUT",    true,  "Bearer ",       "127.0.0.1", true,  401, true},
  Row{"put, token, Basic scheme",              false, false, "PUT",    true,  kBasic.c_str(),  "127.0.0.1", true,  401},
  Row{"put, token, scheme glued on",           false, false, "PUT",    true,  kGlued.c_str(),  "127.0.0.1", true,  401},
  Row{"delete, token, right",                  false, false, "DELETE", true,  kBearer.c_str(), "10.1.2.3",  true,  0},
  Row{"post, token, none",                     false, false, "POST",   true,  "",              "10.1.2.3",  true,  401},
  Row{"read, token, none, open reads",         false, false, "GET",    true,  "",              "10.1.2.3",  true,  0},
  Row{"read, token, wrong, open reads",        false, false, "GET",    true,  kWrong.c_str(),  "10.1.2.3",  true,  0},
  // Closed reads follow the write rule.
  Row{"read, closed, token, none",             false, false, "GET",    true,  "",              "127.0.0.1", false, 401},
  Row{"read, closed, token, right",            false, false, "GET",    true,  kBearer.c_str(), "10.1.2.3",  false, 0},
  Row{"head, closed, token, wrong",            false, false, "HEAD",   true,  kWrong.c_str(),  "10.1.2.3",  false, 401, true},
  Row{"read, closed, no token, loopback",      false, false, "GET",    false, "",              "127.0.0.1", false, 0},
  Row{"read, closed, no token, remote",        false, false, "GET",    false, "",              "10.1.2.3",  false, 403},
  // With an admin listener, the proxy listener serves no API at all.
  Row{"admin set, proxy listener, read",       true,  false, "GET",    false, "",              "127.0.0.1", true,  404},
  Row{"admin set, proxy listener, put",        true,  false, "PUT",    true,  kBearer.c_str(), "127.0.0.1", true,  404},
  Row{"admin set, admin listener, read",       true,  true,  "GET",    false, "",              "10.1.2.3",  true,  0},
  Row{"admin set, admin listener, put, loop",  true,  true,  "PUT",    false, "",              "127.0.0.1", true,  0},
  Row{"admin set, admin listener, put, remote",true,  true,  "PUT",    false, "",              "10.1.2.3",  true,  403},
  Row{"admin set, admin listener, token none", true,  true,  "PUT",    true,  "",              "10.1.2.3",  true,  401},
  Row{"admin set, admin listener, token ok",   true,  true,  "PUT",    true,  kBearer.c_str(), "10.1.2.3",  true,  0},
  // Without an admin listener, both kinds are the same (there is only the proxy one).
  Row{"no admin, admin flag ignored",          false, true,  "PUT",    false, "",              "10.1.2.3",  true,  403}
), [](const ::testing::TestParamInfo<Row>& row_info) {
  std::string name;
  for (const char* c = row_info.param.label; *c != 0; ++c)
    name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
  return name;
});
// clang-format on

// A resolver that answers from a table and counts its calls.
struct FakeResolver {
  std::map<std::string, std::vector<core::IpAddress>> names;
  int* calls;
  std::vector<core::IpAddress> operator()(const std::string& host, std::string* why) const {
    ++*calls;
    auto it = names.find(host);
    if (it != names.end()) return it->second;
    *why = "Name or service not known";
    return {};
  }
};

class ApiDestinationTest : public ::testing::Test {
 protected:
  ApiAccess make(std::vector<std::string> networks) {
    core::ApiConfig api;
    api.allowed_networks.clear();
    for (const auto& n : networks) api.allowed_networks.push_back(*core::IpNetwork::parse(n));
    FakeResolver r{{{"localhost", {ip("127.0.0.1"), ip("::1")}},
                    {"db.internal", {ip("10.9.0.7")}},
                    {"mixed", {ip("127.0.0.1"), ip("10.9.9.9")}}},
                   &calls_};
    return ApiAccess({api, false}, r);
  }
  int calls_ = 0;
};

// The default networks: loopback addresses pass, anything else is refused naming the rule.
TEST_F(ApiDestinationTest, LoopbackByDefault) {
  const ApiAccess a = make({"127.0.0.0/8", "::1/128"});
  EXPECT_FALSE(a.check_destination(url_with_host("127.0.0.1")).has_value());
  EXPECT_FALSE(a.check_destination(url_with_host("127.1.2.3")).has_value());
  EXPECT_FALSE(a.check_destination(url_with_host("::1")).has_value());
  EXPECT_FALSE(a.check_destination(url_with_host("[::1]")).has_value());
  EXPECT_EQ(calls_, 0) << "addresses are not resolved";
  const auto r = a.check_destination(url_with_host("10.9.9.9"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->slug, "destination-not-allowed");
  EXPECT_EQ(r->field, "url");
  EXPECT_EQ(r->detail, "10.9.9.9 is not in api.allowed_networks (127.0.0.0/8, ::1/128)");
  const auto v6 = a.check_destination(url_with_host("fe80::1"));
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->detail, "fe80::1 is not in api.allowed_networks (127.0.0.0/8, ::1/128)");
  // An IPv4-mapped address is judged as the IPv4 address it carries.
  EXPECT_TRUE(a.check_destination(url_with_host("::ffff:10.9.9.9")).has_value());
  EXPECT_FALSE(a.check_destination(url_with_host("::ffff:127.0.0.1")).has_value());
}

// A name is resolved and every one of its addresses must be allowed.
TEST_F(ApiDestinationTest, NamesAreResolvedAndEachAddressChecked) {
  const ApiAccess a = make({"127.0.0.0/8", "::1/128"});
  EXPECT_FALSE(a.check_destination(url_with_host("localhost")).has_value());
  const auto mixed = a.check_destination(url_with_host("mixed"));
  ASSERT_TRUE(mixed.has_value());
  EXPECT_EQ(mixed->status, 403);
  EXPECT_EQ(mixed->detail,
            "mixed resolves to 10.9.9.9, which is not in api.allowed_networks (127.0.0.0/8, "
            "::1/128)");
  const auto unknown = a.check_destination(url_with_host("nowhere.invalid"));
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status, 400);
  EXPECT_EQ(unknown->field, "url");
  EXPECT_EQ(unknown->detail, "cannot resolve host \"nowhere.invalid\": Name or service not known");
  EXPECT_EQ(calls_, 3);

  const ApiAccess priv = make({"10.9.0.0/16"});
  EXPECT_FALSE(priv.check_destination(url_with_host("db.internal")).has_value());
  EXPECT_TRUE(priv.check_destination(url_with_host("localhost")).has_value());
}

// An empty list refuses every registration, saying so.
TEST_F(ApiDestinationTest, EmptyListRefusesEverything) {
  const ApiAccess a = make({});
  const auto r = a.check_destination(url_with_host("127.0.0.1"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->detail, "api.allowed_networks is empty: no registration is accepted");
}

// The system resolver knows localhost (from /etc/hosts; no DNS query).
TEST(ResolveHostTest, SystemResolverKnowsLocalhost) {
  std::string why;
  const auto local = resolve_host("localhost", &why);
  ASSERT_FALSE(local.empty()) << why;
  for (const auto& a : local) EXPECT_TRUE(a.is_loopback()) << a.str();
}

}  // namespace
}  // namespace sb::gateway
