// The access log: one line per request on stdout, text or JSON. Each worker formats into
// its own buffer and writes it out on its tick (or when it fills), so logging costs a
// format, not a syscall, per request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/config.hpp"

namespace sb::gateway {

struct AccessRecord {
  std::string_view method;
  std::string_view target;
  int status = 0;
  double duration_ms = 0;
  std::string_view service;   // "" when none
  std::string_view instance;  // "" when none
  std::uint64_t bytes_sent = 0;
  std::string_view correlation_id;
  std::string_view peer;
};

class AccessLog {
 public:
  /// Writes to `fd` (stdout by default); `clock` dates lines (refreshed on each flush).
  AccessLog(core::LogFormat format, bool enabled, core::Clock& clock, int fd = 1);
  ~AccessLog();
  bool enabled() const { return enabled_; }
  void record(const AccessRecord& r);
  /// Writes what is buffered; `wall_now` refreshes the cached timestamp.
  void flush(core::WallTime wall_now);

 private:
  void set_time(core::WallTime wall_now);
  void append_text_line(std::string_view ts, const AccessRecord& r);
  core::LogFormat format_;
  bool enabled_;
  int fd_;
  bool pipe_ = true;  // writes to a pipe stay within PIPE_BUF
  std::string buffer_;
  char timestamp_[32] = {};
  std::size_t timestamp_len_ = 0;
};

}  // namespace sb::gateway
