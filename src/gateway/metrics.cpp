#include "gateway/metrics.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>

#include "gateway/guards.hpp"
#include "gateway/plan.hpp"
#include "http/message.hpp"
#include "http/upstream.hpp"
#include "registry/events.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {

namespace json = boost::json;
using telemetry::FamilySpec;

const char* to_string(FallbackKind k) {
  switch (k) {
    case FallbackKind::kBreakerOpen:
      return "breaker_open";
    case FallbackKind::kDeadline:
      return "deadline";
    case FallbackKind::kNoInstance:
      return "no_instance";
    case FallbackKind::kFailed:
      return "failed";
    case FallbackKind::kStatus:
      return "status";
  }
  return "failed";
}

namespace {

const char* error_type(AttemptKind k) {
  switch (k) {
    case AttemptKind::kResponse:
      return "";
    case AttemptKind::kConnectFailed:
      return "connect";
    case AttemptKind::kReset:
      return "reset";
    case AttemptKind::kTimeout:
      return "timeout";
    case AttemptKind::kBadResponse:
      return "bad_response";
    case AttemptKind::kClient:
      return "client";
  }
  return "";
}

const char* to_string(AttemptRole r) {
  switch (r) {
    case AttemptRole::kFirst:
      return "first";
    case AttemptRole::kRetry:
      return "retry";
    case AttemptRole::kHedge:
      return "hedge";
  }
  return "first";
}

// Status codes as label text without formatting on the request path: "100".."599", or the
// class, or "" for no status (the client went away before an answer).
std::string status_label(int status, bool as_class) {
  if (status < 100 || status > 599) return "";
  if (as_class) return std::string(status_class(status));
  return std::to_string(status);
}

}  // namespace

std::string_view status_class(int status) {
  static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  if (status < 100 || status > 599) return "";
  return kClasses[status / 100 - 1];
}

std::string_view method_label(http::Method m) {
  switch (m) {
    case http::Method::kGet:
      return "GET";
    case http::Method::kHead:
      return "HEAD";
    case http::Method::kPost:
      return "POST";
    case http::Method::kPut:
      return "PUT";
    case http::Method::kDelete:
      return "DELETE";
    case http::Method::kOptions:
      return "OPTIONS";
    case http::Method::kPatch:
      return "PATCH";
    case http::Method::kOther:
      return "_OTHER";
  }
  return "_OTHER";
}

GatewayMetrics::GatewayMetrics(telemetry::Registry& r, const core::TelemetryConfig& c)
    : registry(r),
      status_as_class(c.status_code_label == core::TelemetryConfig::StatusLabel::kClass),
      server_duration(r.histogram(FamilySpec{
          "http_server_request_duration_seconds",
          "Duration of requests as the client saw them, from the request head to the end of "
          "the answer.",
          {"service", "http_route", "http_request_method", "http_response_status_code"}})),
      server_active(r.gauge(
          FamilySpec{"http_server_active_requests", "Requests being answered now.", {"service"}})),
      server_request_size(
          r.histogram(FamilySpec{"http_server_request_body_size_bytes",
                                 "Size of request bodies (as received from the client).",
                                 {"service", "http_route", "http_request_method"},
                                 telemetry::size_buckets()})),
      server_response_size(
          r.histogram(FamilySpec{"http_server_response_body_size_bytes",
                                 "Bytes sent to the client per response (head and body).",
                                 {"service", "http_route", "http_request_method"},
                                 telemetry::size_buckets()})),
      client_duration(r.histogram(
          FamilySpec{"http_client_request_duration_seconds",
                     "Duration of attempts to upstream instances, from sending the request to its "
                     "response head (or the failure); retries and hedges included.",
                     {"service", "instance", "http_request_method", "http_response_status_code",
                      "error_type", "attempt"}})),
      pool_connections(r.gauge(FamilySpec{
          "switchboard_pool_connections",
          "Upstream connections held by the workers' pools, open (busy or idle) and idle.",
          {"service", "instance", "state"}})),
      pool_created(r.counter(FamilySpec{"switchboard_pool_connections_created",
                                        "Upstream connections made.",
                                        {"service", "instance"}})),
      pool_reused(r.counter(FamilySpec{"switchboard_pool_connections_reused",
                                       "Requests sent on a kept upstream connection.",
                                       {"service", "instance"}})),
      pool_closed(r.counter(FamilySpec{
          "switchboard_pool_connections_closed",
          "Upstream connections closed (idle timeout, found closed, not reusable, pool full).",
          {"service", "instance"}})),
      pool_connect_duration(
          r.histogram(FamilySpec{"switchboard_pool_connect_duration_seconds",
                                 "Time to connect to an instance (TCP, and TLS for https).",
                                 {"service", "instance"}})),
      retries(r.counter(FamilySpec{
          "switchboard_retries", "Attempts after a request's first one (retries).", {"service"}})),
      retry_budget_exhausted(
          r.counter(FamilySpec{"switchboard_retry_budget_exhausted",
                               "Retries refused because the service's retry budget was spent.",
                               {"service"}})),
      hedges(r.counter(FamilySpec{"switchboard_hedges",
                                  "Hedged requests by which attempt answered: won (the hedge) "
                                  "or lost (the first attempt).",
                                  {"service", "result"}})),
      fallbacks(r.counter(FamilySpec{"switchboard_fallbacks",
                                     "Requests answered by the route's static fallback, by why.",
                                     {"service", "kind"}})),
      deadline_expired(r.counter(FamilySpec{
          "switchboard_deadline_expired",
          "Requests whose deadline expired (before an upstream was called, or waiting on one).",
          {"service"}})),
      breaker_state(r.gauge(FamilySpec{
          "switchboard_breaker_state",
          "Circuit breaker state: 1 for the state it is in, 0 for the others. instance is "
          "empty for the service's own breaker.",
          {"service", "instance", "state"}})),
      breaker_transitions(r.counter(FamilySpec{"switchboard_breaker_transitions",
                                               "Circuit breaker state changes.",
                                               {"service", "instance", "from", "to"}})),
      outlier_ejections(r.counter(FamilySpec{"switchboard_outlier_ejections",
                                             "Instances ejected by outlier detection.",
                                             {"service", "instance"}})),
      instances(r.gauge(FamilySpec{"switchboard_registry_instances",
                                   "Instances in the registry by health state and source.",
                                   {"service", "state", "source"}})),
      state_changes(r.counter(FamilySpec{"switchboard_registry_state_changes",
                                         "Instance health state changes.",
                                         {"service", "from", "to"}})),
      expirations(r.counter(FamilySpec{"switchboard_registry_expirations",
                                       "Instances removed because their TTL lapsed.",
                                       {"service"}})),
      registrations(
          r.counter(FamilySpec{"switchboard_registry_registrations",
                               "Registrations through the API: created, replaced or deregistered.",
                               {"service", "outcome"}})),
      events_missed(r.counter(
          FamilySpec{"switchboard_registry_events_missed",
                     "Registry events the metrics did not see (the event log dropped them first).",
                     {}})),
      checks(r.counter(FamilySpec{"switchboard_health_checks",
                                  "Active health checks by result (ok, failed).",
                                  {"service", "instance", "result"}})),
      check_duration(r.histogram(FamilySpec{"switchboard_health_check_duration_seconds",
                                            "Duration of active health checks.",
                                            {"service", "instance"}})),
      loop_lag(r.histogram(
          FamilySpec{"switchboard_worker_loop_lag_seconds",
                     "How late each worker's 100 ms tick ran: the time its event loop was busy.",
                     {"worker"}})),
      scrapes(r.counter(FamilySpec{
          "switchboard_metrics_scrapes", "Scrapes of /metrics by format.", {"format"}})) {}

// ---------------------------------------------------------------------------------------
// InstanceMetrics

InstanceMetrics::InstanceMetrics(const GatewayMetrics& m, std::string service, std::string instance)
    : m_(&m), service_(std::move(service)), instance_(std::move(instance)) {
  open_ = m.pool_connections.with({service_, instance_, "open"});
  idle_ = m.pool_connections.with({service_, instance_, "idle"});
  created_ = m.pool_created.with({service_, instance_});
  reused_ = m.pool_reused.with({service_, instance_});
  closed_ = m.pool_closed.with({service_, instance_});
  connect_ = m.pool_connect_duration.with({service_, instance_});
}

InstanceMetrics::~InstanceMetrics() {
  // The gauges are sums over workers: take back what this worker's pool added.
  if (open_seen_ != 0) open_.sub(open_seen_);
  if (idle_seen_ != 0) idle_.sub(idle_seen_);
}

void InstanceMetrics::attempt(http::Method method, AttemptKind kind, int status, AttemptRole role,
                              core::Duration took) {
  if (m_ == nullptr || kind == AttemptKind::kClient) return;
  if (kind != AttemptKind::kResponse || status < 100 || status > 599) status = 0;
  const std::uint32_t key =
      static_cast<std::uint32_t>(method) << 24 | static_cast<std::uint32_t>(kind) << 20 |
      static_cast<std::uint32_t>(role) << 16 | static_cast<std::uint32_t>(status & 0xffff);
  for (const Entry& e : attempts_) {
    if (e.key == key) {
      e.h.observe(took);
      return;
    }
  }
  // First sight on this worker: the family's lock, once.
  attempts_.push_back(
      Entry{key, m_->client_duration.with({service_, instance_, method_label(method),
                                           status_label(status, m_->status_as_class),
                                           error_type(kind), to_string(role)})});
  attempts_.back().h.observe(took);
}

void InstanceMetrics::publish(const http::UpstreamPool& pool) {
  if (m_ == nullptr) return;
  const http::PoolStats s = pool.stats();
  const auto open = static_cast<std::int64_t>(s.open);
  const auto idle = static_cast<std::int64_t>(s.idle);
  if (open != open_seen_) open_.add(open - std::exchange(open_seen_, open));
  if (idle != idle_seen_) idle_.add(idle - std::exchange(idle_seen_, idle));
  if (s.created != created_seen_) created_.add(s.created - std::exchange(created_seen_, s.created));
  if (s.reused != reused_seen_) reused_.add(s.reused - std::exchange(reused_seen_, s.reused));
  if (s.closed != closed_seen_) closed_.add(s.closed - std::exchange(closed_seen_, s.closed));
}

// ---------------------------------------------------------------------------------------
// RequestMetrics

RequestMetrics::PerService& RequestMetrics::service_entry(std::string_view service) {
  if (last_ != nullptr && last_->name == service) return *last_;
  auto it = services_.find(service);
  if (it == services_.end()) {
    PerService s;
    s.name = std::string(service);
    s.active = m_.server_active.with({s.name});
    if (!s.name.empty()) {
      s.retries = m_.retries.with({s.name});
      s.budget_exhausted = m_.retry_budget_exhausted.with({s.name});
      s.hedge_won = m_.hedges.with({s.name, "won"});
      s.hedge_lost = m_.hedges.with({s.name, "lost"});
      s.deadline = m_.deadline_expired.with({s.name});
    }
    it = services_.emplace(s.name, std::move(s)).first;
  }
  last_ = &it->second;
  return *last_;
}

RequestMetrics::PerService* RequestMetrics::started(std::string_view service) {
  PerService& s = service_entry(service);
  s.active.add(1);
  return &s;
}

RequestMetrics::Entry& RequestMetrics::entry(PerService& s, const Finished& f) {
  const int status = f.status >= 100 && f.status <= 599 ? f.status : 0;
  const std::uint32_t key = static_cast<std::uint32_t>(f.route_id) << 16 |
                            static_cast<std::uint32_t>(f.method) << 12 |
                            static_cast<std::uint32_t>(status);
  for (Entry& e : s.entries)
    if (e.key == key) return e;
  const std::string route(f.route);
  const std::string_view method = method_label(f.method);
  s.entries.push_back(Entry{
      key,
      m_.server_duration.with({s.name, route, method, status_label(status, m_.status_as_class)}),
      m_.server_request_size.with({s.name, route, method}),
      m_.server_response_size.with({s.name, route, method})});
  return s.entries.back();
}

void RequestMetrics::finished(PerService* sp, const Finished& f) {
  if (sp != nullptr) sp->active.sub(1);
  PerService& s = sp != nullptr ? *sp : service_entry({});
  const Entry& e = entry(s, f);
  e.duration.observe(f.took);
  e.request_size.observe(static_cast<double>(f.request_bytes));
  e.response_size.observe(static_cast<double>(f.response_bytes));
  if (f.retries != 0) s.retries.add(f.retries);
  if (f.budget_exhausted) s.budget_exhausted.inc();
  if (f.hedged) (f.hedge_won ? s.hedge_won : s.hedge_lost).inc();
  if (f.deadline_expired) s.deadline.inc();
}

void RequestMetrics::fallback(PerService* s, FallbackKind kind) {
  if (s == nullptr) return;
  auto it = s->fallbacks.find(kind);
  if (it == s->fallbacks.end())
    it = s->fallbacks.emplace(kind, m_.fallbacks.with({s->name, to_string(kind)})).first;
  it->second.inc();
}

// ---------------------------------------------------------------------------------------
// ControlMetrics

ControlMetrics::ControlMetrics(GatewayMetrics& m, registry::Registry& registry, Guards& guards,
                               core::Duration window)
    : m_(m), registry_(registry), guards_(guards), window_(window) {}

namespace {

void add_into(telemetry::HistogramSnapshot& into, const telemetry::HistogramSnapshot& s) {
  into.count += s.count;
  into.sum += s.sum;
  into.zero_count += s.zero_count;
  if (into.bounds.empty()) {
    into.bounds = s.bounds;
    into.classic.assign(s.classic.size(), 0);
  }
  for (std::size_t i = 0; i < s.classic.size() && i < into.classic.size(); ++i)
    into.classic[i] += s.classic[i];
  std::vector<std::pair<std::int32_t, std::uint64_t>> out;
  out.reserve(into.native.size() + s.native.size());
  auto a = into.native.begin();
  auto b = s.native.begin();
  while (a != into.native.end() || b != s.native.end()) {
    if (b == s.native.end() || (a != into.native.end() && a->first < b->first)) {
      out.push_back(*a++);
    } else if (a == into.native.end() || b->first < a->first) {
      out.push_back(*b++);
    } else {
      out.emplace_back(a->first, a->second + b->second);
      ++a;
      ++b;
    }
  }
  into.native = std::move(out);
}

double ms(double seconds) { return seconds * 1000.0; }

std::string field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::map<std::string, telemetry::HistogramSnapshot, std::less<>> ControlMetrics::merged() const {
  // One pass over each family: a service's requests under "service", an instance's attempts
  // under "service/instance" (the windows' keys).
  std::map<std::string, telemetry::HistogramSnapshot, std::less<>> out;
  for (const auto& [labels, h] : m_.server_duration.series())
    if (!labels.empty()) add_into(out[labels[0]], h.snapshot());
  for (const auto& [labels, h] : m_.client_duration.series())
    if (labels.size() > 1) add_into(out[labels[0] + '/' + labels[1]], h.snapshot());
  return out;
}

void ControlMetrics::count_events() {
  if (!cursor_set_) {
    // Counting starts with the process: the registry's first events (configured services
    // coming up) are in the log from its origin.
    cursor_ = registry_.event_origin();
    cursor_set_ = true;
  }
  std::uint64_t missed = 0;
  const auto events = registry_.events_after(cursor_, &missed);
  if (missed > 0) m_.events_missed.with({}).add(missed);
  for (const auto& e : events) {
    cursor_ = e.id;
    json::error_code ec;
    const json::value data = json::parse(e.data_json, ec);
    const json::object empty;
    const json::object& d = !ec && data.is_object() ? data.as_object() : empty;
    if (e.type == registry::kEventHealthChanged) {
      m_.state_changes.with({e.service, field(d, "from"), field(d, "to")}).inc();
    } else if (e.type == registry::kEventExpired) {
      m_.expirations.with({e.service}).inc();
    } else if (e.type == registry::kEventRegistered) {
      m_.registrations.with({e.service, "created"}).inc();
    } else if (e.type == registry::kEventReplaced) {
      m_.registrations.with({e.service, "replaced"}).inc();
    } else if (e.type == registry::kEventDeregistered) {
      m_.registrations.with({e.service, "deregistered"}).inc();
    } else if (e.type == registry::kEventBreakerChanged) {
      m_.breaker_transitions.with({e.service, e.instance, field(d, "from"), field(d, "to")}).inc();
    } else if (e.type == registry::kEventEjected) {
      m_.outlier_ejections.with({e.service, e.instance}).inc();
    }
  }
}

void ControlMetrics::tick(core::SteadyTime now) {
  count_events();
  const auto snap = registry_.snapshot();
  {
    std::lock_guard lock(mu_);
    auto totals = merged();
    std::map<std::string, Window, std::less<>> next;
    auto rotate = [&](std::string key) {
      auto it = windows_.find(key);
      Window w = it != windows_.end() ? std::move(it->second)
                                      : Window{telemetry::SlidingWindow(window_, 6), {}};
      auto total = totals.find(key);
      w.last = total != totals.end() ? std::move(total->second) : telemetry::HistogramSnapshot{};
      w.window.rotate(now, w.last);
      next.emplace(std::move(key), std::move(w));
    };
    for (const auto& s : snap->services) {
      rotate(s.name);
      for (const auto& i : s.instances) rotate(s.name + '/' + i.id);
    }
    windows_ = std::move(next);
  }
  m_.registry.sweep(now);
}

void ControlMetrics::collect() {
  const auto snap = registry_.snapshot();
  static constexpr registry::InstanceState kStates[] = {
      registry::InstanceState::kUnknown, registry::InstanceState::kHealthy,
      registry::InstanceState::kDegraded, registry::InstanceState::kUnhealthy,
      registry::InstanceState::kDraining};
  for (const auto& s : snap->services) {
    std::map<std::pair<registry::InstanceState, core::Source>, int> n;
    std::vector<core::Source> sources;
    for (const auto& i : s.instances) {
      ++n[{i.state, i.source}];
      if (std::find(sources.begin(), sources.end(), i.source) == sources.end())
        sources.push_back(i.source);
    }
    if (sources.empty()) sources.push_back(s.source);
    for (const core::Source src : sources)
      for (const auto st : kStates)
        m_.instances.with({s.name, registry::to_string(st), core::to_string(src)})
            .set(n[{st, src}]);
  }
  for (const auto& b : guards_.breaker_states()) {
    static constexpr resilience::BreakerState kAll[] = {
        resilience::BreakerState::kClosed, resilience::BreakerState::kOpen,
        resilience::BreakerState::kHalfOpen, resilience::BreakerState::kForcedOpen,
        resilience::BreakerState::kForcedClosed};
    for (const auto st : kAll)
      m_.breaker_state.with({b.service, b.instance, resilience::to_string(st)})
          .set(st == b.state ? 1 : 0);
  }
}

void ControlMetrics::annotate_status(json::object& status, core::SteadyTime now) {
  (void)now;
  std::lock_guard lock(mu_);
  const double window_s = std::chrono::duration<double>(window_).count();
  auto figures = [&](json::object& o, std::string_view key, bool with_counts) {
    const auto it = windows_.find(key);
    if (it == windows_.end()) return;
    const telemetry::HistogramSnapshot w = it->second.window.over_window(it->second.last);
    o["p50_ms"] = ms(w.quantile(0.50));
    o["p95_ms"] = ms(w.quantile(0.95));
    o["p99_ms"] = ms(w.quantile(0.99));
    if (with_counts) {
      o["requests"] = w.count;
      o["request_rate"] = window_s > 0 ? static_cast<double>(w.count) / window_s : 0.0;
    }
  };
  auto* services = status.if_contains("services");
  if (services == nullptr || !services->is_array()) return;
  for (auto& sv : services->as_array()) {
    if (!sv.is_object()) continue;
    auto& so = sv.as_object();
    const std::string name = field(so, "name");
    json::object latency;
    figures(latency, name, true);
    so["latency"] = std::move(latency);
    auto* instances = so.if_contains("instances");
    if (instances == nullptr || !instances->is_array()) continue;
    for (auto& iv : instances->as_array()) {
      if (!iv.is_object()) continue;
      auto& io = iv.as_object();
      figures(io, name + '/' + field(io, "id"), false);
    }
  }
}

}  // namespace sb::gateway
