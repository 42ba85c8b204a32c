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
};

class Router {
 public:
  Router(const std::vector<core::ServiceConfig>& services,
         const std::vector<core::RouteConfig>& routes);

  /// `/svc/<service>/<rest>` addresses a service directly (the upstream gets `/<rest>`);
  /// otherwise routes whose host matches are tried before host-less ones, and within
  /// each group the longest matching prefix wins.
  RouteMatch match(std::string_view host, std::string_view path) const;

  /// Writes the upstream path for `m` (without the instance's base path) to `out`.
  static void append_upstream_path(const RouteMatch& m, std::string& out);

 private:
  struct Route {
    std::string prefix;
    std::string host;  // lower case, no port
    bool rewrite = false;
    std::string replacement;
    std::size_t service = 0;
  };
  std::vector<std::string> service_names_;
  std::vector<Route> routes_;  // sorted: host-specific first, then longest prefix first
};

}  // namespace sb::gateway
