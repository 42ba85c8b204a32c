// Router::match against a plain reference (/svc/ shortcut, host routes before host-less
// ones, longest prefix on a segment boundary, first configured wins a tie) for a fixed
// table plus routes taken from the input; append_upstream_path always yields "/...".
// Input lines: host, path, then up to 8 routes "prefix|host|service digit|rewrite".
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "fuzz_check.hpp"
#include "gateway/router.hpp"

namespace {

namespace core = sb::core;
using sb::gateway::RouteMatch;
using sb::gateway::Router;

const std::vector<core::ServiceConfig>& services() {
  static const std::vector<core::ServiceConfig> s = [] {
    std::vector<core::ServiceConfig> out;
    for (const char* n : {"backend", "telegram-bot", "llm-service", "frontend", "admin-api"})
      out.push_back(core::ServiceConfig{.name = n});
    return out;
  }();
  return s;
}

// The fixed table: like examples/switchboard.yaml, plus host routes and rewrites.
std::vector<core::RouteConfig> fixed_routes() {
  return {
      {.prefix = "/api", .service = "backend"},
      {.prefix = "/api/v2/", .service = "backend", .rewrite = "/v2"},
      {.prefix = "/llm", .service = "llm-service", .rewrite = "/"},
      {.prefix = "/ai/", .service = "llm-service", .rewrite = "/v1/"},
      {.prefix = "/telegram", .service = "telegram-bot", .rewrite = "/"},
      {.prefix = "/admin",
       .host = "admin.example.com",
       .service = "admin-api",
       .rewrite = "/internal"},
      {.host = "bot.example.com", .service = "telegram-bot"},
      {.prefix = "/", .service = "frontend"},
  };
}

// What the loader accepts as a prefix or rewrite (core/config_load.cpp check_route_path).
bool valid_route_path(std::string_view p) {
  if (p.empty() || p.front() != '/') return false;
  for (unsigned char c : p)
    if (c <= 0x20 || c == 0x7f || c == '?' || c == '#') return false;
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

// "prefix|host|digit|rewrite" -> a route the loader would accept, or nothing.
std::optional<core::RouteConfig> parse_route(std::string_view line) {
  const auto parts = split(line, '|');
  if (parts.size() < 3) return std::nullopt;
  core::RouteConfig r;
  r.prefix = std::string(parts[0]);
  for (char c : parts[1]) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-'))
      return std::nullopt;
  }
  r.host = std::string(parts[1]);
  if (parts[2].empty()) return std::nullopt;
  r.service = services()[static_cast<unsigned char>(parts[2][0]) % services().size()].name;
  if (parts.size() > 3) r.rewrite = std::string(parts[3]);
  if (!r.prefix.empty() && !valid_route_path(r.prefix)) return std::nullopt;
  if (r.rewrite && !valid_route_path(*r.rewrite)) return std::nullopt;
  if (r.prefix.empty() && r.host.empty()) return std::nullopt;
  return r;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Host header without its port ("[v6]:port" keeps the brackets), case-insensitively.
bool ref_host_matches(std::string_view want, std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (want.size() != host.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (lower(want[i]) != lower(host[i])) return false;
  return true;
}

// Prefix on a path-segment boundary ("/api" matches /api, /api/x; not /apix).
bool ref_prefix_matches(std::string_view prefix, std::string_view path) {
  if (!path.starts_with(prefix)) return false;
  if (prefix.empty() || path.size() == prefix.size() || prefix.back() == '/') return true;
  return path[prefix.size()] == '/';
}

std::size_t service_index(std::string_view name) {
  for (std::size_t i = 0; i < services().size(); ++i)
    if (services()[i].name == name) return i;
  return services().size();
}

RouteMatch reference_match(const std::vector<core::RouteConfig>& routes, std::string_view host,
                           std::string_view path) {
  RouteMatch m;
  if (path.starts_with("/svc/")) {
    const std::string_view tail = path.substr(5);
    const auto slash = tail.find('/');
    m.service_name = tail.substr(0, slash);
    m.rest = slash == std::string_view::npos ? std::string_view{} : tail.substr(slash);
    m.service = service_index(m.service_name);
    m.kind = m.service < services().size() ? RouteMatch::Kind::kMatched
                                           : RouteMatch::Kind::kUnknownService;
    if (m.kind == RouteMatch::Kind::kUnknownService) m.service = 0;
    return m;
  }
  for (bool host_group : {true, false}) {
    const core::RouteConfig* best = nullptr;
    for (const auto& r : routes) {
      if (r.host.empty() == host_group) continue;
      if (host_group && !ref_host_matches(r.host, host)) continue;
      if (!ref_prefix_matches(r.prefix, path)) continue;
      if (best == nullptr || r.prefix.size() > best->prefix.size()) best = &r;
    }
    if (best == nullptr) continue;
    m.kind = RouteMatch::Kind::kMatched;
    m.service = service_index(best->service);
    m.service_name = best->service;
    if (best->rewrite) {
      m.replacement = *best->rewrite;
      m.rest = path.substr(best->prefix.size());
    } else {
      m.rest = path;
    }
    return m;
  }
  return m;
}

void check_upstream_path(const RouteMatch& m) {
  std::string out;
  Router::append_upstream_path(m, out);
  SB_FUZZ_CHECK(!out.empty() && out.front() == '/');
  SB_FUZZ_CHECK(std::string_view(out).ends_with(m.rest));
  // The seam: exactly one '/' between the replacement and a non-empty rest (router.hpp:
  // "joined so that no "//" appears at the seam").
  const std::string_view head = std::string_view(out).substr(0, out.size() - m.rest.size());
  if (!m.rest.empty() && !head.empty()) {
    if (m.rest.front() == '/')
      SB_FUZZ_CHECK(head.back() != '/');
    else
      SB_FUZZ_CHECK(head.back() == '/' && !head.ends_with("//"));
  }
  std::string again = "prefix";  // it appends, and only appends
  Router::append_upstream_path(m, again);
  SB_FUZZ_CHECK(again == "prefix" + out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  const auto lines = split(input, '\n');
  const std::string_view host = lines[0];
  const std::string_view path = lines.size() > 1 ? lines[1] : std::string_view("/");
  std::vector<core::RouteConfig> routes = fixed_routes();
  for (std::size_t i = 2; i < lines.size() && i < 10; ++i)
    if (auto r = parse_route(lines[i])) routes.push_back(std::move(*r));

  const Router router(services(), routes);
  const RouteMatch got = router.match(host, path);
  const RouteMatch want = reference_match(routes, host, path);
  SB_FUZZ_CHECK(got.kind == want.kind);
  SB_FUZZ_CHECK(got.service_name == want.service_name);
  if (got.kind == RouteMatch::Kind::kMatched) {
    SB_FUZZ_CHECK(got.service == want.service && got.service < services().size());
    SB_FUZZ_CHECK(got.replacement == want.replacement && got.rest == want.rest);
    check_upstream_path(got);
  }
  if (got.kind == RouteMatch::Kind::kUnknownService) check_upstream_path(got);
  // Anything under "/" that is not /svc/ is routed (the fixed table has a catch-all).
  if (path.starts_with('/') && !path.starts_with("/svc/"))
    SB_FUZZ_CHECK(got.kind == RouteMatch::Kind::kMatched);
  return 0;
}
