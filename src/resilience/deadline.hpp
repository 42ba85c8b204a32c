// Request deadlines: strict parsers for the timeout headers a client may send
// (X-Request-Timeout-Ms, grpc-timeout), and a Deadline value that tells how much time is
// left and what to forward upstream so the next hop knows it too.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"

namespace sb::resilience {

/// The result of parsing a timeout header: a duration, or why the value is malformed. A
/// malformed value is an error for the gateway to answer (400 naming the header), never a
/// guess.
struct ParsedTimeout {
  std::optional<core::Duration> value;  // nullopt when malformed
  std::string_view error;               // static text when malformed: "empty", ...

  explicit operator bool() const { return value.has_value(); }
};

/// X-Request-Timeout-Ms values above this (24 h) are rejected as out of range.
inline constexpr std::int64_t kMaxRequestTimeoutMs = 86'400'000;

/// X-Request-Timeout-Ms: decimal milliseconds, ASCII digits only (leading zeros allowed, at
/// most 10 digits), 0 to kMaxRequestTimeoutMs. No sign, spaces, fraction or unit: errors
/// are "empty", "not a decimal number of milliseconds", "too large (max 86400000)".
/// 0 is valid and means the request is already out of time.
ParsedTimeout parse_request_timeout_ms(std::string_view value);

/// grpc-timeout, per the gRPC HTTP/2 spec: TimeoutValue (1 to 8 ASCII digits) followed by
/// one TimeoutUnit: H (hours), M (minutes), S (seconds), m (ms), u (us), n (ns). Nothing
/// before or after. Values saturate at ~73 years (the largest is 99999999H, ~11 000 years).
/// Errors: "empty", "missing unit", "bad unit", "not 1 to 8 digits".
ParsedTimeout parse_grpc_timeout(std::string_view value);

/// The budget a request gets: the route's timeout, shortened by what the client asked for
/// (never lengthened).
constexpr core::Duration effective_budget(core::Duration route_timeout,
                                          std::optional<core::Duration> requested) {
  return requested && *requested < route_timeout ? *requested : route_timeout;
}

/// A request's deadline: its start and its budget. A plain value, cheap to copy.
class Deadline {
 public:
  constexpr Deadline(core::SteadyTime start, core::Duration budget)
      : start_(start), budget_(budget < core::Duration::zero() ? core::Duration::zero() : budget) {}

  constexpr core::SteadyTime start() const { return start_; }
  constexpr core::Duration budget() const { return budget_; }
  constexpr core::SteadyTime at() const { return start_ + budget_; }
  /// Time left at `now`; zero once expired (never negative).
  constexpr core::Duration remaining(core::SteadyTime now) const {
    return now >= at() ? core::Duration::zero() : at() - now;
  }
  /// True from at() on (exactly at it, not one ns before).
  constexpr bool expired(core::SteadyTime now) const { return now >= at(); }

  /// Whole milliseconds left, rounded down (the next hop must never think it has more time
  /// than we do): the value to forward as X-Request-Timeout-Ms.
  std::int64_t forward_timeout_ms(core::SteadyTime now) const;
  /// forward_timeout_ms() as header text ("1234").
  std::string forward_header_value(core::SteadyTime now) const;
  /// The remaining time as a grpc-timeout value: milliseconds ("1234m") while that fits 8
  /// digits, else whole seconds, minutes or hours (all rounded down).
  std::string grpc_timeout_value(core::SteadyTime now) const;

 private:
  core::SteadyTime start_;
  core::Duration budget_;
};

}  // namespace sb::resilience
