#include "core/config_load.hpp"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <boost/url/ipv4_address.hpp>
#include <boost/url/ipv6_address.hpp>
#include <boost/url/parse.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/dotenv.hpp"
#include "core/logging.hpp"
#include "core/names.hpp"
#include "core/text.hpp"

extern char** environ;  // NOLINT: POSIX

namespace sb::core {
namespace {

// ---------------------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------------------

constexpr Millis kMaxDuration = std::chrono::hours(24);
constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB * 1024;
constexpr std::uint64_t kGiB = kMiB * 1024;
constexpr std::uint64_t kTiB = kGiB * 1024;

constexpr const char* kDurationHint = "use e.g. 250ms, 10s, 2m";
constexpr const char* kSizeHint = "use e.g. 65536, 512KiB, 64MiB, 1GiB";
constexpr const char* kHostPortHint = "expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080";
constexpr const char* kLogLevels = "trace, debug, info, warn, error, critical or off";

// Splits "123unit" into the number and the unit; false when there are no leading digits.
bool split_number_unit(std::string_view text, std::uint64_t* n, std::string_view* unit) {
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (!parse_digits(text.substr(0, i), n)) return false;
  *unit = text.substr(i);
  return true;
}

// A DNS-style host name (we also allow '_', which Docker and Compose service names use).
// Strings of only digits and dots are not names: "1.2.3.4.5" is a mistyped address.
bool valid_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '-' || h.front() == '.') return false;
  bool only_digits_and_dots = true;
  for (char c : h) {
    if (!is_alnum(c) && c != '-' && c != '.' && c != '_') return false;
    if (!is_digit(c) && c != '.') only_digits_and_dots = false;
  }
  return !only_digits_and_dots;
}

bool valid_ipv4(std::string_view h) {
  return static_cast<bool>(boost::urls::parse_ipv4_address(h));
}
bool valid_ipv6(std::string_view h) {
  return static_cast<bool>(boost::urls::parse_ipv6_address(h));
}

// Reads a whole regular file of at most kMaxReadBytes. On failure returns nullopt and sets
// `why`. Only regular files: /dev/zero would grow forever and a FIFO would block startup.
constexpr std::size_t kMaxReadBytes = 4u << 20;

std::optional<std::string> read_file(const std::string& path, std::string* why) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *why = std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    ::close(fd);
    return std::nullopt;
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxReadBytes) {
    *why = fmt::format("larger than {} MiB", kMaxReadBytes >> 20);
    ::close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *why = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxReadBytes) {  // grew while we read
      *why = fmt::format("larger than {} MiB", kMaxReadBytes >> 20);
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return out;
}

// The config's wording of a bad service name (the API words it its own way).
bool valid_service_name(std::string_view name, std::string* why) {
  switch (service_name_problem(name)) {
    case ServiceNameProblem::kNone:
      return true;
    case ServiceNameProblem::kLength:
    case ServiceNameProblem::kCharacters:
      *why = fmt::format("bad service name (use {})", kServiceNameRule);
      return false;
    case ServiceNameProblem::kReserved:
      break;
  }
  *why = fmt::format("\"{}\" is reserved (it is an API path); choose another name", name);
  return false;
}

// A route path (prefix or rewrite): starts with '/', no blanks, controls, '?' or '#'.
std::optional<std::string> check_route_path(std::string_view p) {
  if (p.empty() || p.front() != '/') return fmt::format("must start with '/', got \"{}\"", p);
  for (unsigned char c : p) {
    if (c <= 0x20 || c == 0x7f || c == '?' || c == '#')
      return fmt::format("must be a plain path (no blanks, '?' or '#'), got \"{}\"", p);
  }
  return std::nullopt;
}

bool same_endpoint(const UpstreamUrl& a, const UpstreamUrl& b) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return a.tls == b.tls && a.port == b.port && a.base_path == b.base_path &&
         lower(a.host) == lower(b.host);
}

std::optional<bool> parse_env_bool(std::string_view v) {
  std::string s(v);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return std::nullopt;
}

std::optional<double> parse_unit_interval(std::string_view v) {
  double d = 0;
  const auto* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, d);
  if (v.empty() || ec != std::errc() || ptr != end || !std::isfinite(d) || d < 0 || d > 1)
    return std::nullopt;
  return d;
}

// ---------------------------------------------------------------------------------------
// Rendering (also the list of every leaf key path, for "default" origins)
// ---------------------------------------------------------------------------------------

// Walks the configuration in render order. Each leaf goes out as "key: value  # origin";
// `paths`, when set, collects every leaf key path instead.
class Renderer {
 public:
  Renderer(const Config& c, std::vector<std::string>* paths) : c_(c), paths_(paths) {}

  std::string run() {
    out_ =
        "# Effective Switchboard configuration. After each value: where it came from.\n"
        "# This is itself a valid config file.\n";
    const auto& s = c_.server;
    section(0, "server");
    leaf(2, "listen", quote(s.listen.str()), "server.listen");
    leaf(2, "admin_listen", s.admin_listen ? quote(s.admin_listen->str()) : "null",
         "server.admin_listen");
    leaf(2, "threads", fmt::format("{}", s.threads), "server.threads");
    leaf(2, "zone", quote(s.zone), "server.zone");

    const auto& l = c_.limits;
    section(0, "limits");
    leaf(2, "max_connections", fmt::format("{}", l.max_connections), "limits.max_connections");
    leaf(2, "max_request_line", format_size(l.max_request_line), "limits.max_request_line");
    leaf(2, "max_header_bytes", format_size(l.max_header_bytes), "limits.max_header_bytes");
    leaf(2, "max_headers", fmt::format("{}", l.max_headers), "limits.max_headers");
    leaf(2, "max_body_bytes", format_size(l.max_body_bytes), "limits.max_body_bytes");
    leaf(2, "header_timeout", format_duration(l.header_timeout), "limits.header_timeout");
    leaf(2, "body_timeout", format_duration(l.body_timeout), "limits.body_timeout");
    leaf(2, "keepalive_timeout", format_duration(l.keepalive_timeout), "limits.keepalive_timeout");
    leaf(2, "max_response_header_bytes", format_size(l.max_response_header_bytes),
         "limits.max_response_header_bytes");

    section(0, "upstream");
    upstream_settings(2, "upstream", c_.upstream.timeouts, c_.upstream.pool, c_.upstream.tls);

    section(0, "drain");
    leaf(2, "delay", format_duration(c_.drain.delay), "drain.delay");
    leaf(2, "timeout", format_duration(c_.drain.timeout), "drain.timeout");

    section(0, "logging");
    leaf(2, "level", quote(c_.logging.level), "logging.level");
    leaf(2, "format", c_.logging.format == LogFormat::kJson ? "json" : "text", "logging.format");
    leaf(2, "access_log", boolean(c_.logging.access_log), "logging.access_log");

    const auto& h = c_.health;
    section(0, "health");
    leaf(2, "check_interval", format_duration(h.check_interval), "health.check_interval");
    leaf(2, "metrics_collection_interval", format_duration(h.metrics_collection_interval),
         "health.metrics_collection_interval");
    leaf(2, "ready_requires_critical", boolean(h.ready_requires_critical),
         "health.ready_requires_critical");
    leaf(2, "liveness_stall", format_duration(h.liveness_stall), "health.liveness_stall");
    leaf(2, "rise", fmt::format("{}", h.rise), "health.rise");
    leaf(2, "fall", fmt::format("{}", h.fall), "health.fall");
    leaf(2, "unhealthy_interval", format_duration(h.unhealthy_interval),
         "health.unhealthy_interval");
    leaf(2, "live_success_stretch", fmt::format("{}", h.live_success_stretch),
         "health.live_success_stretch");
    leaf(2, "degraded_latency", format_duration(h.degraded_latency), "health.degraded_latency");
    leaf(2, "degraded_error_rate", fmt::format("{}", h.degraded_error_rate),
         "health.degraded_error_rate");
    leaf(2, "recover_factor", fmt::format("{}", h.recover_factor), "health.recover_factor");
    leaf(2, "degraded_min_samples", fmt::format("{}", h.degraded_min_samples),
         "health.degraded_min_samples");
    leaf(2, "max_concurrent_checks", fmt::format("{}", h.max_concurrent_checks),
         "health.max_concurrent_checks");

    const auto& t = c_.telemetry;
    section(0, "telemetry");
    leaf(2, "sample_rate", fmt::format("{}", t.sample_rate), "telemetry.sample_rate");
    leaf(2, "jaeger_exporter", boolean(t.jaeger_exporter), "telemetry.jaeger_exporter");
    leaf(2, "jaeger_endpoint", quote(t.jaeger_endpoint), "telemetry.jaeger_endpoint");
    leaf(2, "prometheus_exporter", boolean(t.prometheus_exporter), "telemetry.prometheus_exporter");
    leaf(2, "prometheus_port", fmt::format("{}", t.prometheus_port), "telemetry.prometheus_port");

    if (c_.services.empty())
      out_ += "services: {}\n";
    else
      section(0, "services");
    for (const auto& svc : c_.services) {
      const std::string p = "services." + svc.name;
      section(2, svc.name == "null" ? quote(svc.name) : svc.name);
      leaf(4, "instances", instances(svc.instances), p + ".instances");
      leaf(4, "critical", boolean(svc.critical), p + ".critical");
      leaf(4, "preserve_host", boolean(svc.preserve_host), p + ".preserve_host");
      leaf(4, "panic_threshold", fmt::format("{}", svc.panic_threshold), p + ".panic_threshold");
      upstream_settings(4, p, svc.timeouts, svc.pool, svc.tls);
      const auto& hc = svc.health_check;
      section(4, "health_check");
      leaf(6, "type", hc.type == HealthCheckConfig::Type::kTcp ? "tcp" : "http",
           p + ".health_check.type");
      leaf(6, "path", quote(hc.path), p + ".health_check.path");
      leaf(6, "method", hc.method, p + ".health_check.method");
      leaf(6, "expect_status", quote(hc.expect_status), p + ".health_check.expect_status");
      leaf(6, "expect_body", quote(hc.expect_body), p + ".health_check.expect_body");
      leaf(6, "headers", map(hc.headers), p + ".health_check.headers");
      leaf(6, "timeout", format_duration(hc.timeout), p + ".health_check.timeout");
      leaf(6, "deregister_after", format_duration(hc.deregister_after),
           p + ".health_check.deregister_after");
      breaker(4, p + ".breaker", svc.breaker);
      outlier(4, p + ".outlier", svc.outlier);
      balancer(4, p + ".balancer", svc.balancer);
      policy(4, p, svc.policy);
    }

    if (c_.routes.empty())
      out_ += "routes: []\n";
    else
      section(0, "routes");
    for (std::size_t i = 0; i < c_.routes.size(); ++i) {
      const auto& r = c_.routes[i];
      const std::string p = fmt::format("routes[{}]", i);
      bool first = true;
      auto route_leaf = [&](std::string_view key, const std::string& value) {
        leaf(4, key, value, p + "." + std::string(key), first ? "  - " : "");
        first = false;
      };
      if (!r.prefix.empty()) route_leaf("prefix", quote(r.prefix));
      if (!r.host.empty()) route_leaf("host", quote(r.host));
      route_leaf("service", quote(r.service));
      if (r.rewrite) route_leaf("rewrite", quote(*r.rewrite));
      if (r.policy) policy(4, p, *r.policy);
    }

    if (c_.webhooks.empty())
      out_ += "webhooks: []\n";
    else
      section(0, "webhooks");
    for (std::size_t i = 0; i < c_.webhooks.size(); ++i) {
      const auto& w = c_.webhooks[i];
      const std::string p = fmt::format("webhooks[{}]", i);
      leaf(4, "url", quote(w.url.text), p + ".url", "  - ");
      leaf(4, "events", list(w.events), p + ".events");
      leaf(4, "services", list(w.services), p + ".services");
      leaf(4, "headers", map(w.headers), p + ".headers");
      leaf(4, "timeout", format_duration(w.timeout), p + ".timeout");
      leaf(4, "max_retries", fmt::format("{}", w.max_retries), p + ".max_retries");
      leaf(4, "backoff", format_duration(w.backoff), p + ".backoff");
      leaf(4, "max_backoff", format_duration(w.max_backoff), p + ".max_backoff");
      leaf(4, "queue_size", fmt::format("{}", w.queue_size), p + ".queue_size");
    }
    return std::move(out_);
  }

  /// The leaf paths of a request policy under `p` (".request_timeout", ".retry.max_retries",
  /// ... for p = "").
  static void policy_paths(const std::string& p, std::vector<std::string>& out) {
    const Config none;
    Renderer r(none, &out);
    r.policy(0, p, RequestPolicy{});
  }

 private:
  static std::string boolean(bool b) { return b ? "true" : "false"; }

  static std::string list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (const auto& item : v) {
      if (out.size() > 1) out += ", ";
      out += quote(item);
    }
    return out + "]";
  }

  static std::string map(const std::map<std::string, std::string>& m) {
    std::string out = "{";
    for (const auto& [k, v] : m) {
      if (out.size() > 1) out += ", ";
      out += quote(k) + ": " + quote(v);
    }
    return out + "}";
  }

  static std::string instances(const std::vector<InstanceConfig>& v) {
    std::string out = "[";
    for (const auto& i : v) {
      if (out.size() > 1) out += ", ";
      if (i.zone.empty() && i.weight == 1) {
        out += quote(i.url.text);
      } else {
        out += "{url: " + quote(i.url.text);
        if (!i.zone.empty()) out += ", zone: " + quote(i.zone);
        if (i.weight != 1) out += fmt::format(", weight: {}", i.weight);
        out += "}";
      }
    }
    return out + "]";
  }

  void upstream_settings(int indent, const std::string& p, const UpstreamTimeouts& t,
                         const PoolConfig& pool, const TlsConfig& tls) {
    const int in = indent + 2;
    section(indent, "timeouts");
    leaf(in, "connect", format_duration(t.connect), p + ".timeouts.connect");
    leaf(in, "response", format_duration(t.response), p + ".timeouts.response");
    section(indent, "pool");
    leaf(in, "max_connections", fmt::format("{}", pool.max_connections),
         p + ".pool.max_connections");
    leaf(in, "max_idle", fmt::format("{}", pool.max_idle), p + ".pool.max_idle");
    leaf(in, "idle_timeout", format_duration(pool.idle_timeout), p + ".pool.idle_timeout");
    section(indent, "tls");
    leaf(in, "verify", boolean(tls.verify), p + ".tls.verify");
    leaf(in, "ca_file", quote(tls.ca_file), p + ".tls.ca_file");
    leaf(in, "server_name", quote(tls.server_name), p + ".tls.server_name");
  }

  void breaker(int in, const std::string& p, const BreakerConfig& b) {
    section(in, "breaker");
    in += 2;
    leaf(in, "enabled", boolean(b.enabled), p + ".enabled");
    leaf(in, "consecutive_failures", fmt::format("{}", b.consecutive_failures),
         p + ".consecutive_failures");
    leaf(in, "failure_rate", fmt::format("{}", b.failure_rate), p + ".failure_rate");
    leaf(in, "slow_call_rate", fmt::format("{}", b.slow_call_rate), p + ".slow_call_rate");
    leaf(in, "slow_call_duration", format_duration(b.slow_call_duration),
         p + ".slow_call_duration");
    leaf(in, "minimum_calls", fmt::format("{}", b.minimum_calls), p + ".minimum_calls");
    leaf(in, "window", format_duration(b.window), p + ".window");
    leaf(in, "window_buckets", fmt::format("{}", b.window_buckets), p + ".window_buckets");
    leaf(in, "open_duration", format_duration(b.open_duration), p + ".open_duration");
    leaf(in, "max_open_duration", format_duration(b.max_open_duration), p + ".max_open_duration");
    leaf(in, "half_open_probes", fmt::format("{}", b.half_open_probes), p + ".half_open_probes");
    leaf(in, "half_open_timeout", format_duration(b.half_open_timeout), p + ".half_open_timeout");
    leaf(in, "failure_status", quote(b.failure_status), p + ".failure_status");
  }

  void outlier(int in, const std::string& p, const OutlierConfig& o) {
    section(in, "outlier");
    in += 2;
    leaf(in, "enabled", boolean(o.enabled), p + ".enabled");
    leaf(in, "consecutive_gateway_errors", fmt::format("{}", o.consecutive_gateway_errors),
         p + ".consecutive_gateway_errors");
    leaf(in, "interval", format_duration(o.interval), p + ".interval");
    leaf(in, "success_rate_minimum_hosts", fmt::format("{}", o.success_rate_minimum_hosts),
         p + ".success_rate_minimum_hosts");
    leaf(in, "success_rate_request_volume", fmt::format("{}", o.success_rate_request_volume),
         p + ".success_rate_request_volume");
    leaf(in, "success_rate_stdev_factor", fmt::format("{}", o.success_rate_stdev_factor),
         p + ".success_rate_stdev_factor");
    leaf(in, "base_ejection_time", format_duration(o.base_ejection_time),
         p + ".base_ejection_time");
    leaf(in, "max_ejection_time", format_duration(o.max_ejection_time), p + ".max_ejection_time");
    leaf(in, "max_ejection_percent", fmt::format("{}", o.max_ejection_percent),
         p + ".max_ejection_percent");
  }

  void balancer(int in, const std::string& p, const BalancerConfig& b) {
    section(in, "balancer");
    in += 2;
    leaf(in, "kind", to_string(b.kind), p + ".kind");
    leaf(in, "decay", format_duration(b.decay), p + ".decay");
    leaf(in, "default_rtt", format_duration(b.default_rtt), p + ".default_rtt");
    leaf(in, "slow_start", format_duration(b.slow_start), p + ".slow_start");
    leaf(in, "zone_min_available", fmt::format("{}", b.zone_min_available),
         p + ".zone_min_available");
  }

  // request_timeout, retry, hedge and fallback under `p` (a service or a route).
  void policy(int in, const std::string& p, const RequestPolicy& pol) {
    leaf(in, "request_timeout", format_duration(pol.timeout), p + ".request_timeout");
    const auto& r = pol.retry;
    const std::string rp = p + ".retry";
    section(in, "retry");
    const int i2 = in + 2;
    leaf(i2, "max_retries", fmt::format("{}", r.max_retries), rp + ".max_retries");
    leaf(i2, "retry_on_status", quote(r.retry_on_status), rp + ".retry_on_status");
    leaf(i2, "retry_on_connect_failure", boolean(r.retry_on_connect_failure),
         rp + ".retry_on_connect_failure");
    leaf(i2, "retry_on_reset", boolean(r.retry_on_reset), rp + ".retry_on_reset");
    leaf(i2, "backoff_base", format_duration(r.backoff_base), rp + ".backoff_base");
    leaf(i2, "backoff_max", format_duration(r.backoff_max), rp + ".backoff_max");
    leaf(i2, "per_try_timeout", format_duration(r.per_try_timeout), rp + ".per_try_timeout");
    leaf(i2, "budget_percent", fmt::format("{}", r.budget_percent), rp + ".budget_percent");
    leaf(i2, "budget_window", format_duration(r.budget_window), rp + ".budget_window");
    leaf(i2, "budget_min_per_second", fmt::format("{}", r.budget_min_per_second),
         rp + ".budget_min_per_second");
    leaf(i2, "max_replay_body", format_size(r.max_replay_body), rp + ".max_replay_body");
    section(in, "hedge");
    leaf(i2, "enabled", boolean(pol.hedge.enabled), p + ".hedge.enabled");
    leaf(i2, "delay", format_duration(pol.hedge.delay), p + ".hedge.delay");
    const auto& fb = pol.fallback;
    section(in, "fallback");
    leaf(i2, "status", fmt::format("{}", fb.status), p + ".fallback.status");
    leaf(i2, "headers", map(fb.headers), p + ".fallback.headers");
    leaf(i2, "body", quote(fb.body), p + ".fallback.body");
  }

  void section(int indent, std::string_view key) {
    out_.append(static_cast<std::size_t>(indent), ' ');
    out_ += key;
    out_ += ":\n";
  }

  // `lead` replaces the indentation (for the first key of a list item: "  - ").
  void leaf(int indent, std::string_view key, const std::string& value, const std::string& path,
            std::string_view lead = "") {
    if (paths_ != nullptr) paths_->push_back(path);
    if (lead.empty())
      out_.append(static_cast<std::size_t>(indent), ' ');
    else
      out_ += lead;
    out_ += key;
    out_ += ": ";
    out_ += value;
    auto it = c_.origins.find(path);
    std::string origin = it == c_.origins.end() ? "default" : it->second;
    std::replace(origin.begin(), origin.end(), '\n', ' ');
    out_ += "  # ";
    out_ += origin;
    out_ += '\n';
  }

  const Config& c_;
  std::vector<std::string>* paths_;
  std::string out_;
};

// ---------------------------------------------------------------------------------------
// The loader
// ---------------------------------------------------------------------------------------

// One map entry or list item of the YAML file, with its key path and line.
struct Field {
  std::string key;   // the last path component as written ("" for list items)
  std::string path;  // "limits.header_timeout", "services.x.instances[1]"
  YAML::Node value;
  int line = 0;      // 1-based line of the value (of the key when the value is empty)
  int key_line = 0;  // 1-based line of the key (= line for list items)
};

struct KeyHandler {
  std::string_view key;
  std::function<void(const Field&)> fn;
};

int line_of(const YAML::Node& n, int fallback) {
  if (n.IsNull() || n.Mark().is_null()) return fallback;
  return n.Mark().line + 1;
}

// "a list", "a map", "\"text\"" or "nothing": what was found instead of what we wanted.
std::string describe(const YAML::Node& n) {
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  if (n.IsScalar()) return quote(n.Scalar());
  return "nothing";
}

// The variables we read from dotenv files and the environment.
constexpr std::string_view kEnvServices[][2] = {
    {"llm-service", "LLM_SERVICE_URL"},
    {"telegram-bot", "TELEGRAM_BOT_URL"},
    {"frontend", "FRONTEND_URL"},
};
constexpr std::string_view kEnvNames[] = {
    "LLM_SERVICE_URL",
    "TELEGRAM_BOT_URL",
    "FRONTEND_URL",
    "HEALTH_CHECK_INTERVAL",
    "METRICS_COLLECTION_INTERVAL",
    "OTEL_SAMPLE_RATE",
    "OTEL_JAEGER_EXPORTER",
    "OTEL_PROMETHEUS_EXPORTER",
    "JAEGER_ENDPOINT",
    "PROMETHEUS_PORT",
};

// Records where a YAML document starts; ignores the rest (see Loader::load_file).
class DocumentProbe final : public YAML::EventHandler {
 public:
  YAML::Mark start;
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

struct EnvValue {
  std::string value;   // trimmed
  std::string origin;  // "env NAME" or "env-file PATH:LINE (NAME)"
  std::string where;   // error prefix: "env NAME" or "PATH:LINE: NAME"
};

class Loader {
 public:
  explicit Loader(const LoadOptions& options) : opt_(options) {}

  LoadResult run() {
    if (opt_.config_file) load_file(*opt_.config_file);
    load_env_layers();
    apply_env();
    apply_cli();
    check_whole();

    std::vector<std::string> paths;
    Renderer(cfg_, &paths).run();
    for (const auto& p : paths) cfg_.origins.emplace(p, "default");

    // Errors in the config file first, in line order; then the others as found.
    std::stable_sort(errors_.begin(), errors_.end(), [](const Pending& a, const Pending& b) {
      return a.line >= 0 && (b.line < 0 || a.line < b.line);
    });
    LoadResult result;
    for (auto& e : errors_) result.errors.push_back({std::move(e.message)});
    if (result.errors.empty()) result.config = std::move(cfg_);
    return result;
  }

 private:
  // --- errors and origins ---------------------------------------------------------------

  // An error not located in the config file (line -1), or at `line` of it (0: the whole).
  void error(std::string message, int line = -1) { errors_.push_back({line, std::move(message)}); }

  // An error at `line` of the config file.
  void fail_at(int line, std::string_view path, std::string_view what) {
    if (path.empty())
      errors_.push_back({line, fmt::format("{}:{}: {}", file_, line, what)});
    else
      errors_.push_back({line, fmt::format("{}:{}: {}: {}", file_, line, path, what)});
  }
  void fail(const Field& f, std::string_view what) { fail_at(f.line, f.path, what); }

  // Where the value at `path` came from, for Config::origins and for error messages.
  struct Where {
    std::string prefix;  // "FILE:LINE: path", "env NAME", "command line --flag"
    int line = -1;       // its line in the config file, else -1
  };

  void record(const std::string& path, std::string origin, std::string prefix, int line = -1) {
    cfg_.origins[path] = std::move(origin);
    where_[path] = {std::move(prefix), line};
  }
  // The value at `f` came from the file.
  void note(const Field& f) {
    record(f.path, fmt::format("file {}:{}", file_, f.key_line),
           fmt::format("{}:{}: {}", file_, f.key_line, f.path), f.key_line);
  }
  Where where(const std::string& path) const {
    auto it = where_.find(path);
    return it == where_.end() ? Where{path, -1} : it->second;
  }
  // An error about the value at `path`, wherever it came from.
  void error_about(const std::string& path, std::string_view what) {
    const Where w = where(path);
    errors_.push_back({w.line, fmt::format("{}: {}", w.prefix, what)});
  }

  // --- YAML file ----------------------------------------------------------------------

  void load_file(const std::string& path) {
    file_ = path;
    std::string why;
    auto text = read_file(path, &why);
    if (!text) {
      error(fmt::format("{}: cannot read config file: {}", path, why), 0);
      return;
    }
    YAML::Node root;
    try {
      // yaml-cpp 0.7 never finishes YAML::LoadAll on some malformed input (a stray ',' at
      // the top level, jbeder/yaml-cpp#1040), allocating until the OOM killer steps in,
      // and YAML::Load returns an empty document for it. So count the documents with the
      // event parser first, a bounded number of them, and stop when one starts where the
      // previous one did (the parser made no progress).
      std::istringstream in(*text);
      YAML::Parser parser(in);
      std::vector<YAML::Mark> starts;
      DocumentProbe probe;
      while (starts.size() < 3 && parser.HandleNextDocument(probe)) {
        if (!starts.empty() && probe.start.pos == starts.back().pos) {
          const auto pos = static_cast<std::size_t>(probe.start.pos);
          error(fmt::format("{}:{}:{}: YAML syntax error: unexpected {}", path,
                            probe.start.line + 1, probe.start.column + 1,
                            pos < text->size() ? quote(text->substr(pos, 1)) : "end of file"),
                0);
          return;
        }
        starts.push_back(probe.start);
      }
      if (starts.empty()) return;  // empty file or only comments: all defaults
      if (starts.size() > 1) {
        fail_at(starts[1].line + 1, "",
                "expected one YAML document, found more (remove the extra '---')");
        return;
      }
      root = YAML::Load(*text);               // reads the first (and only) document
    } catch (const YAML::DeepRecursion& e) {  // its message is just "bad file"
      error(fmt::format("{}:{}:{}: YAML syntax error: nested too deeply", path, e.mark.line + 1,
                        e.mark.column + 1),
            0);
      return;
    } catch (const YAML::Exception& e) {
      if (e.mark.is_null())
        error(fmt::format("{}: YAML error: {}", path, e.msg), 0);
      else
        error(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1,
                          e.mark.column + 1, e.msg),
              0);
      return;
    }
    Field f{"", "", root, line_of(root, 1), line_of(root, 1)};
    if (root.IsNull()) return;
    if (!root.IsMap()) {
      fail(f,
           "expected a map of sections (server, limits, upstream, services, routes, ...), "
           "got " +
               describe(root));
      return;
    }
    read_map(f, {
                    {"server", [this](const Field& x) { read_server(x); }},
                    {"limits", [this](const Field& x) { read_limits(x); }},
                    {"upstream",
                     [this](const Field& x) {
                       auto& u = cfg_.upstream;
                       read_map(x, {
                                       {"timeouts",
                                        [&](const Field& y) { read_timeouts(y, u.timeouts); }},
                                       {"pool", [&](const Field& y) { read_pool(y, u.pool); }},
                                       {"tls", [&](const Field& y) { read_tls(y, u.tls); }},
                                   });
                     }},
                    {"drain", [this](const Field& x) { read_drain(x); }},
                    {"logging", [this](const Field& x) { read_logging(x); }},
                    {"health", [this](const Field& x) { read_health(x); }},
                    {"telemetry", [this](const Field& x) { read_telemetry(x); }},
                    // After upstream: services inherit its values.
                    {"services", [this](const Field& x) { read_services(x); }},
                    {"routes", [this](const Field& x) { read_routes(x); }},
                    {"webhooks", [this](const Field& x) { read_webhooks(x); }},
                });
  }

  // The entries of a map (null counts as empty), without duplicates (reported).
  std::vector<Field> map_entries(const Field& f, std::string_view noun = "key") {
    std::vector<Field> out;
    if (f.value.IsNull()) return out;
    if (!f.value.IsMap()) {
      fail(f, "expected a map, got " + describe(f.value));
      return out;
    }
    std::map<std::string, int> first_line;
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
      const int key_line = line_of(it->first, f.line);
      if (!it->first.IsScalar()) {
        fail_at(key_line, f.path, "keys must be plain strings (quote them)");
        continue;
      }
      std::string key = it->first.Scalar();
      std::string path = f.path.empty() ? key : f.path + "." + key;
      const auto [pos, inserted] = first_line.emplace(key, key_line);
      if (!inserted) {
        fail_at(key_line, path,
                fmt::format("duplicate {} (first defined at line {})", noun, pos->second));
        continue;
      }
      out.push_back(
          {std::move(key), std::move(path), it->second, line_of(it->second, key_line), key_line});
    }
    return out;
  }

  // Calls the handler of each key present, in the handlers' order; reports unknown keys.
  void read_map(const Field& f, std::initializer_list<KeyHandler> handlers) {
    const auto entries = map_entries(f);
    std::vector<std::string_view> known;
    for (const auto& h : handlers) known.push_back(h.key);
    for (const auto& h : handlers) {
      for (const auto& e : entries)
        if (e.key == h.key) h.fn(e);
    }
    for (const auto& e : entries) {
      if (std::find(known.begin(), known.end(), e.key) != known.end()) continue;
      std::string hint = did_you_mean(e.key, known);
      if (hint.empty()) hint = " (known keys: " + join(known) + ")";
      fail_at(e.key_line, e.path, "unknown key" + hint);
    }
  }

  // --- leaf readers: report and return nullopt on error ---------------------------------

  std::optional<std::string> scalar(const Field& f, std::string_view expected) {
    if (f.value.IsScalar()) return f.value.Scalar();
    if (f.value.IsNull())
      fail(f, fmt::format("missing value ({})", expected));
    else
      fail(f, fmt::format("{}, got {}", expected, describe(f.value)));
    return std::nullopt;
  }

  std::optional<std::string> read_string(const Field& f) { return scalar(f, "expected a string"); }

  std::optional<bool> read_bool(const Field& f) {
    auto s = scalar(f, "expected true or false");
    if (!s) return std::nullopt;
    if (*s == "true" || *s == "True" || *s == "TRUE") return true;
    if (*s == "false" || *s == "False" || *s == "FALSE") return false;
    fail(f, fmt::format("expected true or false, got {}", quote(*s)));
    return std::nullopt;
  }

  std::optional<std::uint64_t> read_uint(const Field& f, std::uint64_t min, std::uint64_t max) {
    auto s = scalar(f, "expected an integer");
    if (!s) return std::nullopt;
    const std::string_view v = *s;
    std::uint64_t n = 0;
    const bool negative = !v.empty() && v.front() == '-';
    if (!parse_digits(negative ? v.substr(1) : v, &n)) {
      fail(f, fmt::format("expected an integer, got {}", quote(v)));
      return std::nullopt;
    }
    if (negative || n < min || n > max) {
      fail(f, fmt::format("out of range: must be between {} and {}, got {}", min, max, v));
      return std::nullopt;
    }
    return n;
  }

  std::optional<std::uint64_t> read_size(const Field& f, std::uint64_t min, std::uint64_t max) {
    auto s = scalar(f, "expected a size");
    if (!s) return std::nullopt;
    auto n = parse_size(*s);
    if (!n) {
      fail(f, fmt::format("bad size {} ({})", quote(*s), kSizeHint));
      return std::nullopt;
    }
    if (*n < min || *n > max) {
      fail(f, fmt::format("out of range: must be between {} and {}, got {}", format_size(min),
                          format_size(max), *s));
      return std::nullopt;
    }
    return n;
  }

  std::optional<Millis> read_duration(const Field& f, Millis min, Millis max = kMaxDuration) {
    auto s = scalar(f, "expected a duration");
    if (!s) return std::nullopt;
    auto d = parse_duration(*s);
    if (!d) {
      fail(f, fmt::format("bad duration {} ({})", quote(*s), kDurationHint));
      return std::nullopt;
    }
    if (*d < min || *d > max) {
      fail(f, fmt::format("out of range: must be between {} and {}, got {}", format_duration(min),
                          format_duration(max), *s));
      return std::nullopt;
    }
    return d;
  }

  std::optional<HostPort> read_host_port(const Field& f) {
    auto s = scalar(f, "expected HOST:PORT");
    if (!s) return std::nullopt;
    auto hp = parse_host_port(*s);
    if (!hp) fail(f, fmt::format("bad address {} ({})", quote(*s), kHostPortHint));
    return hp;
  }

  std::optional<UpstreamUrl> read_url(const Field& f) {
    auto s = scalar(f, "expected a URL");
    if (!s) return std::nullopt;
    std::string why;
    auto u = parse_upstream_url(*s, &why);
    if (!u) fail(f, fmt::format("bad URL {}: {}", quote(*s), why));
    return u;
  }

  // Stores a parsed value and notes its origin.
  template <class T, class U>
  void set(T& target, const std::optional<U>& v, const Field& f) {
    if (!v) return;
    target = static_cast<T>(*v);
    note(f);
  }

  // Handlers for the common kinds of leaf: parse, check the range, store, note the origin.
  template <class T>
  KeyHandler uint_key(std::string_view key, T& target, std::uint64_t min, std::uint64_t max) {
    return {key,
            [this, &target, min, max](const Field& x) { set(target, read_uint(x, min, max), x); }};
  }
  template <class T>
  KeyHandler size_key(std::string_view key, T& target, std::uint64_t min, std::uint64_t max) {
    return {key,
            [this, &target, min, max](const Field& x) { set(target, read_size(x, min, max), x); }};
  }
  KeyHandler duration_key(std::string_view key, Millis& target, Millis min) {
    return {key, [this, &target, min](const Field& x) { set(target, read_duration(x, min), x); }};
  }
  KeyHandler bool_key(std::string_view key, bool& target) {
    return {key, [this, &target](const Field& x) { set(target, read_bool(x), x); }};
  }
  KeyHandler double_key(std::string_view key, double& target, double min, double max) {
    return {key, [this, &target, min, max](const Field& x) {
              auto s = scalar(x, "expected a number");
              if (!s) return;
              double d = 0;
              const char* end = s->data() + s->size();
              const auto [ptr, ec] = std::from_chars(s->data(), end, d);
              if (s->empty() || ec != std::errc() || ptr != end || !std::isfinite(d)) {
                fail(x, fmt::format("expected a number, got {}", quote(*s)));
                return;
              }
              if (d < min || d > max) {
                fail(x,
                     fmt::format("out of range: must be between {} and {}, got {}", min, max, *s));
                return;
              }
              set(target, std::optional(d), x);
            }};
  }
  KeyHandler status_list_key(std::string_view key, std::string& target) {
    return {key, [this, &target](const Field& x) {
              auto l = read_string(x);
              if (l && !valid_status_list(*l)) {
                fail(x, fmt::format("bad status list {} (use e.g. \"500-599,429\")", quote(*l)));
                return;
              }
              set(target, l, x);
            }};
  }

  // --- sections -------------------------------------------------------------------------

  void read_server(const Field& f) {
    auto& s = cfg_.server;
    read_map(f, {
                    {"listen", [&](const Field& x) { set(s.listen, read_host_port(x), x); }},
                    {"admin_listen",
                     [&](const Field& x) {
                       if (x.value.IsNull()) {  // "admin_listen: null": no admin listener
                         s.admin_listen.reset();
                         note(x);
                       } else {
                         set(s.admin_listen, read_host_port(x), x);
                       }
                     }},
                    uint_key("threads", s.threads, 0, 1024),
                    {"zone",
                     [&](const Field& x) {
                       auto z = read_string(x);
                       if (z && !valid_zone(*z)) {
                         fail(x, fmt::format("bad zone {} (use {})", quote(*z), kZoneRule));
                         return;
                       }
                       set(s.zone, z, x);
                     }},
                });
  }

  void read_limits(const Field& f) {
    auto& l = cfg_.limits;
    read_map(f, {
                    uint_key("max_connections", l.max_connections, 1, 1'000'000),
                    size_key("max_request_line", l.max_request_line, 64, kMiB),
                    size_key("max_header_bytes", l.max_header_bytes, kKiB, kMiB),
                    uint_key("max_headers", l.max_headers, 1, 10'000),
                    size_key("max_body_bytes", l.max_body_bytes, 0, 64 * kGiB),
                    duration_key("header_timeout", l.header_timeout, Millis(1)),
                    duration_key("body_timeout", l.body_timeout, Millis(1)),
                    duration_key("keepalive_timeout", l.keepalive_timeout, Millis(1)),
                    size_key("max_response_header_bytes", l.max_response_header_bytes, kKiB, kMiB),
                });
  }

  void read_timeouts(const Field& f, UpstreamTimeouts& t) {
    read_map(f, {
                    duration_key("connect", t.connect, Millis(1)),
                    duration_key("response", t.response, Millis(1)),
                });
  }

  void read_pool(const Field& f, PoolConfig& p) {
    read_map(f, {
                    uint_key("max_connections", p.max_connections, 1, 100'000),
                    uint_key("max_idle", p.max_idle, 0, 100'000),
                    duration_key("idle_timeout", p.idle_timeout, Millis(1)),
                });
  }

  void read_tls(const Field& f, TlsConfig& t) {
    read_map(f, {
                    bool_key("verify", t.verify),
                    {"ca_file",
                     [&](const Field& x) {
                       auto s = read_string(x);
                       std::string why;
                       if (s && !s->empty() && !read_file(*s, &why)) {
                         fail(x, fmt::format("cannot read {}: {}", quote(*s), why));
                         return;
                       }
                       set(t.ca_file, s, x);
                     }},
                    {"server_name",
                     [&](const Field& x) {
                       auto s = read_string(x);
                       if (s && !s->empty() && !valid_host_name(*s) && !valid_ipv4(*s)) {
                         fail(x, fmt::format("bad host name {}", quote(*s)));
                         return;
                       }
                       set(t.server_name, s, x);
                     }},
                });
  }

  void read_drain(const Field& f) {
    auto& d = cfg_.drain;
    read_map(f, {
                    duration_key("delay", d.delay, Millis(0)),
                    duration_key("timeout", d.timeout, Millis(0)),
                });
  }

  void read_logging(const Field& f) {
    auto& l = cfg_.logging;
    read_map(f, {
                    {"level",
                     [&](const Field& x) {
                       auto s = read_string(x);
                       spdlog::level::level_enum unused;
                       if (s && !parse_log_level(*s, &unused)) {
                         fail(x, fmt::format("unknown level {} (use {})", quote(*s), kLogLevels));
                         return;
                       }
                       set(l.level, s, x);
                     }},
                    {"format",
                     [&](const Field& x) {
                       auto s = read_string(x);
                       if (s && *s != "text" && *s != "json") {
                         fail(x, fmt::format("expected text or json, got {}", quote(*s)));
                         return;
                       }
                       if (s)
                         set(l.format,
                             std::optional(*s == "json" ? LogFormat::kJson : LogFormat::kText), x);
                     }},
                    bool_key("access_log", l.access_log),
                });
  }

  void read_health(const Field& f) {
    auto& h = cfg_.health;
    read_map(f, {
                    duration_key("check_interval", h.check_interval, Millis(1)),
                    duration_key("metrics_collection_interval", h.metrics_collection_interval,
                                 Millis(1)),
                    bool_key("ready_requires_critical", h.ready_requires_critical),
                    duration_key("liveness_stall", h.liveness_stall, Millis(1)),
                    uint_key("rise", h.rise, 1, 100),
                    uint_key("fall", h.fall, 1, 100),
                    duration_key("unhealthy_interval", h.unhealthy_interval, Millis(1)),
                    double_key("live_success_stretch", h.live_success_stretch, 1.0, 10.0),
                    duration_key("degraded_latency", h.degraded_latency, Millis(0)),
                    double_key("degraded_error_rate", h.degraded_error_rate, 0.0, 1.0),
                    double_key("recover_factor", h.recover_factor, 0.01, 1.0),
                    uint_key("degraded_min_samples", h.degraded_min_samples, 1, 1'000'000),
                    uint_key("max_concurrent_checks", h.max_concurrent_checks, 1, 100'000),
                });
  }

  void read_telemetry(const Field& f) {
    auto& t = cfg_.telemetry;
    read_map(f, {
                    {"sample_rate",
                     [&](const Field& x) {
                       auto s = scalar(x, "expected a number between 0 and 1");
                       auto d = s ? parse_unit_interval(*s) : std::nullopt;
                       if (s && !d)
                         fail(x,
                              fmt::format("expected a number between 0 and 1, got {}", quote(*s)));
                       set(t.sample_rate, d, x);
                     }},
                    bool_key("jaeger_exporter", t.jaeger_exporter),
                    {"jaeger_endpoint",
                     [&](const Field& x) {
                       auto s = read_string(x);
                       std::string why;
                       if (s && !s->empty() && !parse_upstream_url(*s, &why)) {
                         fail(x, fmt::format("bad URL {}: {}", quote(*s), why));
                         return;
                       }
                       set(t.jaeger_endpoint, s, x);
                     }},
                    bool_key("prometheus_exporter", t.prometheus_exporter),
                    uint_key("prometheus_port", t.prometheus_port, 0, 65535),
                });
  }

  // A new service with the upstream defaults; its inherited keys say so in their origin.
  ServiceConfig& add_service(const std::string& name, Source source) {
    ServiceConfig s;
    s.name = name;
    s.timeouts = cfg_.upstream.timeouts;
    s.pool = cfg_.upstream.pool;
    s.tls = cfg_.upstream.tls;
    s.source = source;
    cfg_.services.push_back(std::move(s));
    const std::string p = "services." + name;
    for (const char* key :
         {"timeouts.connect", "timeouts.response", "pool.max_connections", "pool.max_idle",
          "pool.idle_timeout", "tls.verify", "tls.ca_file", "tls.server_name"}) {
      const std::string up = std::string("upstream.") + key;
      auto it = cfg_.origins.find(up);
      const Where w = where(up);
      record(p + "." + key,
             fmt::format("inherited from {} ({})", up,
                         it == cfg_.origins.end() ? "default" : it->second),
             w.prefix, w.line);
    }
    return cfg_.services.back();
  }

  ServiceConfig* find_service(std::string_view name) {
    for (auto& s : cfg_.services)
      if (s.name == name) return &s;
    return nullptr;
  }

  void read_services(const Field& f) {
    for (const Field& sf : map_entries(f, "service")) {
      std::string why;
      if (!valid_service_name(sf.key, &why)) {
        fail_at(sf.key_line, sf.path, why);
        continue;
      }
      if (!sf.value.IsMap() && !sf.value.IsNull()) {
        fail(sf, "expected a map (instances: [...], critical: ...), got " + describe(sf.value));
        continue;
      }
      ServiceConfig& s = add_service(sf.key, Source::kFile);
      service_lines_[sf.key] = sf.key_line;
      read_map(sf, {
                       {"instances", [&](const Field& x) { read_instances(x, s); }},
                       bool_key("critical", s.critical),
                       bool_key("preserve_host", s.preserve_host),
                       uint_key("panic_threshold", s.panic_threshold, 0, 100),
                       {"timeouts", [&](const Field& x) { read_timeouts(x, s.timeouts); }},
                       {"pool", [&](const Field& x) { read_pool(x, s.pool); }},
                       {"tls", [&](const Field& x) { read_tls(x, s.tls); }},
                       {"health_check", [&](const Field& x) { read_health_check(x, s); }},
                       {"breaker", [&](const Field& x) { read_breaker(x, s.breaker); }},
                       {"outlier", [&](const Field& x) { read_outlier(x, s.outlier); }},
                       {"balancer", [&](const Field& x) { read_balancer(x, s.balancer); }},
                       duration_key("request_timeout", s.policy.timeout, Millis(1)),
                       {"retry", [&](const Field& x) { read_retry(x, s.policy.retry); }},
                       {"hedge", [&](const Field& x) { read_hedge(x, s.policy.hedge); }},
                       {"fallback", [&](const Field& x) { read_fallback(x, s.policy.fallback); }},
                   });
    }
  }

  void read_breaker(const Field& f, BreakerConfig& b) {
    read_map(f, {
                    bool_key("enabled", b.enabled),
                    uint_key("consecutive_failures", b.consecutive_failures, 0, 1'000'000),
                    uint_key("failure_rate", b.failure_rate, 0, 100),
                    uint_key("slow_call_rate", b.slow_call_rate, 0, 100),
                    duration_key("slow_call_duration", b.slow_call_duration, Millis(1)),
                    uint_key("minimum_calls", b.minimum_calls, 1, 1'000'000),
                    duration_key("window", b.window, Millis(10)),
                    uint_key("window_buckets", b.window_buckets, 1, 1'000),
                    duration_key("open_duration", b.open_duration, Millis(1)),
                    duration_key("max_open_duration", b.max_open_duration, Millis(1)),
                    uint_key("half_open_probes", b.half_open_probes, 1, 1'000),
                    duration_key("half_open_timeout", b.half_open_timeout, Millis(1)),
                    status_list_key("failure_status", b.failure_status),
                });
  }

  void read_outlier(const Field& f, OutlierConfig& o) {
    read_map(
        f, {
               bool_key("enabled", o.enabled),
               uint_key("consecutive_gateway_errors", o.consecutive_gateway_errors, 0, 1'000'000),
               duration_key("interval", o.interval, Millis(10)),
               uint_key("success_rate_minimum_hosts", o.success_rate_minimum_hosts, 1, 10'000),
               uint_key("success_rate_request_volume", o.success_rate_request_volume, 1, 1'000'000),
               double_key("success_rate_stdev_factor", o.success_rate_stdev_factor, 0.1, 10.0),
               duration_key("base_ejection_time", o.base_ejection_time, Millis(1)),
               duration_key("max_ejection_time", o.max_ejection_time, Millis(1)),
               uint_key("max_ejection_percent", o.max_ejection_percent, 0, 100),
           });
  }

  void read_balancer(const Field& f, BalancerConfig& b) {
    read_map(f, {
                    {"kind",
                     [&](const Field& x) {
                       auto k = read_string(x);
                       if (!k) return;
                       for (auto kind : {BalancerKind::kRoundRobin,
                                         BalancerKind::kWeightedRoundRobin, BalancerKind::kRandom,
                                         BalancerKind::kLeastRequest, BalancerKind::kPeakEwma}) {
                         if (*k == to_string(kind)) {
                           set(b.kind, std::optional(kind), x);
                           return;
                         }
                       }
                       fail(x, fmt::format("bad kind {}: round_robin, weighted_round_robin, "
                                           "random, least_request or peak_ewma",
                                           quote(*k)));
                     }},
                    duration_key("decay", b.decay, Millis(1)),
                    duration_key("default_rtt", b.default_rtt, Millis(1)),
                    duration_key("slow_start", b.slow_start, Millis(0)),
                    uint_key("zone_min_available", b.zone_min_available, 0, 100),
                });
  }

  void read_retry(const Field& f, RetryConfig& r) {
    read_map(f, {
                    uint_key("max_retries", r.max_retries, 0, 10),
                    status_list_key("retry_on_status", r.retry_on_status),
                    bool_key("retry_on_connect_failure", r.retry_on_connect_failure),
                    bool_key("retry_on_reset", r.retry_on_reset),
                    duration_key("backoff_base", r.backoff_base, Millis(0)),
                    duration_key("backoff_max", r.backoff_max, Millis(0)),
                    duration_key("per_try_timeout", r.per_try_timeout, Millis(0)),
                    uint_key("budget_percent", r.budget_percent, 0, 100),
                    duration_key("budget_window", r.budget_window, Millis(1'000)),
                    uint_key("budget_min_per_second", r.budget_min_per_second, 0, 1'000'000),
                    size_key("max_replay_body", r.max_replay_body, 0, kMiB),
                });
  }

  void read_hedge(const Field& f, HedgeConfig& h) {
    read_map(f, {
                    bool_key("enabled", h.enabled),
                    duration_key("delay", h.delay, Millis(0)),
                });
  }

  void read_fallback(const Field& f, FallbackConfig& fb) {
    read_map(
        f,
        {
            uint_key("status", fb.status, 0, 599),
            {"headers",
             [&](const Field& x) {
               read_headers(x, fb.headers, {"content-length", "transfer-encoding", "connection"});
             }},
            {"body", [&](const Field& x) { set(fb.body, read_string(x), x); }},
        });
    if (fb.status != 0 && fb.status < 200)
      fail(f, fmt::format("status: a fallback answers with a final status (200-599), got {}",
                          fb.status));
  }

  void read_health_check(const Field& f, ServiceConfig& svc) {
    read_map(
        f,
        {
            {"path",
             [&](const Field& x) {
               auto p = read_string(x);
               // "" turns checks off; anything else is an absolute path.
               if (p && !p->empty() &&
                   (p->front() != '/' || p->find_first_of(" \r\n\t") != std::string::npos)) {
                 fail(x, fmt::format("bad path {}: must start with '/' and hold no spaces",
                                     quote(*p)));
                 return;
               }
               set(svc.health_check.path, p, x);
             }},
            duration_key("timeout", svc.health_check.timeout, Millis(1)),
            duration_key("deregister_after", svc.health_check.deregister_after, Millis(0)),
            {"type",
             [&](const Field& x) {
               auto t = read_string(x);
               if (!t) return;
               if (*t == "http") {
                 svc.health_check.type = HealthCheckConfig::Type::kHttp;
               } else if (*t == "tcp") {
                 svc.health_check.type = HealthCheckConfig::Type::kTcp;
               } else {
                 fail(x, fmt::format("bad type {}: http or tcp", quote(*t)));
                 return;
               }
               note(x);
             }},
            {"method",
             [&](const Field& x) {
               auto m = read_string(x);
               if (m && (m->empty() ||
                         m->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos)) {
                 fail(x, fmt::format("bad method {}: upper-case letters", quote(*m)));
                 return;
               }
               set(svc.health_check.method, m, x);
             }},
            {"expect_status",
             [&](const Field& x) {
               auto l = read_string(x);
               if (l && !valid_status_list(*l)) {
                 fail(x, fmt::format("bad status list {} (use e.g. \"200-399,404\")", quote(*l)));
                 return;
               }
               set(svc.health_check.expect_status, l, x);
             }},
            {"expect_body",
             [&](const Field& x) { set(svc.health_check.expect_body, read_string(x), x); }},
            {"headers", [&](const Field& x) { read_headers(x, svc.health_check.headers, {}); }},
        });
  }

  // A map of header names to values. Names in `reserved` (lower case) are refused: the
  // caller sets those headers itself.
  void read_headers(const Field& x, std::map<std::string, std::string>& target,
                    std::initializer_list<std::string_view> reserved) {
    if (!x.value.IsMap()) {
      fail(x, "expected a map of header names to values, got " + describe(x.value));
      return;
    }
    std::map<std::string, std::string> h;
    for (const auto& kv : x.value) {
      const std::string name = kv.first.as<std::string>("");
      const bool scalar = kv.second.IsScalar();
      const std::string value = scalar ? kv.second.Scalar() : "";
      if (name.empty() || name.find_first_of(" :\r\n\t") != std::string::npos || !scalar ||
          value.find_first_of("\r\n") != std::string::npos) {
        fail(x, fmt::format("bad header {}", quote(name)));
        return;
      }
      std::string lower = name;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (std::find(reserved.begin(), reserved.end(), lower) != reserved.end()) {
        fail(x, fmt::format("header {} is set by Switchboard", quote(name)));
        return;
      }
      h[name] = value;
    }
    target = std::move(h);
    note(x);
  }

  // A list of plain strings, each checked by `check` (which reports and returns false).
  std::optional<std::vector<std::string>> read_string_list(
      const Field& f, std::string_view expected,
      const std::function<bool(const Field&, const std::string&)>& check) {
    if (!f.value.IsSequence()) {
      fail(f, fmt::format("expected a list of {}, got {}", expected, describe(f.value)));
      return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    std::size_t i = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
      const int line = line_of(*it, f.line);
      Field item{"", fmt::format("{}[{}]", f.path, i), *it, line, line};
      auto s = scalar(item, fmt::format("expected one of {}", expected));
      if (!s || !check(item, *s)) {
        ok = false;
        continue;
      }
      if (std::find(out.begin(), out.end(), *s) != out.end()) {
        fail(item, fmt::format("{} is listed twice", quote(*s)));
        ok = false;
        continue;
      }
      out.push_back(*s);
    }
    if (!ok) return std::nullopt;
    return out;
  }

  void read_webhooks(const Field& f) {
    if (f.value.IsNull()) return;
    if (!f.value.IsSequence()) {
      fail(f, "expected a list of webhooks (url, events, ...), got " + describe(f.value));
      return;
    }
    std::vector<std::string_view> types(std::begin(kWebhookEventTypes),
                                        std::end(kWebhookEventTypes));
    std::size_t i = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
      const int line = line_of(*it, f.line);
      Field wf{"", fmt::format("webhooks[{}]", i), *it, line, line};
      if (!it->IsMap()) {
        fail(wf, "expected a map (url, events, services, headers, ...), got " + describe(*it));
        cfg_.webhooks.emplace_back();  // keeps webhooks[i] the i-th item of the file
        continue;
      }
      WebhookConfig w;
      bool has_url = false;
      read_map(wf, {
                       {"url",
                        [&](const Field& x) {
                          has_url = true;
                          set(w.url, read_url(x), x);
                        }},
                       {"events",
                        [&](const Field& x) {
                          set(w.events,
                              read_string_list(
                                  x, "event types",
                                  [&](const Field& item, const std::string& t) {
                                    if (std::find(types.begin(), types.end(), t) != types.end())
                                      return true;
                                    std::string hint = did_you_mean(t, types);
                                    if (hint.empty()) hint = " (known: " + join(types) + ")";
                                    fail(item,
                                         fmt::format("unknown event type {}{}", quote(t), hint));
                                    return false;
                                  }),
                              x);
                        }},
                       {"services",
                        [&](const Field& x) {
                          set(w.services,
                              read_string_list(x, "service names",
                                               [&](const Field& item, const std::string& name) {
                                                 std::string why;
                                                 if (valid_service_name(name, &why)) return true;
                                                 fail(item, why);
                                                 return false;
                                               }),
                              x);
                        }},
                       {"headers",
                        [&](const Field& x) {
                          read_headers(x, w.headers,
                                       {"host", "content-length", "transfer-encoding", "connection",
                                        "content-type", "user-agent", "x-switchboard-event-id",
                                        "x-switchboard-event"});
                        }},
                       duration_key("timeout", w.timeout, Millis(1)),
                       uint_key("max_retries", w.max_retries, 0, 100),
                       duration_key("backoff", w.backoff, Millis(1)),
                       duration_key("max_backoff", w.max_backoff, Millis(1)),
                       uint_key("queue_size", w.queue_size, 1, 1'000'000),
                   });
      if (!has_url) fail(wf, "missing key \"url\"");
      cfg_.webhooks.push_back(std::move(w));
    }
  }

  std::optional<InstanceConfig> read_instance(const Field& f) {
    if (f.value.IsScalar()) {
      auto u = read_url(f);
      if (!u) return std::nullopt;
      return InstanceConfig{*u, "", 1};
    }
    if (!f.value.IsMap()) {
      fail(f, "expected a URL or a map (url, zone, weight), got " + describe(f.value));
      return std::nullopt;
    }
    InstanceConfig inst;
    bool ok = true, has_url = false;
    read_map(f, {
                    {"url",
                     [&](const Field& x) {
                       auto u = read_url(x);
                       ok = ok && u.has_value();
                       if (u) inst.url = *u;
                       has_url = true;
                     }},
                    {"zone",
                     [&](const Field& x) {
                       auto z = read_string(x);
                       if (z && !valid_zone(*z)) {
                         fail(x, fmt::format("bad zone {} (use {})", quote(*z), kZoneRule));
                         z.reset();
                       }
                       ok = ok && z.has_value();
                       if (z) inst.zone = *z;
                     }},
                    {"weight",
                     [&](const Field& x) {
                       auto w = read_uint(x, 1, 1000);
                       ok = ok && w.has_value();
                       if (w) inst.weight = static_cast<std::uint32_t>(*w);
                     }},
                });
    if (!has_url) {
      fail(f, "missing key \"url\"");
      return std::nullopt;
    }
    if (!ok) return std::nullopt;
    return inst;
  }

  void read_instances(const Field& f, ServiceConfig& s) {
    if (!f.value.IsSequence()) {
      fail(f, "expected a list of URLs, got " + describe(f.value));
      bad_instances_.insert(s.name);
      return;
    }
    std::vector<InstanceConfig> out;
    std::vector<std::size_t> out_index;  // position of out[k] in the YAML list
    bool ok = true;
    std::size_t i = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
      const int line = line_of(*it, f.line);
      Field item{"", fmt::format("{}[{}]", f.path, i), *it, line, line};
      auto inst = read_instance(item);
      if (!inst) {
        ok = false;
        continue;
      }
      for (std::size_t k = 0; k < out.size(); ++k) {
        if (same_endpoint(out[k].url, inst->url)) {
          fail(item, fmt::format("duplicate instance {} (same as {}[{}])", quote(inst->url.text),
                                 f.path, out_index[k]));
          ok = false;
        }
      }
      out.push_back(std::move(*inst));
      out_index.push_back(i);
    }
    if (!ok) {
      bad_instances_.insert(s.name);
      return;
    }
    s.instances = std::move(out);
    note(f);
  }

  void read_routes(const Field& f) {
    if (f.value.IsNull()) return;
    if (!f.value.IsSequence()) {
      fail(f, "expected a list of routes, got " + describe(f.value));
      return;
    }
    std::size_t i = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
      const int line = line_of(*it, f.line);
      Field rf{"", fmt::format("routes[{}]", i), *it, line, line};
      if (!it->IsMap()) {
        fail(rf, "expected a map (prefix, host, service, rewrite), got " + describe(*it));
        continue;
      }
      RouteConfig r;
      RouteMeta meta{line, 0};
      bool bad_field = false;  // prefix or host was reported already
      auto path_field = [&](const Field& x, std::string& target) {
        auto s = read_string(x);
        std::optional<std::string> why;
        if (s) why = check_route_path(*s);
        if (why) fail(x, *why);
        if (!s || why) return false;
        target = *s;
        note(x);
        return true;
      };
      read_map(rf, {
                       {"prefix",
                        [&](const Field& x) {
                          // "" is the same as no prefix.
                          if (x.value.IsScalar() && x.value.Scalar().empty()) return;
                          bad_field |= !path_field(x, r.prefix);
                        }},
                       {"host", [&](const Field& x) { bad_field |= !read_route_host(x, r.host); }},
                       {"service",
                        [&](const Field& x) {
                          meta.service_line = x.line;
                          auto name = read_string(x);
                          if (name && name->empty()) fail(x, "empty (name a service)");
                          if (name && !name->empty()) set(r.service, name, x);
                        }},
                       {"rewrite",
                        [&](const Field& x) {
                          if (x.value.IsNull()) return;  // no rewrite
                          std::string target;
                          if (path_field(x, target)) r.rewrite = target;
                        }},
                       // Overrides of the service's request policy, applied once the
                       // services are complete (check_whole).
                       {"request_timeout", [&](const Field& x) { meta.policy.push_back(x); }},
                       {"retry", [&](const Field& x) { meta.policy.push_back(x); }},
                       {"hedge", [&](const Field& x) { meta.policy.push_back(x); }},
                       {"fallback", [&](const Field& x) { meta.policy.push_back(x); }},
                   });
      if (r.prefix.empty() && r.host.empty() && !bad_field)
        fail(rf, "a route needs a prefix, a host, or both");
      if (meta.service_line == 0) fail(rf, "missing key \"service\"");
      cfg_.routes.push_back(std::move(r));
      route_meta_.push_back(meta);
    }
  }

  // A route's host: a name, an IPv4 address or a bracketed IPv6 address ("[::1]", as in the
  // Host header), without a port. "" is the same as no host.
  bool read_route_host(const Field& x, std::string& target) {
    auto s = read_string(x);
    if (!s) return false;
    if (s->empty()) return true;
    const std::string_view h = *s;
    const bool ipv6 = h.size() > 2 && h.front() == '[' && h.back() == ']' &&
                      valid_ipv6(h.substr(1, h.size() - 2));
    if (!ipv6 && h.find(':') != std::string_view::npos) {
      fail(x, fmt::format("{}: a route host has no port (routes match the Host header "
                          "without its port; write IPv6 addresses as [::1])",
                          quote(h)));
      return false;
    }
    if (!ipv6 && !valid_host_name(h) && !valid_ipv4(h)) {
      fail(x, fmt::format("bad host name {}", quote(h)));
      return false;
    }
    target = *s;
    note(x);
    return true;
  }

  // --- environment: dotenv files, then the process environment ---------------------------

  static bool honoured(std::string_view name) {
    return std::find(std::begin(kEnvNames), std::end(kEnvNames), name) != std::end(kEnvNames);
  }

  void load_dotenv(const std::string& path, bool required) {
    struct stat st {};
    if (!required && ::stat(path.c_str(), &st) != 0 && errno == ENOENT) return;
    std::string why;
    auto text = read_file(path, &why);
    if (!text) {
      error(fmt::format("{}: cannot read env file: {}", path, why));
      return;
    }
    auto parsed = parse_dotenv(*text);
    for (const auto& e : parsed.errors) error(fmt::format("{}:{}: {}", path, e.line, e.message));
    for (const auto& e : parsed.entries) {
      if (!honoured(e.key)) continue;
      env_[e.key] = {std::string(trim(e.value)),
                     fmt::format("env-file {}:{} ({})", path, e.line, e.key),
                     fmt::format("{}:{}: {}", path, e.line, e.key)};
    }
  }

  void load_env_layers() {
    for (const auto& f : opt_.env_files) load_dotenv(f, true);
    if (opt_.env_local_file) load_dotenv(*opt_.env_local_file, false);
    for (const auto& [k, v] : opt_.environment) {
      if (!honoured(k)) continue;
      env_[k] = {std::string(trim(v)), "env " + k, "env " + k};
    }
  }

  // An empty variable counts as unset (as with `LLM_SERVICE_URL=` in a compose file).
  const EnvValue* env(std::string_view name) const {
    auto it = env_.find(std::string(name));
    return it == env_.end() || it->second.value.empty() ? nullptr : &it->second;
  }

  // Parses "URL[,URL...]"; reports errors with `where` as the prefix.
  std::optional<std::vector<InstanceConfig>> parse_url_list(std::string_view text,
                                                            const std::string& where_prefix) {
    std::vector<InstanceConfig> out;
    bool ok = true;
    for (const auto& item : split_list(text)) {
      if (item.empty()) {
        error(fmt::format("{}: empty URL in the list {}", where_prefix, quote(text)));
        ok = false;
        continue;
      }
      std::string why;
      auto u = parse_upstream_url(item, &why);
      if (!u) {
        error(fmt::format("{}: bad URL {}: {}", where_prefix, quote(item), why));
        ok = false;
        continue;
      }
      for (const auto& prev : out) {
        if (same_endpoint(prev.url, *u)) {
          error(fmt::format("{}: duplicate instance {}", where_prefix, quote(item)));
          ok = false;
        }
      }
      out.push_back({*u, "", 1});
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // Registers `name` or replaces its instances (other settings of the service stay).
  void set_service_instances(const std::string& name, std::vector<InstanceConfig> instances,
                             Source source, const std::string& origin, const std::string& w) {
    ServiceConfig* s = find_service(name);
    if (s == nullptr) s = &add_service(name, source);
    s->instances = std::move(instances);
    s->source = source;
    record("services." + name + ".instances", origin, w);
  }

  void env_duration(std::string_view name, Millis& target, const char* path) {
    const EnvValue* v = env(name);
    if (v == nullptr) return;
    auto d = parse_duration(v->value, /*bare_unit_ms=*/true);
    if (!d || *d <= Millis(0)) {
      error(fmt::format("{}: expected a positive integer (milliseconds), got {}", v->where,
                        quote(v->value)));
    } else if (*d > kMaxDuration) {
      error(fmt::format("{}: out of range: must be at most {} ms (24h), got {}", v->where,
                        kMaxDuration.count(), v->value));
    } else {
      target = *d;
      record(path, v->origin, v->where);
    }
  }

  void env_bool(std::string_view name, bool& target, const char* path) {
    const EnvValue* v = env(name);
    if (v == nullptr) return;
    auto b = parse_env_bool(v->value);
    if (!b) {
      error(fmt::format("{}: expected true or false (or 1/0, yes/no, on/off), got {}", v->where,
                        quote(v->value)));
      return;
    }
    target = *b;
    record(path, v->origin, v->where);
  }

  void apply_env() {
    for (const auto& [service, var] : kEnvServices) {
      const EnvValue* v = env(var);
      if (v == nullptr) continue;
      if (auto list = parse_url_list(v->value, v->where))
        set_service_instances(std::string(service), std::move(*list), Source::kEnvironment,
                              v->origin, v->where);
    }
    auto& h = cfg_.health;
    env_duration("HEALTH_CHECK_INTERVAL", h.check_interval, "health.check_interval");
    env_duration("METRICS_COLLECTION_INTERVAL", h.metrics_collection_interval,
                 "health.metrics_collection_interval");
    auto& t = cfg_.telemetry;
    if (const EnvValue* v = env("OTEL_SAMPLE_RATE")) {
      if (auto d = parse_unit_interval(v->value)) {
        t.sample_rate = *d;
        record("telemetry.sample_rate", v->origin, v->where);
      } else {
        error(fmt::format("{}: expected a number between 0 and 1, got {}", v->where,
                          quote(v->value)));
      }
    }
    env_bool("OTEL_JAEGER_EXPORTER", t.jaeger_exporter, "telemetry.jaeger_exporter");
    env_bool("OTEL_PROMETHEUS_EXPORTER", t.prometheus_exporter, "telemetry.prometheus_exporter");
    if (const EnvValue* v = env("JAEGER_ENDPOINT")) {
      std::string why;
      if (parse_upstream_url(v->value, &why)) {
        t.jaeger_endpoint = v->value;
        record("telemetry.jaeger_endpoint", v->origin, v->where);
      } else {
        error(fmt::format("{}: bad URL {}: {}", v->where, quote(v->value), why));
      }
    }
    if (const EnvValue* v = env("PROMETHEUS_PORT")) {
      std::uint64_t port = 0;
      if (parse_digits(v->value, &port) && port >= 1 && port <= 65535) {
        t.prometheus_port = static_cast<std::uint16_t>(port);
        record("telemetry.prometheus_port", v->origin, v->where);
      } else {
        error(fmt::format("{}: expected a port number between 1 and 65535, got {}", v->where,
                          quote(v->value)));
      }
    }
  }

  // --- command line -------------------------------------------------------------------

  void apply_cli() {
    const CliOverrides& cli = opt_.cli;
    if (cli.listen) {
      const std::string w = "command line --listen";
      if (auto hp = parse_host_port(*cli.listen)) {
        cfg_.server.listen = *hp;
        record("server.listen", w, w);
      } else {
        error(fmt::format("{}: bad address {} ({})", w, quote(*cli.listen), kHostPortHint));
      }
    }
    std::set<std::string> seen;
    for (const auto& arg : cli.services) {
      const std::string w = "command line --service";
      const auto eq = arg.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
        error(fmt::format("{}: expected NAME=URL[,URL...], got {}", w, quote(arg)));
        continue;
      }
      const std::string name = arg.substr(0, eq);
      std::string why;
      if (!valid_service_name(name, &why)) {
        error(fmt::format("{}: {}: {}", w, quote(name), why));
        continue;
      }
      if (!seen.insert(name).second) {
        error(fmt::format("{}: service {} given twice", w, quote(name)));
        continue;
      }
      if (auto list = parse_url_list(std::string_view(arg).substr(eq + 1), w + " " + name))
        set_service_instances(name, std::move(*list), Source::kCommandLine, w, w);
    }
    if (cli.threads) {
      const std::string w = "command line --threads";
      if (*cli.threads >= 1 && *cli.threads <= 1024) {
        cfg_.server.threads = *cli.threads;
        record("server.threads", w, w);
      } else {
        error(fmt::format("{}: out of range: must be between 1 and 1024, got {}", w, *cli.threads));
      }
    }
    if (cli.log_level) {
      const std::string w = "command line --log-level";
      spdlog::level::level_enum unused;
      if (parse_log_level(*cli.log_level, &unused)) {
        cfg_.logging.level = *cli.log_level;
        record("logging.level", w, w);
      } else {
        error(fmt::format("{}: unknown level {} (use {})", w, quote(*cli.log_level), kLogLevels));
      }
    }
    if (cli.log_format) {
      const std::string w = "command line --log-format";
      if (*cli.log_format == "text" || *cli.log_format == "json") {
        cfg_.logging.format = *cli.log_format == "json" ? LogFormat::kJson : LogFormat::kText;
        record("logging.format", w, w);
      } else {
        error(fmt::format("{}: expected text or json, got {}", w, quote(*cli.log_format)));
      }
    }
  }

  // --- rules across keys, once every layer is in ------------------------------------------

  // max_idle above max_connections is an error when max_idle was written for this pool;
  // a default or inherited max_idle is lowered to max_connections instead.
  void check_pool(const std::string& p, PoolConfig& pool) {
    if (pool.max_idle <= pool.max_connections) return;
    const std::string key = p + ".pool.max_idle";
    auto origin = cfg_.origins.find(key);
    if (origin != cfg_.origins.end() && origin->second.rfind("file ", 0) == 0) {
      error_about(key, fmt::format("must not exceed {}.pool.max_connections ({}), got {}", p,
                                   pool.max_connections, pool.max_idle));
      return;
    }
    pool.max_idle = pool.max_connections;
    std::string was = origin == cfg_.origins.end() ? "default" : origin->second;
    cfg_.origins[key] = was + ", lowered to max_connections";
  }

  void check_retry(const std::string& p, const RetryConfig& r) {
    if (r.backoff_max < r.backoff_base)
      error_about(p + ".retry.backoff_max",
                  fmt::format("must not be below {}.retry.backoff_base ({}), got {}", p,
                              format_duration(r.backoff_base), format_duration(r.backoff_max)));
  }

  void check_resilience(const std::string& p, const ServiceConfig& svc) {
    const auto& b = svc.breaker;
    if (b.max_open_duration < b.open_duration)
      error_about(
          p + ".breaker.max_open_duration",
          fmt::format("must not be below {}.breaker.open_duration ({}), got {}", p,
                      format_duration(b.open_duration), format_duration(b.max_open_duration)));
    if (b.window < Millis(b.window_buckets))
      error_about(p + ".breaker.window_buckets",
                  fmt::format("buckets must be at least 1ms wide: {} buckets over {}",
                              b.window_buckets, format_duration(b.window)));
    const auto& o = svc.outlier;
    if (o.max_ejection_time < o.base_ejection_time)
      error_about(
          p + ".outlier.max_ejection_time",
          fmt::format("must not be below {}.outlier.base_ejection_time ({}), got {}", p,
                      format_duration(o.base_ejection_time), format_duration(o.max_ejection_time)));
    check_retry(p, svc.policy.retry);
  }

  void check_whole() {
    const auto& l = cfg_.limits;
    if (l.max_request_line > l.max_header_bytes)
      error_about("limits.max_request_line",
                  fmt::format("must not exceed limits.max_header_bytes ({}), got {}",
                              l.max_header_bytes, l.max_request_line));
    check_pool("upstream", cfg_.upstream.pool);

    const auto& s = cfg_.server;
    if (s.admin_listen && s.admin_listen->port != 0 && *s.admin_listen == s.listen)
      error_about("server.admin_listen",
                  fmt::format("same address as server.listen ({})", s.listen.str()));

    const auto& t = cfg_.telemetry;
    if (t.jaeger_exporter && t.jaeger_endpoint.empty())
      error_about("telemetry.jaeger_exporter",
                  "the Jaeger exporter is on but telemetry.jaeger_endpoint (JAEGER_ENDPOINT) "
                  "is empty");

    for (auto& svc : cfg_.services) {
      const std::string p = "services." + svc.name;
      check_pool(p, svc.pool);
      check_resilience(p, svc);
      if (!svc.instances.empty() || bad_instances_.count(svc.name)) continue;
      if (cfg_.origins.count(p + ".instances")) {
        error_about(p + ".instances", "no instances (the list is empty)");
        continue;
      }
      std::string hint = fmt::format("--service {}=URL", svc.name);
      for (const auto& [service, var] : kEnvServices)
        if (service == svc.name) hint = std::string(var) + " or " + hint;
      auto it = service_lines_.find(svc.name);
      fail_at(it == service_lines_.end() ? 0 : it->second, p,
              fmt::format("no instances (add instances: [\"http://HOST:PORT\"], or set {})", hint));
    }

    for (std::size_t i = 0; i < cfg_.webhooks.size(); ++i) {
      const auto& w = cfg_.webhooks[i];
      if (w.backoff <= w.max_backoff) continue;
      // Blame the key that was written (a default backoff above a small max_backoff).
      const std::string p = fmt::format("webhooks[{}]", i);
      if (where_.count(p + ".backoff"))
        error_about(p + ".backoff",
                    fmt::format("must not exceed {}.max_backoff ({}), got {}", p,
                                format_duration(w.max_backoff), format_duration(w.backoff)));
      else
        error_about(p + ".max_backoff",
                    fmt::format("must be at least {}.backoff ({}), got {}", p,
                                format_duration(w.backoff), format_duration(w.max_backoff)));
    }

    std::vector<std::string_view> names;
    for (const auto& svc : cfg_.services) names.push_back(svc.name);
    for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
      const auto& r = cfg_.routes[i];
      const auto& meta = route_meta_[i];
      const ServiceConfig* svc = r.service.empty() ? nullptr : cfg_.find_service(r.service);
      if (!r.service.empty() && svc == nullptr) {
        fail_at(
            meta.service_line, fmt::format("routes[{}].service", i),
            fmt::format("unknown service {}{}", quote(r.service), did_you_mean(r.service, names)));
      }
      if (svc != nullptr) apply_route_policy(i, *svc);
      if (r.policy && r.policy->retry != svc->policy.retry)
        check_retry(fmt::format("routes[{}]", i), r.policy->retry);
      for (std::size_t j = 0; j < i; ++j) {
        const auto& o = cfg_.routes[j];
        if (o.prefix == r.prefix && o.host == r.host && (!r.prefix.empty() || !r.host.empty()))
          fail_at(
              meta.line, fmt::format("routes[{}]", i),
              fmt::format("same prefix and host as routes[{}] (line {})", j, route_meta_[j].line));
      }
    }
  }

  struct RouteMeta {
    int line = 0;                 // the route's first line
    int service_line = 0;         // 0: no `service` key
    std::vector<Field> policy{};  // request_timeout, retry, hedge, fallback overrides
  };

  // A route's policy: its service's, with the route's keys on top. Keys the route does not
  // set say where they came from.
  void apply_route_policy(std::size_t i, const ServiceConfig& svc) {
    auto& r = cfg_.routes[i];
    const auto& meta = route_meta_[i];
    if (meta.policy.empty()) return;
    r.policy = svc.policy;
    for (const Field& x : meta.policy) {
      if (x.key == "request_timeout")
        set(r.policy->timeout, read_duration(x, Millis(1)), x);
      else if (x.key == "retry")
        read_retry(x, r.policy->retry);
      else if (x.key == "hedge")
        read_hedge(x, r.policy->hedge);
      else
        read_fallback(x, r.policy->fallback);
    }
    std::vector<std::string> leaves;
    Renderer::policy_paths("", leaves);
    const std::string route = fmt::format("routes[{}]", i);
    for (const auto& leaf : leaves) {
      if (cfg_.origins.count(route + leaf)) continue;
      const std::string from = "services." + svc.name + leaf;
      auto it = cfg_.origins.find(from);
      const Where w = where(from);
      record(route + leaf,
             fmt::format("inherited from {} ({})", from,
                         it == cfg_.origins.end() ? "default" : it->second),
             w.prefix, w.line);
    }
  }

  const LoadOptions& opt_;
  Config cfg_;
  struct Pending {
    int line;  // in the config file; -1: elsewhere
    std::string message;
  };

  std::vector<Pending> errors_;
  std::string file_;                          // the config file, as named in messages
  std::map<std::string, Where> where_;        // key path -> where its value came from
  std::set<std::string> bad_instances_;       // services whose instance list had errors
  std::map<std::string, int> service_lines_;  // service defined in the file -> its line
  std::vector<RouteMeta> route_meta_;         // parallel to cfg_.routes
  std::map<std::string, EnvValue> env_;       // effective honoured variables
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

std::optional<Millis> parse_duration(std::string_view text, bool bare_unit_ms) {
  std::uint64_t n = 0;
  std::string_view unit;
  if (!split_number_unit(text, &n, &unit)) return std::nullopt;
  std::uint64_t ms_per_unit;
  if (unit.empty() && bare_unit_ms)
    ms_per_unit = 1;
  else if (unit == "ms")
    ms_per_unit = 1;
  else if (unit == "s")
    ms_per_unit = 1'000;
  else if (unit == "m")
    ms_per_unit = 60'000;
  else if (unit == "h")
    ms_per_unit = 3'600'000;
  else
    return std::nullopt;
  if (n > static_cast<std::uint64_t>(std::numeric_limits<Millis::rep>::max()) / ms_per_unit)
    return std::nullopt;
  return Millis(static_cast<Millis::rep>(n * ms_per_unit));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t n = 0;
  std::string_view unit;
  if (!split_number_unit(text, &n, &unit)) return std::nullopt;
  std::uint64_t mult;
  if (unit.empty())
    mult = 1;
  else if (unit == "KiB")
    mult = kKiB;
  else if (unit == "MiB")
    mult = kMiB;
  else if (unit == "GiB")
    mult = kGiB;
  else if (unit == "TiB")
    mult = kTiB;
  else
    return std::nullopt;
  if (n > std::numeric_limits<std::uint64_t>::max() / mult) return std::nullopt;
  return n * mult;
}

std::optional<HostPort> parse_host_port(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.size() < 2 || rest.front() != ':' || !valid_ipv6(host)) return std::nullopt;
    port = rest.substr(1);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (!valid_ipv4(host) && !valid_host_name(host)) return std::nullopt;
  }
  std::uint64_t p = 0;
  if (!parse_digits(port, &p) || p > 65535) return std::nullopt;
  HostPort hp;
  hp.host = std::string(host);
  hp.port = static_cast<std::uint16_t>(p);
  return hp;
}

std::optional<UpstreamUrl> parse_upstream_url(std::string_view text, std::string* why) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    *why = "not a URL (expected e.g. http://127.0.0.1:3000)";
    return std::nullopt;
  }
  const auto& u = *parsed;
  const auto scheme = u.scheme_id();
  if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) {
    *why = "scheme must be http or https";
    return std::nullopt;
  }
  if (!u.has_authority() || u.encoded_host().empty()) {
    *why = "host required";
    return std::nullopt;
  }
  if (u.has_userinfo()) {
    *why = "user info (user@) is not allowed";
    return std::nullopt;
  }
  if (u.has_query()) {
    *why = "a query (?...) is not allowed";
    return std::nullopt;
  }
  if (u.has_fragment()) {
    *why = "a fragment (#...) is not allowed";
    return std::nullopt;
  }
  const std::string_view path = u.encoded_path();
  const std::string_view host = u.encoded_host_address();
  // Boost.URL 1.81 reads "http://1.2.3.4.5" as host 1.2.3.4 and path ".5".
  const bool host_ok = (path.empty() || path.front() == '/') &&
                       (u.host_type() == boost::urls::host_type::ipv4 ||
                        u.host_type() == boost::urls::host_type::ipv6 ||
                        (u.host_type() == boost::urls::host_type::name && valid_host_name(host)));
  if (!host_ok) {
    *why = "bad host";
    return std::nullopt;
  }
  UpstreamUrl out;
  out.text = std::string(text);
  out.tls = scheme == boost::urls::scheme::https;
  out.host = std::string(host);
  out.port = out.tls ? 443 : 80;
  if (u.has_port()) {
    std::uint64_t p = 0;
    if (!parse_digits(u.port(), &p) || p < 1 || p > 65535) {
      *why = "port must be between 1 and 65535";
      return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  std::string_view base = path;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  out.base_path = std::string(base);
  return out;
}

LoadResult load_config(const LoadOptions& options) { return Loader(options).run(); }

std::map<std::string, std::string> environ_map() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return out;
}

std::string render_config(const Config& config) { return Renderer(config, nullptr).run(); }

}  // namespace sb::core
