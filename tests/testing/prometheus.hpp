// The real Prometheus peer for integration tests (PEERS.md, Prometheus 2.42): a server
// that scrapes one target and answers PromQL through its HTTP API, and promtool's
// exposition linter.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "testing/process.hpp"

namespace sb::testing {

struct PrometheusOptions {
  std::string target;  // "host:port" to scrape, e.g. "127.0.0.1:8080"
  std::string metrics_path = "/metrics";
  std::string job = "switchboard";
  bool native_histograms = false;  // --enable-feature=native-histograms (protobuf scrape)
  std::chrono::milliseconds startup_timeout = scaled(std::chrono::milliseconds(15'000));
};

/// What /api/v1/targets says of the scraped target.
struct PrometheusTarget {
  std::string health;      // "unknown" (not scraped yet), "up" or "down"
  std::string last_error;  // the last scrape's error, "" when it succeeded
  std::string scrape_url;
};

/// A running `prometheus` on 127.0.0.1 (a port it picks itself and logs), scraping
/// `options.target` every 1 s (timeout 500 ms), with its configuration and TSDB in a
/// temporary directory. The first scrape comes about 5 s after start (PEERS.md), so wait
/// with wait_for_target_up() or wait_for_value(), never a fixed sleep. Stopped with
/// SIGTERM on destruction; when the current test has failed, its log is printed.
/// Methods are not thread-safe (last_error() is shared).
class PrometheusServer {
 public:
  explicit PrometheusServer(PrometheusOptions options);
  /// Scrapes `target` at /metrics with the defaults otherwise.
  explicit PrometheusServer(std::string target);
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  /// $SB_PROMETHEUS if set, else `prometheus` on PATH, else "".
  static std::string binary();

  /// False when no prometheus binary was found (then error() says so: skip the test).
  bool binary_found() const { return binary_found_; }
  /// Listening and ready (/-/ready answered 200).
  bool started() const { return port_ != 0; }
  /// Why start-up failed (with the log), or "".
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  const PrometheusOptions& options() const { return options_; }
  /// The command line and the tail of the log.
  std::string describe() const;

  /// The target's state now; nullopt when the API did not answer (see last_error()).
  std::optional<PrometheusTarget> target();
  /// Polls target() until its health is "up". False on timeout; then last_error() holds
  /// the target's health and its scrape error. Read the first samples with
  /// wait_for_value(): "up" says a scrape succeeded, not that a query already sees it.
  bool wait_for_target_up(
      std::chrono::milliseconds timeout = scaled(std::chrono::milliseconds(15'000)));

  /// An instant query (GET /api/v1/query, evaluated now). The first result's value, or the
  /// value of a scalar result; nullopt when the result is empty, is a native histogram
  /// sample, or the query failed: last_error() then says which (with Prometheus' error).
  std::optional<double> query(std::string_view promql);
  /// Re-runs query() until its value satisfies `accept` (default: any value) or `timeout`
  /// passes. The accepted value, or nullopt (last_error() has the last value or error).
  std::optional<double> wait_for_value(
      std::string_view promql, const std::function<bool(double)>& accept = {},
      std::chrono::milliseconds timeout = scaled(std::chrono::milliseconds(15'000)));
  /// The label sets (including __name__ when the query keeps it) of an instant query's
  /// results; empty when there are none or the query failed (see last_error()).
  std::vector<std::map<std::string, std::string>> series(std::string_view promql);

  /// Why the last target(), wait_for_target_up(), query() or series() came up empty.
  const std::string& last_error() const { return last_error_; }

 private:
  // GET `target` on the server: the body when it answered (any status), else nullopt with
  // last_error_ set.
  std::optional<std::string> get(const std::string& target);

  PrometheusOptions options_;
  TempDir dir_;  // declared before process_: removed after the server has stopped
  std::unique_ptr<Process> process_;
  bool binary_found_ = false;
  std::uint16_t port_ = 0;
  std::string error_;
  std::string last_error_;
};

/// $SB_PROMTOOL if set, else `promtool` on PATH, else "".
std::string promtool_binary();

struct PromtoolResult {
  int exit_code = -1;  // 0 clean, 1 parse error, 3 lint problems; -1 not run or timed out
  std::string output;  // stderr (where promtool reports), then stdout
};

/// Pipes `exposition` into `promtool check metrics` on stdin.
PromtoolResult promtool_check_metrics(std::string_view exposition);

/// Percent-encodes everything but RFC 3986 unreserved characters (for query strings).
std::string url_encode(std::string_view s);

}  // namespace sb::testing
