#include "testing/prometheus.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <regex>

#include <boost/json/serialize.hpp>

#include "testing/http_client.hpp"
#include "testing/json.hpp"

namespace sb::testing {
namespace {

using std::chrono::milliseconds;

std::string binary_from(const char* env_var, const char* name) {
  if (const char* b = std::getenv(env_var); b != nullptr && *b != '\0') return find_executable(b);
  return find_executable(name);
}

// YAML single-quoted scalar: only ' needs escaping (doubled).
std::string yaml_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string config_yaml(const PrometheusOptions& o) {
  return "global:\n"
         "  scrape_interval: 1s\n"
         "  scrape_timeout: 500ms\n"
         "  evaluation_interval: 1s\n"
         "scrape_configs:\n"
         "  - job_name: " +
         yaml_quote(o.job) +
         "\n"
         "    scrape_interval: 1s\n"
         "    scrape_timeout: 500ms\n"
         "    metrics_path: " +
         yaml_quote(o.metrics_path) +
         "\n"
         "    static_configs:\n"
         "      - targets: [" +
         yaml_quote(o.target) + "]\n";
}

const boost::json::value* field(const boost::json::value& v, std::string_view key) {
  return v.is_object() ? v.as_object().if_contains(key) : nullptr;
}

// The "data" member of an API answer whose status is "success"; else nullopt, with
// `error` saying why (Prometheus' errorType and error when it gave them).
std::optional<boost::json::value> api_data(const std::optional<std::string>& body,
                                           std::string& error) {
  if (!body) return std::nullopt;
  auto doc = parse_json(*body);
  if (!doc) {
    error = "not JSON: " + body->substr(0, 300);
    return std::nullopt;
  }
  if (json_string(*doc, "status") != "success") {
    error = "status=" + json_string(*doc, "status").value_or("?") +
            " errorType=" + json_string(*doc, "errorType").value_or("?") +
            " error=" + json_string(*doc, "error").value_or(*body);
    return std::nullopt;
  }
  const boost::json::value* data = field(*doc, "data");
  if (data == nullptr) {
    error = "no data: " + *body;
    return std::nullopt;
  }
  return *data;
}

// A [timestamp, "value"] pair as the API writes sample values.
std::optional<double> sample_value(const boost::json::value& pair) {
  if (!pair.is_array() || pair.as_array().size() != 2 || !pair.as_array()[1].is_string()) {
    return std::nullopt;
  }
  const std::string text(pair.as_array()[1].as_string());
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0') return std::nullopt;
  return v;
}

void print_on_failure(const Process* p) {
  if (p != nullptr && ::testing::Test::HasFailure()) {
    std::cerr << "=== prometheus (test failed) ===\n" << p->describe(60);
  }
}

}  // namespace

std::string url_encode(std::string_view s) {
  static const char* const kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// PrometheusServer

std::string PrometheusServer::binary() { return binary_from("SB_PROMETHEUS", "prometheus"); }

PrometheusServer::PrometheusServer(PrometheusOptions options) : options_(std::move(options)) {
  const std::string bin = binary();
  if (bin.empty()) {
    error_ =
        "prometheus not found on PATH (nor $SB_PROMETHEUS): install it with "
        "scripts/install-deps.sh --test";
    return;
  }
  binary_found_ = true;
  ProcessOptions p;
  // Port 0: the server binds a free port itself and logs it, so no other process can take
  // the port between a choice and the bind.
  p.args = {bin, "--config.file=" + dir_.write_file("prometheus.yml", config_yaml(options_)),
            "--storage.tsdb.path=" + dir_.path() + "/data", "--web.listen-address=127.0.0.1:0"};
  if (options_.native_histograms) p.args.push_back("--enable-feature=native-histograms");
  p.env = base_environment();
  p.cwd = dir_.path();
  try {
    process_ = std::make_unique<Process>(std::move(p));
  } catch (const std::exception& e) {
    error_ = e.what();
    return;
  }
  static const std::regex kListening(R"(msg="Listening on" address=127\.0\.0\.1:([0-9]+))");
  static const std::regex kReady(R"(msg="Server is ready to receive web requests\.")");
  auto listening = process_->wait_for_line(Stream::kStderr, kListening, options_.startup_timeout);
  if (!listening) {
    error_ = "prometheus did not log `Listening on address=127.0.0.1:PORT`\n" + describe();
    return;
  }
  if (!process_->wait_for_line(Stream::kStderr, kReady, options_.startup_timeout)) {
    error_ = "prometheus did not log `Server is ready to receive web requests.`\n" + describe();
    return;
  }
  const auto port = static_cast<std::uint16_t>(std::stoi(listening->groups[1]));
  HttpClient c(port);
  Response r = c.get("/-/ready");
  if (r.status != 200) {
    error_ =
        "GET /-/ready answered " + std::to_string(r.status) + " " + r.error + "\n" + describe();
    return;
  }
  port_ = port;
}

PrometheusServer::PrometheusServer(std::string target)
    : PrometheusServer([&] {
        PrometheusOptions o;
        o.target = std::move(target);
        return o;
      }()) {}

PrometheusServer::~PrometheusServer() {
  print_on_failure(process_.get());
  if (process_ && process_->signal(SIGTERM)) process_->wait_exit(scaled(milliseconds(5'000)));
}

std::string PrometheusServer::describe() const { return process_ ? process_->describe() : error_; }

std::optional<std::string> PrometheusServer::get(const std::string& target) {
  if (!started()) {
    last_error_ = "prometheus is not running: " + error_;
    return std::nullopt;
  }
  HttpClient c(port_);
  Response r = c.get(target);
  if (!r.ok()) {
    last_error_ = "GET " + target + ": " + r.error;
    return std::nullopt;
  }
  return r.body;
}

std::optional<PrometheusTarget> PrometheusServer::target() {
  auto data = api_data(get("/api/v1/targets?state=active"), last_error_);
  if (!data) return std::nullopt;
  const boost::json::value* active = field(*data, "activeTargets");
  if (active != nullptr && active->is_array()) {
    for (const auto& t : active->as_array()) {
      if (json_string(t, "scrapePool") != options_.job) continue;
      PrometheusTarget out;
      out.health = json_string(t, "health").value_or("");
      out.last_error = json_string(t, "lastError").value_or("");
      out.scrape_url = json_string(t, "scrapeUrl").value_or("");
      return out;
    }
  }
  last_error_ =
      "no active target in job " + options_.job + " yet (discovery publishes it ~5 s after start)";
  return std::nullopt;
}

bool PrometheusServer::wait_for_target_up(milliseconds timeout) {
  std::optional<PrometheusTarget> last;
  bool up = eventually(
      [&] {
        last = target();
        return last && last->health == "up";
      },
      timeout);
  if (!up && last) {
    last_error_ =
        "target " + last->scrape_url + " health=" + last->health + " lastError=" + last->last_error;
  }
  return up;
}

std::optional<double> PrometheusServer::query(std::string_view promql) {
  auto data = api_data(get("/api/v1/query?query=" + url_encode(promql)), last_error_);
  if (!data) return std::nullopt;
  const std::string type = json_string(*data, "resultType").value_or("");
  const boost::json::value* result = field(*data, "result");
  if (result == nullptr) {
    last_error_ = "no result";
    return std::nullopt;
  }
  std::optional<double> v;
  if (type == "scalar") {
    v = sample_value(*result);
  } else if (type == "vector" && result->is_array()) {
    if (result->as_array().empty()) {
      last_error_ = "empty result for " + std::string(promql);
      return std::nullopt;
    }
    const boost::json::value& first = result->as_array().front();
    if (const auto* value = field(first, "value")) {
      v = sample_value(*value);
    } else if (field(first, "histogram") != nullptr) {
      last_error_ =
          "the result is a native histogram sample, not a float: " + boost::json::serialize(first);
      return std::nullopt;
    }
  } else {
    last_error_ = "result type " + type + " is not an instant vector or scalar";
    return std::nullopt;
  }
  if (!v) last_error_ = "unreadable value in " + boost::json::serialize(*result);
  return v;
}

std::optional<double> PrometheusServer::wait_for_value(std::string_view promql,
                                                       const std::function<bool(double)>& accept,
                                                       milliseconds timeout) {
  std::optional<double> v;
  bool ok = eventually(
      [&] {
        v = query(promql);
        return v && (!accept || accept(*v));
      },
      timeout);
  if (ok) return v;
  if (v)
    last_error_ = std::string(promql) + " = " + std::to_string(*v) + ", not the value waited for";
  return std::nullopt;
}

std::vector<std::map<std::string, std::string>> PrometheusServer::series(std::string_view promql) {
  std::vector<std::map<std::string, std::string>> out;
  auto data = api_data(get("/api/v1/query?query=" + url_encode(promql)), last_error_);
  if (!data) return out;
  const boost::json::value* result = field(*data, "result");
  if (json_string(*data, "resultType") != "vector" || result == nullptr || !result->is_array()) {
    last_error_ = "not an instant vector: " + boost::json::serialize(*data);
    return out;
  }
  for (const auto& r : result->as_array()) {
    std::map<std::string, std::string> labels;
    if (const auto* metric = field(r, "metric"); metric != nullptr && metric->is_object()) {
      for (const auto& [k, v] : metric->as_object()) {
        if (v.is_string()) labels[std::string(k)] = std::string(v.as_string());
      }
    }
    out.push_back(std::move(labels));
  }
  if (out.empty()) last_error_ = "empty result for " + std::string(promql);
  return out;
}

// ---------------------------------------------------------------------------------------
// promtool

std::string promtool_binary() { return binary_from("SB_PROMTOOL", "promtool"); }

PromtoolResult promtool_check_metrics(std::string_view exposition) {
  PromtoolResult result;
  const std::string bin = promtool_binary();
  if (bin.empty()) {
    result.output = "promtool not found on PATH (nor $SB_PROMTOOL)";
    return result;
  }
  TempDir dir;
  ProcessOptions p;
  p.args = {bin, "check", "metrics"};
  p.env = base_environment();
  p.cwd = dir.path();
  p.stdin_path = dir.write_file("exposition.txt", exposition);
  RunResult r = run_process(std::move(p), default_timeout());
  result.output = r.err + r.out;
  if (r.exit_code) {
    result.exit_code = *r.exit_code;
  } else {
    result.output += "\n(promtool timed out and was killed)";
  }
  return result;
}

}  // namespace sb::testing
