// The registration API: /api/services... (JSON; errors are RFC 9457 problem+json naming
// the field and the reason).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sb::http {
class Exchange;
}

namespace sb::gateway {

class Gateway;

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string extra_fields;  // head lines ending in CRLF
};

/// True for /api/services and the paths under it.
bool is_api_path(std::string_view path);

/// Whether the request carries a body the API wants read first (PUT).
bool api_wants_body(std::string_view method);

/// Whether the API takes the request on `ex` (listener, client address, Authorization: see
/// ApiAccess::check). Nullopt, or the answer (401, 403 or 404 problem+json), already logged
/// with the client's address. Cheap: the worker asks before reading the body.
std::optional<ApiResponse> check_api_access(Gateway& gw, const http::Exchange& ex);

/// Answers an API request that check_api_access() let through. `body` is the whole request
/// body (at most 64 KiB); `correlation_id` goes into problem bodies; `peer` (the client's
/// address) into the log line of a refused registration. A registration's destination is
/// checked here (ApiAccess::check_destination, which may resolve a name): call it on the
/// registry writer thread.
ApiResponse handle_api(Gateway& gw, std::string_view method, std::string_view path,
                       std::string_view body, std::string_view correlation_id,
                       std::string_view peer);

/// A problem+json body with an optional "field" member.
std::string problem_body(int status, std::string_view slug, std::string_view detail,
                         std::string_view field, std::string_view correlation_id);

}  // namespace sb::gateway
