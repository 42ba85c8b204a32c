// The registration API: /api/services... (JSON; errors are RFC 9457 problem+json naming
// the field and the reason).
#pragma once

#include <string>
#include <string_view>

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

/// Answers an API request. `body` is the whole request body (at most 64 KiB);
/// `correlation_id` goes into problem bodies.
ApiResponse handle_api(Gateway& gw, std::string_view method, std::string_view path,
                       std::string_view body, std::string_view correlation_id);

/// A problem+json body with an optional "field" member.
std::string problem_body(int status, std::string_view slug, std::string_view detail,
                         std::string_view field, std::string_view correlation_id);

}  // namespace sb::gateway
