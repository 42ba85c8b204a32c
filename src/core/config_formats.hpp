// The value formats of the configuration (see config_schema.hpp): how a key's text is
// parsed and checked, how its value is printed back in config syntax, and how its type
// reads in the docs. Internal to sb_core (and its tests).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/config_text.hpp"
#include "core/ip_network.hpp"
#include "core/text.hpp"

namespace sb::core::schema {

/// What a failed parse says ("bad duration \"x\" (use e.g. ...)"); nullopt: parsed and stored.
using Problem = std::optional<std::string>;

/// The docs line of a key.
struct Doc {
  std::string_view text;               // the "meaning" column
  std::string_view default_text = {};  // the "default" column when not the rendered default
};

// ---------------------------------------------------------------------------------------
// Value formats. Each has expected() (the words of "missing value (...)" and "..., got a
// list"), parse(text, out) (stores only on success), render(value) (config syntax, read
// back by parse) and type() (the docs "type" column). Formats marked kNode read a YAML list
// or map instead of a scalar; the reader has a function for each.
// ---------------------------------------------------------------------------------------

/// A format that reads a YAML list or map (the reader has a function for each).
template <class F>
concept NodeFormat = F::kNode;
/// A format whose "" (EmptyIsUnset) or `null` (NullIsUnset) may mean "left out".
template <class F>
concept EmptyIsUnset = requires(const F& f) {
  f.empty_is_unset;
};
template <class F>
concept NullIsUnset = requires(const F& f) {
  f.null_is_unset;
};

struct UInt {
  std::uint64_t min, max;
  std::string_view expected() const { return "expected an integer"; }
  template <class T>
  Problem parse(std::string_view v, T& out) const {
    std::uint64_t n = 0;
    const bool negative = !v.empty() && v.front() == '-';
    if (!parse_digits(negative ? v.substr(1) : v, &n))
      return fmt::format("expected an integer, got {}", quote(v));
    if (negative || n < min || n > max)
      return fmt::format("out of range: must be between {} and {}, got {}", min, max, v);
    out = static_cast<T>(n);
    return std::nullopt;
  }
  template <class T>
  std::string render(const T& v) const {
    return fmt::format("{}", v);
  }
  std::string type() const { return fmt::format("integer {}..{}", min, max); }
};

/// An integer percentage 0..100.
struct Percent : UInt {
  Percent() : UInt{0, 100} {}
  std::string type() const { return "percent 0..100"; }
};

struct Size {
  std::uint64_t min, max;
  std::string_view expected() const { return "expected a size"; }
  template <class T>
  Problem parse(std::string_view v, T& out) const {
    auto n = parse_size(v);
    if (!n) return fmt::format("bad size {} ({})", quote(v), kSizeHint);
    if (*n < min || *n > max)
      return fmt::format("out of range: must be between {} and {}, got {}", format_size(min),
                         format_size(max), v);
    out = static_cast<T>(*n);
    return std::nullopt;
  }
  template <class T>
  std::string render(const T& v) const {
    return format_size(v);
  }
  std::string type() const {
    return fmt::format("size {}..{}", min == 0 ? "0" : format_size(min), format_size(max));
  }
};

struct Duration {
  Millis min;
  std::string_view expected() const { return "expected a duration"; }
  Problem parse(std::string_view v, Millis& out) const {
    auto d = parse_duration(v);
    if (!d) return fmt::format("bad duration {} ({})", quote(v), kDurationHint);
    if (*d < min || *d > kMaxDuration)
      return fmt::format("out of range: must be between {} and {}, got {}", format_duration(min),
                         format_duration(kMaxDuration), v);
    out = *d;
    return std::nullopt;
  }
  std::string render(Millis v) const { return format_duration(v); }
  std::string type() const {
    return fmt::format("duration {}..24h", min.count() == 0 ? "0" : format_duration(min));
  }
};

struct Bool {
  std::string_view expected() const { return "expected true or false"; }
  Problem parse(std::string_view s, bool& out) const {
    if (s == "true" || s == "True" || s == "TRUE") {
      out = true;
    } else if (s == "false" || s == "False" || s == "FALSE") {
      out = false;
    } else {
      return fmt::format("expected true or false, got {}", quote(s));
    }
    return std::nullopt;
  }
  std::string render(bool b) const { return b ? "true" : "false"; }
  std::string type() const { return "boolean"; }
};

struct Number {
  double min, max;
  std::string_view expected() const { return "expected a number"; }
  Problem parse(std::string_view s, double& out) const;
  std::string render(double v) const { return fmt::format("{}", v); }
  std::string type() const { return fmt::format("number {}..{}", min, max); }
};

/// telemetry.sample_rate: a number in [0, 1] with its own wording.
struct UnitInterval {
  std::string_view expected() const { return "expected a number between 0 and 1"; }
  Problem parse(std::string_view s, double& out) const {
    auto d = parse_unit_interval(s);
    if (!d) return fmt::format("expected a number between 0 and 1, got {}", quote(s));
    out = *d;
    return std::nullopt;
  }
  std::string render(double v) const { return fmt::format("{}", v); }
  std::string type() const { return "number 0..1"; }
};

/// A string, optionally checked: `check` returns what is wrong with it.
struct String {
  Problem (*check)(std::string_view) = nullptr;
  std::string_view type_text = "string";
  bool empty_is_unset = false;  // "" is the same as leaving the key out (not stored, no origin)
  bool bare = false;            // rendered without quotes (a token such as an HTTP method)
  std::string_view expected() const { return "expected a string"; }
  Problem parse(std::string_view s, std::string& out) const {
    if (check != nullptr)
      if (auto why = check(s)) return why;
    out = std::string(s);
    return std::nullopt;
  }
  std::string render(const std::string& v) const { return bare ? v : quote(v); }
  std::string type() const { return std::string(type_text); }
};

struct HostPortValue {
  std::string_view expected() const { return "expected HOST:PORT"; }
  Problem parse(std::string_view s, HostPort& out) const {
    auto hp = parse_host_port(s);
    if (!hp) return fmt::format("bad address {} ({})", quote(s), kHostPortHint);
    out = *hp;
    return std::nullopt;
  }
  std::string render(const HostPort& v) const { return quote(v.str()); }
  std::string type() const { return "address"; }
};

/// `null` (kept as nullopt) or a value of format `C`.
template <class C>
struct OrNull {
  C inner;
  bool null_is_unset = false;  // `null` is the same as leaving the key out (no origin)
  std::string_view expected() const { return inner.expected(); }
  template <class T>
  Problem parse(std::string_view s, std::optional<T>& out) const {
    T v{};
    if (auto why = inner.parse(s, v)) return why;
    out = std::move(v);
    return std::nullopt;
  }
  template <class T>
  std::string render(const std::optional<T>& v) const {
    return v ? inner.render(*v) : "null";
  }
  std::string type() const { return inner.type() + " or `null`"; }
};

struct UrlValue {
  bool allow_query = false;  // kept in UpstreamUrl::query (webhook URLs)
  std::string_view expected() const { return "expected a URL"; }
  Problem parse(std::string_view s, UpstreamUrl& out) const {
    std::string why;
    auto u = parse_upstream_url(s, &why, allow_query);
    if (!u) return fmt::format("bad URL {}: {}", quote(s), why);
    out = *u;
    return std::nullopt;
  }
  std::string render(const UpstreamUrl& v) const { return quote(v.text); }
  std::string type() const { return "URL"; }
};

/// One of a fixed set of words, each standing for a value of `E`.
template <class E>
struct Choice {
  struct Option {
    std::string_view word;
    E value;
  };
  std::vector<Option> options;
  std::string_view bad;  // "bad kind {}: round_robin, ..." with {} the quoted value
  bool quoted_render = false;
  std::string_view expected() const { return "expected a string"; }
  Problem parse(std::string_view s, E& out) const {
    for (const auto& o : options) {
      if (o.word == s) {
        out = o.value;
        return std::nullopt;
      }
    }
    return fmt::format(fmt::runtime(bad), quote(s));
  }
  std::string render(const E& v) const {
    for (const auto& o : options)
      if (o.value == v) return quoted_render ? quote(o.word) : std::string(o.word);
    return "?";
  }
  std::string type() const {
    std::string out;
    for (std::size_t i = 0; i < options.size(); ++i) {
      if (i > 0) out += i + 1 == options.size() ? " or " : ", ";
      out += fmt::format("`{}`", options[i].word);
    }
    return out;
  }
};

/// A list of instances: URL strings or {url, zone, weight} maps (see visit(InstanceConfig)).
struct Instances {
  static constexpr bool kNode = true;
  std::string render(const std::vector<InstanceConfig>& v) const;
  std::string type() const { return "list"; }
};

/// A map of header names to values; names in `reserved` (lower case) are refused.
struct Headers {
  static constexpr bool kNode = true;
  std::vector<std::string_view> reserved;
  std::string render(const std::map<std::string, std::string>& m) const;
  std::string type() const { return "map"; }
};

/// A list of distinct strings; `check` returns what is wrong with an item.
struct StringList {
  static constexpr bool kNode = true;
  std::string_view noun;  // "event types"
  Problem (*check)(std::string_view) = nullptr;
  std::string render(const std::vector<std::string>& v) const;
  std::string type() const { return fmt::format("list of {}", noun); }
};

/// api.token: at least 16 visible ASCII characters (or "": none). Its errors never quote it,
/// and --print-config shows kRedacted, which it refuses (a printed configuration never
/// runs with a token nobody chose).
inline constexpr std::string_view kRedacted = "<redacted>";
Problem token_problem(std::string_view token);
struct Token {
  std::string_view expected() const { return "expected a string"; }
  Problem parse(std::string_view s, std::string& out) const {
    if (!s.empty())
      if (auto why = token_problem(s)) return why;
    out = std::string(s);
    return std::nullopt;
  }
  std::string render(const std::string& v) const { return v.empty() ? "\"\"" : quote(kRedacted); }
  std::string type() const { return "at least 16 visible ASCII characters"; }
};

/// A list of networks in CIDR notation (api.allowed_networks).
struct Networks {
  static constexpr bool kNode = true;
  std::string render(const std::vector<IpNetwork>& v) const;
  std::string type() const { return "list of networks"; }
};
/// What is wrong with one network of such a list.
Problem check_network(std::string_view s);

// --- the environment's formats -------------------------------------------------------

/// Positive milliseconds, or a duration ("30s"); at most 24h.
struct EnvMillis {
  Problem parse(std::string_view s, Millis& out) const {
    auto d = parse_duration(s, /*bare_unit_ms=*/true);
    if (!d || *d <= Millis(0))
      return fmt::format("expected a positive integer (milliseconds), got {}", quote(s));
    if (*d > kMaxDuration)
      return fmt::format("out of range: must be at most {} ms (24h), got {}", kMaxDuration.count(),
                         s);
    out = *d;
    return std::nullopt;
  }
  std::string type() const {
    return "positive integer milliseconds (or a duration such as `30s`), at most 24h";
  }
};

struct EnvBool {
  Problem parse(std::string_view s, bool& out) const {
    auto b = parse_env_bool(s);
    if (!b) return fmt::format("expected true or false (or 1/0, yes/no, on/off), got {}", quote(s));
    out = *b;
    return std::nullopt;
  }
  std::string type() const { return "`true/false`, `1/0`, `yes/no`, `on/off`"; }
};

struct EnvPort {
  template <class T>
  Problem parse(std::string_view s, T& out) const {
    std::uint64_t port = 0;
    if (!parse_digits(s, &port) || port < 1 || port > 65535)
      return fmt::format("expected a port number between 1 and 65535, got {}", quote(s));
    out = static_cast<T>(port);
    return std::nullopt;
  }
  std::string type() const { return "1..65535"; }
};

/// Also set by environment variable `name`, read with format `C`.
template <class C>
struct Env {
  std::string_view name;
  C format;
};
/// Also set by command-line flag `flag`, read with format `C` (which may differ in range).
template <class C>
struct Cli {
  std::string_view flag;
  C format;
  std::string_view arg = {};    // docs: "--threads N"
  std::string_view after = {};  // docs, after the flag: "(1..1024)"
};

// --- checks used by String formats ------------------------------------------------------

Problem check_zone(std::string_view z);
Problem check_log_level(std::string_view s);
Problem check_ca_file(std::string_view s);
Problem check_server_name(std::string_view s);
Problem check_jaeger_endpoint(std::string_view s);
Problem check_status_list(std::string_view s);  // of response statuses that fail or retry
Problem check_expect_status(std::string_view s);
Problem check_check_path(std::string_view s);
Problem check_method(std::string_view s);
Problem check_event_type(std::string_view s);
Problem check_listed_service_name(std::string_view s);
/// The config's wording of a bad service name (the API words it its own way).
Problem check_config_service_name(std::string_view name);
Problem check_route_host(std::string_view s);
Problem check_route_service(std::string_view s);

}  // namespace sb::core::schema
