// The configuration's keys, each declared once: its name, where it lives in Config, its
// value format (which parses, checks, renders and describes it), the environment variable
// or command-line flag that also sets it, and its line in docs/configuration.md.
//
// A key is declared by a call in one of the visit() functions below. Each consumer is a
// visitor that walks the same declarations: the YAML reader (config_load.cpp), the
// environment and command-line layers (config_env.cpp), the `--print-config` renderer and
// the docs tables (config_render.cpp). Adding a key is one line here plus its field in
// config.hpp; the docs test (tests/core/config_docs_test.cpp) then fails until
// docs/configuration.md shows it.
//
// Internal to sb_core (and its tests): other components get Config, never this.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/config_formats.hpp"

namespace sb::core::schema {

/// The services the environment names: LLM_SERVICE_URL sets llm-service's instances, ...
struct EnvService {
  std::string_view service;
  std::string_view variable;
};
inline constexpr EnvService kEnvServices[] = {
    {"llm-service", "LLM_SERVICE_URL"},
    {"telegram-bot", "TELEGRAM_BOT_URL"},
    {"frontend", "FRONTEND_URL"},
};

// ---------------------------------------------------------------------------------------
// The keys. A visitor V has
//   key(name, T& field, format, Doc, extras...)   a leaf (extras: Env<>, Cli<>)
//   section(name, S& sub, Doc)                    a nested map, visited with visit(v, sub)
// Order matters: it is the order of --print-config, of the docs tables and of "known keys".
// ---------------------------------------------------------------------------------------

template <class V>
void visit(V& v, ServerConfig& s) {
  v.key("listen", s.listen, HostPortValue{}, {"the proxy listener"},
        Cli<HostPortValue>{"--listen", {}, "HOST:PORT"});
  v.key("admin_listen", s.admin_listen, OrNull<HostPortValue>{},
        {"optional second listener serving the health endpoints (`/health*`) and the registry "
         "API (`/api/services...`), and proxying nothing. When it is set, the proxy listener "
         "answers 404 (problem+json) for the API. Must differ from `listen` unless both use "
         "port 0"});
  v.key("threads", s.threads, UInt{0, 1024}, {"worker threads; `0` means one per core"},
        Cli<UInt>{"--threads", {1, 1024}, "N", "(1..1024)"});
  v.key("zone", s.zone, String{check_zone},
        {"this Switchboard's zone (up to 63 of `A-Za-z0-9-_.`): balancers prefer instances of "
         "the same zone (see `balancer.zone_min_available`); `\"\"`: no preference"});
  v.key("merge_slashes", s.merge_slashes, Bool{},
        {"when normalising request paths, merge runs of `/` into one (`//a///b` is `/a/b`), "
         "before dot segments are removed; see [Request paths](#request-paths)"});
}

template <class V>
void visit(V& v, ApiConfig& a) {
  v.key("token", a.token, Token{},
        {"the bearer token writes need (`Authorization: Bearer <token>`, scheme in any case; "
         "compared in constant time). At least 16 visible ASCII characters, no blanks (e.g. "
         "`openssl rand -hex 32`). `\"\"`: no token, and writes are accepted from loopback "
         "clients (`127.0.0.0/8`, `::1`) only, with a warning at start. Never logged; "
         "`--print-config` shows `\"<redacted>\"`, which is refused as a token (so a printed "
         "configuration does not run with it)"},
        Env<Token>{"SWITCHBOARD_API_TOKEN", {}});
  v.key("open_reads", a.open_reads, Bool{},
        {"reads need nothing; `false`: reads follow the write rule (the token, or a loopback "
         "client without one)"});
  v.key("allowed_networks", a.allowed_networks, Networks{},
        {"a registration's URL must point into one of these: an address host is checked as it "
         "is, a host name is resolved (on the API's own thread, never a worker) and each of its "
         "addresses must be in the list. Networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`); "
         "a bare address is a `/32` or `/128`; host bits must be clear (`10.0.0.1/8` is an "
         "error). `[]` refuses every registration. A deployment on a private network lists its "
         "ranges"});
}

template <class V>
void visit(V& v, LimitsConfig& l) {
  v.key("max_connections", l.max_connections, UInt{1, 1'000'000},
        {"open client connections, whole process"});
  v.key("max_request_line", l.max_request_line, Size{64, kMiB},
        {"request line [414]; at most `max_header_bytes`"});
  v.key("max_header_bytes", l.max_header_bytes, Size{kKiB, kMiB},
        {"request head including the request line [431]"});
  v.key("max_headers", l.max_headers, UInt{1, 10'000}, {"header fields [431]"});
  v.key("max_body_bytes", l.max_body_bytes, Size{0, 64 * kGiB}, {"request body [413]"});
  v.key("header_timeout", l.header_timeout, Duration{Millis(1)},
        {"the whole request head, from its first byte [408]"});
  v.key("body_timeout", l.body_timeout, Duration{Millis(1)},
        {"between two reads of the request body [408]"});
  v.key("min_body_rate", l.min_body_rate, Size{0, kGiB},
        {"bytes per second a request body must keep up once `body_rate_grace` is spent [408]; "
         "only the time the gateway waits for body bytes counts (not time spent waiting on the "
         "upstream); `0`: off"});
  v.key("body_rate_grace", l.body_rate_grace, Duration{Millis(0)},
        {"body read time before `min_body_rate` applies: a body must have arrived by "
         "`body_rate_grace + bytes / min_body_rate` of waiting"});
  v.key("keepalive_timeout", l.keepalive_timeout, Duration{Millis(1)},
        {"idle client connection between requests"});
  v.key("max_response_header_bytes", l.max_response_header_bytes, Size{kKiB, kMiB},
        {"upstream response head [502]"});
}

template <class V>
void visit(V& v, UpstreamTimeouts& t) {
  v.key("connect", t.connect, Duration{Millis(1)}, {"TCP connect plus TLS handshake"});
  v.key("response", t.response, Duration{Millis(1)},
        {"waiting for the response head, and between body reads"});
}

template <class V>
void visit(V& v, PoolConfig& p) {
  v.key("max_connections", p.max_connections, UInt{1, 100'000},
        {"connections per worker thread and instance, busy plus idle; a request that finds "
         "them all busy gets 503 at once (no queue yet)"});
  v.key("max_idle", p.max_idle, UInt{0, 100'000},
        {"idle keep-alive connections kept per worker and instance. Written for a pool, it may "
         "not exceed that pool's `max_connections`; a default or inherited value above it is "
         "lowered to it (and its origin says so)."});
  v.key("idle_timeout", p.idle_timeout, Duration{Millis(1)},
        {"an idle connection is closed after this"});
}

template <class V>
void visit(V& v, TlsConfig& t) {
  v.key("verify", t.verify, Bool{},
        {"verify the certificate chain and host name of `https` instances"});
  v.key("ca_file", t.ca_file, String{check_ca_file},
        {"PEM bundle to verify with (must be readable; relative to the working directory); "
         "`\"\"`: the system trust store"});
  v.key("server_name", t.server_name, String{check_server_name},
        {"SNI and the name verified; `\"\"`: the URL's host"});
}

template <class V>
void visit(V& v, UpstreamDefaults& u) {
  v.section("timeouts", u.timeouts, {});
  v.section("pool", u.pool, {});
  v.section("tls", u.tls, {});
}

template <class V>
void visit(V& v, DrainConfig& d) {
  v.key("delay", d.delay, Duration{Millis(0)},
        {"keep accepting this long, so load balancers notice"});
  v.key("timeout", d.timeout, Duration{Millis(0)},
        {"then wait at most this long for in-flight requests (connections with none, idle or "
         "still sending a head, are closed when the listeners close)"});
}

inline const Choice<LogFormat>& log_format_choice() {
  static const Choice<LogFormat> c{{{"text", LogFormat::kText}, {"json", LogFormat::kJson}},
                                   "expected text or json, got {}"};
  return c;
}

template <class V>
void visit(V& v, LoggingConfig& l) {
  v.key("level", l.level,
        String{check_log_level, "`trace`, `debug`, `info`, `warn`, `error`, `critical` or `off`"},
        {"the least severe level logged (`warning` is the same as `warn`)"},
        Cli<String>{"--log-level", {check_log_level}, "LEVEL"});
  v.key("format", l.format, log_format_choice(), {"`json`: one object per line"},
        Cli<Choice<LogFormat>>{"--log-format", log_format_choice(), "FORMAT"});
  v.key("access_log", l.access_log, Bool{}, {"one line per proxied request"});
}

inline const Choice<HealthConfig::DefaultCheck>& default_check_choice() {
  static const Choice<HealthConfig::DefaultCheck> c{
      {{"tcp", HealthConfig::DefaultCheck::kTcp}, {"none", HealthConfig::DefaultCheck::kNone}},
      "expected tcp or none, got {}"};
  return c;
}

template <class V>
void visit(V& v, HealthConfig& h) {
  v.key("check_interval", h.check_interval, Duration{Millis(1)},
        {"interval of the active health checks"}, Env<EnvMillis>{"HEALTH_CHECK_INTERVAL", {}});
  v.key("metrics_collection_interval", h.metrics_collection_interval, Duration{Millis(1)},
        {"interval of metrics collection; also the window of the degraded figures"},
        Env<EnvMillis>{"METRICS_COLLECTION_INTERVAL", {}});
  v.key("ready_requires_critical", h.ready_requires_critical, Bool{},
        {"`/health/ready` fails while a `critical` service has no usable instance"});
  v.key("liveness_stall", h.liveness_stall, Duration{Millis(1)},
        {"`/health/live` fails when a worker has not turned for this long"});
  v.key("rise", h.rise, UInt{1, 100}, {"passing checks in a row that make an instance healthy"});
  v.key("fall", h.fall, UInt{1, 100},
        {"failures in a row (checks or live 5xx/resets/timeouts) that make it unhealthy"});
  v.key("unhealthy_interval", h.unhealthy_interval, Duration{Millis(1)},
        {"check interval while an instance is not healthy (at most `check_interval`)"});
  v.key("live_success_stretch", h.live_success_stretch, Number{1.0, 10.0},
        {"while live traffic to an instance succeeds, its check interval is multiplied by this",
         "`1` (off)"});
  v.key("degraded_latency", h.degraded_latency, Duration{Millis(0)},
        {"an instance whose p95 latency (live traffic and checks, over "
         "`metrics_collection_interval`) reaches this is `degraded`; `0s`: off"});
  v.key("degraded_error_rate", h.degraded_error_rate, Number{0.0, 1.0},
        {"... or whose error rate reaches this; `0`: off"});
  v.key("recover_factor", h.recover_factor, Number{0.01, 1.0},
        {"a degraded instance is healthy again when both figures are below factor x their "
         "threshold (hysteresis)"});
  v.key("degraded_min_samples", h.degraded_min_samples, UInt{1, 1'000'000},
        {"with fewer samples in the window, the state does not change"});
  v.key("max_concurrent_checks", h.max_concurrent_checks, UInt{1, 100'000},
        {"active checks in flight at once (while under this, the checker starts a check when it "
         "is due)"});
  v.key("default_check", h.default_check, default_check_choice(),
        {"instances with no check of their own (API `check`) or of their service "
         "(`health_check`) get a TCP connect check every `check_interval`, the first one "
         "interval after the instance appears; they take traffic from the start, `fall` failed "
         "connects take them out and `rise` good ones bring them back (reason `check failed: "
         "TCP connect: ...`). Switchboard's own instance is not checked. `none`: no check, only "
         "live traffic shows in the status document"});
}

inline const Choice<TelemetryConfig::StatusLabel>& status_label_choice() {
  static const Choice<TelemetryConfig::StatusLabel> c{
      {{"code", TelemetryConfig::StatusLabel::kCode},
       {"class", TelemetryConfig::StatusLabel::kClass}},
      "expected code or class, got {}"};
  return c;
}

// The switches first, then where they send: the environment layer applies (and reports)
// the variables in this order too.
template <class V>
void visit(V& v, TelemetryConfig& t) {
  v.key("sample_rate", t.sample_rate, UnitInterval{}, {"fraction of traces kept"},
        Env<UnitInterval>{"OTEL_SAMPLE_RATE", {}});
  v.key("jaeger_exporter", t.jaeger_exporter, Bool{},
        {"export spans over OTLP; needs `jaeger_endpoint`"},
        Env<EnvBool>{"OTEL_JAEGER_EXPORTER", {}});
  v.key("prometheus_exporter", t.prometheus_exporter, Bool{},
        {"serve `GET /metrics` (Prometheus text, OpenMetrics or protobuf with native "
         "histograms, as the scraper asks): on the admin listener when there is one, else on "
         "the main one, and on `prometheus_port` when set; `false`: no `/metrics` anywhere"},
        Env<EnvBool>{"OTEL_PROMETHEUS_EXPORTER", {}});
  v.key("jaeger_endpoint", t.jaeger_endpoint, String{check_jaeger_endpoint, "URL or `\"\"`"},
        {"where spans go (http or https)"},
        Env<String>{"JAEGER_ENDPOINT", {check_jaeger_endpoint, "http or https URL"}});
  v.key("prometheus_port", t.prometheus_port, UInt{0, 65535},
        {"also serve `/metrics` on this port (on the main listener's address, nothing else "
         "served there); `0`: only on the main (or admin) listener"},
        Env<EnvPort>{"PROMETHEUS_PORT", {}});
  v.key("series_limit", t.series_limit, UInt{1, 10'000'000},
        {"label sets per metric; past it new ones are counted in one series labelled "
         "`otel_metric_overflow=\"true\"` and in `switchboard_metric_series_overflow_total`"});
  v.key("series_idle_ttl", t.series_idle_ttl, Duration{Millis(1)},
        {"series of instances and routes that are gone are dropped this long after"});
  v.key("status_code_label", t.status_code_label, status_label_choice(),
        {"`http_response_status_code` as the code (`503`) or its class (`5xx`: fewer series)"});
}

template <class V>
void visit(V& v, InstanceConfig& i) {
  v.key("url", i.url, UrlValue{}, {"required"});
  v.key("zone", i.zone, String{check_zone}, {"the instance's zone"});
  v.key("weight", i.weight, UInt{1, 1000}, {"its share of traffic, relative to the others"});
}

inline const Choice<HealthCheckConfig::Type>& check_type_choice() {
  static const Choice<HealthCheckConfig::Type> c{
      {{"http", HealthCheckConfig::Type::kHttp}, {"tcp", HealthCheckConfig::Type::kTcp}},
      "bad type {}: http or tcp"};
  return c;
}

template <class V>
void visit(V& v, HealthCheckConfig& c) {
  v.key("type", c.type, check_type_choice(),
        {"`tcp`: a TCP connect is the check (for https instances, also the TLS handshake with "
         "the service's `tls` settings)"});
  v.key("path", c.path, String{check_check_path},
        {"active HTTP checks of this path (under the instance's base path) every "
         "`health.check_interval` (`HEALTH_CHECK_INTERVAL`), with jitter, and every "
         "`health.unhealthy_interval` while an instance is not healthy. `health.rise` passes in "
         "a row make an instance healthy, `health.fall` failures (checks or live "
         "5xx/resets/timeouts) unhealthy. Instances get no traffic until proven and none while "
         "unhealthy (503 when no instance can take the request). `\"\"` with type `http`: no "
         "checks, every instance takes traffic."});
  v.key("method", c.method, String{check_method, "upper-case token", false, true},
        {"the request method"});
  v.key("expect_status", c.expect_status, String{check_expect_status, "status list"},
        {"codes and ranges that pass, e.g. `\"200-299,418\"`"});
  v.key("expect_body", c.expect_body, String{},
        {"text the body must contain (read up to 4 KiB with the head)"});
  v.key("headers", c.headers, Headers{}, {"extra request headers"});
  v.key("timeout", c.timeout, Duration{Millis(1)},
        {"bound on one check (connect, request, response)"});
  v.key("deregister_after", c.deregister_after, Duration{Millis(0)},
        {"an instance registered through the API whose checks have failed this long is removed "
         "(configured instances stay)",
         "`0s` (off)"});
}

template <class V>
void visit(V& v, BreakerConfig& b) {
  v.key("enabled", b.enabled, Bool{}, {"`false`: never opens"});
  v.key("consecutive_failures", b.consecutive_failures, UInt{0, 1'000'000},
        {"failures in a row that open it; `0`: off"});
  v.key("failure_rate", b.failure_rate, Percent{},
        {"failures of the window's calls that open it; `0`: off"});
  v.key("slow_call_rate", b.slow_call_rate, Percent{},
        {"slow calls of the window's calls that open it", "`0` (off)"});
  v.key("slow_call_duration", b.slow_call_duration, Duration{Millis(1)},
        {"a call slower than this is slow"});
  v.key("minimum_calls", b.minimum_calls, UInt{1, 1'000'000},
        {"calls the window must hold before the rates count"});
  v.key("window", b.window, Duration{Millis(10)}, {"the sliding window"});
  v.key("window_buckets", b.window_buckets, UInt{1, 1'000},
        {"buckets of the window (each at least 1ms wide); the oldest leaves as a whole"});
  v.key("open_duration", b.open_duration, Duration{Millis(1)},
        {"the first open time; doubles with each reopen without a close in between, with "
         "+-10% jitter"});
  v.key("max_open_duration", b.max_open_duration, Duration{Millis(1)},
        {"cap of the doubling (at least `open_duration`)"});
  v.key("half_open_probes", b.half_open_probes, UInt{1, 1'000},
        {"probes admitted at once, and successes needed to close"});
  v.key("half_open_timeout", b.half_open_timeout, Duration{Millis(1)},
        {"a half-open breaker that has not closed by then opens again"});
  v.key("failure_status", b.failure_status, String{check_status_list, "status list"},
        {"response statuses that are failures (connect errors, resets and timeouts always are; "
         "4xx never by default)"});
}

template <class V>
void visit(V& v, OutlierConfig& o) {
  v.key("enabled", o.enabled, Bool{}, {"`false`: never ejects"});
  v.key("consecutive_gateway_errors", o.consecutive_gateway_errors, UInt{0, 1'000'000},
        {"gateway errors in a row that eject an instance; `0`: off"});
  v.key("interval", o.interval, Duration{Millis(10)}, {"how often success rates are compared"});
  v.key("success_rate_minimum_hosts", o.success_rate_minimum_hosts, UInt{1, 10'000},
        {"instances with enough requests needed for the comparison"});
  v.key("success_rate_request_volume", o.success_rate_request_volume, UInt{1, 1'000'000},
        {"requests in an interval that make an instance count"});
  v.key("success_rate_stdev_factor", o.success_rate_stdev_factor, Number{0.1, 10.0},
        {"ejected below the mean minus this many standard deviations"});
  v.key("base_ejection_time", o.base_ejection_time, Duration{Millis(1)},
        {"time out, times the number of ejections"});
  v.key("max_ejection_time", o.max_ejection_time, Duration{Millis(1)},
        {"cap of the time out (at least `base_ejection_time`)"});
  v.key("max_ejection_percent", o.max_ejection_percent, Percent{},
        {"share of a service's instances out at once (at least one of two or more)"});
}

inline const Choice<BalancerKind>& balancer_kind_choice() {
  static const Choice<BalancerKind> c{
      {{"round_robin", BalancerKind::kRoundRobin},
       {"weighted_round_robin", BalancerKind::kWeightedRoundRobin},
       {"random", BalancerKind::kRandom},
       {"least_request", BalancerKind::kLeastRequest},
       {"peak_ewma", BalancerKind::kPeakEwma}},
      "bad kind {}: round_robin, weighted_round_robin, random, least_request or peak_ewma"};
  return c;
}

template <class V>
void visit(V& v, BalancerConfig& b) {
  v.key("kind", b.kind, balancer_kind_choice(),
        {"`least_request`: the less loaded of two random instances; `peak_ewma`: the cheaper of "
         "two by peak-EWMA latency x (in-flight + 1) / weight. An instance not measured yet is "
         "probed first, one request at a time."});
  v.key("decay", b.decay, Duration{Millis(1)}, {"how fast the latency estimate forgets"});
  v.key("default_rtt", b.default_rtt, Duration{Millis(1)},
        {"the latency assumed before the first answer"});
  v.key("slow_start", b.slow_start, Duration{Millis(0)},
        {"an instance that becomes available (new, back from failing its checks, or back from "
         "an outlier ejection) ramps from 10% to full weight over this",
         "`0s` (off)"});
  v.key("zone_min_available", b.zone_min_available, Percent{},
        {"with `server.zone` set, instances of that zone are preferred while at least this "
         "share of them is available"});
}

template <class V>
void visit(V& v, RetryConfig& r) {
  v.key("max_retries", r.max_retries, UInt{0, 10}, {"attempts after the first"});
  v.key("retry_on_status", r.retry_on_status, String{check_status_list, "status list"},
        {"answers that are retried"});
  v.key("retry_on_connect_failure", r.retry_on_connect_failure, Bool{},
        {"retry connect refused/timeout/TLS failure"});
  v.key("retry_on_reset", r.retry_on_reset, Bool{},
        {"retry a connection closed or reset before an answer"});
  v.key("backoff_base", r.backoff_base, Duration{Millis(0)},
        {"wait before retry n: uniform in [0, min(`backoff_max`, `backoff_base` x 2^n)]"});
  v.key("backoff_max", r.backoff_max, Duration{Millis(0)},
        {"cap of that wait (at least `backoff_base`); a `Retry-After` up to it is honoured"});
  v.key("per_try_timeout", r.per_try_timeout, Duration{Millis(0)},
        {"each attempt's own timeout (`0s`: the service's `timeouts.response`); when set, "
         "timeouts are retried too"});
  v.key("budget_percent", r.budget_percent, Percent{},
        {"retries are at most this share of the requests over `budget_window` ..."});
  v.key("budget_window", r.budget_window, Duration{Millis(1'000)},
        {"the budget's sliding window (10 buckets)"});
  v.key("budget_min_per_second", r.budget_min_per_second, UInt{0, 1'000'000},
        {"... or, while the window holds fewer than this x its seconds, this many per second (a "
         "floor for quiet services, not an addition: a busy service in a total outage sends at "
         "most 1.2 requests per request)"});
  v.key("max_replay_body", r.max_replay_body, Size{0, kMiB},
        {"request bodies up to this size are kept whole to be resent (a chunked one counts its "
         "encoded bytes against the buffer and its decoded ones against this); larger ones are "
         "not retried"});
}

template <class V>
void visit(V& v, HedgeConfig& h) {
  v.key("enabled", h.enabled, Bool{}, {"send a second attempt when the first is slow"});
  v.key("delay", h.delay, Duration{Millis(0)}, {"how long the first attempt has alone"});
}

template <class V>
void visit(V& v, FallbackConfig& f) {
  v.key("status", f.status, UInt{0, 599},
        {"the status of the static answer (200-599); `0`: no fallback"});
  v.key("headers", f.headers, Headers{{"content-length", "transfer-encoding", "connection"}},
        {"its headers (`Content-Length`, `Transfer-Encoding` and `Connection` are set by "
         "Switchboard)"});
  v.key("body", f.body, String{}, {"its body"});
}

/// request_timeout, retry, hedge and fallback: a service's request policy, which a route
/// may override key by key.
template <class V>
void visit(V& v, RequestPolicy& p) {
  v.key("request_timeout", p.timeout, Duration{Millis(1)},
        {"the request's deadline, retries and backoff included"});
  v.key("request_buffering", p.request_buffering, Bool{},
        {"a Content-Length request body that fits the request buffer (64 KiB) is read whole "
         "before an upstream is called ([resilience](#resilience))"});
  v.section("retry", p.retry, {"retries and their budget ([resilience](#resilience))"});
  v.section("hedge", p.hedge, {"hedged requests ([resilience](#resilience))"});
  v.section("fallback", p.fallback,
            {"a static answer when the service cannot give one ([resilience](#resilience))"});
}

template <class V>
void visit(V& v, ServiceConfig& s) {
  v.key("instances", s.instances, Instances{},
        {"required (here or from the environment/command line), at least one. Each item is a "
         "URL string, or a map with `url` (required), `zone` (up to 63 of `A-Za-z0-9-_.`, "
         "default `\"\"`) and `weight` (1..1000, default 1). The same endpoint may not appear "
         "twice.",
         "(none)"});
  v.key("critical", s.critical, Bool{},
        {"counts for `/health/ready` when `health.ready_requires_critical` is on"});
  v.key("preserve_host", s.preserve_host, Bool{},
        {"forward the client's `Host` instead of the instance's authority"});
  v.key("panic_threshold", s.panic_threshold, Percent{},
        {"when fewer than this share of the instances pass their checks, traffic spreads over "
         "all of them instead of 503",
         "`0` (off)"});
  v.section("timeouts", s.timeouts,
            {"as in [`upstream`](#upstream), key by key", "from `upstream`"});
  v.section("pool", s.pool, {"as in [`upstream`](#upstream), key by key", "from `upstream`"});
  v.section("tls", s.tls, {"as in [`upstream`](#upstream), key by key", "from `upstream`"});
  v.section("health_check", s.health_check, {});
  v.section("breaker", s.breaker, {"circuit breakers ([resilience](#resilience))"});
  v.section("outlier", s.outlier, {"outlier ejection ([resilience](#resilience))"});
  v.section("balancer", s.balancer, {"load balancing ([resilience](#resilience))"});
  visit(v, s.policy);
}

/// A route. Its request_timeout, retry, hedge and fallback override its service's policy
/// (RouteConfig::policy holds the result); the visitors handle them through route_policy().
template <class V>
void visit(V& v, RouteConfig& r) {
  v.key("prefix", r.prefix, String{check_route_path, "path", true},
        {"starts with `/`, no blanks, `?` or `#`. Matches on a path-segment boundary: `/api` "
         "matches `/api`, `/api/x`, `/api?q`, not `/apix`."});
  v.key("host", r.host, String{check_route_host, "host name", true},
        {"matches the `Host` header without its port, case-insensitively; no port here; IPv6 "
         "as `[::1]`"});
  v.key("service", r.service, String{check_route_service, "service name"},
        {"must name a service defined by any layer", "required"});
  v.key("rewrite", r.rewrite, OrNull<String>{{check_route_path, "path"}, true},
        {"replaces the matched prefix (`/llm` with `rewrite: /` sends `/llm/chat` as `/chat`)"});
  v.route_policy(r.policy);
}

template <class V>
void visit(V& v, WebhookConfig& w) {
  v.key("url", w.url, UrlValue{.allow_query = true},
        {"`http` or `https`, checked like an instance URL (no user info or fragment), but a "
         "query is allowed. Its path and query, as written, are the request target. `https` "
         "uses the `upstream.tls` settings (CA file, verification, server name).",
         "required"});
  v.key("events", w.events, StringList{"event types", check_event_type},
        {"`registered`, `replaced`, `deregistered`, `expired`, `health_changed`; "
         "`breaker_changed`, `ejected` and `returned` are accepted for the resilience "
         "components. Unknown or repeated types are errors.",
         "`[]` (every type)"});
  v.key("services", w.services, StringList{"service names", check_listed_service_name},
        {"only events about these services (names are not checked against the configured "
         "services: API registrations count too)",
         "`[]` (every service)"});
  v.key("headers", w.headers,
        Headers{{"host", "content-length", "transfer-encoding", "connection", "content-type",
                 "user-agent", "x-switchboard-event-id", "x-switchboard-event"}},
        {"added to every request, e.g. `Authorization`. `Host`, `Content-Type`, "
         "`Content-Length`, `Transfer-Encoding`, `Connection`, `User-Agent`, "
         "`X-Switchboard-Event-Id` and `X-Switchboard-Event` are set by Switchboard and refused "
         "here."});
  v.key("timeout", w.timeout, Duration{Millis(1)},
        {"one attempt: connect, TLS handshake, request and response head"});
  v.key("max_retries", w.max_retries, UInt{0, 100},
        {"attempts after the first for retryable outcomes"});
  v.key("backoff", w.backoff, Duration{Millis(1)},
        {"retry *n* waits a random time in [0, min(`max_backoff`, `backoff` x 2^(n-1))] (\"full "
         "jitter\")"});
  v.key("max_backoff", w.max_backoff, Duration{Millis(1)},
        {"cap of that exponential; at least `backoff`"});
  v.key("queue_size", w.queue_size, UInt{1, 1'000'000},
        {"events held for this sink, the one being attempted included"});
}

/// The top-level sections in file order. Services, routes and webhooks are collections:
/// each visitor says what to do with them (services(), routes(), webhooks()).
template <class V>
void visit(V& v, Config& c) {
  v.section("server", c.server, {});
  v.section("api", c.api, {});
  v.section("limits", c.limits, {});
  v.section("upstream", c.upstream, {});
  v.section("drain", c.drain, {});
  v.section("logging", c.logging, {});
  v.section("health", c.health, {});
  v.section("telemetry", c.telemetry, {});
  v.services(c.services);  // after upstream: services inherit its values
  v.routes(c.routes);
  v.webhooks(c.webhooks);
}

/// A base for visitors that walk the keys of nested sections only, keeping the path
/// ("upstream.timeouts.") in `prefix`: services, routes, webhooks and route policies are
/// skipped. `Derived` is the visitor (its key() is called).
template <class Derived>
class SectionWalker {
 public:
  template <class S>
  void section(std::string_view name, S& sub, const Doc&) {
    const std::string saved = prefix;
    prefix += std::string(name) + ".";
    visit(static_cast<Derived&>(*this), sub);
    prefix = saved;
  }
  template <class C>
  void services(C&) {}
  template <class C>
  void routes(C&) {}
  template <class C>
  void webhooks(C&) {}
  template <class P>
  void route_policy(P&) {}

 protected:
  std::string prefix;
};

/// Collects the leaf key paths under a struct ("timeouts.connect", ...), in declaration
/// order: for keys that follow another's ("inherited from upstream.timeouts.connect").
class LeafPaths : public SectionWalker<LeafPaths> {
 public:
  template <class T, class F, class... X>
  void key(std::string_view name, T&, const F&, const Doc&, const X&...) {
    out.push_back(prefix + std::string(name));
  }

  std::vector<std::string> out;
};

/// The names of the keys and sections directly under a struct, in declaration order
/// (a route takes a service policy's: "request_timeout", "retry", ...).
class TopKeys : public SectionWalker<TopKeys> {
 public:
  template <class S>
  void section(std::string_view name, S&, const Doc&) {
    out.push_back(name);
  }
  template <class T, class F, class... X>
  void key(std::string_view name, T&, const F&, const Doc&, const X&...) {
    out.push_back(name);
  }

  std::vector<std::string_view> out;
};

template <class S>
std::vector<std::string_view> top_keys() {
  TopKeys v;
  S none{};
  visit(v, none);
  return std::move(v.out);
}

template <class S>
std::vector<std::string> leaf_paths(const S& s) {
  LeafPaths v;
  S copy = s;  // the visitor takes the fields by reference; this one only reads names
  visit(v, copy);
  return std::move(v.out);
}

}  // namespace sb::core::schema
