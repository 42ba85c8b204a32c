// A GoogleTest fixture for integration tests: one upstream.py ("up") and one switchboard
// routing service "x" to it, both on 127.0.0.1 ephemeral ports, plus checks shared by
// several test files.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "testing/http_client.hpp"
#include "testing/json.hpp"
#include "testing/process.hpp"
#include "testing/switchboard.hpp"

namespace sb::testing {

class GatewayTest : public ::testing::Test {
 protected:
  /// Starts the upstream and `switchboard serve --listen 127.0.0.1:0 --service x=<up>`,
  /// with `--config <file>` when `yaml` is not empty, then `args`. Fatal on failure: call
  /// through ASSERT_NO_FATAL_FAILURE.
  void start_gateway(std::string_view yaml = {}, std::vector<std::string> args = {},
                     SwitchboardOptions options = {}) {
    up_ = std::make_unique<Upstream>("up");
    ASSERT_TRUE(up_->started()) << up_->error();
    options.args = {"--service", "x=" + up_->url()};
    if (!yaml.empty()) {
      options.args.push_back("--config");
      options.args.push_back(write_config(yaml));
    }
    options.args.insert(options.args.end(), args.begin(), args.end());
    sb_ = std::make_unique<Switchboard>(std::move(options));
    ASSERT_TRUE(sb_->started()) << sb_->error();
  }

  /// Writes a YAML config into the test's temporary directory; returns its path.
  std::string write_config(std::string_view yaml, const std::string& name = "switchboard.yaml") {
    return dir_.write_file(name, yaml);
  }

  /// A new client connection to the gateway.
  HttpClient client() const { return HttpClient(sb_->port()); }

  /// The upstream's counters read through the gateway on a new connection (so the read
  /// itself adds no upstream connection beyond what the gateway's pool does).
  std::optional<UpstreamStats> stats_via_gateway() const {
    HttpClient c = client();
    Response r = c.get("/svc/x/stats");
    if (!r.ok() || r.status != 200) return std::nullopt;
    auto v = parse_json(r.body);
    if (!v) return std::nullopt;
    UpstreamStats s;
    s.connections_accepted = static_cast<long>(json_int(*v, "connections_accepted").value_or(-1));
    s.requests = static_cast<long>(json_int(*v, "requests").value_or(-1));
    return s;
  }

  TempDir dir_;  // destroyed last: the processes below may still use files in it
  std::unique_ptr<Upstream> up_;
  std::unique_ptr<Switchboard> sb_;
};

/// A generated correlation id: a version-4 UUID in lower case.
inline bool is_generated_uuid(const std::string& s) {
  static const std::regex kUuid(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  return std::regex_match(s, kUuid);
}

/// Checks an RFC 9457 problem response: the status, the media type and a JSON body with
/// type, title, status, detail and the same correlation_id as the X-Correlation-ID header.
inline void expect_problem(const Response& r, int status) {
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, status) << r.raw;
  EXPECT_EQ(r.header("Content-Type").rfind("application/problem+json", 0), 0u)
      << "Content-Type: " << r.header("Content-Type");
  auto doc = parse_json(r.body);
  ASSERT_TRUE(doc.has_value()) << "not JSON: " << r.body;
  ASSERT_TRUE(doc->is_object()) << r.body;
  EXPECT_TRUE(json_string(*doc, "type").has_value()) << r.body;
  EXPECT_TRUE(json_string(*doc, "title").has_value()) << r.body;
  EXPECT_EQ(json_int(*doc, "status"), status) << r.body;
  EXPECT_TRUE(json_string(*doc, "detail").has_value()) << r.body;
  EXPECT_FALSE(r.header("X-Correlation-ID").empty()) << r.raw;
  EXPECT_EQ(json_string(*doc, "correlation_id"), r.header("X-Correlation-ID")) << r.body;
}

}  // namespace sb::testing
