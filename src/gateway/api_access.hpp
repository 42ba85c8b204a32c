// Who may call the registry API (/api/services...) and where a registration may point: the
// policy behind it, as plain decisions. The API handler (api.cpp) answers and logs them.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/ip_network.hpp"

namespace sb::gateway {

/// Compares a presented secret with the expected one. The time taken depends only on the
/// presented one's length, never on where the two differ nor on the expected one's bytes.
/// False when `expected` is empty.
bool tokens_equal(std::string_view presented, std::string_view expected);

/// What the access check knows about a request (views into it).
struct ApiCaller {
  bool admin_listener = false;     // accepted on server.admin_listen
  std::string_view method;         // "GET", "PUT", ...
  std::string_view peer;           // the client's address as text ("127.0.0.1"); "" if unknown
  std::string_view authorization;  // the Authorization field's value; "" when absent
};

/// Why the API does not do what was asked: a problem+json answer in the making.
struct ApiRefusal {
  int status = 403;         // 400, 401, 403 or 404
  std::string slug{};       // problem type
  std::string detail{};     // for people; names the rule (never the token)
  std::string field{};      // the body field at fault ("url"), or ""
  std::string challenge{};  // WWW-Authenticate value, for 401s
};

/// A host name's addresses; on failure an empty list, with `why` set.
using Resolver =
    std::function<std::vector<core::IpAddress>(const std::string& host, std::string* why)>;

/// The system resolver (getaddrinfo, bounded by the resolver's own timeouts). Blocks.
std::vector<core::IpAddress> resolve_host(const std::string& host, std::string* why);

class ApiAccess {
 public:
  struct Settings {
    core::ApiConfig api{};
    bool admin_listener = false;  // server.admin_listen is set: the API is served there only
  };

  explicit ApiAccess(Settings settings, Resolver resolver = resolve_host);

  /// Whether the API takes this request at all, decided before its body is read:
  /// - with an admin listener, the proxy listener serves no API (404);
  /// - reads (GET, HEAD) pass while api.open_reads;
  /// - other calls need `Authorization: Bearer <api.token>` when a token is set (401 with a
  ///   Bearer challenge), else come from a loopback client (403).
  /// No I/O and no allocation when allowed. Thread-safe.
  std::optional<ApiRefusal> check(const ApiCaller& caller) const;

  /// Whether a registration may point at `url`: its host address, or each address its host
  /// name resolves to, must be in api.allowed_networks (403 naming the rule; 400 when the
  /// name does not resolve). Resolving blocks: call it on the registry writer thread, never
  /// on a worker. Thread-safe.
  std::optional<ApiRefusal> check_destination(const core::UpstreamUrl& url) const;

  bool has_token() const { return !settings_.api.token.empty(); }

 private:
  bool allowed(const core::IpAddress& a) const;
  std::string networks_text() const;  // "127.0.0.0/8, ::1/128"

  Settings settings_;
  Resolver resolver_;
};

}  // namespace sb::gateway
