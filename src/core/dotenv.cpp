#include "core/dotenv.hpp"

#include <optional>

#include "core/text.hpp"

namespace sb::core {
namespace {

bool is_key_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool is_key_char(char c) { return is_key_start(c) || (c >= '0' && c <= '9'); }

// What may follow a closing quote: blanks, then nothing or a comment.
bool only_comment_left(std::string_view rest) {
  rest = trim(rest);
  return rest.empty() || rest.front() == '#';
}

// Parses the value part of one line (after '='). Sets `error` on failure.
std::optional<std::string> parse_value(std::string_view v, std::string* error) {
  v = trim(v);
  if (v.empty()) return std::string();
  if (v.front() == '\'') {
    const auto end = v.find('\'', 1);
    if (end == std::string_view::npos) {
      *error = "unterminated single quote";
      return std::nullopt;
    }
    if (!only_comment_left(v.substr(end + 1))) {
      *error = "unexpected text after the closing quote";
      return std::nullopt;
    }
    return std::string(v.substr(1, end - 1));
  }
  if (v.front() == '"') {
    std::string out;
    for (std::size_t i = 1; i < v.size(); ++i) {
      const char c = v[i];
      if (c == '"') {
        if (!only_comment_left(v.substr(i + 1))) {
          *error = "unexpected text after the closing quote";
          return std::nullopt;
        }
        return out;
      }
      if (c == '\\' && i + 1 < v.size()) {
        const char n = v[i + 1];
        if (n == 'n' || n == '"' || n == '\\') {
          out += n == 'n' ? '\n' : n;
          ++i;
          continue;
        }
      }
      out += c;
    }
    *error = "unterminated double quote";
    return std::nullopt;
  }
  // Unquoted: a '#' after a blank starts a comment ("a#b" keeps its '#').
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i] == '#' && is_blank(v[i - 1])) {
      v = v.substr(0, i);
      break;
    }
  }
  return std::string(trim(v));
}

}  // namespace

DotenvResult parse_dotenv(std::string_view text) {
  DotenvResult result;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.substr(0, 7) == "export " || line.substr(0, 7) == "export\t")
      line = trim(line.substr(7));

    std::size_t k = 0;
    if (!line.empty() && is_key_start(line[0]))
      while (k < line.size() && is_key_char(line[k])) ++k;
    const std::string_view key = line.substr(0, k);
    std::string_view rest = trim(line.substr(k));
    if (key.empty() || rest.empty() || rest.front() != '=') {
      result.errors.push_back(
          {line_no, "malformed line (expected KEY=value, KEY being letters, digits and '_')"});
      continue;
    }
    std::string error;
    auto value = parse_value(rest.substr(1), &error);
    if (!value) {
      result.errors.push_back({line_no, std::string(key) + ": " + error});
      continue;
    }
    result.entries.push_back({std::string(key), std::move(*value), line_no});
  }
  return result;
}

}  // namespace sb::core
