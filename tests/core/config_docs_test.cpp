// docs/configuration.md shows, for every part of the configuration, the table that the key
// declarations (src/core/config_schema.hpp) make: a key added without its docs, or docs
// left for a key that is gone, fail here. SB_UPDATE_DOCS=1 rewrites the tables in place.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "core/config_load.hpp"

#ifndef SB_SOURCE_DIR
#error "SB_SOURCE_DIR must name the source tree"
#endif

namespace sb::core {
namespace {

const std::string kDocs = std::string(SB_SOURCE_DIR) + "/docs/configuration.md";
constexpr std::string_view kOpen = "<!-- keys:";
constexpr std::string_view kClose = "<!-- /keys -->";

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Block {
  std::string name;
  std::size_t begin = 0;  // just after the opening marker's line
  std::size_t end = 0;    // at the closing marker
};

// The marked blocks of `text`, in order; a malformed marker is a test failure.
std::vector<Block> blocks(const std::string& text) {
  std::vector<Block> out;
  for (std::size_t pos = text.find(kOpen); pos != std::string::npos;
       pos = text.find(kOpen, pos + 1)) {
    const auto name_end = text.find(" -->\n", pos);
    if (name_end == std::string::npos) {
      ADD_FAILURE() << "unterminated marker at offset " << pos;
      break;
    }
    Block b;
    b.name = text.substr(pos + kOpen.size(), name_end - pos - kOpen.size());
    b.begin = name_end + 5;
    b.end = text.find(kClose, b.begin);
    if (b.end == std::string::npos) {
      ADD_FAILURE() << "no " << kClose << " after keys:" << b.name;
      break;
    }
    out.push_back(b);
  }
  return out;
}

// Every table the declarations make appears once, and there is no other.
TEST(ConfigDocsTest, EveryTableAppearsOnce) {
  const auto found = blocks(read(kDocs));
  std::multiset<std::string> names;
  for (const auto& b : found) names.insert(b.name);
  for (auto t : config_docs_tables())
    EXPECT_EQ(names.count(std::string(t)), 1u) << "keys:" << t << " in " << kDocs;
  for (const auto& b : found)
    EXPECT_TRUE(config_docs_table(b.name).has_value())
        << kDocs << " has a table keys:" << b.name << " that no declaration makes";
}

// Each table is exactly what the declarations say (keys, types, defaults, meanings).
TEST(ConfigDocsTest, TablesMatchTheDeclarations) {
  std::string text = read(kDocs);
  ASSERT_FALSE(text.empty()) << kDocs;
  std::string updated = text;
  const auto found = blocks(text);
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    const auto want = config_docs_table(it->name);
    if (!want) continue;
    const std::string have = text.substr(it->begin, it->end - it->begin);
    EXPECT_EQ(have, *want) << "docs/configuration.md, table keys:" << it->name
                           << " differs from the declarations in src/core/config_schema.hpp "
                              "(run the test with SB_UPDATE_DOCS=1 to rewrite it)";
    updated.replace(it->begin, it->end - it->begin, *want);
  }
  if (updated != text && std::getenv("SB_UPDATE_DOCS") != nullptr) {
    std::ofstream(kDocs) << updated;
  }
}

// The check can fail: a row removed from a table (an undocumented key) or added to one (a
// key that does not exist) no longer matches.
TEST(ConfigDocsTest, MissingOrExtraRowsDiffer) {
  const std::string table = *config_docs_table("drain");
  const auto row = table.find("| `timeout` |");
  ASSERT_NE(row, std::string::npos) << table;
  std::string missing = table;
  missing.erase(row, table.find('\n', row) + 1 - row);
  EXPECT_NE(missing, table);
  EXPECT_NE(table + "| `gone` | duration | `0s` | a key nobody declares |\n", table);
  EXPECT_FALSE(config_docs_table("nonsense").has_value());
}

// The environment table lists each variable the loader honours.
TEST(ConfigDocsTest, EnvironmentTableNamesTheVariables) {
  const std::string env = *config_docs_table("environment");
  for (const char* v :
       {"LLM_SERVICE_URL", "TELEGRAM_BOT_URL", "FRONTEND_URL", "HEALTH_CHECK_INTERVAL",
        "METRICS_COLLECTION_INTERVAL", "OTEL_SAMPLE_RATE", "OTEL_JAEGER_EXPORTER",
        "OTEL_PROMETHEUS_EXPORTER", "JAEGER_ENDPOINT", "PROMETHEUS_PORT"})
    EXPECT_THAT(env, ::testing::HasSubstr(std::string("| `") + v + "` |"));
}

}  // namespace
}  // namespace sb::core
