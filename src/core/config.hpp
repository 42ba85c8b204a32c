// The configuration model: plain structs with the documented defaults. Components
// receive these values; only the loader (config_load.hpp) knows YAML, environment
// variables, dotenv files and command-line flags.
#pragma once

#include <bitset>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ip_network.hpp"

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
  std::string query{};      // as written, without '?'; only webhook URLs may have one
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

/// A parsed status list, for the request path: one bit test per lookup.
class StatusSet {
 public:
  StatusSet() = default;
  /// The set of a list such as "500-599,429"; empty for a malformed (or empty) list.
  static StatusSet parse(std::string_view list);
  bool contains(int status) const {
    return status >= 0 && status < 600 && bits_.test(static_cast<std::size_t>(status));
  }

 private:
  std::bitset<600> bits_{};
};

/// Circuit breaker, one per instance and one per service (fed with each request's final
/// outcome). Trips on any enabled condition; `open_duration` doubles with each re-open
/// without a close in between, up to `max_open_duration`, with jitter.
struct BreakerConfig {
  bool enabled = true;
  std::uint32_t consecutive_failures = 5;  // failures in a row that trip it; 0: off
  std::uint32_t failure_rate = 50;         // percent of the window's calls; 0: off
  std::uint32_t slow_call_rate = 0;        // percent of the window's calls; 0: off
  Millis slow_call_duration{5'000};        // a call slower than this is slow
  std::uint32_t minimum_calls = 20;        // calls the window must hold before rates count
  Millis window{10'000};                   // sliding window of outcomes ...
  std::uint32_t window_buckets = 10;       // ... kept in this many buckets
  Millis open_duration{5'000};             // first open time
  Millis max_open_duration{60'000};        // cap of the doubling
  std::uint32_t half_open_probes = 3;      // probes admitted (and needed to close) when half-open
  Millis half_open_timeout{10'000};        // half-open longer than this without closing: reopen
  std::string failure_status = "500-599";  // response statuses that count as failures
  bool operator==(const BreakerConfig&) const = default;
};

/// Outlier ejection: instances whose gateway errors run in a row, or whose success rate
/// falls far below their peers', leave the rotation for base x (number of ejections).
struct OutlierConfig {
  bool enabled = true;
  std::uint32_t consecutive_gateway_errors = 5;     // 502/503/504, connect failures, resets; 0: off
  Millis interval{10'000};                          // success-rate analysis period
  std::uint32_t success_rate_minimum_hosts = 3;     // instances with enough volume to compare
  std::uint32_t success_rate_request_volume = 100;  // requests per interval to be compared
  double success_rate_stdev_factor = 1.9;           // eject below mean - factor x stdev
  Millis base_ejection_time{30'000};
  Millis max_ejection_time{300'000};
  std::uint32_t max_ejection_percent = 50;  // of a service's instances, ejected at once
  bool operator==(const OutlierConfig&) const = default;
};

enum class BalancerKind : std::uint8_t {
  kRoundRobin,
  kWeightedRoundRobin,
  kRandom,
  kLeastRequest,  // power of two choices over in-flight requests
  kPeakEwma,      // power of two choices over peak-EWMA latency x (in-flight + 1)
};
const char* to_string(BalancerKind k);

struct BalancerConfig {
  BalancerKind kind = BalancerKind::kPeakEwma;
  Millis decay{10'000};    // peak-EWMA decay time
  Millis default_rtt{30};  // latency assumed for an instance with no samples yet
  Millis slow_start{0};    // newly healthy instances ramp up over this window; 0: off
  std::uint32_t zone_min_available = 70;  // percent of the local zone that must be available
                                          // to keep traffic in it (needs server.zone)
  bool operator==(const BalancerConfig&) const = default;
};

struct RetryConfig {
  std::uint32_t max_retries = 2;            // attempts after the first; 0: off
  std::string retry_on_status = "502-504";  // statuses that are retried
  bool retry_on_connect_failure = true;     // connect refused, connect timeout
  bool retry_on_reset = true;               // connection reset or closed before an answer
  Millis backoff_base{25};                  // full jitter in [0, min(max, base x 2^n)]
  Millis backoff_max{250};
  Millis per_try_timeout{0};                  // 0: the service's timeouts.response
  std::uint32_t budget_percent = 20;          // retries at most this share of requests ...
  Millis budget_window{10'000};               // ... over this window ...
  std::uint32_t budget_min_per_second = 10;   // ... plus this floor
  std::uint64_t max_replay_body = 64 * 1024;  // larger request bodies are not retried
  bool operator==(const RetryConfig&) const = default;
};

/// Hedged requests: a second attempt to another instance when the first has not answered
/// after `delay` (0: the service's recent p95). Idempotent GETs only; spends the retry budget.
struct HedgeConfig {
  bool enabled = false;
  Millis delay{0};
  bool operator==(const HedgeConfig&) const = default;
};

/// A static answer used when the breaker is open, no instance is available, every attempt
/// failed or the deadline expired. Off while status is 0.
struct FallbackConfig {
  int status = 0;
  std::map<std::string, std::string> headers{};
  std::string body{};
  bool enabled() const { return status != 0; }
  bool operator==(const FallbackConfig&) const = default;
};

/// What a request gets on its way: per service, overridable per route.
struct RequestPolicy {
  Millis timeout{15'000};  // the request's deadline for a response head, retries included
  RetryConfig retry{};
  HedgeConfig hedge{};
  FallbackConfig fallback{};
  /// A Content-Length request body that fits the request buffer (the one kept for retries)
  /// is read whole, and so checked, before an upstream is called.
  bool request_buffering = true;
  bool operator==(const RequestPolicy&) const = default;
};

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
  BreakerConfig breaker{};
  OutlierConfig outlier{};
  BalancerConfig balancer{};
  RequestPolicy policy{};  // timeout, retry, hedge, fallback (routes may override)
  Source source = Source::kFile;
  bool operator==(const ServiceConfig&) const = default;
};

/// A routing rule. At least one of `prefix` and `host` is set. A prefix matches on a path
/// segment boundary ("/api" matches "/api", "/api/x", "/api?q", not "/apix"); host
/// matches the Host header without its port, case-insensitively. The longest prefix wins.
struct RouteConfig {
  std::string prefix{};                   // "" matches every path
  std::string host{};                     // "" matches every host
  std::string service{};                  // must name a configured service
  std::optional<std::string> rewrite{};   // replaces the matched prefix
  std::optional<RequestPolicy> policy{};  // the service's policy with this route's overrides
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
  std::uint64_t min_body_rate = 500;  // bytes/s a request body must keep up, else 408; 0: off
  Millis body_rate_grace{20'000};     // body read time allowed before min_body_rate counts
  Millis keepalive_timeout{75'000};   // idle client connection between requests
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
  double live_success_stretch = 1.0;  // check interval factor while live traffic succeeds; 1: off
  Millis degraded_latency{1'000};     // p95 at or above this: degraded; 0: off
  double degraded_error_rate = 0.25;  // error rate at or above this: degraded; 0: off
  double recover_factor = 0.8;        // healthy again below factor x both thresholds
  std::uint32_t degraded_min_samples = 20;    // fewer samples in the window: no decision
  std::uint32_t max_concurrent_checks = 256;  // active checks in flight at once
  /// Instances without an active check of their own or their service's get a TCP connect
  /// check every check_interval (kTcp), or none (kNone: only live traffic judges them).
  enum class DefaultCheck { kTcp, kNone };
  DefaultCheck default_check = DefaultCheck::kTcp;
  bool operator==(const HealthConfig&) const = default;
};

/// Tracing switches (parsed and validated; the tracing issue uses them) and metrics.
struct TelemetryConfig {
  double sample_rate = 1.0;             // OTEL_SAMPLE_RATE, 0..1
  bool jaeger_exporter = false;         // OTEL_JAEGER_EXPORTER
  std::string jaeger_endpoint{};        // JAEGER_ENDPOINT, http(s) URL
  bool prometheus_exporter = true;      // OTEL_PROMETHEUS_EXPORTER
  std::uint16_t prometheus_port = 0;    // PROMETHEUS_PORT; 0: /metrics on the main listener
  std::uint32_t series_limit = 10'000;  // per metric; past it: the overflow series
  Millis series_idle_ttl{600'000};      // series of gone instances/routes are dropped after
  enum class StatusLabel { kCode, kClass };
  StatusLabel status_code_label = StatusLabel::kCode;  // "200" or "2xx"
  bool operator==(const TelemetryConfig&) const = default;
};

/// Registry event types a webhook may ask for. The registry's own (registered, replaced,
/// deregistered, expired, health_changed) and those of the resilience components to come.
inline constexpr std::string_view kWebhookEventTypes[] = {
    "registered",     "replaced",        "deregistered", "expired",
    "health_changed", "breaker_changed", "ejected",      "returned",
};

/// A webhook sink: registry events POSTed one per request as JSON to `url`, from a bounded
/// queue, retried with exponential backoff and full jitter.
struct WebhookConfig {
  UpstreamUrl url{};                             // http or https (upstream.tls applies)
  std::vector<std::string> events{};             // event types sent; empty: every type
  std::vector<std::string> services{};           // only these services' events; empty: all
  std::map<std::string, std::string> headers{};  // added to every POST (e.g. Authorization)
  Millis timeout{5'000};          // one attempt: connect, TLS, request, response head
  std::uint32_t max_retries = 5;  // attempts after the first for 5xx, 429, network errors
  Millis backoff{500};            // retry n waits a random time in [0, min(max, base x 2^(n-1))]
  Millis max_backoff{30'000};
  std::uint32_t queue_size = 1'000;  // events held per sink; when full the oldest waiting goes
  bool operator==(const WebhookConfig&) const = default;
};

struct ServerConfig {
  HostPort listen{};                       // --listen
  std::optional<HostPort> admin_listen{};  // health endpoints and the registry API
  unsigned threads = 0;                    // 0: the number of cores
  std::string zone{};                      // this Switchboard's zone, for zone-aware balancing
  bool merge_slashes = false;              // request paths: runs of '/' become one
  bool operator==(const ServerConfig&) const = default;
};

/// Who may use the registry API (/api/services...) and where registrations may point.
/// Reads are GET and HEAD; every other method is a write (register, heartbeat, deregister,
/// breaker actions).
struct ApiConfig {
  std::string token{};     // api.token, SWITCHBOARD_API_TOKEN; "": writes from loopback only
  bool open_reads = true;  // reads without the token; false: reads follow the write rule
  std::vector<IpNetwork> allowed_networks = loopback_networks();  // for registered URLs
  bool operator==(const ApiConfig&) const = default;
};

struct Config {
  ServerConfig server{};
  ApiConfig api{};
  LimitsConfig limits{};
  UpstreamDefaults upstream{};
  DrainConfig drain{};
  LoggingConfig logging{};
  HealthConfig health{};
  TelemetryConfig telemetry{};
  std::vector<ServiceConfig> services{};
  std::vector<RouteConfig> routes{};
  std::vector<WebhookConfig> webhooks{};

  /// Where each effective value came from, keyed by dotted key path
  /// ("server.listen", "services.llm-service.instances", "routes[0].prefix"): "default",
  /// "file PATH:LINE", "env NAME", "env-file PATH:LINE (NAME)", "command line --flag", and
  /// for a service's timeouts/pool/tls keys that it does not override
  /// "inherited from upstream.KEY (<origin of upstream.KEY>)". load_config fills every key.
  std::map<std::string, std::string> origins{};

  const ServiceConfig* find_service(std::string_view name) const;
};

}  // namespace sb::core
