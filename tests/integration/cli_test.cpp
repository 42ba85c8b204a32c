// The command line: serve, validate, version, and how configuration errors are reported.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class CliTest : public ::testing::Test {
 protected:
  // Writes `yaml` to a file and returns its path.
  std::string config(std::string_view yaml) { return dir_.write_file("switchboard.yaml", yaml); }

  // Expects a configuration error: exit 2 and stderr naming FILE:LINE and the key path.
  static void expect_config_error(const RunResult& r, const std::string& file, int line,
                                  const std::string& key) {
    ASSERT_TRUE(r.exit_code.has_value()) << "did not exit; stderr:\n" << r.err;
    EXPECT_EQ(*r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(file + ":" + std::to_string(line)), std::string::npos)
        << "expected " << file << ":" << line << " in stderr:\n"
        << r.err;
    EXPECT_NE(r.err.find(key), std::string::npos) << "expected " << key << " in stderr:\n" << r.err;
  }

  TempDir dir_;
};

// `switchboard version` prints a semantic version and exits 0.
TEST_F(CliTest, VersionPrintsVersion) {
  RunResult r = run_switchboard({"version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out + r.err, std::regex(R"([0-9]+\.[0-9]+\.[0-9]+)")))
      << r.out << r.err;
}

// `switchboard validate` exits 0 for a valid file.
TEST_F(CliTest, ValidateAcceptsValidFile) {
  std::string file = config(
      "server:\n"
      "  listen: 127.0.0.1:0\n"
      "services:\n"
      "  x:\n"
      "    instances: [\"http://127.0.0.1:1\"]\n");
  RunResult r = run_switchboard({"validate", file});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// An unknown key is an error naming the file, its line and the key path.
TEST_F(CliTest, ValidateRejectsUnknownKey) {
  std::string file = config(
      "server:\n"
      "  listen: 127.0.0.1:0\n"
      "limits:\n"
      "  max_bodyy_bytes: 10\n");
  expect_config_error(run_switchboard({"validate", file}), file, 4, "limits.max_bodyy_bytes");
}

// An instance URL that is not http(s) is an error naming its line and key path.
TEST_F(CliTest, ValidateRejectsBadUrl) {
  std::string file = config(
      "services:\n"
      "  x:\n"
      "    instances:\n"
      "      - \"ftp://127.0.0.1:21\"\n");
  expect_config_error(run_switchboard({"validate", file}), file, 4, "services.x.instances");
}

// A duration without a valid unit is an error naming its line and key path.
TEST_F(CliTest, ValidateRejectsBadDuration) {
  std::string file = config(
      "upstream:\n"
      "  timeouts:\n"
      "    response: 5 parsecs\n");
  expect_config_error(run_switchboard({"validate", file}), file, 3, "upstream.timeouts.response");
}

// A service defined twice is an error naming the second definition.
TEST_F(CliTest, ValidateRejectsDuplicateService) {
  std::string file = config(
      "services:\n"
      "  x:\n"
      "    instances: [\"http://127.0.0.1:1\"]\n"
      "  x:\n"
      "    instances: [\"http://127.0.0.1:2\"]\n");
  expect_config_error(run_switchboard({"validate", file}), file, 4, "services.x");
}

// `serve` with a bad config exits 2 with the same kind of message, without serving.
TEST_F(CliTest, ServeWithBadConfigExitsTwo) {
  std::string file = config(
      "server:\n"
      "  listen: 127.0.0.1:0\n"
      "limits:\n"
      "  max_bodyy_bytes: 10\n");
  expect_config_error(run_switchboard({"serve", "--config", file}), file, 4,
                      "limits.max_bodyy_bytes");
}

// A listen address already in use exits 2 naming server.listen and saying it is in use.
TEST_F(CliTest, ServeOnPortInUseExitsTwo) {
  PortBlocker busy;
  RunResult r = run_switchboard({"serve", "--listen", "127.0.0.1:" + std::to_string(busy.port()),
                                 "--service", "x=http://127.0.0.1:1"});
  ASSERT_TRUE(r.exit_code.has_value()) << "did not exit; stderr:\n" << r.err;
  EXPECT_EQ(*r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("server.listen"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
}

// --print-config prints the effective configuration with each value's origin and exits 0.
TEST_F(CliTest, PrintConfigShowsValuesWithOrigins) {
  RunResult r = run_switchboard(
      {"serve", "--listen", "127.0.0.1:0", "--service", "x=http://127.0.0.1:1", "--print-config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("http://127.0.0.1:1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("command line"), std::string::npos) << r.out;
}

// Services in the config file are routed without any --service flag.
TEST_F(CliTest, ServesServicesFromConfigFile) {
  Upstream up("from-file");
  ASSERT_TRUE(up.started()) << up.error();
  std::string file = config("services:\n  x:\n    instances: [\"" + up.url() + "\"]\n");
  Switchboard sb(std::vector<std::string>{"--config", file});
  ASSERT_TRUE(sb.started()) << sb.error();
  HttpClient c(sb.port());
  Response r = c.get("/svc/x/echo");
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_string(*doc, "name"), "from-file");
}

// --env-file supplies LLM_SERVICE_URL, which registers the llm-service service.
TEST_F(CliTest, EnvFileRegistersService) {
  Upstream up("llm");
  ASSERT_TRUE(up.started()) << up.error();
  std::string env_file = dir_.write_file("test.env", "LLM_SERVICE_URL=" + up.url() + "\n");
  Switchboard sb(std::vector<std::string>{"--env-file", env_file});
  ASSERT_TRUE(sb.started()) << sb.error();
  HttpClient c(sb.port());
  Response r = c.get("/svc/llm-service/echo");
  ASSERT_EQ(r.status, 200) << r.error << r.raw;
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc) << r.body;
  EXPECT_EQ(json_string(*doc, "name"), "llm");
}

// --service, --threads and --log-level together give a working gateway.
TEST_F(CliTest, ServeAcceptsThreadsAndLogLevel) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  Switchboard sb(std::vector<std::string>{"--service", "x=" + up.url(), "--threads", "1",
                                          "--log-level", "debug"});
  ASSERT_TRUE(sb.started()) << sb.error();
  HttpClient c(sb.port());
  Response r = c.get("/svc/x/echo");
  EXPECT_EQ(r.status, 200) << r.error << r.raw;
}

}  // namespace
}  // namespace sb::testing
