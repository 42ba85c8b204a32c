#include "gateway/router.hpp"

#include <algorithm>

#include "http/path.hpp"

namespace sb::gateway {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

// Host without its port, compared case-insensitively.
bool host_matches(std::string_view want_lower, std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    host = close == std::string_view::npos ? host : host.substr(0, close + 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (host.size() != want_lower.size()) return false;
  for (std::size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != want_lower[i]) return false;
  }
  return true;
}

// Requests are routed by their normalised path (http/path.hpp), so a prefix is compared in
// the same form: "/%7Euser" matches what arrives as "/~user" or "/%7euser". A prefix that
// cannot be normalised is kept as written (it can never match).
std::string normalized_prefix(const std::string& prefix) {
  if (prefix.empty() || prefix.front() != '/' || http::path_is_normal(prefix, false)) return prefix;
  std::string out = prefix;
  std::size_t size = out.size();
  if (http::normalize_path(out.data(), size, false) != http::PathError::kNone) return prefix;
  out.resize(size);
  return out;
}

bool prefix_matches(std::string_view prefix, std::string_view path) {
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || prefix.empty() || prefix.back() == '/' ||
         path[prefix.size()] == '/';
}

}  // namespace

Router::Router(const std::vector<core::ServiceConfig>& services,
               const std::vector<core::RouteConfig>& routes) {
  for (const auto& s : services) service_names_.push_back(s.name);
  for (const auto& r : routes) {
    const auto it = std::find(service_names_.begin(), service_names_.end(), r.service);
    if (it == service_names_.end()) continue;  // the loader refuses these
    routes_.push_back(Route{
        normalized_prefix(r.prefix), lower(r.host), r.rewrite.has_value(), r.rewrite.value_or(""),
        static_cast<std::size_t>(it - service_names_.begin()), r.policy ? &*r.policy : nullptr});
  }
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    Route& r = routes_[i];
    r.label = r.host.empty() ? r.prefix : r.host + r.prefix;
    if (r.label.empty()) r.label = "/";
    r.id = static_cast<std::uint16_t>(std::min<std::size_t>(i + 1, 0xffff));
  }
  // Like virtual hosts: routes for the request's Host are tried first, then the others;
  // within each group the longest prefix wins.
  std::stable_sort(routes_.begin(), routes_.end(), [](const Route& a, const Route& b) {
    if (a.host.empty() != b.host.empty()) return !a.host.empty();
    return a.prefix.size() > b.prefix.size();
  });
}

RouteMatch Router::match(std::string_view host, std::string_view path) const {
  static constexpr std::string_view kSvc = "/svc/";
  if (path.starts_with(kSvc)) {
    const std::string_view tail = path.substr(kSvc.size());
    const auto slash = tail.find('/');
    const std::string_view name = tail.substr(0, slash);
    RouteMatch m;
    m.service_name = name;
    m.route = "/svc/{service}";
    m.rest = slash == std::string_view::npos ? std::string_view{} : tail.substr(slash);
    for (std::size_t i = 0; i < service_names_.size(); ++i) {
      if (service_names_[i] == name) {
        m.kind = RouteMatch::Kind::kMatched;
        m.service = i;
        return m;
      }
    }
    m.kind = RouteMatch::Kind::kUnknownService;
    return m;
  }
  for (const Route& r : routes_) {
    if (!r.host.empty() && !host_matches(r.host, host)) continue;
    if (!prefix_matches(r.prefix, path)) continue;
    RouteMatch m;
    m.kind = RouteMatch::Kind::kMatched;
    m.service = r.service;
    m.service_name = service_names_[r.service];
    m.policy = r.policy;
    m.route = r.label;
    m.route_id = r.id;
    if (r.rewrite) {
      m.replacement = r.replacement;
      m.rest = path.substr(r.prefix.size());
    } else {
      m.rest = path;
    }
    return m;
  }
  return RouteMatch{};
}

}  // namespace sb::gateway
