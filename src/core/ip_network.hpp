// IP addresses and networks (CIDR) as configuration values: api.allowed_networks and the
// addresses checked against it. Plain values; parsing says what is wrong.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::core {

/// An IPv4 or IPv6 address. An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is taken as the
/// IPv4 address it carries, so that it matches IPv4 networks and no IPv6 ones.
struct IpAddress {
  bool v4 = true;
  std::array<std::uint8_t, 16> bytes{};  // network order; IPv4 uses the first 4

  /// "10.0.0.1" or "fd00::1" (no brackets, no zone id, no port); nullopt otherwise.
  static std::optional<IpAddress> parse(std::string_view text);
  /// 127.0.0.0/8 or ::1.
  bool is_loopback() const;
  /// The canonical text ("10.0.0.1", "fd00::1").
  std::string str() const;
  bool operator==(const IpAddress&) const = default;
};

/// A network in CIDR notation ("10.0.0.0/8", "fd00::/8"); a bare address is a /32 or /128.
struct IpNetwork {
  IpAddress base{};
  unsigned prefix = 0;  // 0..32 (IPv4) or 0..128 (IPv6)
  std::string text{};   // canonical: "10.0.0.0/8"

  /// Parses a network; on error returns nullopt and sets `why` (e.g. "host bits are set:
  /// did you mean 10.0.0.0/8?"). Set host bits, prefixes out of range and IPv4-mapped IPv6
  /// networks are refused.
  static std::optional<IpNetwork> parse(std::string_view text, std::string* why = nullptr);
  /// Whether `a` is in this network (an IPv4 address is never in an IPv6 network).
  bool contains(const IpAddress& a) const;
  bool operator==(const IpNetwork&) const = default;
};

/// 127.0.0.0/8 and ::1/128: api.allowed_networks by default.
std::vector<IpNetwork> loopback_networks();

}  // namespace sb::core
