#include "gateway/api.hpp"

#include <boost/json.hpp>

#include "core/logging.hpp"
#include "gateway/api_access.hpp"
#include "gateway/gateway.hpp"
#include "gateway/guards.hpp"
#include "gateway/metrics.hpp"
#include "gateway/webhooks.hpp"
#include "http/exchange.hpp"
#include "http/message.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {
namespace json = boost::json;

namespace {

constexpr std::string_view kPrefix = "/api/services";

ApiResponse problem(int status, std::string_view slug, std::string_view detail,
                    std::string_view field, std::string_view cid) {
  return ApiResponse{
      status, "application/problem+json", problem_body(status, slug, detail, field, cid), {}};
}

ApiResponse from_error(const registry::ApiError& e, std::string_view cid) {
  const char* slug = e.status == 404   ? "not-found"
                     : e.status == 409 ? "conflict"
                     : e.status == 413 ? "body-too-large"
                     : e.status == 503 ? "registry-unavailable"
                                       : "invalid-registration";
  return problem(e.status, slug, e.detail, e.field, cid);
}

ApiResponse refused(const ApiRefusal& r, std::string_view cid) {
  ApiResponse out = problem(r.status, r.slug, r.detail, r.field, cid);
  if (!r.challenge.empty()) out.extra_fields = "WWW-Authenticate: " + r.challenge + "\r\n";
  return out;
}

// Every refused call is logged with the client's address (never the Authorization value).
void log_refusal(std::string_view method, std::string_view path, std::string_view peer,
                 const ApiRefusal& r, std::string_view cid) {
  SB_REQ_LOG(warn, cid, "refused registry API call {} {} from {}: {} {}", method, path,
             peer.empty() ? std::string_view("unknown") : peer, r.status, r.detail);
}

ApiResponse method_not_allowed(std::string_view allow, std::string_view cid) {
  ApiResponse r =
      problem(405, "method-not-allowed", "this resource allows " + std::string(allow), "", cid);
  r.extra_fields = "Allow: " + std::string(allow) + "\r\n";
  return r;
}

// Splits "/a/b/c" (after the prefix) into segments; false on empty segments.
bool split(std::string_view rest, std::vector<std::string_view>& out) {
  while (!rest.empty()) {
    if (rest.front() != '/') return false;
    rest.remove_prefix(1);
    const auto slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (seg.empty()) return false;
    out.push_back(seg);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  }
  return true;
}

}  // namespace

std::string problem_body(int status, std::string_view slug, std::string_view detail,
                         std::string_view field, std::string_view correlation_id) {
  json::object o;
  o["type"] = "urn:switchboard:problem:" + std::string(slug);
  o["title"] = http::reason_phrase(status);
  o["status"] = status;
  o["detail"] = detail;
  if (!field.empty()) o["field"] = field;
  o["correlation_id"] = correlation_id;
  return json::serialize(o) + "\n";
}

// Only /api/services belongs to Switchboard: the rest of /api/ is the platform's (the
// example routes /api to the backend).
bool is_api_path(std::string_view path) {
  return path == kPrefix || path.starts_with("/api/services/");
}

bool api_wants_body(std::string_view method) { return method == "PUT" || method == "POST"; }

std::optional<ApiResponse> check_api_access(Gateway& gw, const http::Exchange& ex) {
  const auto& head = ex.head();
  std::string_view authorization;
  for (std::size_t i = 0; i < head.field_count; ++i)
    if (http::iequals(head.fields[i].name, "authorization")) authorization = head.fields[i].value;
  const ApiCaller caller{ex.listener() == http::ListenerKind::kAdmin, head.method,
                         ex.peer_address(), authorization};
  auto r = gw.api_access().check(caller);
  if (!r) return std::nullopt;
  log_refusal(head.method, ex.info().path, ex.peer_address(), *r, ex.correlation_id());
  return refused(*r, ex.correlation_id());
}

ApiResponse handle_api(Gateway& gw, std::string_view method, std::string_view path,
                       std::string_view body, std::string_view cid, std::string_view peer) {
  auto& reg = gw.registry();
  if (!path.starts_with(kPrefix) || (path.size() > kPrefix.size() && path[kPrefix.size()] != '/'))
    return problem(404, "not-found", "the API lives under /api/services", "", cid);
  std::vector<std::string_view> seg;
  if (!split(path.substr(kPrefix.size()), seg))
    return problem(404, "not-found", "malformed API path", "", cid);

  const bool get = method == "GET" || method == "HEAD";
  if (seg.empty()) {
    if (!get) return method_not_allowed("GET, HEAD", cid);
    return ApiResponse{200, "application/json", reg.to_json(), {}};
  }
  const std::string_view service = seg[0];
  if (seg.size() == 1 && service == "status") {  // "status" is reserved as a service name
    if (!get) return method_not_allowed("GET, HEAD", cid);
    // The registry's document plus the webhook sinks' counters (a small document: parsing
    // it back costs less than teaching the registry about webhooks).
    json::value doc = json::parse(reg.status_json());
    if (auto* root = doc.if_object()) {
      gw.guards().annotate_status(*root, gw.clock().steady_now());
      gw.control_metrics().annotate_status(*root, gw.clock().steady_now());
      if (const auto* hooks = gw.webhooks())
        hooks->add_status(*root);
      else
        (*root)["webhooks"] = json::array();
    }
    return ApiResponse{200, "application/json", json::serialize(doc) + "\n", {}};
  }
  // POST .../breaker {"action": "open" | "close" | "reset"}: the service's breaker, or an
  // instance's.
  if ((seg.size() == 2 && seg[1] == "breaker") ||
      (seg.size() == 4 && seg[1] == "instances" && seg[3] == "breaker")) {
    if (method != "POST") return method_not_allowed("POST", cid);
    json::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec || !v.is_object())
      return problem(400, "invalid-action", "body must be a JSON object", "", cid);
    const auto* action = v.as_object().if_contains("action");
    if (action == nullptr || !action->is_string() ||
        (action->as_string() != "open" && action->as_string() != "close" &&
         action->as_string() != "reset"))
      return problem(400, "invalid-action", "must be \"open\", \"close\" or \"reset\"", "action",
                     cid);
    for (const auto& [key, value] : v.as_object())
      if (key != "action")
        return problem(400, "invalid-action", "unknown field (known: action)", key, cid);
    const auto r =
        gw.guards().breaker_action(service, seg.size() == 4 ? seg[2] : std::string_view{},
                                   action->as_string(), gw.clock().steady_now());
    if (r.status != 200) return problem(r.status, "not-found", r.detail, "", cid);
    return ApiResponse{200, "application/json", r.body, {}};
  }
  if (seg.size() == 1) {
    if (!get) return method_not_allowed("GET, HEAD", cid);
    auto s = reg.service_json(service);
    if (!s) return problem(404, "not-found", "no service " + std::string(service), "service", cid);
    return ApiResponse{200, "application/json", std::move(*s), {}};
  }
  if (seg[1] != "instances" || seg.size() < 3 || seg.size() > 4 ||
      (seg.size() == 4 && seg[3] != "heartbeat"))
    return problem(404, "not-found",
                   "expected /api/services/{service}/instances/{id}[/heartbeat|/breaker] or "
                   "/api/services/{service}/breaker",
                   "", cid);
  const std::string_view id = seg[2];
  if (seg.size() == 4) {
    if (method != "PUT") return method_not_allowed("PUT", cid);
    if (auto err = reg.heartbeat(service, id)) return from_error(*err, cid);
    return ApiResponse{200, "application/json", "{\"status\":\"renewed\"}\n", {}};
  }
  if (method == "DELETE") {
    if (auto err = reg.remove(service, id)) return from_error(*err, cid);
    return ApiResponse{204, "application/json", "", {}};
  }
  if (method != "PUT") return method_not_allowed("PUT, DELETE", cid);
  auto parsed = registry::parse_registration(service, id, body);
  if (auto* err = std::get_if<registry::ApiError>(&parsed)) return from_error(*err, cid);
  const auto& registration = std::get<registry::Registration>(parsed);
  if (auto r = gw.api_access().check_destination(registration.url)) {
    log_refusal(method, path, peer, *r, cid);
    return refused(*r, cid);
  }
  auto outcome = reg.put(registration);
  if (auto* err = std::get_if<registry::ApiError>(&outcome)) return from_error(*err, cid);
  const bool created =
      std::get<registry::Registry::PutOutcome>(outcome) == registry::Registry::PutOutcome::kCreated;
  auto s = reg.service_json(service);
  ApiResponse r{created ? 201 : 200, "application/json", s ? std::move(*s) : "{}\n", {}};
  if (created)
    r.extra_fields = "Location: /api/services/" + std::string(service) + "/instances/" +
                     std::string(id) + "\r\n";
  return r;
}

}  // namespace sb::gateway
