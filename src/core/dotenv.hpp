// dotenv files (".env.local", --env-file): KEY=value lines that feed the same variables
// as the process environment. Parsing only; config_load.cpp reads the files and decides
// which variables matter.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sb::core {

struct DotenvEntry {
  std::string key;
  std::string value;
  int line = 0;  // 1-based
};

struct DotenvError {
  int line = 0;         // 1-based
  std::string message;  // without the file and line
};

struct DotenvResult {
  std::vector<DotenvEntry> entries;  // in file order; a key may repeat (the later one wins)
  std::vector<DotenvError> errors;
};

/// Parses dotenv text. Accepted lines:
///   KEY=value            unquoted: surrounding blanks and a trailing " # comment" dropped
///   export KEY=value     the `export ` prefix is ignored
///   KEY='value'          single quotes: taken literally
///   KEY="a\nb \"q\" \\"  double quotes: \n, \", \\ are escapes (other backslashes are kept)
///   # comment, blank lines
/// KEY is [A-Za-z_][A-Za-z0-9_]*; blanks around '=' are allowed; CRLF line ends and a
/// leading UTF-8 BOM are accepted. A value spans one line. Every malformed line yields
/// one error (its line is skipped); parsing goes on so all errors are reported.
DotenvResult parse_dotenv(std::string_view text);

}  // namespace sb::core
