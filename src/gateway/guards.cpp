#include "gateway/guards.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <functional>
#include <vector>

#include "core/logging.hpp"
#include "registry/events.hpp"
#include "registry/registry.hpp"

namespace sb::gateway {
namespace json = boost::json;

namespace {

std::uint64_t seed_of(std::string_view key) { return std::hash<std::string_view>{}(key); }

std::string transition_data(std::string_view from, std::string_view to) {
  json::object o;
  o["from"] = from;
  o["to"] = to;
  return json::serialize(o);
}

double ms(core::Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

json::object breaker_json(const resilience::CircuitBreaker& b, core::SteadyTime now) {
  const resilience::BreakerSnapshot s = b.snapshot(now);
  json::object o;
  o["state"] = resilience::to_string(s.state);
  o["consecutive_failures"] = s.consecutive_failures;
  o["window_calls"] = s.window_calls;
  o["window_failures"] = s.window_failures;
  o["window_slow_calls"] = s.window_slow_calls;
  o["failure_rate"] = s.failure_rate;
  o["times_opened"] = s.times_opened;
  if (s.open_until) o["open_remaining_ms"] = ms(s.open_remaining);
  if (s.half_open_deadline) {
    o["probes_in_flight"] = s.probes_in_flight;
    o["probes_succeeded"] = s.probes_succeeded;
  }
  return o;
}

}  // namespace

InstanceGuard::InstanceGuard(Guards& g, std::string svc, std::string instance_id,
                             const core::BreakerConfig& b, std::uint64_t seed,
                             std::shared_ptr<resilience::OutlierHost> o)
    : guards(g),
      service(std::move(svc)),
      id(std::move(instance_id)),
      breaker(b, seed),
      outlier(std::move(o)) {}

void InstanceGuard::report(const std::optional<resilience::BreakerTransition>& t) const {
  if (!t) return;
  spdlog::warn("breaker of {}/{}: {} -> {} ({})", service, id, resilience::to_string(t->from),
               resilience::to_string(t->to), t->reason);
  guards.event(registry::kEventBreakerChanged, service, id,
               fmt::format("{} -> {}: {}", resilience::to_string(t->from),
                           resilience::to_string(t->to), t->reason),
               transition_data(resilience::to_string(t->from), resilience::to_string(t->to)));
}

void InstanceGuard::report(const std::optional<resilience::OutlierTransition>& t) const {
  if (!t) return;
  spdlog::warn("outlier {}/{}: {} ({})", service, id, resilience::to_string(t->to), t->reason);
  guards.event(t->to == resilience::OutlierState::kEjected ? registry::kEventEjected
                                                           : registry::kEventReturned,
               service, id, t->reason,
               transition_data(resilience::to_string(t->from), resilience::to_string(t->to)));
}

ServiceGuard::ServiceGuard(Guards& g, const core::ServiceConfig& config)
    : guards(g),
      name(config.name),
      breaker(config.breaker, seed_of(config.name)),
      budget(config.policy.retry),
      outlier_interval(config.outlier.interval),
      outlier(config.outlier.enabled ? std::make_unique<resilience::OutlierDetector>(config.outlier)
                                     : nullptr) {}

void ServiceGuard::report(const std::optional<resilience::BreakerTransition>& t) const {
  if (!t) return;
  spdlog::warn("breaker of service {}: {} -> {} ({})", name, resilience::to_string(t->from),
               resilience::to_string(t->to), t->reason);
  guards.event(registry::kEventBreakerChanged, name, "",
               fmt::format("{} -> {}: {}", resilience::to_string(t->from),
                           resilience::to_string(t->to), t->reason),
               transition_data(resilience::to_string(t->from), resilience::to_string(t->to)));
}

Guards::Guards(registry::Registry& registry) : registry_(registry) {}

void Guards::event(std::string_view type, std::string_view service, std::string_view instance,
                   std::string reason, std::string data_json) {
  registry_.record_event(type, service, instance, std::move(reason), std::move(data_json));
}

std::shared_ptr<ServiceGuard> Guards::service(const core::ServiceConfig& config) {
  std::lock_guard lock(mu_);
  auto& slot = services_[config.name];
  if (auto s = slot.lock()) return s;
  auto s = std::make_shared<ServiceGuard>(*this, config);
  slot = s;
  return s;
}

std::shared_ptr<InstanceGuard> Guards::instance(ServiceGuard& svc,
                                                const core::ServiceConfig& config,
                                                const std::string& id, const std::string& url) {
  std::lock_guard lock(mu_);
  const std::string key = id + ' ' + url;
  auto& slot = svc.instances_[key];
  if (auto g = slot.lock()) return g;
  std::shared_ptr<resilience::OutlierHost> host;
  if (svc.outlier) {
    const std::uint64_t host_id = next_host_++;
    host = svc.outlier->add_host(host_id);
    svc.host_names_[host_id] = id;
  }
  auto g = std::make_shared<InstanceGuard>(*this, svc.name, id, config.breaker,
                                           seed_of(svc.name + '/' + key), std::move(host));
  slot = g;
  return g;
}

void Guards::tick(core::SteadyTime now) {
  struct Report {
    std::shared_ptr<InstanceGuard> instance;
    resilience::OutlierTransition t;
  };
  std::vector<Report> reports;
  {
    std::lock_guard lock(mu_);
    for (auto it = services_.begin(); it != services_.end();) {
      auto svc = it->second.lock();
      if (!svc) {
        it = services_.erase(it);
        continue;
      }
      std::vector<std::shared_ptr<InstanceGuard>> live;
      for (auto i = svc->instances_.begin(); i != svc->instances_.end();) {
        if (auto g = i->second.lock()) {
          live.push_back(std::move(g));
          ++i;
        } else {
          i = svc->instances_.erase(i);
        }
      }
      if (svc->outlier && now >= svc->next_evaluation_) {
        const bool first = svc->next_evaluation_ == core::SteadyTime{};
        svc->next_evaluation_ = now + svc->outlier_interval;
        if (!first) {
          std::vector<std::shared_ptr<resilience::OutlierHost>> hosts;
          for (const auto& g : live)
            if (g->outlier) hosts.push_back(g->outlier);
          for (auto& t : svc->outlier->evaluate(now, hosts)) {
            for (const auto& g : live)
              if (g->outlier && g->outlier->id() == t.host_id) reports.push_back({g, std::move(t)});
          }
        }
      }
      ++it;
    }
  }
  for (auto& r : reports) r.instance->report(std::optional(std::move(r.t)));
}

Guards::ActionResult Guards::breaker_action(std::string_view service, std::string_view instance,
                                            std::string_view action, core::SteadyTime now) {
  std::shared_ptr<ServiceGuard> svc;
  std::shared_ptr<InstanceGuard> inst;
  {
    std::lock_guard lock(mu_);
    auto it = services_.find(service);
    if (it != services_.end()) svc = it->second.lock();
    if (!svc) return {404, fmt::format("no service named \"{}\"", service), {}};
    if (!instance.empty()) {
      for (const auto& [key, weak] : svc->instances_) {
        if (key.size() > instance.size() && key.compare(0, instance.size(), instance) == 0 &&
            key[instance.size()] == ' ') {
          inst = weak.lock();
          if (inst) break;
        }
      }
      if (!inst)
        return {404, fmt::format("service \"{}\" has no instance \"{}\"", service, instance), {}};
    }
  }
  resilience::CircuitBreaker& b = inst ? inst->breaker : svc->breaker;
  std::optional<resilience::BreakerTransition> t;
  if (action == "open")
    t = b.force_open(now);
  else if (action == "close")
    t = b.force_close(now);
  else
    t = b.reset(now);
  if (inst)
    inst->report(t);
  else
    svc->report(t);
  return {200, {}, json::serialize(breaker_json(b, now)) + "\n"};
}

void Guards::annotate_status(json::object& status, core::SteadyTime now) const {
  std::lock_guard lock(mu_);
  auto* services = status.if_contains("services");
  if (services == nullptr || !services->is_array()) return;
  for (auto& sv : services->as_array()) {
    if (!sv.is_object()) continue;
    auto& so = sv.as_object();
    const auto* name = so.if_contains("name");
    if (name == nullptr || !name->is_string()) continue;
    auto it = services_.find(std::string_view(name->as_string()));
    auto svc = it == services_.end() ? nullptr : it->second.lock();
    if (!svc) continue;
    so["breaker"] = breaker_json(svc->breaker, now);
    const resilience::BudgetSnapshot b = svc->budget.snapshot(now);
    json::object budget;
    budget["window_requests"] = b.window_requests;
    budget["window_retries"] = b.window_retries;
    so["retry_budget"] = std::move(budget);
    if (svc->outlier) {
      json::object o;
      o["ejected"] = svc->outlier->ejected_count();
      o["max_ejected"] = svc->outlier->max_ejected();
      so["outlier"] = std::move(o);
    }
    auto* instances = so.if_contains("instances");
    if (instances == nullptr || !instances->is_array()) continue;
    for (auto& iv : instances->as_array()) {
      if (!iv.is_object()) continue;
      auto& io = iv.as_object();
      const auto* id = io.if_contains("id");
      const auto* url = io.if_contains("url");
      if (id == nullptr || url == nullptr || !id->is_string() || !url->is_string()) continue;
      const std::string key = std::string(id->as_string()) + ' ' + std::string(url->as_string());
      auto g = svc->instances_.find(key);
      auto inst = g == svc->instances_.end() ? nullptr : g->second.lock();
      if (!inst) continue;
      io["breaker"] = breaker_json(inst->breaker, now);
      if (inst->outlier) {
        json::object o;
        o["ejected"] = inst->outlier->ejected(now);
        if (const auto until = inst->outlier->ejected_until(); until && *until > now)
          o["ejected_remaining_ms"] = ms(*until - now);
        o["times_ejected"] = inst->outlier->times_ejected();
        o["consecutive_gateway_errors"] = inst->outlier->consecutive_gateway_errors();
        io["outlier"] = std::move(o);
      }
    }
  }
}

std::map<std::string, std::string> Guards::service_breakers() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [name, weak] : services_)
    if (auto svc = weak.lock()) out[name] = resilience::to_string(svc->breaker.state());
  return out;
}

std::vector<Guards::BreakerStateOf> Guards::breaker_states() const {
  std::lock_guard lock(mu_);
  std::vector<BreakerStateOf> out;
  for (const auto& [name, weak] : services_) {
    auto svc = weak.lock();
    if (!svc) continue;
    out.push_back(BreakerStateOf{name, "", svc->breaker.state()});
    for (const auto& [key, iw] : svc->instances_)
      if (auto inst = iw.lock())
        out.push_back(BreakerStateOf{name, inst->id, inst->breaker.state()});
  }
  return out;
}

}  // namespace sb::gateway
