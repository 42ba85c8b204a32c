// RFC 9457 problem details: every error Switchboard answers itself is one of these, with
// the correlation id in the body and in X-Correlation-ID.
#pragma once

#include <string>
#include <string_view>

#include "http/head_buffer.hpp"

namespace sb::http {

/// Builds a complete response (head and application/problem+json body) into `out`.
/// `slug` names the problem type ("unknown-service"); `extra_fields` are extra head lines,
/// each ending in CRLF (e.g. "Retry-After: 5\r\n").
void write_problem(HeadBuffer& out, int status, std::string_view slug, std::string_view detail,
                   std::string_view correlation_id, bool close, std::string_view extra_fields = {});

}  // namespace sb::http
