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
#include "core/config_text.hpp"  // parse_duration, parse_size, ... (the value formats)

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

/// The effective configuration as YAML, each value followed by a comment saying where it
/// came from (`--print-config`).
std::string render_config(const Config& config);

/// The docs table (Markdown) of one part of the configuration, made from the key
/// declarations: "server", "limits", ..., "environment" (see config_docs_tables()); nullopt
/// for an unknown name. docs/configuration.md holds each between `<!-- keys:NAME -->` and
/// `<!-- /keys -->`, and a test checks that it is the same.
std::optional<std::string> config_docs_table(std::string_view name);
std::vector<std::string_view> config_docs_tables();

}  // namespace sb::core
