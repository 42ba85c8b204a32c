#include "gateway/view.hpp"

#include "registry/registry.hpp"
#include "resilience/random.hpp"

namespace sb::gateway {

void View::rebuild(std::shared_ptr<const registry::Snapshot> snap, core::SteadyTime now) {
  version_ = snap->version;
  std::map<std::string, std::shared_ptr<Service>, std::less<>> services;
  std::unordered_map<std::string, std::shared_ptr<Instance>> instances;
  std::map<std::string, std::shared_ptr<Lb>, std::less<>> balancers;
  std::vector<resilience::BalancerEndpoint> endpoints;
  for (const auto& rs : snap->services) {
    auto svc = std::make_shared<Service>(Service{snap,
                                                 &rs.config,
                                                 {},
                                                 ctx_.guards.service(rs.config),
                                                 nullptr,
                                                 0,
                                                 resilience::RetryPolicy(rs.config.policy.retry)});
    // Which instances take traffic: healthy and degraded ones, or all of them when fewer
    // than panic_threshold percent do (better a failing answer than none). Degraded ones
    // weigh a quarter of healthy ones, unless fewer than half of the usable ones are healthy.
    std::size_t usable = 0, healthy = 0;
    for (const auto& ri : rs.instances) {
      usable += ri.takes_traffic;
      healthy += ri.takes_traffic && ri.state != registry::InstanceState::kDegraded;
    }
    const bool panic = !rs.instances.empty() && rs.config.panic_threshold > 0 &&
                       usable * 100 < rs.config.panic_threshold * rs.instances.size();
    const bool degraded_full = healthy * 2 < usable;
    auto lb_it = balancers_.find(rs.name);
    std::shared_ptr<Lb> lb = lb_it != balancers_.end() ? lb_it->second : nullptr;
    const bool first_view = lb == nullptr;
    if (!lb)
      lb = std::make_shared<Lb>(
          Lb{resilience::Balancer(rs.config.balancer, ctx_.zone,
                                  ctx_.seed ^ std::hash<std::string>{}(rs.name)),
             0});
    endpoints.clear();
    for (const auto& ri : rs.instances) {
      if (!ri.takes_traffic && !panic) continue;  // failing its checks, or not yet checked
      const bool degraded = ri.state == registry::InstanceState::kDegraded;
      // Same service, id and URL: the same upstream, so keep its pool and state.
      std::string key = rs.name + '/' + ri.id + ' ' + ri.config.url.text;
      auto it = instances_.find(key);
      // instances_ holds exactly the previous view's endpoints: a new entry is a newly
      // available instance (new, or back from failing its checks), which ramps up
      // (balancer.slow_start); the first view does not.
      const bool known = it != instances_.end();
      std::shared_ptr<Instance> inst;
      if (known) {
        inst = it->second;
      } else {
        const auto& tls = rs.config.tls;
        http::UpstreamTarget target{ri.config.url.host, ri.config.url.port, ri.config.url.tls,
                                    tls.server_name,    tls.verify,         ctx_.tls_for(rs.name)};
        auto guard = ctx_.guards.instance(*svc->guard, rs.config, ri.id, ri.config.url.text);
        const std::uint64_t ejections = guard->outlier ? guard->outlier->times_ejected() : 0;
        inst = std::make_shared<Instance>(Instance{
            ri.config,
            std::make_unique<http::UpstreamPool>(ctx_.executor, target, rs.config.pool,
                                                 rs.config.timeouts.connect),
            ri.config.url.authority(),
            ri.uid,
            ri.in_flight,
            std::move(guard),
            {},
            ejections,
            ctx_.metrics ? InstanceMetrics(*ctx_.metrics, rs.name, ri.id) : InstanceMetrics()});
      }
      endpoints.push_back(resilience::BalancerEndpoint{
          reinterpret_cast<std::uintptr_t>(inst.get()),
          ri.config.weight * (degraded && !degraded_full ? 1u : 4u), inst->config.zone,
          known || first_view ? std::nullopt : std::optional<core::SteadyTime>(now)});
      svc->instances.push_back(inst);
      instances.emplace(std::move(key), std::move(inst));
    }
    lb->balancer.set_endpoints(endpoints, now);
    svc->generation = ++lb->generation;
    svc->lb = lb;
    balancers.emplace(rs.name, std::move(lb));
    services.emplace(rs.name, std::move(svc));
  }
  services_ = std::move(services);
  last_ = nullptr;
  instances_ = std::move(instances);  // pools of removed instances close once idle
  balancers_ = std::move(balancers);
}

void View::tick(core::SteadyTime now) {
  for (auto& [key, inst] : instances_) {
    inst->pool->sweep(now);
    inst->metrics.publish(*inst->pool);
  }
  for (auto& [name, svc] : services_) {
    for (std::size_t i = 0; i < svc->instances.size(); ++i) {
      Instance& inst = *svc->instances[i];
      const auto& outlier = inst.guard->outlier;
      if (!outlier || outlier->times_ejected() == inst.ejections_seen || outlier->ejected(now))
        continue;
      // Ejected since the last look, and back now: it ramps up like a new instance.
      inst.ejections_seen = outlier->times_ejected();
      svc->lb->balancer.set_available_since(i, now);
    }
  }
}

}  // namespace sb::gateway
