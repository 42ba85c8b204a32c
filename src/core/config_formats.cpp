#include "core/config_formats.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/logging.hpp"
#include "core/names.hpp"

namespace sb::core::schema {

Problem Number::parse(std::string_view s, double& out) const {
  double d = 0;
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, d);
  if (s.empty() || ec != std::errc() || ptr != end || !std::isfinite(d))
    return fmt::format("expected a number, got {}", quote(s));
  if (d < min || d > max)
    return fmt::format("out of range: must be between {} and {}, got {}", min, max, s);
  out = d;
  return std::nullopt;
}

std::string Instances::render(const std::vector<InstanceConfig>& v) const {
  std::string out = "[";
  for (const auto& i : v) {
    if (out.size() > 1) out += ", ";
    if (i.zone.empty() && i.weight == 1) {
      out += quote(i.url.text);
    } else {
      out += "{url: " + quote(i.url.text);
      if (!i.zone.empty()) out += ", zone: " + quote(i.zone);
      if (i.weight != 1) out += fmt::format(", weight: {}", i.weight);
      out += "}";
    }
  }
  return out + "]";
}

std::string Headers::render(const std::map<std::string, std::string>& m) const {
  std::string out = "{";
  for (const auto& [k, v] : m) {
    if (out.size() > 1) out += ", ";
    out += quote(k) + ": " + quote(v);
  }
  return out + "}";
}

std::string StringList::render(const std::vector<std::string>& v) const {
  std::string out = "[";
  for (const auto& item : v) {
    if (out.size() > 1) out += ", ";
    out += quote(item);
  }
  return out + "]";
}

Problem token_problem(std::string_view token) {
  if (token == kRedacted)
    return std::string(
        "is the redacted value --print-config shows; write the real token here, or set "
        "SWITCHBOARD_API_TOKEN");
  for (std::size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c < 0x21 || c > 0x7e)
      return fmt::format("character {} is not allowed (use visible ASCII characters, no blanks)",
                         i + 1);
  }
  if (token.size() < 16)
    return fmt::format(
        "too short ({} characters): use at least 16, e.g. the output of `openssl rand -hex 32`",
        token.size());
  return std::nullopt;
}

std::string Networks::render(const std::vector<IpNetwork>& v) const {
  std::string out = "[";
  for (const auto& n : v) {
    if (out.size() > 1) out += ", ";
    out += quote(n.text);
  }
  return out + "]";
}

Problem check_network(std::string_view s) {
  std::string why;
  if (IpNetwork::parse(s, &why)) return std::nullopt;
  return fmt::format("bad network {}: {}", quote(s), why);
}

Problem check_zone(std::string_view z) {
  if (valid_zone(z)) return std::nullopt;
  return fmt::format("bad zone {} (use {})", quote(z), kZoneRule);
}

Problem check_log_level(std::string_view s) {
  spdlog::level::level_enum unused;
  if (parse_log_level(s, &unused)) return std::nullopt;
  return fmt::format("unknown level {} (use {})", quote(s), kLogLevels);
}

Problem check_ca_file(std::string_view s) {
  std::string why;
  if (s.empty() || read_file(std::string(s), &why)) return std::nullopt;
  return fmt::format("cannot read {}: {}", quote(s), why);
}

Problem check_server_name(std::string_view s) {
  if (s.empty() || valid_host_name(s) || valid_ipv4(s)) return std::nullopt;
  return fmt::format("bad host name {}", quote(s));
}

Problem check_jaeger_endpoint(std::string_view s) {
  std::string why;
  if (s.empty() || parse_upstream_url(s, &why)) return std::nullopt;
  return fmt::format("bad URL {}: {}", quote(s), why);
}

namespace {
Problem status_list(std::string_view s, std::string_view example) {
  if (valid_status_list(s)) return std::nullopt;
  return fmt::format("bad status list {} (use e.g. \"{}\")", quote(s), example);
}
}  // namespace

Problem check_status_list(std::string_view s) { return status_list(s, "500-599,429"); }
Problem check_expect_status(std::string_view s) { return status_list(s, "200-399,404"); }

Problem check_check_path(std::string_view p) {
  // "" turns checks off; anything else is an absolute path.
  if (p.empty() || (p.front() == '/' && p.find_first_of(" \r\n\t") == std::string_view::npos))
    return std::nullopt;
  return fmt::format("bad path {}: must start with '/' and hold no spaces", quote(p));
}

Problem check_method(std::string_view m) {
  if (!m.empty() && m.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == std::string_view::npos)
    return std::nullopt;
  return fmt::format("bad method {}: upper-case letters", quote(m));
}

Problem check_event_type(std::string_view t) {
  const std::vector<std::string_view> types(std::begin(kWebhookEventTypes),
                                            std::end(kWebhookEventTypes));
  if (std::find(types.begin(), types.end(), t) != types.end()) return std::nullopt;
  std::string hint = did_you_mean(t, types);
  if (hint.empty()) hint = " (known: " + join(types) + ")";
  return fmt::format("unknown event type {}{}", quote(t), hint);
}

Problem check_config_service_name(std::string_view name) {
  switch (service_name_problem(name)) {
    case ServiceNameProblem::kNone:
      return std::nullopt;
    case ServiceNameProblem::kLength:
    case ServiceNameProblem::kCharacters:
      return fmt::format("bad service name (use {})", kServiceNameRule);
    case ServiceNameProblem::kReserved:
      break;
  }
  return fmt::format("\"{}\" is reserved (it is an API path); choose another name", name);
}

Problem check_listed_service_name(std::string_view s) { return check_config_service_name(s); }

Problem check_route_host(std::string_view h) {
  // A name, an IPv4 address or a bracketed IPv6 address ("[::1]", as in the Host header),
  // without a port.
  const bool ipv6 =
      h.size() > 2 && h.front() == '[' && h.back() == ']' && valid_ipv6(h.substr(1, h.size() - 2));
  if (!ipv6 && h.find(':') != std::string_view::npos)
    return fmt::format(
        "{}: a route host has no port (routes match the Host header without its port; write "
        "IPv6 addresses as [::1])",
        quote(h));
  if (!ipv6 && !valid_host_name(h) && !valid_ipv4(h))
    return fmt::format("bad host name {}", quote(h));
  return std::nullopt;
}

Problem check_route_service(std::string_view s) {
  if (s.empty()) return std::string("empty (name a service)");
  return std::nullopt;
}

}  // namespace sb::core::schema
