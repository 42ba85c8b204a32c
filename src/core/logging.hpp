// Logging: spdlog to stderr, as text or one JSON object per line. Lines about a request
// carry its correlation id (see RequestLogScope).
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "core/config.hpp"

namespace sb::core {

/// Installs the process logger. Returns false (and leaves the logger alone) when the
/// level name is unknown.
bool init_logging(std::string_view level, LogFormat format);

/// Parses a level name; false when unknown.
bool parse_log_level(std::string_view name, spdlog::level::level_enum* out);

/// While alive, log lines written on this thread carry `correlation_id`. Worker threads
/// run many requests interleaved, so set it immediately around each log call.
class RequestLogScope {
 public:
  explicit RequestLogScope(std::string_view correlation_id);
  ~RequestLogScope();
  RequestLogScope(const RequestLogScope&) = delete;
  RequestLogScope& operator=(const RequestLogScope&) = delete;

 private:
  std::string_view previous_;
};

/// Appends `s` to `out` escaped for a JSON string (without quotes). Invalid UTF-8 bytes
/// become U+FFFD each, so the result is always valid JSON.
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace sb::core

/// Logs about one request: SB_REQ_LOG(warn, cid, "upstream {} reset", name).
#define SB_REQ_LOG(lvl, cid, ...)                 \
  do {                                            \
    if (spdlog::should_log(spdlog::level::lvl)) { \
      ::sb::core::RequestLogScope sb_scope_(cid); \
      spdlog::lvl(__VA_ARGS__);                   \
    }                                             \
  } while (0)
