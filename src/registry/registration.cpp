// Registration input: service names, instance ids and the PUT body's fields checked and
// turned into a Registration, each refusal naming its field.
#include "registry/registry.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "core/config_load.hpp"
#include "core/names.hpp"

namespace sb::registry {
namespace json = boost::json;
namespace {

constexpr std::int64_t kMaxTtlSeconds = 7 * 24 * 3600;
constexpr std::uint32_t kMaxWeight = 10'000;

ApiError bad(std::string field, std::string detail) {
  return ApiError{400, std::move(field), std::move(detail)};
}

}  // namespace

bool valid_service_name(std::string_view name, std::string* why) {
  const char* w = nullptr;
  switch (core::service_name_problem(name)) {
    case core::ServiceNameProblem::kNone:
      return true;
    case core::ServiceNameProblem::kLength:
      w = "must be 1 to 63 characters";
      break;
    case core::ServiceNameProblem::kCharacters:
      w = "may hold only a-z, 0-9 and '-'";
      break;
    case core::ServiceNameProblem::kReserved:
      w = "is reserved";
      break;
  }
  if (why) *why = w;
  return false;
}

bool valid_instance_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::variant<Registration, ApiError> parse_registration(std::string_view service,
                                                        std::string_view id,
                                                        std::string_view body) {
  std::string why;
  if (!valid_service_name(service, &why)) return bad("service", "service name " + why);
  if (!valid_instance_id(id))
    return bad("id", "instance id must be 1 to 128 of A-Z, a-z, 0-9, '.', '_', '-'");
  if (body.size() > kMaxRegistrationBody) return ApiError{413, "", "body larger than 64 KiB"};
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return bad("", "body is not valid JSON: " + ec.message());
  if (!v.is_object()) return bad("", "body must be a JSON object");
  Registration r;
  r.service = std::string(service);
  r.id = std::string(id);
  bool have_url = false;
  for (const auto& [key, value] : v.as_object()) {
    if (key == "url") {
      if (!value.is_string()) return bad("url", "must be a string");
      std::string url_why;
      auto url = core::parse_upstream_url(value.as_string(), &url_why);
      if (!url) return bad("url", url_why);
      r.url = *url;
      have_url = true;
    } else if (key == "ttl_seconds") {
      if (!value.is_int64() && !value.is_uint64()) return bad("ttl_seconds", "must be an integer");
      const auto ttl = value.to_number<std::int64_t>(ec);
      if (ec || ttl < 1 || ttl > kMaxTtlSeconds)
        return bad("ttl_seconds", fmt::format("must be 1..{}", kMaxTtlSeconds));
      r.ttl_seconds = ttl;
    } else if (key == "zone") {
      if (!value.is_string() || !core::valid_zone(value.as_string()))
        return bad("zone", fmt::format("must be a string of {}", core::kZoneRule));
      r.zone = std::string(value.as_string());
    } else if (key == "weight") {
      if (!value.is_int64() && !value.is_uint64()) return bad("weight", "must be an integer");
      const auto w = value.to_number<std::int64_t>(ec);
      if (ec || w < 1 || w > kMaxWeight)
        return bad("weight", fmt::format("must be 1..{}", kMaxWeight));
      r.weight = static_cast<std::uint32_t>(w);
    } else if (key == "metadata") {
      if (!value.is_object()) return bad("metadata", "must be a JSON object");
      r.metadata_json = json::serialize(value);
    } else if (key == "check") {
      if (!value.is_object()) return bad("check", "must be a JSON object");
      r.check_json = json::serialize(value);
      auto check = parse_check(r.check_json);
      if (auto* e = std::get_if<ApiError>(&check)) return *e;
      r.check = std::get<core::HealthCheckConfig>(check);
    } else {
      return bad(std::string(key),
                 "unknown field (known: url, ttl_seconds, zone, weight, metadata, check)");
    }
  }
  if (!have_url) return bad("url", "is required");
  return r;
}

std::variant<core::HealthCheckConfig, ApiError> parse_check(std::string_view check_json) {
  json::error_code ec;
  json::value v = json::parse(check_json, ec);
  if (ec || !v.is_object()) return bad("check", "must be a JSON object");
  core::HealthCheckConfig c;
  bool have_path = false;
  for (const auto& [key, value] : v.as_object()) {
    const std::string field = "check." + std::string(key);
    auto text = [&]() -> const json::string* { return value.if_string(); };
    if (key == "type") {
      if (!text() || (*text() != "http" && *text() != "tcp"))
        return bad(field, "must be http or tcp");
      c.type = *text() == "tcp" ? core::HealthCheckConfig::Type::kTcp
                                : core::HealthCheckConfig::Type::kHttp;
    } else if (key == "path") {
      if (!text() || text()->empty() || text()->front() != '/' ||
          std::string_view(*text()).find_first_of(" \r\n\t") != std::string_view::npos)
        return bad(field, "must be a path starting with '/' without spaces");
      c.path = std::string(*text());
      have_path = true;
    } else if (key == "method") {
      if (!text() || text()->empty() || text()->size() > 20 ||
          std::string_view(*text()).find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
              std::string_view::npos)
        return bad(field, "must be an upper-case method such as GET or HEAD");
      c.method = std::string(*text());
    } else if (key == "expect_status") {
      if (!text() || !core::valid_status_list(*text()))
        return bad(field, "must be a list of statuses and ranges such as \"200-399,404\"");
      c.expect_status = std::string(*text());
    } else if (key == "expect_body") {
      if (!text() || text()->size() > 1024)
        return bad(field, "must be a string of up to 1024 bytes");
      c.expect_body = std::string(*text());
    } else if (key == "headers") {
      if (!value.is_object()) return bad(field, "must be an object of header names to strings");
      for (const auto& [name, hv] : value.as_object()) {
        const std::string_view n = name;
        if (n.empty() || n.find_first_of(" :\r\n\t") != std::string_view::npos)
          return bad(field, fmt::format("bad header name \"{}\"", n));
        if (!hv.is_string() ||
            std::string_view(hv.as_string()).find_first_of("\r\n") != std::string_view::npos)
          return bad(field, fmt::format("header \"{}\" must be a string without CR or LF", n));
        c.headers[std::string(n)] = std::string(hv.as_string());
      }
    } else if (key == "timeout_ms") {
      const auto ms = value.is_int64() || value.is_uint64() ? value.to_number<std::int64_t>(ec)
                                                            : std::int64_t{-1};
      if (ec || ms < 1 || ms > 60'000) return bad(field, "must be an integer 1..60000");
      c.timeout = core::Millis(ms);
    } else {
      return bad(field,
                 "unknown field (known: type, path, method, expect_status, expect_body, headers, "
                 "timeout_ms)");
    }
  }
  if (c.type == core::HealthCheckConfig::Type::kHttp && !have_path)
    return bad("check.path", "is required for http checks");
  return c;
}

}  // namespace sb::registry
