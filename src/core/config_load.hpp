// Builds the effective Config from defaults, a YAML file, dotenv files, the process
// environment and command-line overrides (in that order of increasing precedence), and
// validates it. Every error names where the bad value came from: file, line, key path
// and what is wrong.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"

namespace sb::core {

/// Values given on the command line; unset ones leave lower layers alone.
struct CliOverrides {
  std::optional<std::string> listen;      // --listen HOST:PORT
  std::vector<std::string> services;      // --service NAME=URL[,URL...] (repeatable)
  std::optional<unsigned> threads;        // --threads N
  std::optional<std::string> log_level;   // --log-level LEVEL
  std::optional<std::string> log_format;  // --log-format text|json
};

struct LoadOptions {
  std::optional<std::string> config_file;                    // --config FILE
  std::vector<std::string> env_files;                        // --env-file FILE (must exist)
  std::optional<std::string> env_local_file = ".env.local";  // loaded when present
  std::map<std::string, std::string> environment;  // the process environment (see environ_map)
  CliOverrides cli;
};

/// A configuration error for people: "FILE:LINE: KEY.PATH: what is wrong".
struct ConfigError {
  std::string message;
};

/// The outcome of loading: a Config or the first error (with later ones appended).
struct LoadResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
  bool ok() const { return config.has_value(); }
};

/// Builds and validates the effective configuration. Reads the files named in `options`
/// and nothing else: the caller passes the process environment (environ_map()). Never
/// throws for bad input: every problem found is one entry of `errors` (all are collected,
/// not only the first: config-file errors in line order, then those of dotenv files, the
/// environment and the command line), and `config` is set only when there are none.
/// Thread-safe (no shared state).
LoadResult load_config(const LoadOptions& options);

/// The current process environment as a map.
std::map<std::string, std::string> environ_map();

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

/// The effective configuration as YAML, each value followed by a comment saying where it
/// came from (`--print-config`).
std::string render_config(const Config& config);

}  // namespace sb::core
