// Maps a request (Host, path) to a service and the path the upstream gets. A pure value:
// built once from configuration and read by every worker without a lock.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"

namespace sb::gateway {

struct RouteMatch {
  enum class Kind { kMatched, kUnknownService, kNoRoute } kind = Kind::kNoRoute;
  std::size_t service = 0;        // index into the configured services (kMatched)
  std::string_view service_name;  // as requested (kUnknownService) or configured
  /// The upstream path is `replacement` + `rest` (joined so that no "//" appears at the
  /// seam), "/" when both are empty.
  std::string_view replacement;
  std::string_view rest;
  /// The matched route's request policy (timeout, retry, hedge, fallback) when it overrides
  /// its service's; nullptr otherwise. Points into the Router's configuration.
  const core::RequestPolicy* policy = nullptr;
  /// The route for metrics (http_route): its prefix ("host/prefix" for a host route),
  /// "/svc/{service}" for a direct call; and a small id for it (0 for direct calls).
  std::string_view route;
  std::uint16_t route_id = 0;
};

class Router {
 public:
  Router(const std::vector<core::ServiceConfig>& services,
         const std::vector<core::RouteConfig>& routes);

  /// `routes` must outlive the Router (matches point at their policies).
  /// `/svc/<service>/<rest>` addresses a service directly (the upstream gets `/<rest>`);
  /// otherwise routes whose host matches are tried before host-less ones, and within
  /// each group the longest matching prefix wins.
  RouteMatch match(std::string_view host, std::string_view path) const;

  /// Appends the upstream path for `m` (without the instance's base path) to `out`: the
  /// replacement and the rest with exactly one '/' at the seam when either side has one
  /// there, always starting with '/'. `Out` is std::string or http::HeadBuffer.
  template <class Out>
  static void append_upstream_path(const RouteMatch& m, Out& out) {
    const std::size_t start = out.size();
    std::string_view rep = m.replacement;
    const bool rep_slash = !rep.empty() && rep.back() == '/';
    while (!rep.empty() && rep.back() == '/') rep.remove_suffix(1);
    out.append(rep.data(), rep.size());
    if (!m.rest.empty()) {
      if (m.rest.front() != '/') out.push_back('/');
      out.append(m.rest.data(), m.rest.size());
    } else if (rep_slash) {
      out.push_back('/');
    }
    if (out.size() == start || out[start] != '/') out.insert(start, 1, '/');
  }

 private:
  struct Route {
    std::string prefix;
    std::string host;  // lower case, no port
    bool rewrite = false;
    std::string replacement;
    std::size_t service = 0;
    const core::RequestPolicy* policy = nullptr;
    std::string label{};  // RouteMatch::route
    std::uint16_t id = 0;
  };
  std::vector<std::string> service_names_;
  std::vector<Route> routes_;  // sorted: host-specific first, then longest prefix first
};

}  // namespace sb::gateway
