// The operations endpoints: /health, /health/live, /health/ready.
#pragma once

#include <string>
#include <string_view>

#include "core/clock.hpp"

namespace sb::gateway {

class Gateway;

struct AdminResponse {
  int status = 200;
  std::string body;          // application/json
  std::string extra_fields;  // head lines ending in CRLF
};

/// True for paths the operations endpoints answer.
bool is_admin_path(std::string_view path);

/// Answers an operations request. `method` is the request method text.
AdminResponse handle_admin(Gateway& gw, std::string_view method, std::string_view path,
                           core::SteadyTime now);

}  // namespace sb::gateway
