// JSON helpers for tests that read documents from the gateway or the upstream.
#pragma once

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace sb::testing {

/// Parses `text`; nullopt when it is not one valid JSON document.
inline std::optional<boost::json::value> parse_json(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

/// `v[key]` as a string when `v` is an object holding a string there, else nullopt.
inline std::optional<std::string> json_string(const boost::json::value& v, std::string_view key) {
  if (!v.is_object()) return std::nullopt;
  const boost::json::value* f = v.as_object().if_contains(key);
  if (f == nullptr || !f->is_string()) return std::nullopt;
  return std::string(f->as_string());
}

/// `v[key]` as an integer when it is an integral JSON number, else nullopt.
inline std::optional<long long> json_int(const boost::json::value& v, std::string_view key) {
  if (!v.is_object()) return std::nullopt;
  const boost::json::value* f = v.as_object().if_contains(key);
  if (f == nullptr) return std::nullopt;
  if (f->is_int64()) return f->as_int64();
  if (f->is_uint64()) return static_cast<long long>(f->as_uint64());
  return std::nullopt;
}

/// A number field (integer or not) as a double.
inline std::optional<double> json_double(const boost::json::value& v, std::string_view key) {
  if (!v.is_object()) return std::nullopt;
  const boost::json::value* f = v.as_object().if_contains(key);
  if (f == nullptr) return std::nullopt;
  if (f->is_double()) return f->as_double();
  if (f->is_int64()) return static_cast<double>(f->as_int64());
  if (f->is_uint64()) return static_cast<double>(f->as_uint64());
  return std::nullopt;
}

}  // namespace sb::testing
