#include "testing/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "testing/process.hpp"

namespace sb::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxRaw = 4u << 20;
constexpr std::size_t kMaxLine = 1u << 20;
constexpr unsigned kPatternPeriod = 251;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One period of the pattern, repeated so any slice of up to kPatternBlock bytes can be
// copied from it at any phase.
constexpr std::size_t kPatternBlock = kPatternPeriod * 256;
const std::string& pattern_buffer() {
  static const std::string buf = [] {
    std::string b(2 * kPatternBlock, '\0');
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i % kPatternPeriod);
    return b;
  }();
  return buf;
}

void set_timeout(int fd, int opt, milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

}  // namespace

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return lower(x) < lower(y); });
}

std::string Response::header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::vector<std::string> Response::header_values(std::string_view name) const {
  std::vector<std::string> out;
  auto [lo, hi] = headers.equal_range(name);
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  return out;
}

// ---------------------------------------------------------------------------------------
// SHA-256 and the pattern

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr ||
      EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("EVP sha256 init failed");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(std::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

std::string pattern_bytes(std::uint64_t offset, std::size_t n) {
  const std::string& buf = pattern_buffer();
  std::string out;
  out.reserve(n);
  while (n > 0) {
    std::size_t phase = static_cast<std::size_t>(offset % kPatternPeriod);
    std::size_t take = std::min(n, kPatternBlock);
    out.append(buf, phase, take);
    offset += take;
    n -= take;
  }
  return out;
}

std::string pattern_sha256(std::uint64_t n) {
  Sha256 h;
  const std::string& buf = pattern_buffer();
  for (std::uint64_t off = 0; off < n;) {
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n - off, kPatternBlock));
    h.update(std::string_view(buf).substr(off % kPatternPeriod, take));
    off += take;
  }
  return h.hex();
}

std::string format_request(std::string_view method, std::string_view target, const Headers& headers,
                           std::string_view body, bool chunked) {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (headers.count("host") == 0) out += "Host: 127.0.0.1\r\n";
  for (const auto& [k, v] : headers) out.append(k).append(": ").append(v).append("\r\n");
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n\r\n";
    constexpr std::size_t kChunk = 16 * 1024;
    for (std::size_t off = 0; off < body.size(); off += kChunk) {
      std::string_view piece = body.substr(off, kChunk);
      char size[32];
      auto r = std::to_chars(size, size + sizeof size, piece.size(), 16);
      out.append(size, r.ptr).append("\r\n").append(piece).append("\r\n");
    }
    out += "0\r\n\r\n";
    return out;
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out.append(body);
  return out;
}

// ---------------------------------------------------------------------------------------
// HttpClient

HttpClient::HttpClient(std::uint16_t port, milliseconds io_timeout) : port_(port) {
  if (io_timeout.count() == 0) io_timeout = default_timeout();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return;
  }
  set_timeout(fd_, SO_RCVTIMEO, io_timeout);
  set_timeout(fd_, SO_SNDTIMEO, io_timeout);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error_ = "connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
  }
}

HttpClient::~HttpClient() { close(); }

HttpClient::HttpClient(HttpClient&& other) noexcept
    : port_(other.port_),
      fd_(std::exchange(other.fd_, -1)),
      buf_(std::move(other.buf_)),
      eof_(other.eof_),
      error_(std::move(other.error_)) {}

void HttpClient::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void HttpClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool HttpClient::send_raw(std::string_view bytes) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = (errno == EAGAIN || errno == EWOULDBLOCK)
                   ? std::string("send timed out")
                   : std::string("send: ") + std::strerror(errno);
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool HttpClient::send_pattern_body(std::uint64_t n, bool chunked, std::size_t chunk_size) {
  for (std::uint64_t off = 0; off < n;) {
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n - off, chunk_size));
    std::string piece = pattern_bytes(off, take);
    if (chunked) {
      char size[32];
      auto r = std::to_chars(size, size + sizeof size, take, 16);
      piece = std::string(size, r.ptr) + "\r\n" + piece + "\r\n";
    }
    if (!send_raw(piece)) return false;
    off += take;
  }
  return chunked ? send_raw("0\r\n\r\n") : true;
}

bool HttpClient::fill() {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  if (eof_) return false;
  char tmp[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      error_ = "read timed out";
    } else {
      error_ = std::string("recv: ") + std::strerror(errno);
      if (errno == ECONNRESET) eof_ = true;
    }
    return false;
  }
}

bool HttpClient::readable_within(milliseconds timeout) {
  if (!buf_.empty() || eof_) return true;
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

bool HttpClient::wait_closed(milliseconds timeout) {
  if (eof_) return true;
  if (fd_ < 0) return false;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      buf_.append(tmp, static_cast<std::size_t>(n));
    } else if (n == 0 || errno == ECONNRESET || errno == EPIPE) {
      eof_ = true;
      return true;
    }
  }
}

bool HttpClient::read_line(std::string& line, std::string& raw, std::size_t max) {
  for (;;) {
    std::size_t pos = buf_.find("\r\n");
    if (pos != std::string::npos) {
      line.assign(buf_, 0, pos);
      if (raw.size() < kMaxRaw) raw.append(buf_, 0, pos + 2);
      buf_.erase(0, pos + 2);
      return true;
    }
    if (buf_.size() > max) {
      error_ = "line longer than " + std::to_string(max) + " bytes";
      return false;
    }
    if (!fill()) {
      if (error_.empty()) error_ = "connection closed";
      return false;
    }
  }
}

Response HttpClient::read_response(ReadOptions options) {
  Response r;
  error_.clear();
  auto fail = [&](std::string why) {
    r.error = why.empty() ? std::string("read failed") : std::move(why);
    if (!buf_.empty() && r.raw.size() < kMaxRaw) r.raw += buf_;  // for diagnostics
    return r;
  };

  std::string line;
  if (!read_line(line, r.raw, kMaxLine)) return fail(error_);
  // Status line: HTTP-version SP status-code SP [reason-phrase]
  auto sp1 = line.find(' ');
  if (sp1 == std::string::npos || line.compare(0, 5, "HTTP/") != 0) {
    return fail("bad status line: " + line);
  }
  r.version = line.substr(0, sp1);
  std::string_view rest = std::string_view(line).substr(sp1 + 1);
  auto code = rest.substr(0, 3);
  if (code.size() != 3 || !std::all_of(code.begin(), code.end(), ::isdigit) ||
      (rest.size() > 3 && rest[3] != ' ')) {
    return fail("bad status code in: " + line);
  }
  r.status = std::stoi(std::string(code));
  r.reason = rest.size() > 4 ? std::string(rest.substr(4)) : std::string();

  for (;;) {
    if (!read_line(line, r.raw, kMaxLine)) return fail(error_);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return fail("bad header line: " + line);
    std::string_view v = trim(std::string_view(line).substr(colon + 1));
    r.headers.emplace(line.substr(0, colon), std::string(v));
  }

  Sha256 digest;
  auto take_body = [&](std::uint64_t n) -> bool {
    while (n > 0) {
      if (buf_.empty() && !fill()) return false;
      std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf_.size()));
      std::string_view piece(buf_.data(), k);
      digest.update(piece);
      if (options.store_body) r.body.append(piece);
      if (r.raw.size() < kMaxRaw) r.raw.append(piece.substr(0, kMaxRaw - r.raw.size()));
      r.body_len += k;
      buf_.erase(0, k);
      n -= k;
    }
    return true;
  };

  const bool no_body = options.head_request || (r.status >= 100 && r.status < 200) ||
                       r.status == 204 || r.status == 304;
  bool chunked = false;
  for (const auto& te : r.header_values("transfer-encoding")) {
    std::string_view t = trim(te);
    auto comma = t.rfind(',');
    std::string_view last = trim(comma == std::string_view::npos ? t : t.substr(comma + 1));
    chunked = iequals(last, "chunked");
  }
  auto lengths = r.header_values("content-length");

  if (no_body) {
    // nothing
  } else if (chunked) {
    r.chunked = true;
    for (;;) {
      if (!read_line(line, r.raw, 4096)) return fail("chunk size: " + error_);
      std::string_view size_text = trim(std::string_view(line).substr(0, line.find(';')));
      std::uint64_t size = 0;
      auto res = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
      if (size_text.empty() || res.ec != std::errc() ||
          res.ptr != size_text.data() + size_text.size()) {
        return fail("bad chunk size line: " + line);
      }
      if (size == 0) break;
      if (!take_body(size)) return fail("chunk data: " + (error_.empty() ? "closed" : error_));
      if (!read_line(line, r.raw, 2) || !line.empty()) return fail("missing CRLF after chunk");
    }
    for (;;) {  // trailer section
      if (!read_line(line, r.raw, kMaxLine)) return fail("trailers: " + error_);
      if (line.empty()) break;
    }
  } else if (!lengths.empty()) {
    for (const auto& l : lengths) {
      if (l != lengths.front()) return fail("conflicting Content-Length values");
    }
    std::uint64_t n = 0;
    const std::string& l = lengths.front();
    auto res = std::from_chars(l.data(), l.data() + l.size(), n);
    if (l.empty() || res.ec != std::errc() || res.ptr != l.data() + l.size()) {
      return fail("bad Content-Length: " + l);
    }
    if (!take_body(n)) {
      return fail("body ended after " + std::to_string(r.body_len) + " of " + std::to_string(n) +
                  " bytes: " + (error_.empty() ? "closed" : error_));
    }
  } else {
    r.close_delimited = true;
    error_.clear();
    for (;;) {
      if (!buf_.empty()) take_body(buf_.size());
      if (!fill()) break;
    }
    // Only a clean close ends such a body: a reset means it was cut.
    if (!eof_ || !error_.empty()) return fail("close-delimited body: " + error_);
  }
  r.body_sha256 = digest.hex();
  return r;
}

Response HttpClient::request(std::string_view method, std::string_view target,
                             const Headers& headers, std::string_view body, bool chunked) {
  ReadOptions options;
  options.head_request = method == "HEAD";
  if (!send_raw(format_request(method, target, headers, body, chunked))) {
    std::string send_error = error_;
    Response r = read_response(options);  // the server may have answered before closing
    if (!r.ok()) r.error = "send failed (" + send_error + "), then " + r.error;
    return r;
  }
  return read_response(options);
}

// ---------------------------------------------------------------------------------------
// Ports

namespace {
int bound_socket(std::uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
  }
  *port = ntohs(addr.sin_port);
  return fd;
}
}  // namespace

std::uint16_t unused_port() {
  std::uint16_t port = 0;
  ::close(bound_socket(&port));
  return port;
}

PortBlocker::PortBlocker() {
  fd_ = bound_socket(&port_);
  if (::listen(fd_, 16) != 0)
    throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
}

PortBlocker::~PortBlocker() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace sb::testing
