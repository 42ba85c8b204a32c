// How one upstream attempt ended, as every resilience policy sees it: a transport error or
// a response status. The caller classifies its I/O result once and hands this value around.
#pragma once

#include <cstdint>

namespace sb::resilience {

/// The transport-level result of an attempt. kNone means a response head arrived (its
/// status is in Outcome::status).
enum class TransportError : std::uint8_t {
  kNone,
  kConnectFailure,  // connect refused or timed out, TLS handshake failed
  kReset,           // the connection was reset or closed before a complete response
  kTimeout,         // no response (head) within the per-try timeout
};

/// "none", "connect failure", "reset", "timeout".
const char* to_string(TransportError e);

struct Outcome {
  TransportError error = TransportError::kNone;
  int status = 0;  // the response status when error is kNone; ignored otherwise

  static constexpr Outcome response(int status) { return Outcome{TransportError::kNone, status}; }
  static constexpr Outcome failed(TransportError e) { return Outcome{e, 0}; }
};

/// A gateway error in the outlier-detection sense (Envoy's "gateway failure"): any transport
/// error, or a 502, 503 or 504 answer.
constexpr bool is_gateway_error(Outcome o) {
  return o.error != TransportError::kNone || o.status == 502 || o.status == 503 || o.status == 504;
}

}  // namespace sb::resilience
