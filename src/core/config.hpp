// The configuration model: plain structs with the documented defaults. Components
// receive these values; only the loader (config_load.hpp) knows YAML, environment
// variables, dotenv files and command-line flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sb::core {

using Millis = std::chrono::milliseconds;

/// host:port for a listener. `port` 0 asks the kernel for an ephemeral port.
struct HostPort {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::string str() const;
  bool operator==(const HostPort&) const = default;
};

/// An upstream URL: http or https, a host, an optional port (default 80/443) and an
/// optional base path that is put in front of every forwarded path ("" or "/v1").
struct UpstreamUrl {
  std::string text{};  // as written, for logs and status documents
  bool tls = false;
  std::string host{};
  std::uint16_t port = 80;
  std::string base_path{};  // no trailing '/'; "" when the URL has no path
  /// "host:port" as sent in the Host header (port omitted when it is the scheme default).
  std::string authority() const;
  bool operator==(const UpstreamUrl&) const = default;
};

struct InstanceConfig {
  UpstreamUrl url{};
  std::string zone{};
  std::uint32_t weight = 1;
  bool operator==(const InstanceConfig&) const = default;
};

struct TlsConfig {
  bool verify = true;         // verify the upstream's certificate chain and host name
  std::string ca_file{};      // PEM bundle; empty: the system's default trust store
  std::string server_name{};  // SNI and verified name; empty: the URL's host
  bool operator==(const TlsConfig&) const = default;
};

struct PoolConfig {
  std::uint32_t max_connections = 1024;  // per worker and instance, busy + idle
  std::uint32_t max_idle = 1024;         // idle keep-alive connections kept per worker and instance
  Millis idle_timeout{60'000};           // an idle upstream connection is closed after this
  bool operator==(const PoolConfig&) const = default;
};

struct UpstreamTimeouts {
  Millis connect{2'000};    // TCP connect + TLS handshake
  Millis response{30'000};  // waiting for the response head, and between body reads
  bool operator==(const UpstreamTimeouts&) const = default;
};

/// The upstream defaults that every service inherits unless it overrides them.
struct UpstreamDefaults {
  UpstreamTimeouts timeouts{};
  PoolConfig pool{};
  TlsConfig tls{};
  bool operator==(const UpstreamDefaults&) const = default;
};

enum class Source { kDefault, kFile, kEnvironment, kCommandLine, kApi };
const char* to_string(Source s);

/// Active health checks of a service's instances: an HTTP request for `path` (or, with
/// type tcp, a TCP connect) every health.check_interval. Off while `path` is empty and the
/// type is http.
struct HealthCheckConfig {
  enum class Type { kHttp, kTcp };
  Type type = Type::kHttp;
  std::string path{};  // "/health"; empty (http): no active checks, instances route at once
  std::string method = "GET";
  std::string expect_status = "200-399";  // comma-separated codes and ranges
  std::string expect_body{};              // a substring the body must hold ("": any body)
  std::map<std::string, std::string> headers{};
  Millis timeout{2'000};
  Millis deregister_after{0};  // remove API instances unhealthy this long; 0: never
  bool enabled() const { return type == Type::kTcp || !path.empty(); }
  bool operator==(const HealthCheckConfig&) const = default;
};

/// True when `status` is in a list such as "200-399,404"; false for malformed lists.
bool status_matches(std::string_view list, int status);
/// True when `list` is a well-formed list of codes (100-599) and ranges.
bool valid_status_list(std::string_view list);

struct ServiceConfig {
  std::string name{};
  std::vector<InstanceConfig> instances{};
  bool critical = false;       // readiness fails while it has no usable instance (when enabled)
  bool preserve_host = false;  // forward the client's Host instead of the upstream's authority
  std::uint32_t panic_threshold = 0;  // percent; below this share of usable instances, use all
  UpstreamTimeouts timeouts{};        // filled from UpstreamDefaults, then overridden per service
  PoolConfig pool{};
  TlsConfig tls{};
  HealthCheckConfig health_check{};
  Source source = Source::kFile;
  bool operator==(const ServiceConfig&) const = default;
};

/// A routing rule. At least one of `prefix` and `host` is set. A prefix matches on a path
/// segment boundary ("/api" matches "/api", "/api/x", "/api?q", not "/apix"); host
/// matches the Host header without its port, case-insensitively. The longest prefix wins.
struct RouteConfig {
  std::string prefix{};                  // "" matches every path
  std::string host{};                    // "" matches every host
  std::string service{};                 // must name a configured service
  std::optional<std::string> rewrite{};  // replaces the matched prefix
  bool operator==(const RouteConfig&) const = default;
};

struct LimitsConfig {
  std::uint32_t max_connections = 10'000;       // client connections, whole process
  std::uint32_t max_request_line = 8'192;       // bytes, else 414
  std::uint32_t max_header_bytes = 32'768;      // request head bytes incl. request line, else 431
  std::uint32_t max_headers = 100;              // header fields, else 431
  std::uint64_t max_body_bytes = 128ull << 20;  // else 413
  Millis header_timeout{10'000};                // whole request head, from its first byte, else 408
  Millis body_timeout{30'000};                  // between two reads of the request body, else 408
  Millis keepalive_timeout{75'000};             // idle client connection between requests
  std::uint32_t max_response_header_bytes = 65'536;  // upstream response head, else 502
  bool operator==(const LimitsConfig&) const = default;
};

struct DrainConfig {
  Millis delay{0};         // keep accepting this long after SIGTERM (readiness already 503)
  Millis timeout{30'000};  // then wait at most this long for in-flight requests
  bool operator==(const DrainConfig&) const = default;
};

enum class LogFormat { kText, kJson };

struct LoggingConfig {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  LogFormat format = LogFormat::kText;
  bool access_log = true;
  bool operator==(const LoggingConfig&) const = default;
};

/// Parsed and validated now; used by the health-monitoring issue.
struct HealthConfig {
  Millis check_interval{30'000};               // HEALTH_CHECK_INTERVAL
  Millis metrics_collection_interval{60'000};  // METRICS_COLLECTION_INTERVAL
  bool ready_requires_critical = false;  // /health/ready fails while a critical service is unusable
  int rise = 2;                          // consecutive passing checks to become healthy
  int fall = 3;                          // consecutive failures to become unhealthy
  Millis unhealthy_interval{5'000};  // check interval while not healthy (at most check_interval)
  Millis liveness_stall{5'000};  // /health/live fails when a worker has not turned for this long
  bool operator==(const HealthConfig&) const = default;
};

/// Parsed and validated now; used by the telemetry issue.
struct TelemetryConfig {
  double sample_rate = 1.0;           // OTEL_SAMPLE_RATE, 0..1
  bool jaeger_exporter = false;       // OTEL_JAEGER_EXPORTER
  std::string jaeger_endpoint{};      // JAEGER_ENDPOINT, http(s) URL
  bool prometheus_exporter = true;    // OTEL_PROMETHEUS_EXPORTER
  std::uint16_t prometheus_port = 0;  // PROMETHEUS_PORT; 0: /metrics on the main listener
  bool operator==(const TelemetryConfig&) const = default;
};

struct ServerConfig {
  HostPort listen{};                       // --listen
  std::optional<HostPort> admin_listen{};  // operations endpoints only
  unsigned threads = 0;                    // 0: the number of cores
  bool operator==(const ServerConfig&) const = default;
};

struct Config {
  ServerConfig server{};
  LimitsConfig limits{};
  UpstreamDefaults upstream{};
  DrainConfig drain{};
  LoggingConfig logging{};
  HealthConfig health{};
  TelemetryConfig telemetry{};
  std::vector<ServiceConfig> services{};
  std::vector<RouteConfig> routes{};

  /// Where each effective value came from, keyed by dotted key path
  /// ("server.listen", "services.llm-service.instances", "routes[0].prefix"): "default",
  /// "file PATH:LINE", "env NAME", "env-file PATH:LINE (NAME)", "command line --flag", and
  /// for a service's timeouts/pool/tls keys that it does not override
  /// "inherited from upstream.KEY (<origin of upstream.KEY>)". load_config fills every key.
  std::map<std::string, std::string> origins{};

  const ServiceConfig* find_service(std::string_view name) const;
};

}  // namespace sb::core
