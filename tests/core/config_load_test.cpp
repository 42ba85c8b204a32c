#include "core/config_load.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/dotenv.hpp"

namespace sb::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.message);
  return out;
}

// The 1-based line of the first line of `path` that starts with `prefix`, or 0.
int line_starting_with(const std::string& path, std::string_view prefix) {
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.rfind(prefix, 0) == 0) return n;
  return 0;
}

const std::string kExample = std::string(SB_SOURCE_DIR) + "/examples/switchboard.yaml";

std::string joined(const LoadResult& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.message + "\n";
  return out;
}

// Every test gets its own temporary directory, a config file "x.yaml" in it, an
// explicit (empty) environment and a .env.local path inside the directory.
class ConfigLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sb_config_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/x.yaml";
    options_.env_local_file = dir_ + "/.env.local";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  LoadResult load_yaml(std::string_view yaml) {
    options_.config_file = write("x.yaml", yaml);
    return load_config(options_);
  }

  // Loads `yaml` and returns the config, failing the test on any error.
  Config load_ok(std::string_view yaml) {
    auto r = load_yaml(yaml);
    EXPECT_TRUE(r.ok()) << joined(r);
    return r.config.value_or(Config{});
  }

  // "PATH:LINE: " for the config file.
  std::string at(int line) const { return file_ + ":" + std::to_string(line) + ": "; }
  std::string from(int line) const { return "file " + file_ + ":" + std::to_string(line); }

  std::string dir_;
  std::string file_;
  LoadOptions options_;
};

constexpr const char* kBackend =
    "services:\n"
    "  backend:\n"
    "    instances: [\"http://127.0.0.1:3000\"]\n";

// ---------------------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------------------

// Each unit, and zero.
TEST(ParseDurationTest, AcceptsUnits) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("0s"), 0ms);
  EXPECT_EQ(parse_duration("0ms"), 0ms);
}

// Bare numbers, fractions, signs, blanks, unknown or miscased units are errors.
TEST(ParseDurationTest, RejectsMalformed) {
  for (const char* bad : {"", "10", "10 s", " 10s", "10s ", "1.5s", "-1s", "+1s", "s", "ms",
                          "10sec", "1d", "10S", "10MS", "1h30m", "0x10s"})
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
}

// Bare numbers are milliseconds only when asked (environment variables); units still work.
TEST(ParseDurationTest, BareNumbersAreMillisecondsWhenAllowed) {
  EXPECT_EQ(parse_duration("1500", true), 1500ms);
  EXPECT_EQ(parse_duration("0", true), 0ms);
  EXPECT_EQ(parse_duration("30s", true), 30s);
  EXPECT_EQ(parse_duration("abc", true), std::nullopt);
  EXPECT_EQ(parse_duration("-5", true), std::nullopt);
}

// The largest representable value parses; one more overflows.
TEST(ParseDurationTest, OverflowEdge) {
  EXPECT_EQ(parse_duration("9223372036854775807ms"), Millis(9223372036854775807));
  EXPECT_EQ(parse_duration("9223372036854775808ms"), std::nullopt);
  EXPECT_EQ(parse_duration("2562047788015216h"), std::nullopt);  // > int64 ms
  EXPECT_EQ(parse_duration("99999999999999999999s"), std::nullopt);
}

// Plain bytes and binary units.
TEST(ParseSizeTest, AcceptsBytesAndBinaryUnits) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("65536"), 65536u);
  EXPECT_EQ(parse_size("512KiB"), 512u * 1024);
  EXPECT_EQ(parse_size("64MiB"), 64u << 20);
  EXPECT_EQ(parse_size("1GiB"), 1ull << 30);
  EXPECT_EQ(parse_size("1TiB"), 1ull << 40);
}

// Decimal units, fractions, blanks and lowercase units are errors.
TEST(ParseSizeTest, RejectsMalformed) {
  for (const char* bad : {"", "64MB", "64M", "64mib", "64 MiB", "1.5MiB", "-1", "KiB", "1e6"})
    EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
}

// 2^64 - 2^40 fits; 2^64 does not.
TEST(ParseSizeTest, OverflowEdge) {
  EXPECT_EQ(parse_size("16777215TiB"), 16777215ull << 40);
  EXPECT_EQ(parse_size("16777216TiB"), std::nullopt);
  EXPECT_EQ(parse_size("18446744073709551615"), std::nullopt);  // 20 digits: refused
}

// IPv4, names, bracketed IPv6, port 0 and 65535.
TEST(ParseHostPortTest, AcceptsHostsAndPorts) {
  auto a = parse_host_port("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  auto b = parse_host_port("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  EXPECT_EQ(b->str(), "[::1]:0");
  EXPECT_TRUE(parse_host_port("localhost:65535"));
  EXPECT_TRUE(parse_host_port("0.0.0.0:1"));
  EXPECT_TRUE(parse_host_port("switchboard_1.internal:80"));
}

// Missing parts, unbracketed IPv6, bad ports and bad hosts.
TEST(ParseHostPortTest, RejectsMalformed) {
  for (const char* bad :
       {"", "127.0.0.1", ":8080", "localhost:", "::1:80", "[::1]", "[::1]80", "[::1:80", "[zz]:80",
        "h:65536", "h:-1", "h:8o", "bad host:80", "1.2.3.4.5:80", "-h:80", "h:80:"})
    EXPECT_EQ(parse_host_port(bad), std::nullopt) << bad;
}

// Scheme, host, port defaults, IPv6 and the base path without trailing '/'.
TEST(ParseUpstreamUrlTest, ParsesParts) {
  std::string why;
  auto a = parse_upstream_url("http://127.0.0.1:3000", &why);
  ASSERT_TRUE(a) << why;
  EXPECT_EQ(a->text, "http://127.0.0.1:3000");
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 3000);
  EXPECT_EQ(a->base_path, "");
  EXPECT_EQ(a->authority(), "127.0.0.1:3000");

  auto b = parse_upstream_url("https://[::1]:8443/v1/", &why);
  ASSERT_TRUE(b) << why;
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 8443);
  EXPECT_EQ(b->base_path, "/v1");
  EXPECT_EQ(b->authority(), "[::1]:8443");

  auto c = parse_upstream_url("https://api.example.com", &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->port, 443);
  EXPECT_EQ(c->authority(), "api.example.com");

  auto d = parse_upstream_url("HTTP://llm:80/a/b//", &why);
  ASSERT_TRUE(d) << why;
  EXPECT_EQ(d->port, 80);
  EXPECT_EQ(d->base_path, "/a/b");
  EXPECT_EQ(d->authority(), "llm");

  auto e = parse_upstream_url("http://h:1/", &why);
  ASSERT_TRUE(e) << why;
  EXPECT_EQ(e->port, 1);
  EXPECT_EQ(e->base_path, "");
  EXPECT_TRUE(parse_upstream_url("http://h:65535", &why));
}

// Each rule, with the reason people read.
TEST(ParseUpstreamUrlTest, RejectsWithReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"htp://x", "scheme must be http or https"},
      {"ftp://x", "scheme must be http or https"},
      {"http://", "host required"},
      {"http:/h", "host required"},
      {"http://user@h", "user info (user@) is not allowed"},
      {"http://u:p@h", "user info (user@) is not allowed"},
      {"http://h?q=1", "a query (?...) is not allowed"},
      {"http://h#f", "a fragment (#...) is not allowed"},
      {"http://h:0", "port must be between 1 and 65535"},
      {"http://h:65536", "port must be between 1 and 65535"},
      {"http://h:", "port must be between 1 and 65535"},
      {"http://1.2.3.4.5", "bad host"},
      {"http://h!x", "bad host"},
      {"http://[v1.x]", "bad host"},
      {"127.0.0.1:3000", "not a URL (expected e.g. http://127.0.0.1:3000)"},
      {"localhost:3000", "scheme must be http or https"},
      {"http://h /", "not a URL (expected e.g. http://127.0.0.1:3000)"},
      {"", "not a URL (expected e.g. http://127.0.0.1:3000)"},
  };
  for (const auto& [text, reason] : cases) {
    std::string why;
    EXPECT_EQ(parse_upstream_url(text, &why), std::nullopt) << text;
    EXPECT_EQ(why, reason) << text;
  }
}

// ---------------------------------------------------------------------------------------
// dotenv
// ---------------------------------------------------------------------------------------

// Every accepted line form.
TEST(DotenvTest, ParsesAllForms) {
  const auto r = parse_dotenv(
      "\xEF\xBB\xBF# comment\n"
      "\n"
      "A=plain\n"
      "export B=exported\n"
      "C = spaced  # trailing comment\n"
      "D='single # not a comment \\n'\n"
      "E=\"line\\nbreak \\\"q\\\" back\\\\slash \\t\"  # comment\n"
      "F=\n"
      "G=a#b\n"
      "H=\"\"\r\n"
      "   I=indented\n"
      "J=x=y\n");
  EXPECT_TRUE(r.errors.empty());
  ASSERT_EQ(r.entries.size(), 10u);
  const std::pair<const char*, const char*> want[] = {
      {"A", "plain"},
      {"B", "exported"},
      {"C", "spaced"},
      {"D", "single # not a comment \\n"},
      {"E", "line\nbreak \"q\" back\\slash \\t"},
      {"F", ""},
      {"G", "a#b"},
      {"H", ""},
      {"I", "indented"},
      {"J", "x=y"},
  };
  for (std::size_t i = 0; i < r.entries.size(); ++i) {
    EXPECT_EQ(r.entries[i].key, want[i].first);
    EXPECT_EQ(r.entries[i].value, want[i].second) << want[i].first;
  }
  EXPECT_EQ(r.entries[0].line, 3);
  EXPECT_EQ(r.entries[9].line, 12);
}

// Each malformed line is reported with its line number; good lines are still read.
TEST(DotenvTest, ReportsMalformedLines) {
  const auto r = parse_dotenv(
      "GOOD=1\n"
      "NOEQUALS\n"
      "=value\n"
      "1KEY=v\n"
      "K-EY=v\n"
      "Q=\"unterminated\n"
      "S='unterminated\n"
      "T='x' junk\n"
      "U=\"x\"junk\n"
      "LAST=2\n");
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries[1].key, "LAST");
  ASSERT_EQ(r.errors.size(), 8u);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_THAT(r.errors[0].message, HasSubstr("malformed line (expected KEY=value"));
  EXPECT_EQ(r.errors[3].line, 5);
  EXPECT_EQ(r.errors[4].line, 6);
  EXPECT_EQ(r.errors[4].message, "Q: unterminated double quote");
  EXPECT_EQ(r.errors[5].message, "S: unterminated single quote");
  EXPECT_EQ(r.errors[6].message, "T: unexpected text after the closing quote");
  EXPECT_EQ(r.errors[7].message, "U: unexpected text after the closing quote");
}

// ---------------------------------------------------------------------------------------
// Defaults, the file, and the example
// ---------------------------------------------------------------------------------------

// With no file, every key has its default and the origin "default".
TEST_F(ConfigLoadTest, DefaultsWithoutFile) {
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.server.listen.str(), "127.0.0.1:8080");
  EXPECT_EQ(c.limits.header_timeout, 10s);
  EXPECT_EQ(c.health.check_interval, 30s);
  EXPECT_TRUE(c.services.empty());
  for (const char* key :
       {"server.listen", "server.admin_listen", "server.threads", "limits.max_body_bytes",
        "limits.header_timeout", "upstream.timeouts.connect", "upstream.tls.verify", "drain.delay",
        "logging.level", "health.check_interval", "telemetry.sample_rate",
        "telemetry.prometheus_port"}) {
    ASSERT_TRUE(c.origins.count(key)) << key;
    EXPECT_EQ(c.origins.at(key), "default") << key;
  }
}

// An empty file, or one with only comments, is all defaults.
TEST_F(ConfigLoadTest, EmptyFileIsDefaults) {
  EXPECT_EQ(load_ok("").server.listen.port, 8080);
  EXPECT_EQ(load_ok("# nothing here\n").limits.max_headers, 100u);
}

// The shipped example loads without errors and describes the four services.
TEST_F(ConfigLoadTest, ExampleLoads) {
  options_.config_file = kExample;
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.server.listen.str(), "127.0.0.1:8080");
  ASSERT_EQ(c.services.size(), 4u);
  const auto* backend = c.find_service("backend");
  ASSERT_NE(backend, nullptr);
  EXPECT_TRUE(backend->critical);
  EXPECT_EQ(backend->instances.at(0).url.authority(), "127.0.0.1:3000");
  EXPECT_EQ(c.find_service("telegram-bot")->instances.at(0).url.port, 3001);
  EXPECT_EQ(c.find_service("frontend")->instances.at(0).url.port, 3002);
  const auto* llm = c.find_service("llm-service");
  EXPECT_EQ(llm->instances.at(0).url.port, 3003);
  EXPECT_EQ(llm->timeouts.response, 2min);
  EXPECT_EQ(llm->timeouts.connect, 2s);
  EXPECT_EQ(llm->pool.max_idle, 16u);
  EXPECT_EQ(llm->pool.max_connections, 1024u);
  EXPECT_EQ(llm->policy.timeout, 3min);
  EXPECT_EQ(llm->breaker.consecutive_failures, 5u);
  ASSERT_EQ(c.routes.size(), 5u);
  EXPECT_EQ(c.routes[1].prefix, "/llm/models");
  ASSERT_TRUE(c.routes[1].policy.has_value());
  EXPECT_EQ(c.routes[1].policy->timeout, 5s);
  EXPECT_EQ(c.routes[1].policy->fallback.status, 200);
  EXPECT_EQ(c.routes[1].policy->retry.max_retries, 2u);  // the service's
  EXPECT_EQ(c.routes[2].prefix, "/llm");
  EXPECT_EQ(c.routes[2].service, "llm-service");
  EXPECT_EQ(c.routes[2].rewrite, "/");
  const int listen_line = line_starting_with(kExample, "  listen:");
  ASSERT_GT(listen_line, 0);
  EXPECT_EQ(c.origins.at("server.listen"), "file " + kExample + ":" + std::to_string(listen_line));
}

// The example says its global sections show the defaults: keep it (and the docs) honest
// when a default changes.
TEST_F(ConfigLoadTest, ExampleShowsTheDefaults) {
  options_.config_file = kExample;
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  const Config defaults;
  EXPECT_EQ(r.config->server, defaults.server);
  EXPECT_EQ(r.config->limits, defaults.limits);
  EXPECT_EQ(r.config->upstream, defaults.upstream);
  EXPECT_EQ(r.config->drain, defaults.drain);
  EXPECT_EQ(r.config->logging, defaults.logging);
  EXPECT_EQ(r.config->health, defaults.health);
  EXPECT_EQ(r.config->telemetry, defaults.telemetry);
}

// Values from the file, with "file PATH:LINE" origins (the line of the key).
TEST_F(ConfigLoadTest, FileValuesAndOrigins) {
  const Config c = load_ok(
      "server:\n"
      "  listen: \"[::1]:9000\"\n"
      "  admin_listen: 127.0.0.1:9901\n"
      "  threads: 4\n"
      "limits:\n"
      "  max_body_bytes: 64MiB\n"
      "  max_header_bytes: 65536\n"
      "  header_timeout: 250ms\n"
      "drain: {delay: 5s, timeout: 1m}\n"
      "logging: {level: debug, format: json, access_log: false}\n"
      "health:\n"
      "  check_interval: 1h\n"
      "  ready_requires_critical: true\n"
      "telemetry:\n"
      "  sample_rate: 0.25\n"
      "  jaeger_exporter: true\n"
      "  jaeger_endpoint: http://127.0.0.1:4318/v1/traces\n"
      "  prometheus_port: 9464\n");
  EXPECT_EQ(c.server.listen.host, "::1");
  EXPECT_EQ(c.server.listen.port, 9000);
  ASSERT_TRUE(c.server.admin_listen);
  EXPECT_EQ(c.server.admin_listen->port, 9901);
  EXPECT_EQ(c.server.threads, 4u);
  EXPECT_EQ(c.limits.max_body_bytes, 64u << 20);
  EXPECT_EQ(c.limits.max_header_bytes, 65536u);
  EXPECT_EQ(c.limits.header_timeout, 250ms);
  EXPECT_EQ(c.drain.delay, 5s);
  EXPECT_EQ(c.drain.timeout, 1min);
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_FALSE(c.logging.access_log);
  EXPECT_EQ(c.health.check_interval, 1h);
  EXPECT_TRUE(c.health.ready_requires_critical);
  EXPECT_DOUBLE_EQ(c.telemetry.sample_rate, 0.25);
  EXPECT_TRUE(c.telemetry.jaeger_exporter);
  EXPECT_EQ(c.telemetry.jaeger_endpoint, "http://127.0.0.1:4318/v1/traces");
  EXPECT_EQ(c.telemetry.prometheus_port, 9464);

  EXPECT_EQ(c.origins.at("server.listen"), from(2));
  EXPECT_EQ(c.origins.at("limits.header_timeout"), from(8));
  EXPECT_EQ(c.origins.at("drain.timeout"), from(9));
  EXPECT_EQ(c.origins.at("telemetry.sample_rate"), from(15));
  EXPECT_EQ(c.origins.at("limits.body_timeout"), "default");
}

// "admin_listen: null" keeps the admin listener off (and is recorded as set by the file).
TEST_F(ConfigLoadTest, AdminListenNull) {
  const Config c = load_ok("server:\n  admin_listen: null\n");
  EXPECT_FALSE(c.server.admin_listen);
  EXPECT_EQ(c.origins.at("server.admin_listen"), from(2));
}

// Instances as strings and as maps; zone, weight and base path.
TEST_F(ConfigLoadTest, InstancesStringAndMap) {
  const Config c = load_ok(
      "services:\n"
      "  llm-service:\n"
      "    instances:\n"
      "      - http://127.0.0.1:3003\n"
      "      - {url: \"https://10.0.0.2:8443/v1/\", zone: a, weight: 2}\n"
      "      - url: http://[::1]:3004\n"
      "        weight: 1000\n");
  const auto& inst = c.services.at(0).instances;
  ASSERT_EQ(inst.size(), 3u);
  EXPECT_EQ(inst[0].url.port, 3003);
  EXPECT_EQ(inst[0].zone, "");
  EXPECT_EQ(inst[0].weight, 1u);
  EXPECT_TRUE(inst[1].url.tls);
  EXPECT_EQ(inst[1].url.base_path, "/v1");
  EXPECT_EQ(inst[1].zone, "a");
  EXPECT_EQ(inst[1].weight, 2u);
  EXPECT_EQ(inst[2].url.host, "::1");
  EXPECT_EQ(inst[2].weight, 1000u);
  EXPECT_EQ(c.services[0].source, Source::kFile);
  EXPECT_EQ(c.origins.at("services.llm-service.instances"), from(3));
}

// A service takes upstream.* and then its own keys, one field at a time; the origins say
// which is which.
TEST_F(ConfigLoadTest, ServiceInheritsUpstreamFieldByField) {
  const Config c = load_ok(
      "services:\n"
      "  backend:\n"
      "    instances: [\"http://127.0.0.1:3000\"]\n"
      "    timeouts: {response: 5s}\n"
      "    pool:\n"
      "      max_idle: 4\n"
      "    tls: {server_name: backend.internal}\n"
      "upstream:\n"
      "  timeouts: {connect: 1s, response: 9s}\n"
      "  pool: {max_connections: 64, max_idle: 8}\n"
      "  tls: {verify: false}\n");
  const auto& s = c.services.at(0);
  EXPECT_EQ(s.timeouts.connect, 1s);
  EXPECT_EQ(s.timeouts.response, 5s);
  EXPECT_EQ(s.pool.max_connections, 64u);
  EXPECT_EQ(s.pool.max_idle, 4u);
  EXPECT_EQ(s.pool.idle_timeout, 60s);
  EXPECT_FALSE(s.tls.verify);
  EXPECT_EQ(s.tls.server_name, "backend.internal");
  EXPECT_EQ(c.upstream.timeouts.response, 9s);
  EXPECT_EQ(c.origins.at("services.backend.timeouts.response"), from(4));
  EXPECT_EQ(c.origins.at("services.backend.timeouts.connect"),
            "inherited from upstream.timeouts.connect (" + from(9) + ")");
  EXPECT_EQ(c.origins.at("services.backend.pool.idle_timeout"),
            "inherited from upstream.pool.idle_timeout (default)");
  EXPECT_EQ(c.origins.at("services.backend.critical"), "default");
}

// Sizes at the edges of their ranges.
TEST_F(ConfigLoadTest, SizeEdges) {
  const Config c = load_ok(
      "limits:\n"
      "  max_request_line: 64\n"
      "  max_header_bytes: 1KiB\n"
      "  max_body_bytes: 64GiB\n"
      "  max_response_header_bytes: 1MiB\n");
  EXPECT_EQ(c.limits.max_request_line, 64u);
  EXPECT_EQ(c.limits.max_header_bytes, 1024u);
  EXPECT_EQ(c.limits.max_body_bytes, 64ull << 30);
  EXPECT_EQ(c.limits.max_response_header_bytes, 1u << 20);
  EXPECT_EQ(load_ok("limits: {max_body_bytes: 0}\n").limits.max_body_bytes, 0u);
  EXPECT_EQ(load_ok("limits: {max_body_bytes: 512KiB}\n").limits.max_body_bytes, 512u * 1024);

  EXPECT_THAT(messages(load_yaml("limits:\n  max_body_bytes: 65GiB\n")),
              ElementsAre(at(2) + "limits.max_body_bytes: out of range: must be between 0 and "
                                  "64GiB, got 65GiB"));
  EXPECT_THAT(messages(load_yaml("limits:\n  max_header_bytes: 1023\n")),
              ElementsAre(at(2) + "limits.max_header_bytes: out of range: must be between 1KiB "
                                  "and 1MiB, got 1023"));
  EXPECT_THAT(messages(load_yaml("limits:\n  max_body_bytes: 64MB\n")),
              ElementsAre(at(2) + "limits.max_body_bytes: bad size \"64MB\" (use e.g. 65536, "
                                  "512KiB, 64MiB, 1GiB)"));
}

// Durations at the edges of their ranges: 1ms and 24h pass, 0s and 24h+1ms do not.
TEST_F(ConfigLoadTest, DurationEdges) {
  EXPECT_EQ(load_ok("limits: {header_timeout: 1ms}\n").limits.header_timeout, 1ms);
  EXPECT_EQ(load_ok("limits: {header_timeout: 24h}\n").limits.header_timeout, 24h);
  EXPECT_EQ(load_ok("drain: {delay: 0s, timeout: 0ms}\n").drain.timeout, 0ms);
  EXPECT_THAT(messages(load_yaml("limits:\n  header_timeout: 0s\n")),
              ElementsAre(at(2) + "limits.header_timeout: out of range: must be between 1ms "
                                  "and 24h, got 0s"));
  EXPECT_THAT(messages(load_yaml("limits:\n  body_timeout: 86400001ms\n")),
              ElementsAre(at(2) + "limits.body_timeout: out of range: must be between 1ms and "
                                  "24h, got 86400001ms"));
}

// ---------------------------------------------------------------------------------------
// File errors: each names file:line, the key path and what is wrong
// ---------------------------------------------------------------------------------------

// A bare number is not a duration.
TEST_F(ConfigLoadTest, BareNumberDuration) {
  EXPECT_THAT(messages(load_yaml("limits:\n"
                                 "  max_headers: 50\n"
                                 "  header_timeout: 10\n")),
              ElementsAre(at(3) + "limits.header_timeout: bad duration \"10\" (use e.g. 250ms, "
                                  "10s, 2m)"));
}

// A misspelt key is named, with the closest known key.
TEST_F(ConfigLoadTest, UnknownKeySuggestsClosest) {
  EXPECT_THAT(messages(load_yaml("server:\n"
                                 "  threads: 2\n"
                                 "  lisen: 127.0.0.1:8080\n")),
              ElementsAre(at(3) + "server.lisen: unknown key (did you mean \"listen\"?)"));
  EXPECT_THAT(messages(load_yaml("service:\n  x: {}\n")),
              ElementsAre(at(1) + "service: unknown key (did you mean \"services\"?)"));
}

// With nothing close, the known keys are listed.
TEST_F(ConfigLoadTest, UnknownKeyListsKnownKeys) {
  EXPECT_THAT(messages(load_yaml("drain:\n  wibble: 1s\n")),
              ElementsAre(at(2) + "drain.wibble: unknown key (known keys: delay, timeout)"));
}

// The same service twice names both lines.
// Health check keys: parsed, and each bad value named with its key path.
TEST_F(ConfigLoadTest, HealthCheckKeys) {
  const Config c = load_ok(
      "health: {rise: 1, fall: 5, unhealthy_interval: 1s}\n"
      "services:\n"
      "  a:\n"
      "    instances: [\"http://h:1\"]\n"
      "    health_check: {type: http, path: /hc, method: HEAD, expect_status: \"200-299,418\",\n"
      "                   expect_body: ok, headers: {X-A: \"1\"}, timeout: 250ms}\n");
  const auto& hc = c.services.at(0).health_check;
  EXPECT_EQ(hc.path, "/hc");
  EXPECT_EQ(hc.method, "HEAD");
  EXPECT_EQ(hc.expect_status, "200-299,418");
  EXPECT_EQ(hc.expect_body, "ok");
  EXPECT_EQ(hc.headers.at("X-A"), "1");
  EXPECT_EQ(hc.timeout, Millis(250));
  EXPECT_TRUE(hc.enabled());
  EXPECT_EQ(c.health.rise, 1);
  EXPECT_EQ(c.health.fall, 5);
  EXPECT_TRUE(status_matches(hc.expect_status, 418));
  EXPECT_TRUE(status_matches(hc.expect_status, 200));
  EXPECT_FALSE(status_matches(hc.expect_status, 300));
  EXPECT_THAT(
      messages(load_yaml("services:\n"
                         "  a:\n"
                         "    instances: [\"http://h:1\"]\n"
                         "    health_check: {type: udp, method: get, expect_status: \"2xx\",\n"
                         "                   path: nope, headers: [1]}\n")),
      ::testing::UnorderedElementsAre(
          at(4) + "services.a.health_check.type: bad type \"udp\": http or tcp",
          at(4) + "services.a.health_check.method: bad method \"get\": upper-case letters",
          at(4) + "services.a.health_check.expect_status: bad status list \"2xx\" (use e.g. "
                  "\"200-399,404\")",
          at(5) + "services.a.health_check.path: bad path \"nope\": must start with '/' "
                  "and hold no spaces",
          at(5) + "services.a.health_check.headers: expected a map of header names to "
                  "values, got a list"));
  EXPECT_FALSE(valid_status_list("600"));
  EXPECT_FALSE(valid_status_list("399-200"));
  EXPECT_TRUE(valid_status_list("100-599"));
}

// Webhooks: every key, the defaults of the ones left out, and origins by key path.
TEST_F(ConfigLoadTest, WebhookKeys) {
  const Config c = load_ok(
      "webhooks:\n"
      "  - url: https://hooks.example/services/T0/B0/x/\n"
      "    events: [health_changed, expired, breaker_changed]\n"
      "    services: [backend, llm-service]\n"
      "    headers: {Authorization: \"Bearer t0k\"}\n"
      "    timeout: 2s\n"
      "    max_retries: 0\n"
      "    backoff: 100ms\n"
      "    max_backoff: 1s\n"
      "    queue_size: 10\n"
      "  - url: http://127.0.0.1:9000\n");
  ASSERT_EQ(c.webhooks.size(), 2u);
  const auto& w = c.webhooks[0];
  EXPECT_TRUE(w.url.tls);
  EXPECT_EQ(w.url.host, "hooks.example");
  EXPECT_EQ(w.url.base_path, "/services/T0/B0/x");
  EXPECT_EQ(w.events, (std::vector<std::string>{"health_changed", "expired", "breaker_changed"}));
  EXPECT_EQ(w.services, (std::vector<std::string>{"backend", "llm-service"}));
  EXPECT_EQ(w.headers.at("Authorization"), "Bearer t0k");
  EXPECT_EQ(w.timeout, 2s);
  EXPECT_EQ(w.max_retries, 0u);
  EXPECT_EQ(w.backoff, 100ms);
  EXPECT_EQ(w.max_backoff, 1s);
  EXPECT_EQ(w.queue_size, 10u);
  const WebhookConfig defaults;
  const auto& d = c.webhooks[1];
  EXPECT_TRUE(d.events.empty()) << "every event type";
  EXPECT_TRUE(d.services.empty()) << "every service";
  EXPECT_EQ(d.timeout, 5s);
  EXPECT_EQ(d.max_retries, 5u);
  EXPECT_EQ(d.backoff, 500ms);
  EXPECT_EQ(d.max_backoff, 30s);
  EXPECT_EQ(d.queue_size, 1000u);
  EXPECT_EQ(defaults.timeout, d.timeout);
  EXPECT_EQ(c.origins.at("webhooks[0].url"), from(2));
  EXPECT_EQ(c.origins.at("webhooks[0].queue_size"), from(10));
  EXPECT_EQ(c.origins.at("webhooks[1].url"), from(11));
  EXPECT_EQ(c.origins.at("webhooks[1].timeout"), "default");
  EXPECT_TRUE(load_ok("webhooks: []\n").webhooks.empty());
  EXPECT_TRUE(load_ok("webhooks:\n").webhooks.empty());
}

// Each bad webhook value is named with its file, line and key path.
TEST_F(ConfigLoadTest, WebhookErrors) {
  EXPECT_THAT(
      messages(load_yaml("webhooks:\n"
                         "  - url: ftp://h/x\n"
                         "    events: [registred, shutdown]\n"
                         "    services: [Backend]\n"
                         "    headers: {Content-Type: text/plain}\n"
                         "    timeout: 0s\n"
                         "    max_retries: 101\n"
                         "    queue_size: 0\n"
                         "    max_retrys: 3\n"
                         "  - events: registered\n"
                         "    headers: {\"Bad Name\": x}\n"
                         "  - \"http://h:1\"\n"
                         "  - url: http://h:1\n"
                         "    events: [expired, expired]\n"
                         "    backoff: 2s\n"
                         "    max_backoff: 1s\n")),
      ElementsAre(
          at(2) + "webhooks[0].url: bad URL \"ftp://h/x\": scheme must be http or https",
          at(3) + "webhooks[0].events[0]: unknown event type \"registred\" (did you mean "
                  "\"registered\"?)",
          at(3) + "webhooks[0].events[1]: unknown event type \"shutdown\" (known: registered, "
                  "replaced, deregistered, expired, health_changed, breaker_changed, ejected, "
                  "returned)",
          at(4) + "webhooks[0].services[0]: bad service name (use 1 to 63 characters of a-z, "
                  "0-9 and '-')",
          at(5) + "webhooks[0].headers: header \"Content-Type\" is set by Switchboard",
          at(6) + "webhooks[0].timeout: out of range: must be between 1ms and 24h, got 0s",
          at(7) + "webhooks[0].max_retries: out of range: must be between 0 and 100, got 101",
          at(8) + "webhooks[0].queue_size: out of range: must be between 1 and 1000000, got 0",
          at(9) + "webhooks[0].max_retrys: unknown key (did you mean \"max_retries\"?)",
          at(10) + "webhooks[1].events: expected a list of event types, got \"registered\"",
          at(10) + "webhooks[1]: missing key \"url\"",
          at(11) + "webhooks[1].headers: bad header \"Bad Name\"",
          at(12) + "webhooks[2]: expected a map (url, events, services, headers, ...), got "
                   "\"http://h:1\"",
          at(14) + "webhooks[3].events[1]: \"expired\" is listed twice",
          at(15) + "webhooks[3].backoff: must not exceed webhooks[3].max_backoff (1s), got 2s"));
  EXPECT_THAT(messages(load_yaml("webhooks: {url: \"http://h:1\"}\n")),
              ElementsAre(at(1) + "webhooks: expected a list of webhooks (url, events, ...), got "
                                  "a map"));
  // A default backoff above a written max_backoff blames the written key.
  EXPECT_THAT(messages(load_yaml("webhooks:\n  - url: http://h:1\n    max_backoff: 100ms\n")),
              ElementsAre(at(3) + "webhooks[0].max_backoff: must be at least "
                                  "webhooks[0].backoff (500ms), got 100ms"));
}

// The api section: token, open_reads and allowed_networks, with their origins.
TEST_F(ConfigLoadTest, ApiKeys) {
  const Config d = load_ok("");
  EXPECT_EQ(d.api.token, "");
  EXPECT_TRUE(d.api.open_reads);
  EXPECT_EQ(d.api.allowed_networks, loopback_networks());
  EXPECT_EQ(d.origins.at("api.token"), "default");
  EXPECT_EQ(d.origins.at("api.allowed_networks"), "default");

  const Config c = load_ok(
      "api:\n"
      "  token: \"0123456789abcdef+/=~\"\n"
      "  open_reads: false\n"
      "  allowed_networks: [10.0.0.0/8, \"FD00::/8\", 192.168.1.7]\n");
  EXPECT_EQ(c.api.token, "0123456789abcdef+/=~");
  EXPECT_FALSE(c.api.open_reads);
  ASSERT_EQ(c.api.allowed_networks.size(), 3u);
  EXPECT_EQ(c.api.allowed_networks[0].text, "10.0.0.0/8");
  EXPECT_EQ(c.api.allowed_networks[1].text, "fd00::/8");
  EXPECT_EQ(c.api.allowed_networks[2].text, "192.168.1.7/32");
  EXPECT_EQ(c.origins.at("api.token"), from(2));
  EXPECT_EQ(c.origins.at("api.open_reads"), from(3));
  EXPECT_EQ(c.origins.at("api.allowed_networks"), from(4));
  // An empty list refuses every registration; an empty token is no token.
  EXPECT_TRUE(load_ok("api: {allowed_networks: [], token: \"\"}\n").api.allowed_networks.empty());
  EXPECT_EQ(load_ok("api:\n").api, ApiConfig{});
}

// Each bad api value is named with file, line and key; a refused token is never quoted.
TEST_F(ConfigLoadTest, ApiErrors) {
  EXPECT_THAT(
      messages(load_yaml("api:\n"
                         "  token: \"short-secret\"\n"
                         "  open_reads: sometimes\n"
                         "  allowed_networks:\n"
                         "    - 10.0.0.1/8\n"
                         "    - \"fd00::/129\"\n"
                         "    - example.com\n"
                         "    - 10.0.0.0/8\n"
                         "    - 10.0.0.0/8\n"
                         "  allowed_network: []\n")),
      ElementsAre(at(2) + "api.token: too short (12 characters): use at least 16, e.g. the "
                          "output of `openssl rand -hex 32`",
                  at(3) + "api.open_reads: expected true or false, got \"sometimes\"",
                  at(5) + "api.allowed_networks[0]: bad network \"10.0.0.1/8\": host bits are "
                          "set: did you mean 10.0.0.0/8?",
                  at(6) + "api.allowed_networks[1]: bad network \"fd00::/129\": the prefix "
                          "length after '/' must be a number from 0 to 128",
                  at(7) + "api.allowed_networks[2]: bad network \"example.com\": not an IP "
                          "address (expected e.g. 10.0.0.0/8 or fd00::/8)",
                  at(9) + "api.allowed_networks[4]: \"10.0.0.0/8\" is listed twice",
                  at(10) + "api.allowed_network: unknown key (did you mean "
                           "\"allowed_networks\"?)"));
  const std::string spaced = "correct horse battery staple";
  auto r = load_yaml("api:\n  token: \"" + spaced + "\"\n  allowed_networks: 10.0.0.0/8\n");
  EXPECT_THAT(messages(r),
              ElementsAre(at(2) + "api.token: character 8 is not allowed (use visible ASCII "
                                  "characters, no blanks)",
                          at(3) + "api.allowed_networks: expected a list of networks (e.g. "
                                  "10.0.0.0/8, fd00::/8), got \"10.0.0.0/8\""));
  EXPECT_EQ(joined(r).find(spaced), std::string::npos);
  EXPECT_THAT(messages(load_yaml("api:\n  token: \"<redacted>\"\n")),
              ElementsAre(at(2) + "api.token: is the redacted value --print-config shows; "
                                  "write the real token here, or set SWITCHBOARD_API_TOKEN"));
  EXPECT_THAT(messages(load_yaml("api:\n  token: [a]\n")),
              ElementsAre(at(2) + "api.token: expected a string, got a list"));
}

// SWITCHBOARD_API_TOKEN sets api.token (over the file), from the environment or a dotenv
// file, checked like the file's; its errors do not quote it.
TEST_F(ConfigLoadTest, EnvApiToken) {
  options_.environment = {{"SWITCHBOARD_API_TOKEN", " env-token-0123456789 "}};
  auto r = load_yaml("api:\n  token: file-token-0123456789\n");
  ASSERT_TRUE(r.ok()) << joined(r);
  EXPECT_EQ(r.config->api.token, "env-token-0123456789");
  EXPECT_EQ(r.config->origins.at("api.token"), "env SWITCHBOARD_API_TOKEN");

  options_.environment = {{"SWITCHBOARD_API_TOKEN", "tiny"}};
  auto bad = load_config(options_);
  EXPECT_THAT(messages(bad), ElementsAre("env SWITCHBOARD_API_TOKEN: too short (4 characters): "
                                         "use at least 16, e.g. the output of `openssl rand "
                                         "-hex 32`"));
  options_.environment = {};
  write(".env.local", "# tokens\nSWITCHBOARD_API_TOKEN=\"two words-0123456789\"\n");
  auto dotenv = load_config(options_);
  EXPECT_THAT(messages(dotenv),
              ElementsAre(dir_ + "/.env.local:2: SWITCHBOARD_API_TOKEN: character 4 is not "
                                 "allowed (use visible ASCII characters, no blanks)"));
  EXPECT_EQ(joined(dotenv).find("two words"), std::string::npos);
  write(".env.local", "SWITCHBOARD_API_TOKEN=dotenv-token-0123456789\n");
  auto ok = load_config(options_);
  ASSERT_TRUE(ok.ok()) << joined(ok);
  EXPECT_EQ(ok.config->api.token, "dotenv-token-0123456789");
  EXPECT_EQ(ok.config->origins.at("api.token"),
            "env-file " + dir_ + "/.env.local:1 (SWITCHBOARD_API_TOKEN)");
}

// --print-config shows the token redacted (and "" when unset), the networks as a list that
// loads back.
TEST_F(ConfigLoadTest, RenderRedactsTheApiToken) {
  const Config c = load_ok(
      "api:\n"
      "  token: \"s3cret-token-0123456789\"\n"
      "  allowed_networks: [10.0.0.0/8, \"fd00::/8\"]\n");
  const std::string yaml = render_config(c);
  EXPECT_EQ(yaml.find("s3cret"), std::string::npos) << yaml;
  EXPECT_THAT(yaml, HasSubstr("api:\n  token: \"<redacted>\"  # " + from(2) + "\n"));
  EXPECT_THAT(yaml, HasSubstr("  open_reads: true  # default\n"));
  EXPECT_THAT(yaml, HasSubstr("  allowed_networks: [\"10.0.0.0/8\", \"fd00::/8\"]  # " + from(3)));
  EXPECT_THAT(render_config(load_ok("")),
              HasSubstr("api:\n  token: \"\"  # default\n  open_reads: true  # default\n"
                        "  allowed_networks: [\"127.0.0.0/8\", \"::1/128\"]  # default\n"));
  Config untokened = c;
  untokened.api.token.clear();
  auto again = load_yaml(render_config(untokened));
  ASSERT_TRUE(again.ok()) << joined(again);
  EXPECT_EQ(again.config->api, untokened.api);
}

TEST_F(ConfigLoadTest, DuplicateService) {
  EXPECT_THAT(messages(load_yaml("services:\n"
                                 "  llm-service:\n"
                                 "    instances: [\"http://127.0.0.1:3003\"]\n"
                                 "  backend:\n"
                                 "    instances: [\"http://127.0.0.1:3000\"]\n"
                                 "  llm-service:\n"
                                 "    instances: [\"http://127.0.0.1:3004\"]\n")),
              ElementsAre(at(6) + "services.llm-service: duplicate service (first defined at "
                                  "line 2)"));
}

// Duplicate keys are found in every map: sections, leaves, flow maps, instance maps.
TEST_F(ConfigLoadTest, DuplicateKeysEverywhere) {
  EXPECT_THAT(messages(load_yaml("server:\n"
                                 "  listen: 127.0.0.1:1\n"
                                 "  listen: 127.0.0.1:2\n"
                                 "drain: {delay: 1s, delay: 2s}\n"
                                 "logging: {}\n"
                                 "logging: {}\n"
                                 "services:\n"
                                 "  a:\n"
                                 "    instances:\n"
                                 "      - {url: \"http://h:1\", url: \"http://h:2\"}\n")),
              ElementsAre(at(3) + "server.listen: duplicate key (first defined at line 2)",
                          at(4) + "drain.delay: duplicate key (first defined at line 4)",
                          at(6) + "logging: duplicate key (first defined at line 5)",
                          at(10) + "services.a.instances[0].url: duplicate key (first defined at "
                                   "line 10)"));
}

// Bad URLs in a list of instances, as strings and in maps.
TEST_F(ConfigLoadTest, BadInstanceUrl) {
  EXPECT_THAT(messages(load_yaml("services:\n"
                                 "  backend:\n"
                                 "    instances:\n"
                                 "      - http://127.0.0.1:3000\n"
                                 "      - htp://x\n"
                                 "      - url: http://h?x=1\n")),
              ElementsAre(at(5) + "services.backend.instances[1]: bad URL \"htp://x\": scheme "
                                  "must be http or https",
                          at(6) + "services.backend.instances[2].url: bad URL \"http://h?x=1\": "
                                  "a query (?...) is not allowed"));
}

// The same endpoint twice in one service.
TEST_F(ConfigLoadTest, DuplicateInstance) {
  EXPECT_THAT(messages(load_yaml("services:\n"
                                 "  backend:\n"
                                 "    instances:\n"
                                 "      - http://127.0.0.1:3000\n"
                                 "      - http://127.0.0.1:3000/\n")),
              ElementsAre(at(5) + "services.backend.instances[1]: duplicate instance "
                                  "\"http://127.0.0.1:3000/\" (same as "
                                  "services.backend.instances[0])"));
}

// Instance maps: url is required, weight is 1..1000, zone is a plain word.
TEST_F(ConfigLoadTest, InstanceMapRules) {
  EXPECT_THAT(messages(load_yaml("services:\n"
                                 "  a:\n"
                                 "    instances:\n"
                                 "      - {zone: a}\n"
                                 "      - {url: \"http://h:1\", weight: 0}\n"
                                 "      - {url: \"http://h:2\", weight: 1001}\n"
                                 "      - {url: \"http://h:3\", zone: \"a b\"}\n"
                                 "      - [1]\n"
                                 "      - {url: \"http://h:4\", port: 1}\n")),
              ElementsAre(at(4) + "services.a.instances[0]: missing key \"url\"",
                          at(5) + "services.a.instances[1].weight: out of range: must be between "
                                  "1 and 1000, got 0",
                          at(6) + "services.a.instances[2].weight: out of range: must be between "
                                  "1 and 1000, got 1001",
                          at(7) + "services.a.instances[3].zone: bad zone \"a b\" (use up to 63 "
                                  "of A-Z, a-z, 0-9, '-', '_', '.')",
                          at(8) + "services.a.instances[4]: expected a URL or a map (url, zone, "
                                  "weight), got a list",
                          at(9) + "services.a.instances[5].port: unknown key (known keys: url, "
                                  "zone, weight)"));
}

// Wrong types say what was expected and what was found.
TEST_F(ConfigLoadTest, WrongTypes) {
  EXPECT_THAT(messages(load_yaml("server: [1, 2]\n"
                                 "limits:\n"
                                 "  max_headers: lots\n"
                                 "  max_connections: {a: 1}\n"
                                 "logging:\n"
                                 "  access_log: yes\n"
                                 "health:\n"
                                 "  check_interval:\n"
                                 "services:\n"
                                 "  a:\n"
                                 "    instances: \"http://h:1\"\n"
                                 "routes: {prefix: /}\n")),
              ElementsAre(at(1) + "server: expected a map, got a list",
                          at(3) + "limits.max_headers: expected an integer, got \"lots\"",
                          at(4) + "limits.max_connections: expected an integer, got a map",
                          at(6) + "logging.access_log: expected true or false, got \"yes\"",
                          at(8) + "health.check_interval: missing value (expected a duration)",
                          at(11) + "services.a.instances: expected a list of URLs, got "
                                   "\"http://h:1\"",
                          at(12) + "routes: expected a list of routes, got a map"));
}

// Integers outside their range, including negative ones.
TEST_F(ConfigLoadTest, IntegersOutOfRange) {
  EXPECT_THAT(messages(load_yaml("server:\n"
                                 "  threads: 1025\n"
                                 "limits:\n"
                                 "  max_headers: -1\n"
                                 "  max_connections: 0\n"
                                 "telemetry:\n"
                                 "  prometheus_port: 65536\n")),
              ElementsAre(at(2) + "server.threads: out of range: must be between 0 and 1024, "
                                  "got 1025",
                          at(4) + "limits.max_headers: out of range: must be between 1 and "
                                  "10000, got -1",
                          at(5) + "limits.max_connections: out of range: must be between 1 and "
                                  "1000000, got 0",
                          at(7) + "telemetry.prometheus_port: out of range: must be between 0 "
                                  "and 65535, got 65536"));
  EXPECT_EQ(load_ok("server: {threads: 1024}\n").server.threads, 1024u);
}

// Listen addresses, log level and format, sample rate, Jaeger endpoint.
TEST_F(ConfigLoadTest, BadScalars) {
  EXPECT_THAT(messages(load_yaml("server:\n"
                                 "  listen: 8080\n"
                                 "logging:\n"
                                 "  level: verbose\n"
                                 "  format: xml\n"
                                 "telemetry:\n"
                                 "  sample_rate: 1.5\n"
                                 "  jaeger_endpoint: localhost:4318\n")),
              ElementsAre(at(2) + "server.listen: bad address \"8080\" (expected HOST:PORT, e.g. "
                                  "127.0.0.1:8080 or [::1]:8080)",
                          at(4) + "logging.level: unknown level \"verbose\" (use trace, debug, "
                                  "info, warn, error, critical or off)",
                          at(5) + "logging.format: expected text or json, got \"xml\"",
                          at(7) + "telemetry.sample_rate: expected a number between 0 and 1, got "
                                  "\"1.5\"",
                          at(8) + "telemetry.jaeger_endpoint: bad URL \"localhost:4318\": scheme "
                                  "must be http or https"));
  EXPECT_DOUBLE_EQ(load_ok("telemetry: {sample_rate: 0}\n").telemetry.sample_rate, 0.0);
  EXPECT_DOUBLE_EQ(load_ok("telemetry: {sample_rate: 1}\n").telemetry.sample_rate, 1.0);
}

// Service names: a-z, 0-9, '-', at most 63; "status" and "events" are reserved.
TEST_F(ConfigLoadTest, ServiceNames) {
  const std::string n63(63, 'a'), n64(64, 'a');
  EXPECT_THAT(messages(load_yaml("services:\n"
                                 "  Backend: {instances: [\"http://h:1\"]}\n"
                                 "  status: {instances: [\"http://h:1\"]}\n"
                                 "  events: {instances: [\"http://h:1\"]}\n"
                                 "  " +
                                 n64 +
                                 ": {instances: [\"http://h:1\"]}\n"
                                 "  " +
                                 n63 +
                                 ": {instances: [\"http://h:1\"]}\n"
                                 "  a_b: {instances: [\"http://h:1\"]}\n")),
              ElementsAre(at(2) + "services.Backend: bad service name (use 1 to 63 characters "
                                  "of a-z, 0-9 and '-')",
                          at(3) + "services.status: \"status\" is reserved (it is an API path); "
                                  "choose another name",
                          at(4) + "services.events: \"events\" is reserved (it is an API path); "
                                  "choose another name",
                          at(5) + "services." + n64 +
                              ": bad service name (use 1 to 63 "
                              "characters of a-z, 0-9 and '-')",
                          at(7) + "services.a_b: bad service name (use 1 to 63 characters of "
                                  "a-z, 0-9 and '-')"));
}

// A service written as a list, and a service with no instances from any layer.
TEST_F(ConfigLoadTest, ServiceShapeAndInstances) {
  EXPECT_THAT(messages(load_yaml("services:\n"
                                 "  backend: [\"http://h:1\"]\n"
                                 "  llm-service:\n"
                                 "    critical: true\n"
                                 "  empty:\n"
                                 "    instances: []\n")),
              ElementsAre(at(2) + "services.backend: expected a map (instances: [...], critical: "
                                  "...), got a list",
                          at(3) + "services.llm-service: no instances (add instances: "
                                  "[\"http://HOST:PORT\"], or set LLM_SERVICE_URL or --service "
                                  "llm-service=URL)",
                          at(6) + "services.empty.instances: no instances (the list is empty)"));
}

// Routes: unknown service (with a suggestion), no prefix or host, bad prefix, no service.
TEST_F(ConfigLoadTest, RouteErrors) {
  EXPECT_THAT(messages(load_yaml(std::string(kBackend) +
                                 "routes:\n"
                                 "  - prefix: /api\n"
                                 "    service: backnd\n"
                                 "  - service: backend\n"
                                 "  - prefix: api\n"
                                 "    service: backend\n"
                                 "  - prefix: /x\n"
                                 "  - {prefix: /y, service: backend, rewrite: \"y\"}\n"
                                 "  - {host: \"api.example.com:8080\", service: backend}\n"
                                 "  - {prefix: \"\", service: backend}\n"
                                 "  - \"/z\"\n"
                                 "  - {prefix: \"/a b\", service: backend}\n"
                                 "  - {prefix: /e, service: \"\"}\n"
                                 "  - {host: \"a b\", service: backend}\n")),
              ElementsAre(at(6) + "routes[0].service: unknown service \"backnd\" (did you mean "
                                  "\"backend\"?)",
                          at(7) + "routes[1]: a route needs a prefix, a host, or both",
                          at(8) + "routes[2].prefix: must start with '/', got \"api\"",
                          at(10) + "routes[3]: missing key \"service\"",
                          at(11) + "routes[4].rewrite: must start with '/', got \"y\"",
                          at(12) + "routes[5].host: \"api.example.com:8080\": a route host has "
                                   "no port (routes match the Host header without its port; "
                                   "write IPv6 addresses as [::1])",
                          at(13) + "routes[6]: a route needs a prefix, a host, or both",
                          at(14) + "routes[7]: expected a map (prefix, host, service, rewrite), "
                                   "got \"/z\"",
                          at(15) + "routes[8].prefix: must be a plain path (no blanks, '?' or "
                                   "'#'), got \"/a b\"",
                          at(16) + "routes[9].service: empty (name a service)",
                          at(17) + "routes[10].host: bad host name \"a b\""));
}

// Two routes with the same prefix and host are ambiguous.
TEST_F(ConfigLoadTest, DuplicateRoute) {
  EXPECT_THAT(messages(load_yaml(std::string(kBackend) +
                                 "routes:\n"
                                 "  - {prefix: /api, service: backend}\n"
                                 "  - {prefix: /api, host: a.example, service: backend}\n"
                                 "  - {prefix: /api, service: backend}\n")),
              ElementsAre(at(7) + "routes[2]: same prefix and host as routes[0] (line 5)"));
}

// Host-only routes, rewrites and a route to a service defined by the environment.
TEST_F(ConfigLoadTest, ValidRoutes) {
  options_.environment = {{"LLM_SERVICE_URL", "http://127.0.0.1:3003"}};
  const Config c = load_ok(std::string(kBackend) +
                           "routes:\n"
                           "  - {host: api.example.com, service: backend}\n"
                           "  - {prefix: /llm, service: llm-service, rewrite: /}\n"
                           "  - {prefix: /, host: 10.0.0.1, service: backend, rewrite: null}\n"
                           "  - {host: \"[::1]\", service: backend}\n");
  ASSERT_EQ(c.routes.size(), 4u);
  EXPECT_EQ(c.routes[3].host, "[::1]");
  EXPECT_EQ(c.routes[0].host, "api.example.com");
  EXPECT_EQ(c.routes[0].prefix, "");
  EXPECT_EQ(c.routes[1].rewrite, "/");
  EXPECT_FALSE(c.routes[2].rewrite);
  EXPECT_EQ(c.origins.at("routes[1].rewrite"), from(6));
}

// Rules across keys.
TEST_F(ConfigLoadTest, CrossKeyRules) {
  EXPECT_THAT(messages(load_yaml("server:\n"
                                 "  listen: 127.0.0.1:8080\n"
                                 "  admin_listen: 127.0.0.1:8080\n"
                                 "limits:\n"
                                 "  max_request_line: 64KiB\n"
                                 "  max_header_bytes: 32KiB\n"
                                 "upstream:\n"
                                 "  pool: {max_connections: 10, max_idle: 11}\n"
                                 "telemetry: {jaeger_exporter: true}\n")),
              ElementsAre(at(3) + "server.admin_listen: same address as server.listen "
                                  "(127.0.0.1:8080)",
                          at(5) + "limits.max_request_line: must not exceed "
                                  "limits.max_header_bytes (32768), got 65536",
                          at(8) + "upstream.pool.max_idle: must not exceed "
                                  "upstream.pool.max_connections (10), got 11",
                          at(9) + "telemetry.jaeger_exporter: the Jaeger exporter is on but "
                                  "telemetry.jaeger_endpoint (JAEGER_ENDPOINT) is empty"));
  // Port 0 on both is fine: each gets its own ephemeral port.
  EXPECT_TRUE(load_yaml("server: {listen: \"127.0.0.1:0\", admin_listen: \"127.0.0.1:0\"}\n").ok());
}

// A max_idle written for a pool may not exceed its max_connections; a default or inherited
// one is lowered to it, and its origin says so.
TEST_F(ConfigLoadTest, PoolMaxIdleAgainstMaxConnections) {
  const Config c = load_ok(
      "upstream: {pool: {max_connections: 100}}\n"
      "services:\n"
      "  a:\n"
      "    instances: [\"http://h:1\"]\n"
      "    pool: {max_connections: 50}\n"
      "  b:\n"
      "    instances: [\"http://h:1\"]\n"
      "    pool: {max_connections: 500, max_idle: 500}\n");
  EXPECT_EQ(c.upstream.pool.max_idle, 100u);
  EXPECT_EQ(c.origins.at("upstream.pool.max_idle"), "default, lowered to max_connections");
  EXPECT_EQ(c.services.at(0).pool.max_idle, 50u);
  EXPECT_EQ(c.origins.at("services.a.pool.max_idle"),
            "inherited from upstream.pool.max_idle (default), lowered to max_connections");
  EXPECT_EQ(c.services.at(1).pool.max_idle, 500u);

  EXPECT_THAT(messages(load_yaml("upstream: {pool: {max_idle: 100}}\n"
                                 "services:\n"
                                 "  a:\n"
                                 "    instances: [\"http://h:1\"]\n"
                                 "    pool: {max_connections: 50}\n"
                                 "  b:\n"
                                 "    instances: [\"http://h:1\"]\n"
                                 "    pool: {max_connections: 50, max_idle: 51}\n")),
              ElementsAre(at(8) + "services.b.pool.max_idle: must not exceed "
                                  "services.b.pool.max_connections (50), got 51"));
}

// TLS: a CA file must be readable; a server name must be a host name.
TEST_F(ConfigLoadTest, TlsSettings) {
  const std::string ca = write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  const Config c = load_ok("upstream:\n  tls: {ca_file: \"" + ca + "\", server_name: a.b}\n");
  EXPECT_EQ(c.upstream.tls.ca_file, ca);
  EXPECT_EQ(c.upstream.tls.server_name, "a.b");
  EXPECT_THAT(messages(load_yaml("upstream:\n"
                                 "  tls:\n"
                                 "    ca_file: " +
                                 dir_ +
                                 "/missing.pem\n"
                                 "    server_name: \"a b\"\n"
                                 "    verify: 1\n")),
              ElementsAre(at(3) + "upstream.tls.ca_file: cannot read \"" + dir_ +
                              "/missing.pem\": No such file or directory",
                          at(4) + "upstream.tls.server_name: bad host name \"a b\"",
                          at(5) + "upstream.tls.verify: expected true or false, got \"1\""));
}

// YAML syntax errors carry file:line:column from the parser.
TEST_F(ConfigLoadTest, YamlSyntaxError) {
  EXPECT_THAT(messages(load_yaml("server:\n"
                                 "  listen: [127.0.0.1:8080\n"
                                 "limits: {}\n")),
              ElementsAre(file_ + ":3:7: YAML syntax error: end of sequence flow not found"));
  EXPECT_THAT(messages(load_yaml("server:\n  listen: a: b\n")),
              ElementsAre(file_ + ":2:12: YAML syntax error: illegal map value"));
}

// Regression, jbeder/yaml-cpp#1040: a stray ',' at the top level made yaml-cpp 0.7's
// LoadAll allocate until the OOM killer came, and its Load return an empty document (so
// the whole file would be silently ignored). It is a syntax error at the comma.
TEST_F(ConfigLoadTest, StrayTopLevelCommaIsSyntaxError) {
  EXPECT_THAT(messages(load_yaml(",")),
              ElementsAre(file_ + ":1:1: YAML syntax error: unexpected \",\""));
  EXPECT_THAT(messages(load_yaml(",# typo\nserver:\n  listen: 127.0.0.1:1\n")),
              ElementsAre(file_ + ":1:1: YAML syntax error: unexpected \",\""));
  EXPECT_FALSE(load_yaml("server: {}\n---\n,\n").ok());
}

// Input nested past yaml-cpp's depth guard is reported as such, not as "bad file".
TEST_F(ConfigLoadTest, DeepNestingIsSyntaxError) {
  auto r = load_yaml("a: " + std::string(10'000, '['));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr(file_ + ":1:"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("YAML syntax error: nested too deeply"));
}

// The top level must be one map.
TEST_F(ConfigLoadTest, TopLevelShape) {
  EXPECT_THAT(messages(load_yaml("- a\n- b\n")),
              ElementsAre(at(1) + "expected a map of sections (server, limits, upstream, "
                                  "services, routes, ...), got a list"));
  EXPECT_THAT(messages(load_yaml("server: {}\n---\nlimits: {}\n")),
              ElementsAre(at(2) + "expected one YAML document, found more (remove the extra "
                                  "'---')"));
}

// A config file that cannot be read is named with the reason.
TEST_F(ConfigLoadTest, UnreadableConfigFile) {
  options_.config_file = dir_ + "/nope.yaml";
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre(dir_ + "/nope.yaml: cannot read config file: No such file or directory"));
  options_.config_file = dir_;  // a directory
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre(dir_ + ": cannot read config file: not a regular file"));
}

// All errors are collected, from every layer, not just the first.
TEST_F(ConfigLoadTest, CollectsAllErrors) {
  options_.environment = {{"PROMETHEUS_PORT", "0"}};
  options_.cli.threads = 0;
  auto r = load_yaml("server: {lisen: x}\nlimits: {header_timeout: 10}\nlogging: {level: x}\n");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.errors.size(), 5u) << joined(r);
}

// ---------------------------------------------------------------------------------------
// Environment variables
// ---------------------------------------------------------------------------------------

// The three URL variables register services; lists are comma-separated.
TEST_F(ConfigLoadTest, EnvRegistersServices) {
  options_.environment = {{"LLM_SERVICE_URL", "http://127.0.0.1:3003, http://127.0.0.1:3004"},
                          {"TELEGRAM_BOT_URL", "http://127.0.0.1:3001"},
                          {"FRONTEND_URL", "https://web.internal/app/"}};
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  const Config& c = *r.config;
  ASSERT_EQ(c.services.size(), 3u);
  const auto* llm = c.find_service("llm-service");
  ASSERT_NE(llm, nullptr);
  ASSERT_EQ(llm->instances.size(), 2u);
  EXPECT_EQ(llm->instances[1].url.port, 3004);
  EXPECT_EQ(llm->source, Source::kEnvironment);
  EXPECT_EQ(c.find_service("telegram-bot")->instances.at(0).url.port, 3001);
  EXPECT_EQ(c.find_service("frontend")->instances.at(0).url.base_path, "/app");
  EXPECT_EQ(c.origins.at("services.llm-service.instances"), "env LLM_SERVICE_URL");
  EXPECT_EQ(c.origins.at("services.llm-service.timeouts.connect"),
            "inherited from upstream.timeouts.connect (default)");
}

// A variable replaces the instances of a file service and keeps its other settings.
TEST_F(ConfigLoadTest, EnvReplacesInstancesOfFileService) {
  options_.environment = {{"FRONTEND_URL", "http://127.0.0.1:4002"}};
  const Config c = load_ok(
      "services:\n"
      "  frontend:\n"
      "    instances: [\"http://127.0.0.1:3002\"]\n"
      "    critical: true\n");
  ASSERT_EQ(c.services.size(), 1u);
  const auto& s = c.services[0];
  ASSERT_EQ(s.instances.size(), 1u);
  EXPECT_EQ(s.instances[0].url.port, 4002);
  EXPECT_TRUE(s.critical);
  EXPECT_EQ(s.source, Source::kEnvironment);
  EXPECT_EQ(c.origins.at("services.frontend.instances"), "env FRONTEND_URL");
  EXPECT_EQ(c.origins.at("services.frontend.critical"), from(4));
}

// A file service without instances gets them from the environment.
TEST_F(ConfigLoadTest, EnvSuppliesInstancesOfFileService) {
  options_.environment = {{"LLM_SERVICE_URL", "http://127.0.0.1:3003"}};
  const Config c = load_ok("services:\n  llm-service: {critical: true}\n");
  EXPECT_TRUE(c.services.at(0).critical);
  EXPECT_EQ(c.services.at(0).instances.size(), 1u);
}

// Bad URLs and empty list items in the URL variables.
TEST_F(ConfigLoadTest, EnvBadUrls) {
  options_.environment = {{"LLM_SERVICE_URL", "ftp://x"},
                          {"FRONTEND_URL", "http://a:1,,http://b:2"},
                          {"TELEGRAM_BOT_URL", "http://a:1,http://a:1"}};
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre("env LLM_SERVICE_URL: bad URL \"ftp://x\": scheme must be http or https",
                          "env TELEGRAM_BOT_URL: duplicate instance \"http://a:1\"",
                          "env FRONTEND_URL: empty URL in the list \"http://a:1,,http://b:2\""));
}

// Health intervals: positive integer milliseconds (or a duration), up to 24h.
TEST_F(ConfigLoadTest, EnvHealthIntervals) {
  options_.environment = {{"HEALTH_CHECK_INTERVAL", "1500"},
                          {"METRICS_COLLECTION_INTERVAL", "86400000"}};
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  EXPECT_EQ(r.config->health.check_interval, 1500ms);
  EXPECT_EQ(r.config->health.metrics_collection_interval, 24h);
  EXPECT_EQ(r.config->origins.at("health.check_interval"), "env HEALTH_CHECK_INTERVAL");

  options_.environment = {{"HEALTH_CHECK_INTERVAL", "abc"},
                          {"METRICS_COLLECTION_INTERVAL", "86400001"}};
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre("env HEALTH_CHECK_INTERVAL: expected a positive integer "
                          "(milliseconds), got \"abc\"",
                          "env METRICS_COLLECTION_INTERVAL: out of range: must be at most "
                          "86400000 ms (24h), got 86400001"));
  options_.environment = {{"HEALTH_CHECK_INTERVAL", "0"}};
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre("env HEALTH_CHECK_INTERVAL: expected a positive integer "
                          "(milliseconds), got \"0\""));
  options_.environment = {{"HEALTH_CHECK_INTERVAL", "1"}};
  EXPECT_EQ(load_config(options_).config->health.check_interval, 1ms);
}

// Telemetry variables, valid spellings and edges.
TEST_F(ConfigLoadTest, EnvTelemetry) {
  options_.environment = {{"OTEL_SAMPLE_RATE", "0.1"},
                          {"OTEL_JAEGER_EXPORTER", "Yes"},
                          {"OTEL_PROMETHEUS_EXPORTER", "off"},
                          {"JAEGER_ENDPOINT", "https://jaeger:4318/v1/traces"},
                          {"PROMETHEUS_PORT", "65535"}};
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  const auto& t = r.config->telemetry;
  EXPECT_DOUBLE_EQ(t.sample_rate, 0.1);
  EXPECT_TRUE(t.jaeger_exporter);
  EXPECT_FALSE(t.prometheus_exporter);
  EXPECT_EQ(t.jaeger_endpoint, "https://jaeger:4318/v1/traces");
  EXPECT_EQ(t.prometheus_port, 65535);
  EXPECT_EQ(r.config->origins.at("telemetry.sample_rate"), "env OTEL_SAMPLE_RATE");
  EXPECT_EQ(r.config->origins.at("telemetry.prometheus_port"), "env PROMETHEUS_PORT");

  for (const auto& [text, value] : std::vector<std::pair<std::string, bool>>{{"true", true},
                                                                             {"1", true},
                                                                             {"yes", true},
                                                                             {"ON", true},
                                                                             {"false", false},
                                                                             {"0", false},
                                                                             {"no", false},
                                                                             {"Off", false}}) {
    options_.environment = {{"OTEL_PROMETHEUS_EXPORTER", text}};
    auto b = load_config(options_);
    ASSERT_TRUE(b.ok()) << text;
    EXPECT_EQ(b.config->telemetry.prometheus_exporter, value) << text;
  }
  options_.environment = {{"PROMETHEUS_PORT", "1"}, {"OTEL_SAMPLE_RATE", "0"}};
  EXPECT_EQ(load_config(options_).config->telemetry.prometheus_port, 1);
}

// Each telemetry variable's error.
TEST_F(ConfigLoadTest, EnvTelemetryErrors) {
  options_.environment = {{"OTEL_SAMPLE_RATE", "1.01"},
                          {"OTEL_JAEGER_EXPORTER", "maybe"},
                          {"OTEL_PROMETHEUS_EXPORTER", "2"},
                          {"JAEGER_ENDPOINT", "jaeger:4318"},
                          {"PROMETHEUS_PORT", "0"}};
  EXPECT_THAT(
      messages(load_config(options_)),
      ElementsAre("env OTEL_SAMPLE_RATE: expected a number between 0 and 1, got \"1.01\"",
                  "env OTEL_JAEGER_EXPORTER: expected true or false (or 1/0, yes/no, on/off), "
                  "got \"maybe\"",
                  "env OTEL_PROMETHEUS_EXPORTER: expected true or false (or 1/0, yes/no, "
                  "on/off), got \"2\"",
                  "env JAEGER_ENDPOINT: bad URL \"jaeger:4318\": scheme must be http or https",
                  "env PROMETHEUS_PORT: expected a port number between 1 and 65535, got \"0\""));
  options_.environment = {{"PROMETHEUS_PORT", "65536"}, {"OTEL_SAMPLE_RATE", "nan"}};
  EXPECT_EQ(load_config(options_).errors.size(), 2u);
}

// Unrelated variables are ignored, and an empty variable counts as unset.
TEST_F(ConfigLoadTest, EnvUnrelatedAndEmptyIgnored) {
  options_.environment = {{"PATH", "/usr/bin"},
                          {"LISTEN", "garbage"},
                          {"llm_service_url", "garbage"},
                          {"LLM_SERVICE_URL", ""},
                          {"HEALTH_CHECK_INTERVAL", " "}};
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  EXPECT_TRUE(r.config->services.empty());
  EXPECT_EQ(r.config->origins.at("health.check_interval"), "default");
}

// ---------------------------------------------------------------------------------------
// dotenv files and precedence
// ---------------------------------------------------------------------------------------

// Each layer overrides the one below, and the origin names the winner:
// file < --env-file (in order) < .env.local < environment < command line.
TEST_F(ConfigLoadTest, PrecedenceOfEveryLayer) {
  options_.config_file = write("x.yaml",
                               "health:\n"
                               "  check_interval: 10s\n"
                               "services:\n"
                               "  llm-service:\n"
                               "    instances: [\"http://127.0.0.1:1000\"]\n");
  auto check = [&](Millis interval, const std::string& origin, int llm_port,
                   const std::string& llm_origin) {
    auto r = load_config(options_);
    ASSERT_TRUE(r.ok()) << joined(r);
    EXPECT_EQ(r.config->health.check_interval, interval);
    EXPECT_EQ(r.config->origins.at("health.check_interval"), origin);
    EXPECT_EQ(r.config->services.at(0).instances.at(0).url.port, llm_port);
    EXPECT_EQ(r.config->origins.at("services.llm-service.instances"), llm_origin);
  };
  check(10s, from(2), 1000, from(5));

  const std::string a =
      write("a.env", "HEALTH_CHECK_INTERVAL=1000\nLLM_SERVICE_URL=http://h:1001\n");
  const std::string b = write("b.env", "# b\nHEALTH_CHECK_INTERVAL=2000\n");
  options_.env_files = {a};
  check(1000ms, "env-file " + a + ":1 (HEALTH_CHECK_INTERVAL)", 1001,
        "env-file " + a + ":2 (LLM_SERVICE_URL)");
  options_.env_files = {a, b};  // the later file wins
  check(2000ms, "env-file " + b + ":2 (HEALTH_CHECK_INTERVAL)", 1001,
        "env-file " + a + ":2 (LLM_SERVICE_URL)");
  options_.env_files = {b, a};
  check(1000ms, "env-file " + a + ":1 (HEALTH_CHECK_INTERVAL)", 1001,
        "env-file " + a + ":2 (LLM_SERVICE_URL)");

  const std::string local = write(".env.local", "\n\nexport HEALTH_CHECK_INTERVAL=\"3000\"\n");
  check(3000ms, "env-file " + local + ":3 (HEALTH_CHECK_INTERVAL)", 1001,
        "env-file " + a + ":2 (LLM_SERVICE_URL)");

  options_.environment = {{"HEALTH_CHECK_INTERVAL", "4000"}, {"LLM_SERVICE_URL", "http://h:1002"}};
  check(4000ms, "env HEALTH_CHECK_INTERVAL", 1002, "env LLM_SERVICE_URL");

  options_.cli.services = {"llm-service=http://h:1003"};
  check(4000ms, "env HEALTH_CHECK_INTERVAL", 1003, "command line --service");
}

// Process environment and command line over the file, for listen and logging.
TEST_F(ConfigLoadTest, CommandLineOverridesFile) {
  options_.cli.listen = "0.0.0.0:9000";
  options_.cli.threads = 3;
  options_.cli.log_level = "warn";
  options_.cli.log_format = "json";
  const Config c = load_ok(
      "server: {listen: \"127.0.0.1:1\", threads: 8}\n"
      "logging: {level: debug, format: text}\n");
  EXPECT_EQ(c.server.listen.str(), "0.0.0.0:9000");
  EXPECT_EQ(c.server.threads, 3u);
  EXPECT_EQ(c.logging.level, "warn");
  EXPECT_EQ(c.logging.format, LogFormat::kJson);
  EXPECT_EQ(c.origins.at("server.listen"), "command line --listen");
  EXPECT_EQ(c.origins.at("server.threads"), "command line --threads");
  EXPECT_EQ(c.origins.at("logging.level"), "command line --log-level");
  EXPECT_EQ(c.origins.at("logging.format"), "command line --log-format");
}

// --service registers a new service or replaces the instances of an existing one.
TEST_F(ConfigLoadTest, CommandLineServices) {
  options_.environment = {{"LLM_SERVICE_URL", "http://h:1"}};
  options_.cli.services = {"backend=http://127.0.0.1:4000,http://127.0.0.1:4001",
                           "llm-service=http://h:2", "new-one=https://n.example"};
  const Config c = load_ok(std::string(kBackend) + "    critical: true\n");
  ASSERT_EQ(c.services.size(), 3u);
  const auto* backend = c.find_service("backend");
  ASSERT_EQ(backend->instances.size(), 2u);
  EXPECT_EQ(backend->instances[1].url.port, 4001);
  EXPECT_TRUE(backend->critical);
  EXPECT_EQ(backend->source, Source::kCommandLine);
  EXPECT_EQ(c.find_service("llm-service")->instances.at(0).url.port, 2);
  EXPECT_EQ(c.find_service("llm-service")->source, Source::kCommandLine);
  EXPECT_EQ(c.find_service("new-one")->instances.at(0).url.port, 443);
  EXPECT_EQ(c.origins.at("services.new-one.instances"), "command line --service");
}

// Command-line errors: each flag's.
TEST_F(ConfigLoadTest, CommandLineErrors) {
  options_.cli.listen = "localhost";
  options_.cli.services = {"a=http://h:1",   "a=http://h:2", "noequals",
                           "Bad=http://h:1", "b=ftp://h",    "c="};
  options_.cli.threads = 1025;
  options_.cli.log_level = "loud";
  options_.cli.log_format = "yaml";
  EXPECT_THAT(
      messages(load_config(options_)),
      ElementsAre("command line --listen: bad address \"localhost\" (expected HOST:PORT, e.g. "
                  "127.0.0.1:8080 or [::1]:8080)",
                  "command line --service: service \"a\" given twice",
                  "command line --service: expected NAME=URL[,URL...], got \"noequals\"",
                  "command line --service: \"Bad\": bad service name (use 1 to 63 characters "
                  "of a-z, 0-9 and '-')",
                  "command line --service b: bad URL \"ftp://h\": scheme must be http or https",
                  "command line --service: expected NAME=URL[,URL...], got \"c=\"",
                  "command line --threads: out of range: must be between 1 and 1024, got 1025",
                  "command line --log-level: unknown level \"loud\" (use trace, debug, info, "
                  "warn, error, critical or off)",
                  "command line --log-format: expected text or json, got \"yaml\""));
  options_ = LoadOptions{};
  options_.env_local_file = dir_ + "/.env.local";
  options_.cli.threads = 0;
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre("command line --threads: out of range: must be between 1 and 1024, "
                          "got 0"));
  options_.cli.threads = 1;
  EXPECT_TRUE(load_config(options_).ok());
}

// A missing --env-file is an error; a missing .env.local is not.
TEST_F(ConfigLoadTest, MissingEnvFiles) {
  options_.env_local_file = dir_ + "/absent.env.local";
  EXPECT_TRUE(load_config(options_).ok());
  options_.env_files = {dir_ + "/absent.env"};
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre(dir_ + "/absent.env: cannot read env file: No such file or directory"));
}

// A malformed dotenv line, or a bad value in a dotenv file, names file and line.
TEST_F(ConfigLoadTest, DotenvErrorsNameFileAndLine) {
  const std::string local = write(".env.local",
                                  "# settings\n"
                                  "HEALTH_CHECK_INTERVAL=abc\n"
                                  "this is not a variable\n"
                                  "LLM_SERVICE_URL=\"http://h:1\n");
  EXPECT_THAT(messages(load_config(options_)),
              ElementsAre(local + ":3: malformed line (expected KEY=value, KEY being letters, "
                                  "digits and '_')",
                          local + ":4: LLM_SERVICE_URL: unterminated double quote",
                          local + ":2: HEALTH_CHECK_INTERVAL: expected a positive integer "
                                  "(milliseconds), got \"abc\""));
}

// Only the effective value of a variable is checked: a bad value overridden by a higher
// layer is not an error. Unrelated dotenv variables are ignored.
TEST_F(ConfigLoadTest, OnlyEffectiveVariableValuesAreChecked) {
  write(".env.local", "HEALTH_CHECK_INTERVAL=abc\nDATABASE_URL=whatever\n");
  options_.environment = {{"HEALTH_CHECK_INTERVAL", "5000"}};
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  EXPECT_EQ(r.config->health.check_interval, 5s);
}

// ---------------------------------------------------------------------------------------
// render_config
// ---------------------------------------------------------------------------------------

// Compares everything but origins and Service::source (the rendered file is one layer).
void expect_same_values(const Config& a, const Config& b) {
  EXPECT_EQ(a.server, b.server);
  EXPECT_EQ(a.api, b.api);
  EXPECT_EQ(a.limits, b.limits);
  EXPECT_EQ(a.upstream, b.upstream);
  EXPECT_EQ(a.drain, b.drain);
  EXPECT_EQ(a.logging, b.logging);
  EXPECT_EQ(a.health, b.health);
  EXPECT_EQ(a.telemetry, b.telemetry);
  EXPECT_EQ(a.routes, b.routes);
  EXPECT_EQ(a.webhooks, b.webhooks);
  ASSERT_EQ(a.services.size(), b.services.size());
  for (std::size_t i = 0; i < a.services.size(); ++i) {
    ServiceConfig x = a.services[i], y = b.services[i];
    x.source = y.source = Source::kFile;
    EXPECT_EQ(x, y) << x.name;
  }
}

// Every leaf line carries its origin comment.
void expect_every_leaf_commented(const std::string& yaml) {
  std::size_t pos = 0;
  while (pos < yaml.size()) {
    const auto end = yaml.find('\n', pos);
    const std::string line = yaml.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line.back() == ':' || line == "services: {}" ||
        line == "routes: []" || line == "webhooks: []")
      continue;
    EXPECT_THAT(line, HasSubstr("  # ")) << line;
  }
}

// The example plus environment and command-line layers renders to YAML that loads back
// to the same values.
TEST_F(ConfigLoadTest, RenderRoundTripOfExample) {
  options_.config_file = kExample;
  options_.environment = {{"LLM_SERVICE_URL", "http://127.0.0.1:5003,https://[::1]:5004/v2"},
                          {"OTEL_SAMPLE_RATE", "0.1"}};
  options_.cli.services = {"extra=http://127.0.0.1:5005"};
  options_.cli.listen = "[::1]:0";
  auto first = load_config(options_);
  ASSERT_TRUE(first.ok()) << joined(first);
  const std::string yaml = render_config(*first.config);
  expect_every_leaf_commented(yaml);
  EXPECT_THAT(yaml, HasSubstr("  listen: \"[::1]:0\"  # command line --listen\n"));
  EXPECT_THAT(yaml, HasSubstr("  sample_rate: 0.1  # env OTEL_SAMPLE_RATE\n"));
  EXPECT_THAT(yaml, HasSubstr("  max_body_bytes: 128MiB  # file " + *options_.config_file));
  EXPECT_THAT(yaml, HasSubstr("    instances: [\"http://127.0.0.1:5003\", "
                              "\"https://[::1]:5004/v2\"]  # env LLM_SERVICE_URL\n"));

  LoadOptions again;
  again.config_file = write("rendered.yaml", yaml);
  again.env_local_file = std::nullopt;
  auto second = load_config(again);
  ASSERT_TRUE(second.ok()) << joined(second) << yaml;
  expect_same_values(*first.config, *second.config);
  // Rendering is stable once every value comes from the file.
  auto third = load_config(again);
  EXPECT_EQ(render_config(*second.config), render_config(*third.config));
}

// Defaults round-trip too (admin_listen null, empty services and routes).
TEST_F(ConfigLoadTest, RenderRoundTripOfDefaults) {
  auto first = load_config(options_);
  ASSERT_TRUE(first.ok());
  const std::string yaml = render_config(*first.config);
  EXPECT_THAT(yaml, HasSubstr("  admin_listen: null  # default\n"));
  EXPECT_THAT(yaml, HasSubstr("services: {}\n"));
  EXPECT_THAT(yaml, HasSubstr("routes: []\n"));
  expect_every_leaf_commented(yaml);
  auto second = load_yaml(yaml);
  ASSERT_TRUE(second.ok()) << joined(second) << yaml;
  expect_same_values(*first.config, *second.config);
}

// Odd values: sizes and durations that are not whole units, zones, weights, host routes,
// strings that need quoting.
TEST_F(ConfigLoadTest, RenderRoundTripOfOddValues) {
  const std::string ca = write("ca \"1\".pem", "x");
  const Config c = load_ok(
      "server: {admin_listen: \"127.0.0.1:9901\", threads: 7}\n"
      "limits: {max_body_bytes: 1000, header_timeout: 1500ms, keepalive_timeout: 90s}\n"
      "upstream: {tls: {ca_file: '" +
      ca +
      "'}}\n"
      "drain: {delay: 0s, timeout: 61m}\n"
      "telemetry: {sample_rate: 0.3333, jaeger_exporter: true, jaeger_endpoint: \"http://j:1\"}\n"
      "services:\n"
      "  a:\n"
      "    instances: [{url: \"http://h:1/base\", zone: z-1, weight: 3}, \"http://h:2\"]\n"
      "    preserve_host: true\n"
      "routes:\n"
      "  - {host: a.example, service: a}\n"
      "  - {prefix: /p, host: b.example, service: a, rewrite: /q}\n");
  const std::string yaml = render_config(c);
  EXPECT_THAT(yaml, HasSubstr("max_body_bytes: 1000  #"));
  EXPECT_THAT(yaml, HasSubstr("header_timeout: 1500ms  #"));
  EXPECT_THAT(yaml, HasSubstr("keepalive_timeout: 90s  #"));
  EXPECT_THAT(yaml, HasSubstr("timeout: 61m  #"));
  EXPECT_THAT(yaml, HasSubstr("[{url: \"http://h:1/base\", zone: \"z-1\", weight: 3}, "
                              "\"http://h:2\"]"));
  EXPECT_THAT(yaml, HasSubstr("  - host: \"a.example\"  # " + from(11) +
                              "\n"
                              "    service: \"a\"  # " +
                              from(11) + "\n"));
  expect_every_leaf_commented(yaml);
  auto again = load_yaml(yaml);
  ASSERT_TRUE(again.ok()) << joined(again) << yaml;
  expect_same_values(c, *again.config);
}

// Webhooks render as a list and load back to the same values; the empty list renders too.
TEST_F(ConfigLoadTest, RenderRoundTripOfWebhooks) {
  const Config c = load_ok(
      "webhooks:\n"
      "  - url: \"https://h.example/hook/\"\n"
      "    events: [registered, health_changed]\n"
      "    headers: {Authorization: \"Bearer \\\"x\\\"\", X-Team: ops}\n"
      "    backoff: 250ms\n"
      "  - url: http://127.0.0.1:9\n"
      "    services: [a]\n"
      "    queue_size: 7\n");
  const std::string yaml = render_config(c);
  EXPECT_THAT(yaml, HasSubstr("webhooks:\n  - url: \"https://h.example/hook/\"  # " + from(2) +
                              "\n    events: [\"registered\", \"health_changed\"]  # " + from(3)));
  EXPECT_THAT(yaml, HasSubstr("    services: []  # default\n"));
  EXPECT_THAT(yaml, HasSubstr("    queue_size: 7  # " + from(8)));
  expect_every_leaf_commented(yaml);
  auto again = load_yaml(yaml);
  ASSERT_TRUE(again.ok()) << joined(again) << yaml;
  expect_same_values(c, *again.config);
  EXPECT_EQ(again.config->webhooks.at(0).headers.at("Authorization"), "Bearer \"x\"");
  EXPECT_THAT(render_config(load_ok("")), HasSubstr("\nwebhooks: []\n"));
}

// The loader records an origin for exactly the leaves the renderer prints: one per line.
TEST_F(ConfigLoadTest, EveryRenderedLeafHasAnOrigin) {
  options_.config_file = kExample;
  options_.environment = {{"LLM_SERVICE_URL", "http://127.0.0.1:5003"}};
  options_.cli.services = {"extra=http://127.0.0.1:5005"};
  auto r = load_config(options_);
  ASSERT_TRUE(r.ok()) << joined(r);
  const std::string yaml = render_config(*r.config);
  std::size_t leaves = 0;
  for (std::size_t pos = yaml.find("  # "); pos != std::string::npos;
       pos = yaml.find("  # ", pos + 1))
    ++leaves;
  EXPECT_EQ(leaves, r.config->origins.size());
  for (const auto& [key, origin] : r.config->origins) EXPECT_FALSE(origin.empty()) << key;
  EXPECT_EQ(r.config->origins.at("services.extra.critical"), "default");
  const int frontend_route_line = line_starting_with(kExample, "    service: frontend");
  ASSERT_GT(frontend_route_line, 0);
  EXPECT_EQ(r.config->origins.at("routes[4].service"),
            "file " + kExample + ":" + std::to_string(frontend_route_line));
}

}  // namespace
}  // namespace sb::core

namespace sb::core {
namespace {

// Regression (fuzzing): a CA file that is not a regular file (/dev/zero grew without end,
// a FIFO would block) is refused with a reason instead of read.
TEST(ConfigReadFileTest, CaFileMustBeARegularFile) {
  char dir_template[] = "/tmp/sb-cfg-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::string path = dir + "/x.yaml";
  {
    std::ofstream out(path);
    out << "upstream:\n  tls:\n    ca_file: /dev/zero\n";
  }
  LoadOptions options;
  options.config_file = path;
  options.env_local_file.reset();
  const auto r = load_config(options);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message,
            path + ":3: upstream.tls.ca_file: cannot read \"/dev/zero\": not a regular file");
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

}  // namespace
// Resilience sections of a service, and a route that overrides part of its request policy.
TEST_F(ConfigLoadTest, ResilienceKeysAndRouteOverrides) {
  const Config c = load_ok(
      "server: {zone: eu-1}\n"
      "health: {live_success_stretch: 2.5, degraded_latency: 300ms, degraded_error_rate: 0.1,\n"
      "         recover_factor: 0.5, degraded_min_samples: 7}\n"
      "services:\n"
      "  a:\n"
      "    instances: [\"http://h:1\"]\n"
      "    breaker: {consecutive_failures: 0, failure_rate: 40, slow_call_rate: 30,\n"
      "              slow_call_duration: 200ms, minimum_calls: 8, window: 5s,\n"
      "              window_buckets: 5, open_duration: 1s, max_open_duration: 8s,\n"
      "              half_open_probes: 2, half_open_timeout: 3s, failure_status: \"500,503\"}\n"
      "    outlier: {enabled: false, consecutive_gateway_errors: 3, interval: 2s,\n"
      "              success_rate_stdev_factor: 1.5, max_ejection_percent: 34}\n"
      "    balancer: {kind: least_request, slow_start: 20s, zone_min_available: 50}\n"
      "    request_timeout: 4s\n"
      "    retry: {max_retries: 1, retry_on_status: \"503\", backoff_base: 10ms,\n"
      "            backoff_max: 100ms, per_try_timeout: 1s, max_replay_body: 1KiB}\n"
      "    hedge: {enabled: true, delay: 50ms}\n"
      "    fallback: {status: 200, headers: {Content-Type: application/json}, body: '[]'}\n"
      "routes:\n"
      "  - prefix: /x\n"
      "    service: a\n"
      "    request_timeout: 2s\n"
      "    retry: {max_retries: 0}\n"
      "  - {prefix: /y, service: a}\n");
  EXPECT_EQ(c.server.zone, "eu-1");
  EXPECT_EQ(c.health.live_success_stretch, 2.5);
  EXPECT_EQ(c.health.degraded_latency, Millis(300));
  EXPECT_EQ(c.health.degraded_min_samples, 7u);
  const auto& s = c.services.at(0);
  EXPECT_EQ(s.breaker.consecutive_failures, 0u);
  EXPECT_EQ(s.breaker.failure_rate, 40u);
  EXPECT_EQ(s.breaker.slow_call_duration, Millis(200));
  EXPECT_EQ(s.breaker.half_open_probes, 2u);
  EXPECT_EQ(s.breaker.failure_status, "500,503");
  EXPECT_FALSE(s.outlier.enabled);
  EXPECT_EQ(s.outlier.max_ejection_percent, 34u);
  EXPECT_EQ(s.outlier.success_rate_stdev_factor, 1.5);
  EXPECT_EQ(s.balancer.kind, BalancerKind::kLeastRequest);
  EXPECT_EQ(s.balancer.slow_start, Millis(20'000));
  EXPECT_EQ(s.policy.timeout, Millis(4'000));
  EXPECT_EQ(s.policy.retry.max_retries, 1u);
  EXPECT_EQ(s.policy.retry.max_replay_body, 1024u);
  EXPECT_TRUE(s.policy.hedge.enabled);
  EXPECT_EQ(s.policy.fallback.status, 200);
  EXPECT_EQ(s.policy.fallback.body, "[]");
  EXPECT_EQ(s.policy.fallback.headers.at("Content-Type"), "application/json");
  // The route keeps what it does not override.
  ASSERT_TRUE(c.routes.at(0).policy.has_value());
  const auto& rp = *c.routes.at(0).policy;
  EXPECT_EQ(rp.timeout, Millis(2'000));
  EXPECT_EQ(rp.retry.max_retries, 0u);
  EXPECT_EQ(rp.retry.backoff_max, Millis(100));
  EXPECT_TRUE(rp.hedge.enabled);
  EXPECT_EQ(rp.fallback.status, 200);
  EXPECT_FALSE(c.routes.at(1).policy.has_value());
  EXPECT_EQ(c.origins.at("routes[0].retry.max_retries"), from(23));
  EXPECT_THAT(c.origins.at("routes[0].retry.backoff_max"),
              HasSubstr("inherited from services.a.retry.backoff_max (" + from(16)));
  // It renders and loads back the same.
  const std::string yaml = render_config(c);
  expect_every_leaf_commented(yaml);
  auto again = load_yaml(yaml);
  ASSERT_TRUE(again.ok()) << joined(again) << yaml;
  expect_same_values(c, *again.config);
}

TEST_F(ConfigLoadTest, ResilienceKeyErrors) {
  EXPECT_THAT(
      messages(load_yaml("services:\n"
                         "  a:\n"
                         "    instances: [\"http://h:1\"]\n"
                         "    breaker: {failure_rate: 101, failure_status: \"5xx\",\n"
                         "              open_duration: 10s, max_open_duration: 5s}\n"
                         "    balancer: {kind: fastest}\n"
                         "    retry: {backoff_base: 1s, backoff_max: 10ms, max_retries: 11}\n"
                         "    fallback: {status: 101, headers: {Content-Length: \"3\"}}\n"
                         "    outlier: {success_rate_stdev_factor: x}\n"
                         "routes:\n"
                         "  - {prefix: /x, service: a, retry: {backof_max: 1s}}\n")),
      ::testing::UnorderedElementsAre(
          at(4) + "services.a.breaker.failure_rate: out of range: must be between 0 and 100, "
                  "got 101",
          at(4) + "services.a.breaker.failure_status: bad status list \"5xx\" (use e.g. "
                  "\"500-599,429\")",
          at(6) + "services.a.balancer.kind: bad kind \"fastest\": round_robin, "
                  "weighted_round_robin, random, least_request or peak_ewma",
          at(7) + "services.a.retry.max_retries: out of range: must be between 0 and 10, got 11",
          at(8) + "services.a.fallback.headers: header \"Content-Length\" is set by Switchboard",
          at(8) + "services.a.fallback: status: a fallback answers with a final status "
                  "(200-599), got 101",
          at(9) + "services.a.outlier.success_rate_stdev_factor: expected a number, got \"x\"",
          at(11) + "routes[0].retry.backof_max: unknown key (did you mean \"backoff_max\"?)",
          at(5) + "services.a.breaker.max_open_duration: must not be below "
                  "services.a.breaker.open_duration (10s), got 5s",
          at(7) + "services.a.retry.backoff_max: must not be below services.a.retry.backoff_base "
                  "(1s), got 10ms"));
}

}  // namespace sb::core
