#include "gateway/router.hpp"

#include <gtest/gtest.h>

namespace sb::gateway {
namespace {

std::vector<core::ServiceConfig> services(std::initializer_list<const char*> names) {
  std::vector<core::ServiceConfig> out;
  for (const char* n : names) out.push_back(core::ServiceConfig{.name = n});
  return out;
}

std::string upstream_path(const RouteMatch& m) {
  std::string out;
  Router::append_upstream_path(m, out);
  return out;
}

// /svc/<service>/<rest> sends /<rest> to the service.
TEST(RouterTest, SvcPrefixAddressesServiceDirectly) {
  Router r(services({"llm-service", "backend"}), {});
  auto m = r.match("h", "/svc/llm-service/v1/chat");
  ASSERT_EQ(m.kind, RouteMatch::Kind::kMatched);
  EXPECT_EQ(m.service, 0u);
  EXPECT_EQ(upstream_path(m), "/v1/chat");
  EXPECT_EQ(upstream_path(r.match("h", "/svc/backend")), "/");
  EXPECT_EQ(upstream_path(r.match("h", "/svc/backend/")), "/");
}

TEST(RouterTest, UnknownServiceAndNoRoute) {
  Router r(services({"backend"}), {});
  auto m = r.match("h", "/svc/nope/x");
  EXPECT_EQ(m.kind, RouteMatch::Kind::kUnknownService);
  EXPECT_EQ(m.service_name, "nope");
  EXPECT_EQ(r.match("h", "/other").kind, RouteMatch::Kind::kNoRoute);
}

// Prefixes match on segment boundaries; the longest one wins.
TEST(RouterTest, LongestPrefixOnSegmentBoundary) {
  Router r(services({"a", "b", "c"}), {{.prefix = "/api", .service = "a"},
                                       {.prefix = "/api/v2", .service = "b"},
                                       {.prefix = "/", .service = "c"}});
  EXPECT_EQ(r.match("h", "/api").service, 0u);
  EXPECT_EQ(r.match("h", "/api/users").service, 0u);
  EXPECT_EQ(r.match("h", "/api/v2/users").service, 1u);
  EXPECT_EQ(r.match("h", "/api/v20").service, 0u);
  EXPECT_EQ(r.match("h", "/apix").service, 2u);
  // Without a rewrite the path goes upstream unchanged.
  EXPECT_EQ(upstream_path(r.match("h", "/api/users")), "/api/users");
}

TEST(RouterTest, PrefixRewrite) {
  Router r(services({"llm"}), {{.prefix = "/llm", .service = "llm", .rewrite = "/"},
                               {.prefix = "/ai/", .service = "llm", .rewrite = "/v1"}});
  EXPECT_EQ(upstream_path(r.match("h", "/llm/chat")), "/chat");
  EXPECT_EQ(upstream_path(r.match("h", "/llm")), "/");
  EXPECT_EQ(upstream_path(r.match("h", "/ai/chat")), "/v1/chat");
}

// Issue 10: requests arrive with normalised paths (http/path.hpp), so prefixes are
// normalised too: a prefix written with escapes of unreserved characters or lower-case hex
// matches the path those requests get.
TEST(RouterTest, PrefixesAreNormalisedLikePaths) {
  Router r(services({"a", "b"}), {{.prefix = "/%7Euser", .service = "a", .rewrite = "/u"},
                                  {.prefix = "/x%3ay", .service = "b"}});
  EXPECT_EQ(r.match("h", "/~user/page").service, 0u);
  EXPECT_EQ(upstream_path(r.match("h", "/~user/page")), "/u/page");
  EXPECT_EQ(r.match("h", "/x%3Ay/z").kind, RouteMatch::Kind::kMatched);
  EXPECT_EQ(r.match("h", "/x%3Ay/z").service, 1u);
  EXPECT_EQ(r.match("h", "/%7Euser").kind, RouteMatch::Kind::kNoRoute);  // never arrives so
}

// Host routes match without the port, case-insensitively, and beat host-less routes.
TEST(RouterTest, HostRoutes) {
  Router r(services({"front", "api"}),
           {{.prefix = "/", .service = "front"},
            {.prefix = "/", .host = "API.example.com", .service = "api"},
            {.host = "bare.example", .service = "api"}});
  EXPECT_EQ(r.match("api.example.com:8080", "/x").service, 1u);
  EXPECT_EQ(r.match("Api.Example.Com", "/x").service, 1u);
  EXPECT_EQ(r.match("other", "/x").service, 0u);
  EXPECT_EQ(r.match("bare.example", "/anything").service, 1u);
  EXPECT_EQ(r.match("[::1]:80", "/x").service, 0u);
}

// Regression (fuzz/corpus/router/crash_rewrite_*): the loader accepts a rewrite that ends
// in several '/' ("//", "/v1//"), and the upstream path must still have exactly one '/' at
// the seam, as RouteMatch promises ("no "//" appears at the seam").
TEST(RouterTest, RewriteEndingInSeveralSlashesJoinsWithOneSlash) {
  Router r(services({"b"}), {{.prefix = "/p", .service = "b", .rewrite = "//"},
                             {.prefix = "/q/", .service = "b", .rewrite = "/v1//"}});
  EXPECT_EQ(upstream_path(r.match("h", "/p/chat")), "/chat");     // today: "//chat"
  EXPECT_EQ(upstream_path(r.match("h", "/p/")), "/");             // today: "//"
  EXPECT_EQ(upstream_path(r.match("h", "/q/chat")), "/v1/chat");  // today: "/v1//chat"
}

}  // namespace
}  // namespace sb::gateway
