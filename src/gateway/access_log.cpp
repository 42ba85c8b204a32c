#include "gateway/access_log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "core/logging.hpp"

namespace sb::gateway {
namespace {
constexpr std::size_t kFlushAt = 60 * 1024;

// Writes whole lines. On a pipe, at most PIPE_BUF bytes per write(), so that lines from
// several workers never interleave; on a file or terminal in one write (each write()
// appends whole lines, so nothing interleaves there either).
void write_all(int fd, const std::string& s, bool pipe) {
  const std::size_t chunk = pipe ? 4096 : s.size();  // 4096: PIPE_BUF on Linux
  std::size_t off = 0;
  while (off < s.size()) {
    std::size_t len = s.size() - off;
    if (len > chunk) {
      const auto nl = s.rfind('\n', off + chunk - 1);
      len = (nl != std::string::npos && nl >= off) ? nl + 1 - off : chunk;
    }
    const ssize_t n = ::write(fd, s.data() + off, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // stdout gone: drop the log rather than stall the worker
    }
    off += static_cast<std::size_t>(n);
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Milliseconds with three decimals, from whole microseconds (no floating point). Writes at
// most 24 bytes at `o`; returns the end.
char* write_millis(char* o, double ms) {
  const auto us = static_cast<std::uint64_t>(ms * 1000.0 + 0.5);
  o = std::to_chars(o, o + 20, us / 1000).ptr;
  const unsigned frac = static_cast<unsigned>(us % 1000);
  *o++ = '.';
  *o++ = static_cast<char>('0' + frac / 100);
  *o++ = static_cast<char>('0' + frac / 10 % 10);
  *o++ = static_cast<char>('0' + frac % 10);
  return o;
}

void append_millis(std::string& out, double ms) {
  char buf[24];
  out.append(buf, write_millis(buf, ms));
}
}  // namespace

AccessLog::AccessLog(core::LogFormat format, bool enabled, core::Clock& clock, int fd)
    : format_(format), enabled_(enabled), fd_(fd) {
  struct stat st {};
  pipe_ = ::fstat(fd_, &st) != 0 || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
  buffer_.reserve(kFlushAt + 1024);
  set_time(clock.wall_now());
}

AccessLog::~AccessLog() {
  if (!buffer_.empty()) write_all(fd_, buffer_, pipe_);
}

void AccessLog::set_time(core::WallTime wall_now) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(wall_now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  timestamp_len_ = std::strftime(timestamp_, sizeof timestamp_, "%Y-%m-%dT%H:%M:%S", &tm);
  timestamp_len_ += static_cast<std::size_t>(std::snprintf(timestamp_ + timestamp_len_,
                                                           sizeof timestamp_ - timestamp_len_,
                                                           ".%03dZ", static_cast<int>(ms % 1000)));
}

// The text line, written in place: one size check and bounded copies, no per-piece
// appends (this runs for every request).
void AccessLog::append_text_line(std::string_view ts, const AccessRecord& r) {
  // Labels and separators (93 bytes), three numbers (at most 64) and "-" for empty values.
  constexpr std::size_t kFixed = 192;
  const std::size_t need = kFixed + ts.size() + r.method.size() + r.target.size() +
                           r.service.size() + r.instance.size() + r.correlation_id.size() +
                           r.peer.size();
  const std::size_t at = buffer_.size();
  buffer_.resize(at + need);
  char* o = buffer_.data() + at;
  const auto put = [&o](std::string_view v) {
    std::memcpy(o, v.data(), v.size());
    o += v.size();
  };
  // Text values must hold no space or quote, so that a line splits on spaces. Every value
  // here was validated before it got here (method: token; target: bytes 0x21-0x7e by the
  // parser; correlation id: its charset; service, instance, client: configuration and
  // addresses), so only a '"' in the target can need replacing.
  const auto value = [&](std::string_view v) {
    if (v.empty())
      *o++ = '-';
    else
      put(v);
  };
  const auto target = [&](std::string_view v) {
    char* from = o;
    value(v);
    if (!v.empty() && std::memchr(v.data(), '"', v.size()) != nullptr)
      for (; from < o; ++from)
        if (*from == '"') *from = '_';
  };
  const auto number = [&o](std::uint64_t v) { o = std::to_chars(o, o + 20, v).ptr; };
  put(ts);
  put(" access method=");
  value(r.method);
  put(" path=");
  target(r.target);
  put(" status=");
  number(static_cast<std::uint64_t>(r.status));
  put(" duration_ms=");
  o = write_millis(o, r.duration_ms);
  put(" service=");
  value(r.service);
  put(" instance=");
  value(r.instance);
  put(" bytes=");
  number(r.bytes_sent);
  put(" correlation_id=");
  value(r.correlation_id);
  put(" client=");
  value(r.peer);
  *o++ = '\n';
  buffer_.resize(static_cast<std::size_t>(o - buffer_.data()));
}

void AccessLog::record(const AccessRecord& r) {
  if (!enabled_) return;
  const std::string_view ts(timestamp_, timestamp_len_);
  if (format_ == core::LogFormat::kJson) {
    buffer_ += "{\"ts\":\"";
    buffer_ += ts;
    buffer_ += "\",\"type\":\"access\",\"method\":\"";
    core::append_json_escaped(buffer_, r.method);
    buffer_ += "\",\"path\":\"";
    core::append_json_escaped(buffer_, r.target);
    buffer_ += "\",\"status\":";
    append_uint(buffer_, static_cast<std::uint64_t>(r.status));
    buffer_ += ",\"duration_ms\":";
    append_millis(buffer_, r.duration_ms);
    buffer_ += ",\"service\":\"";
    core::append_json_escaped(buffer_, r.service);
    buffer_ += "\",\"instance\":\"";
    core::append_json_escaped(buffer_, r.instance);
    buffer_ += "\",\"bytes_sent\":";
    append_uint(buffer_, r.bytes_sent);
    buffer_ += ",\"correlation_id\":\"";
    core::append_json_escaped(buffer_, r.correlation_id);
    buffer_ += "\",\"client\":\"";
    core::append_json_escaped(buffer_, r.peer);
    buffer_ += "\"}\n";
  } else {
    append_text_line(ts, r);
  }
  if (buffer_.size() >= kFlushAt) {
    write_all(fd_, buffer_, pipe_);
    buffer_.clear();
  }
}

void AccessLog::flush(core::WallTime wall_now) {
  set_time(wall_now);
  if (buffer_.empty()) return;
  write_all(fd_, buffer_, pipe_);
  buffer_.clear();
}

}  // namespace sb::gateway
