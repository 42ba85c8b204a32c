#include "gateway/admin.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/logging.hpp"
#include "core/text.hpp"
#include "gateway/gateway.hpp"
#include "gateway/guards.hpp"
#include "http/server.hpp"
#include "registry/registry.hpp"

#ifndef SB_VERSION
#define SB_VERSION "0.0.0"
#endif

namespace sb::gateway {
namespace {

using core::quote;

// A service is usable while one of its instances takes traffic (healthy, or not checked).
bool usable(const registry::Service& s) {
  return std::any_of(s.instances.begin(), s.instances.end(),
                     [](const registry::Instance& i) { return i.takes_traffic; });
}

AdminResponse health(Gateway& gw, core::SteadyTime now) {
  auto& server = gw.server();
  const double uptime = std::chrono::duration<double>(now - gw.started_at()).count();
  std::string body = fmt::format(
      "{{\"status\":{},\"version\":\"{}\",\"uptime_seconds\":{:.3f},\"workers\":{},"
      "\"connections\":{},\"in_flight\":{},\"services\":{{",
      quote(server.draining() ? "draining" : "ok"), SB_VERSION, uptime, server.workers().size(),
      server.connections(), server.in_flight());
  bool first = true;
  const auto snap = gw.registry().snapshot();
  const auto breakers = gw.guards().service_breakers();
  for (const auto& s : snap->services) {
    if (!first) body += ',';
    first = false;
    const auto b = breakers.find(s.name);
    body += fmt::format(
        "{}:{{\"instances\":{},\"critical\":{},\"source\":{},\"state\":{},\"breaker\":{}}}",
        quote(s.name), s.instances.size(), s.config.critical ? "true" : "false",
        quote(core::to_string(s.source)), quote(usable(s) ? "available" : "unavailable"),
        quote(b == breakers.end() ? "closed" : b->second));
  }
  body += "}}\n";
  return {200, std::move(body), {}};
}

AdminResponse live(Gateway& gw, core::SteadyTime now) {
  if (gw.server().workers_alive(now, gw.config().health.liveness_stall))
    return {200, "{\"status\":\"alive\"}\n", {}};
  return {503,
          "{\"status\":\"stalled\",\"detail\":\"a worker loop has not turned within "
          "health.liveness_stall\"}\n",
          {}};
}

AdminResponse ready(Gateway& gw) {
  if (gw.server().draining()) return {503, "{\"status\":\"draining\"}\n", {}};
  if (gw.config().health.ready_requires_critical) {
    const auto snap = gw.registry().snapshot();
    for (const auto& s : snap->services) {
      if (s.config.critical && !usable(s))
        return {503,
                "{\"status\":\"not_ready\",\"detail\":" +
                    quote("critical service " + s.name + " has no usable instance") + "}\n",
                {}};
    }
  }
  return {200, "{\"status\":\"ready\"}\n", {}};
}

}  // namespace

bool is_admin_path(std::string_view path) {
  return path == "/health" || path == "/health/live" || path == "/health/ready";
}

AdminResponse handle_admin(Gateway& gw, std::string_view method, std::string_view path,
                           core::SteadyTime now) {
  if (method != "GET" && method != "HEAD")
    return {405, "{\"status\":\"method_not_allowed\"}\n", "Allow: GET, HEAD\r\n"};
  if (path == "/health") return health(gw, now);
  if (path == "/health/live") return live(gw, now);
  return ready(gw);
}

}  // namespace sb::gateway
