#include "gateway/api_access.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace sb::gateway {
namespace {

constexpr std::string_view kChallenge = "Bearer realm=\"switchboard\"";

bool ieq(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// The credentials of "Bearer <token>" (the scheme in any case, RFC 9110 11.1), or nullopt
// for another scheme or none.
std::optional<std::string_view> bearer_credentials(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !ieq(authorization.substr(0, kScheme.size()), kScheme) ||
      (authorization[kScheme.size()] != ' ' && authorization[kScheme.size()] != '\t'))
    return std::nullopt;
  std::string_view t = authorization.substr(kScheme.size());
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  return t;
}

bool is_read(std::string_view method) { return method == "GET" || method == "HEAD"; }

}  // namespace

bool tokens_equal(std::string_view presented, std::string_view expected) {
  if (expected.empty()) return false;
  // Every byte of `presented` is compared (with the expected bytes repeated), and the
  // differences are OR-ed together: no early exit tells how much of a guess was right.
  unsigned diff = presented.size() != expected.size() ? 1u : 0u;
  for (std::size_t i = 0; i < presented.size(); ++i)
    diff |= static_cast<unsigned char>(presented[i]) ^
            static_cast<unsigned char>(expected[i % expected.size()]);
  return diff == 0;
}

std::vector<core::IpAddress> resolve_host(const std::string& host, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  std::vector<core::IpAddress> out;
  if (rc != 0) {
    *why = rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc);
    return out;
  }
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    core::IpAddress a;
    if (ai->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      std::memcpy(a.bytes.data(), &sin->sin_addr, 4);
    } else if (ai->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      a.v4 = false;
      std::memcpy(a.bytes.data(), &sin6->sin6_addr, 16);
      if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {  // taken as the IPv4 address it carries
        a = core::IpAddress{};
        std::memcpy(a.bytes.data(), reinterpret_cast<const char*>(&sin6->sin6_addr) + 12, 4);
      }
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeaddrinfo(res);
  if (out.empty()) *why = "no IPv4 or IPv6 address";
  return out;
}

ApiAccess::ApiAccess(Settings settings, Resolver resolver)
    : settings_(std::move(settings)), resolver_(std::move(resolver)) {}

std::optional<ApiRefusal> ApiAccess::check(const ApiCaller& caller) const {
  if (settings_.admin_listener && !caller.admin_listener)
    return ApiRefusal{.status = 404,
                      .slug = "not-found",
                      .detail =
                          "the registry API is served on the admin listener "
                          "(server.admin_listen), not on this one"};
  const bool read = is_read(caller.method);
  if (read && settings_.api.open_reads) return std::nullopt;
  const std::string_view what =
      read ? "registry API reads (api.open_reads is false)" : "registry API writes";
  const std::string& token = settings_.api.token;
  if (!token.empty()) {
    const auto presented = bearer_credentials(caller.authorization);
    if (!presented)
      return ApiRefusal{.status = 401,
                        .slug = "unauthorized",
                        .detail = std::string(what) +
                                  " need the API token: send \"Authorization: Bearer <api.token>\"",
                        .challenge = std::string(kChallenge)};
    if (!tokens_equal(*presented, token))
      return ApiRefusal{.status = 401,
                        .slug = "invalid-token",
                        .detail = "the bearer token is not the API token (api.token)",
                        .challenge = std::string(kChallenge) + ", error=\"invalid_token\""};
    return std::nullopt;
  }
  const auto peer = core::IpAddress::parse(caller.peer);
  if (peer && peer->is_loopback()) return std::nullopt;
  return ApiRefusal{.status = 403,
                    .slug = "forbidden",
                    .detail = "api.token is not set, so " + std::string(what) +
                              " are accepted from loopback clients only (this one is " +
                              std::string(caller.peer.empty() ? "unknown" : caller.peer) +
                              "); set api.token (SWITCHBOARD_API_TOKEN) to accept them with it"};
}

bool ApiAccess::allowed(const core::IpAddress& a) const {
  const auto& nets = settings_.api.allowed_networks;
  return std::any_of(nets.begin(), nets.end(),
                     [&](const core::IpNetwork& n) { return n.contains(a); });
}

std::string ApiAccess::networks_text() const {
  std::string out;
  for (const auto& n : settings_.api.allowed_networks) {
    if (!out.empty()) out += ", ";
    out += n.text;
  }
  return out;
}

std::optional<ApiRefusal> ApiAccess::check_destination(const core::UpstreamUrl& url) const {
  const auto refuse = [](int status, std::string slug, std::string detail) {
    return ApiRefusal{
        .status = status, .slug = std::move(slug), .detail = std::move(detail), .field = "url"};
  };
  if (settings_.api.allowed_networks.empty())
    return refuse(403, "destination-not-allowed",
                  "api.allowed_networks is empty: no registration is accepted");
  std::string_view host = url.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (const auto a = core::IpAddress::parse(host)) {
    if (allowed(*a)) return std::nullopt;
    return refuse(403, "destination-not-allowed",
                  a->str() + " is not in api.allowed_networks (" + networks_text() + ")");
  }
  std::string why;
  const auto addresses = resolver_(std::string(host), &why);
  if (addresses.empty())
    return refuse(400, "invalid-registration",
                  "cannot resolve host \"" + std::string(host) + "\": " + why);
  for (const auto& a : addresses) {
    if (allowed(a)) continue;
    return refuse(403, "destination-not-allowed",
                  std::string(host) + " resolves to " + a.str() +
                      ", which is not in api.allowed_networks (" + networks_text() + ")");
  }
  return std::nullopt;
}

}  // namespace sb::gateway
