// Parsers and checks of the value formats a config uses (durations, sizes, addresses,
// URLs, booleans of the environment, route paths, host names), and reading a config or
// dotenv file. No YAML here: the loader (config_load.cpp) hands these plain text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.hpp"

namespace sb::core {

inline constexpr Millis kMaxDuration = std::chrono::hours(24);  // every duration's cap
inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = kKiB * 1024;
inline constexpr std::uint64_t kGiB = kMiB * 1024;
inline constexpr std::uint64_t kTiB = kGiB * 1024;

/// Hints that end the messages about a malformed value.
inline constexpr std::string_view kDurationHint = "use e.g. 250ms, 10s, 2m";
inline constexpr std::string_view kSizeHint = "use e.g. 65536, 512KiB, 64MiB, 1GiB";
inline constexpr std::string_view kHostPortHint =
    "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080";
inline constexpr std::string_view kLogLevels = "trace, debug, info, warn, error, critical or off";

/// Parses "250ms", "30s", "2m", "1h", "1500" (bare numbers are rejected unless
/// `bare_unit_ms`, where they mean milliseconds). Returns nullopt on error.
std::optional<Millis> parse_duration(std::string_view text, bool bare_unit_ms = false);

/// Parses a byte size: "65536", "512KiB", "64MiB", "1GiB", "1TiB" (binary units only).
/// Returns nullopt on error or overflow.
std::optional<std::uint64_t> parse_size(std::string_view text);

/// Parses "HOST:PORT" ("[::1]:80" for IPv6). Returns nullopt on error.
std::optional<HostPort> parse_host_port(std::string_view text);

/// Parses an upstream URL (http/https, host required, no userinfo, query or fragment;
/// `allow_query` takes a query, kept as written in UpstreamUrl::query: webhook URLs).
/// On error returns nullopt and sets `why`.
std::optional<UpstreamUrl> parse_upstream_url(std::string_view text, std::string* why,
                                              bool allow_query = false);

/// A DNS-style host name (also '_', which Docker and Compose service names use); strings of
/// only digits and dots are not names ("1.2.3.4.5" is a mistyped address).
bool valid_host_name(std::string_view h);
bool valid_ipv4(std::string_view h);
bool valid_ipv6(std::string_view h);

/// Whether two URLs name the same endpoint (scheme, host ignoring case, port, base path).
bool same_endpoint(const UpstreamUrl& a, const UpstreamUrl& b);

/// A route path (prefix or rewrite): starts with '/', no blanks, controls, '?' or '#'.
/// Returns what is wrong, or nullopt when it is fine.
std::optional<std::string> check_route_path(std::string_view p);

/// true/false, 1/0, yes/no, on/off in any case (the environment's booleans).
std::optional<bool> parse_env_bool(std::string_view v);

/// A finite number in [0, 1].
std::optional<double> parse_unit_interval(std::string_view v);

/// Reads a whole regular file of at most 4 MiB. On failure returns nullopt and sets `why`.
/// Only regular files: /dev/zero would grow forever and a FIFO would block startup.
std::optional<std::string> read_file(const std::string& path, std::string* why);

}  // namespace sb::core
