// The access log on stdout: one line per request, as key=value text or as JSON.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

// The key=value fields of a text access line (values may be "quoted").
std::map<std::string, std::string> fields(const std::string& line) {
  static const std::regex kField(R"re(([a-z_]+)=("[^"]*"|\S*))re");
  std::map<std::string, std::string> out;
  for (std::sregex_iterator it(line.begin(), line.end(), kField), end; it != end; ++it) {
    std::string v = (*it)[2].str();
    if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
    out.emplace((*it)[1].str(), v);
  }
  return out;
}

class AccessLogTest : public GatewayTest {
 protected:
  // The first stdout line that is an access line for `correlation_id`, waiting for it.
  std::optional<std::string> wait_access_line(const std::string& correlation_id) {
    auto m = sb_->process().wait_for_line(Stream::kStdout, std::regex("access.*" + correlation_id),
                                          default_timeout());
    if (!m) return std::nullopt;
    return sb_->process().lines(Stream::kStdout)[m->index];
  }
};

// A proxied request writes one text line with method, path, status, service and id.
TEST_F(AccessLogTest, TextLineHasRequestFields) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  ASSERT_EQ(c.get("/svc/x/echo", {{"X-Correlation-ID", "log-text-1"}}).status, 200);
  auto line = wait_access_line("log-text-1");
  ASSERT_TRUE(line) << "no access line on stdout";
  EXPECT_TRUE(std::regex_search(*line, std::regex(R"((^|\s)access\s+method=)"))) << *line;
  auto f = fields(*line);
  EXPECT_EQ(f["method"], "GET") << *line;
  EXPECT_EQ(f["path"], "/svc/x/echo") << *line;
  EXPECT_EQ(f["status"], "200") << *line;
  EXPECT_EQ(f["service"], "x") << *line;
  EXPECT_EQ(f["correlation_id"], "log-text-1") << *line;
}

// Each request gets exactly one access line.
TEST_F(AccessLogTest, OneLinePerRequest) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  HttpClient c = client();
  for (const char* id : {"once-1", "once-2", "once-3"}) {
    ASSERT_EQ(c.get("/svc/x/echo", {{"X-Correlation-ID", id}}).status, 200);
  }
  ASSERT_EQ(c.get("/svc/nope/echo", {{"X-Correlation-ID", "once-4"}}).status, 404);
  ASSERT_TRUE(wait_access_line("once-4")) << "no access line for the last request";
  for (const char* id : {"once-1", "once-2", "once-3", "once-4"}) {
    int n = 0;
    for (const auto& l : sb_->process().lines(Stream::kStdout)) {
      n += l.find("access") != std::string::npos &&
           l.find(std::string("=") + id) != std::string::npos;
    }
    EXPECT_EQ(n, 1) << id;
  }
}

// With --log-format json each access line is a JSON object with the documented keys.
TEST_F(AccessLogTest, JsonLineHasDocumentedKeys) {
  ASSERT_NO_FATAL_FAILURE(start_gateway({}, {"--log-format", "json"}));
  HttpClient c = client();
  ASSERT_EQ(c.get("/svc/x/echo", {{"X-Correlation-ID", "log-json-1"}}).status, 200);
  auto m =
      sb_->process().wait_for_line(Stream::kStdout, std::regex("log-json-1"), default_timeout());
  ASSERT_TRUE(m) << "no access line on stdout";
  const std::string line = sb_->process().lines(Stream::kStdout)[m->index];
  auto doc = parse_json(line);
  ASSERT_TRUE(doc && doc->is_object()) << line;
  for (const char* key : {"method", "path", "status", "duration_ms", "service", "instance",
                          "bytes_sent", "correlation_id"}) {
    EXPECT_TRUE(doc->as_object().contains(key)) << key << " missing: " << line;
  }
  EXPECT_EQ(json_string(*doc, "method"), "GET") << line;
  EXPECT_EQ(json_string(*doc, "path"), "/svc/x/echo") << line;
  EXPECT_EQ(json_int(*doc, "status"), 200) << line;
  EXPECT_EQ(json_string(*doc, "service"), "x") << line;
  EXPECT_EQ(json_string(*doc, "correlation_id"), "log-json-1") << line;
  EXPECT_GT(json_int(*doc, "bytes_sent").value_or(0), 0) << line;
}

}  // namespace
}  // namespace sb::testing
