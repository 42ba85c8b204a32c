#include "http/problem.hpp"

#include <fmt/format.h>

#include "core/logging.hpp"
#include "http/message.hpp"

namespace sb::http {

void write_problem(HeadBuffer& out, int status, std::string_view slug, std::string_view detail,
                   std::string_view correlation_id, bool close, std::string_view extra_fields) {
  std::string body;
  body.reserve(256);
  body += "{\"type\":\"urn:switchboard:problem:";
  core::append_json_escaped(body, slug);
  body += "\",\"title\":\"";
  core::append_json_escaped(body, reason_phrase(status));
  body += "\",\"status\":";
  body += std::to_string(status);
  body += ",\"detail\":\"";
  core::append_json_escaped(body, detail);
  body += "\",\"correlation_id\":\"";
  core::append_json_escaped(body, correlation_id);
  body += "\"}\n";

  HeadWriter w(out);
  w.status_line(status, reason_phrase(status))
      .field("Content-Type", "application/problem+json")
      .field("Content-Length", body.size())
      .field("X-Correlation-ID", correlation_id)
      .field("Cache-Control", "no-store");
  if (close) w.field("Connection", "close");
  w.raw(extra_fields);
  w.end();
  out.append(body);
}

}  // namespace sb::http
