// A small blocking HTTP/1.1 client for integration tests, on plain POSIX sockets. It
// sends exactly the bytes a test gives it and parses responses strictly enough to notice
// framing mistakes (Content-Length, chunked, close-delimited, HEAD, 1xx).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::testing {

struct CaseInsensitiveLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};

/// Header fields in the order received within one name, names compared case-insensitively.
using Headers = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct Response {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  Headers headers;
  std::string body;              // the decoded body (empty when not stored)
  std::uint64_t body_len = 0;    // decoded body length, counted even when not stored
  std::string body_sha256;       // hex digest of the decoded body
  bool chunked = false;          // the body came in chunked framing
  bool close_delimited = false;  // the body ended when the server closed
  std::string raw;               // the bytes received for this response (capped at 4 MiB)
  std::string error;             // why reading failed; empty when the response is complete

  bool ok() const { return error.empty(); }
  bool has_header(std::string_view name) const { return headers.count(name) > 0; }
  /// The first value of `name`, or "" when absent.
  std::string header(std::string_view name) const;
  std::vector<std::string> header_values(std::string_view name) const;
};

struct ReadOptions {
  bool head_request = false;  // the request was HEAD: no body follows
  bool store_body = true;     // false: only body_len and body_sha256 are kept
};

/// Streaming SHA-256 (OpenSSL EVP), hex output.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex();  // finishes the digest

 private:
  void* ctx_;
};

std::string sha256_hex(std::string_view data);

/// The test pattern the upstream also produces: byte i is i % 251.
std::string pattern_bytes(std::uint64_t offset, std::size_t n);
/// SHA-256 of the first `n` pattern bytes.
std::string pattern_sha256(std::uint64_t n);

/// Formats a request. Adds "Host: 127.0.0.1" when `headers` has no Host, and framing for
/// the body: `Transfer-Encoding: chunked` when `chunked` (the body in 16 KiB chunks),
/// otherwise `Content-Length` when the body is not empty or the method is POST or PUT.
std::string format_request(std::string_view method, std::string_view target,
                           const Headers& headers = {}, std::string_view body = {},
                           bool chunked = false);

/// One client connection to 127.0.0.1:port. Each socket read or write waits at most
/// `io_timeout` (SO_RCVTIMEO / SO_SNDTIMEO); errors are values, never exceptions.
class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port,
                      std::chrono::milliseconds io_timeout = std::chrono::milliseconds(0));
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&&) = delete;
  HttpClient(const HttpClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  const std::string& last_error() const { return error_; }
  std::uint16_t port() const { return port_; }

  /// Sends bytes as given. False on error or timeout (see last_error()).
  bool send_raw(std::string_view bytes);
  /// Sends `n` pattern bytes as a body: raw (after a Content-Length head) or as chunks.
  bool send_pattern_body(std::uint64_t n, bool chunked, std::size_t chunk_size = 64 * 1024);

  /// Reads one response (a 1xx counts as one; read again for the final response).
  Response read_response(ReadOptions options = {});

  /// Sends a request (see format_request) and reads its response.
  Response request(std::string_view method, std::string_view target, const Headers& headers = {},
                   std::string_view body = {}, bool chunked = false);
  Response get(std::string_view target, const Headers& headers = {}) {
    return request("GET", target, headers);
  }

  /// True when the server closes the connection (EOF or reset) within `timeout`. Bytes
  /// that arrive meanwhile are kept for read_response().
  bool wait_closed(std::chrono::milliseconds timeout);
  /// True when bytes are available (buffered or on the socket) within `timeout`.
  bool readable_within(std::chrono::milliseconds timeout);
  /// Half-closes the sending side.
  void shutdown_write();
  void close();

 private:
  // Reads more bytes into buf_; false on EOF (eof_ set) or error (error_ set).
  bool fill();
  bool read_line(std::string& line, std::string& raw, std::size_t max);

  std::uint16_t port_;
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  std::string error_;
};

/// A port on 127.0.0.1 that nothing listened on a moment ago (bind :0, close).
std::uint16_t unused_port();

/// Holds a listening socket on 127.0.0.1 (without SO_REUSEPORT) to make a port busy.
class PortBlocker {
 public:
  PortBlocker();
  ~PortBlocker();
  PortBlocker(const PortBlocker&) = delete;
  PortBlocker& operator=(const PortBlocker&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace sb::testing
