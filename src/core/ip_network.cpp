#include "core/ip_network.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>

namespace sb::core {
namespace {

bool parse_prefix(std::string_view s, unsigned max, unsigned* out) {
  if (s.empty() || s.size() > 3) return false;
  unsigned n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  if (s.size() > 1 && s.front() == '0') return false;  // "08": a typo more likely than 8
  if (n > max) return false;
  *out = n;
  return true;
}

// `a` with every bit after the first `prefix` cleared.
IpAddress masked(IpAddress a, unsigned prefix) {
  const unsigned len = a.v4 ? 4 : 16;
  for (unsigned i = 0; i < len; ++i) {
    const unsigned bits = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
    a.bytes[i] &= static_cast<std::uint8_t>(bits == 8 ? 0xff : (0xff << (8 - bits)) & 0xff);
  }
  return a;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    auto v4 = boost::urls::parse_ipv4_address(text);
    if (!v4) return std::nullopt;
    const auto b = v4->to_bytes();
    std::copy(b.begin(), b.end(), a.bytes.begin());
    return a;
  }
  auto v6 = boost::urls::parse_ipv6_address(text);
  if (!v6) return std::nullopt;
  const auto b = v6->to_bytes();
  if (v6->is_v4_mapped()) {
    std::copy(b.begin() + 12, b.end(), a.bytes.begin());
    return a;
  }
  a.v4 = false;
  std::copy(b.begin(), b.end(), a.bytes.begin());
  return a;
}

bool IpAddress::is_loopback() const {
  if (v4) return bytes[0] == 127;
  for (std::size_t i = 0; i < 15; ++i)
    if (bytes[i] != 0) return false;
  return bytes[15] == 1;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text, std::string* why) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  const auto slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddress::parse(addr_text);
  if (!addr) {
    *why = "not an IP address (expected e.g. 10.0.0.0/8 or fd00::/8)";
    return std::nullopt;
  }
  if (addr->v4 && addr_text.find(':') != std::string_view::npos) {
    *why = "an IPv4-mapped IPv6 address: write the IPv4 network (e.g. 10.0.0.0/8)";
    return std::nullopt;
  }
  const unsigned max = addr->v4 ? 32 : 128;
  IpNetwork n;
  n.prefix = max;
  if (slash != std::string_view::npos && !parse_prefix(text.substr(slash + 1), max, &n.prefix)) {
    *why = fmt::format("the prefix length after '/' must be a number from 0 to {}", max);
    return std::nullopt;
  }
  n.base = masked(*addr, n.prefix);
  if (n.base != *addr) {
    *why = fmt::format("host bits are set: did you mean {}/{}?", n.base.str(), n.prefix);
    return std::nullopt;
  }
  n.text = fmt::format("{}/{}", n.base.str(), n.prefix);
  return n;
}

bool IpNetwork::contains(const IpAddress& a) const {
  return a.v4 == base.v4 && masked(a, prefix) == base;
}

std::vector<IpNetwork> loopback_networks() {
  return {*IpNetwork::parse("127.0.0.0/8"), *IpNetwork::parse("::1/128")};
}

}  // namespace sb::core
