#include "registry/registry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>

#include "core/config_load.hpp"
#include "core/logging.hpp"
#include "registry/store.hpp"

namespace sb::registry {
namespace json = boost::json;

namespace {

std::int64_t unix_ms(core::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

json::object instance_json(const Instance& i, core::SteadyTime now) {
  json::object o;
  o["id"] = i.id;
  o["url"] = i.config.url.text;
  o["zone"] = i.config.zone;
  o["weight"] = i.config.weight;
  o["source"] = core::to_string(i.source);
  o["state"] = to_string(i.state);
  o["takes_traffic"] = i.takes_traffic;
  if (!i.health_reason.empty()) o["reason"] = i.health_reason;
  if (i.ttl_seconds > 0) {
    o["ttl_seconds"] = i.ttl_seconds;
    if (i.deadline)
      o["expires_in_ms"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(*i.deadline - now).count();
  }
  if (i.registered_at != core::WallTime{}) o["registered_at"] = format_rfc3339_ms(i.registered_at);
  json::error_code ec;
  json::value meta = json::parse(i.metadata_json, ec);
  o["metadata"] = ec ? json::value(json::object{}) : std::move(meta);
  if (!i.check_json.empty()) {
    json::value check = json::parse(i.check_json, ec);
    if (!ec) o["check"] = std::move(check);
  }
  return o;
}

json::object service_object(const Service& s, core::SteadyTime now) {
  json::object o;
  o["name"] = s.name;
  o["source"] = core::to_string(s.source);
  o["critical"] = s.config.critical;
  json::array instances;
  for (const auto& i : s.instances) instances.push_back(instance_json(i, now));
  o["instances"] = std::move(instances);
  return o;
}

}  // namespace

const Service* Snapshot::find(std::string_view name) const {
  auto it = std::lower_bound(services.begin(), services.end(), name,
                             [](const Service& s, std::string_view n) { return s.name < n; });
  return it != services.end() && it->name == name ? &*it : nullptr;
}

// The event log's epoch: the start time in Unix milliseconds, modulo 2^32 (it repeats
// every 49.7 days), so that a Last-Event-ID kept by a client across a restart names another
// epoch and gets a snapshot instead of resuming into another process's events.
static std::uint32_t event_epoch(core::WallTime now) {
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(unix_ms(now)) & 0xffff'ffffu);
}

Registry::Registry(const core::Config& config, core::Clock& clock, RegistryStore* store,
                   std::optional<core::UpstreamUrl> self_url)
    : clock_(clock),
      store_(store),
      events_(10000, event_epoch(clock.wall_now())),
      last_event_id_(events_.origin()) {
  api_defaults_.timeouts = config.upstream.timeouts;
  api_defaults_.pool = config.upstream.pool;
  api_defaults_.tls = config.upstream.tls;
  api_defaults_.source = core::Source::kApi;
  health_settings_.interval = config.health.check_interval;
  health_settings_.unhealthy_interval =
      std::min<core::Duration>(config.health.unhealthy_interval, config.health.check_interval);
  health_settings_.rise = config.health.rise;
  health_settings_.fall = config.health.fall;
  health_settings_.window = config.health.metrics_collection_interval;
  health_settings_.stretch_on_live_success = config.health.live_success_stretch;
  health_settings_.degraded_p95 = config.health.degraded_latency;
  health_settings_.degraded_error_rate = config.health.degraded_error_rate;
  health_settings_.recover_factor = config.health.recover_factor;
  health_settings_.min_samples = config.health.degraded_min_samples;
  default_tcp_check_ = config.health.default_check == core::HealthConfig::DefaultCheck::kTcp;
  default_check_settings_ = health_settings_;
  default_check_settings_.traffic_before_first_check = true;
  for (const auto& sc : config.services) {
    Service s{sc.name, sc, sc.source, {}};
    s.config.instances.clear();
    for (std::size_t i = 0; i < sc.instances.size(); ++i) {
      Instance inst;
      inst.id = fmt::format("{}-{}", core::to_string(sc.source), i + 1);
      inst.config = sc.instances[i];
      inst.source = sc.source;
      s.instances.push_back(std::move(inst));
    }
    services_.push_back(std::move(s));
  }
  for (auto& svc : services_)
    for (auto& inst : svc.instances) track(svc, inst);
  if (self_url && find_mut("switchboard") == nullptr) {
    Service s{"switchboard", api_defaults_, core::Source::kDefault, {}};
    s.config.name = s.name;  // like API services: its guard and metrics go by this name
    Instance self;
    self.id = "self";
    self.config.url = *self_url;
    self.source = core::Source::kDefault;
    self.registered_at = clock_.wall_now();
    s.instances.push_back(std::move(self));
    track(s, s.instances.back());
    services_.push_back(std::move(s));
  }
  std::lock_guard lock(mu_);
  publish();
}

Registry::~Registry() = default;

Service* Registry::find_mut(std::string_view name) {
  for (auto& s : services_)
    if (s.name == name) return &s;
  return nullptr;
}

static std::string health_key(std::string_view service, std::string_view id) {
  std::string k(service);
  k += '/';
  k += id;
  return k;
}

void Registry::track(const Service& s, Instance& inst) {
  const auto now = clock_.steady_now();
  core::HealthCheckConfig check = inst.check ? *inst.check : s.config.health_check;
  // An instance without a check of its own or its service's gets a TCP connect check
  // (health.default_check), Switchboard itself excepted. It routes at once, as before;
  // the check takes it out when connects fail (and live failures bring it back in).
  const bool by_default =
      !check.enabled() && default_tcp_check_ && inst.source != core::Source::kDefault;
  if (by_default) {
    const core::Millis deregister_after = check.deregister_after;
    check = core::HealthCheckConfig{};
    check.type = core::HealthCheckConfig::Type::kTcp;
    check.deregister_after = deregister_after;
  }
  const bool checked = check.enabled();
  const std::string key = health_key(s.name, inst.id);
  untrack(s.name, inst.id);
  inst.uid = next_uid_++;
  inst.in_flight = std::make_shared<std::atomic<std::int32_t>>(0);
  inst.state = InstanceState::kUnknown;
  // Checked: no traffic until a check proves it; checked by default: traffic at once.
  inst.takes_traffic = !checked || by_default;
  inst.health_reason = checked && !by_default ? "not checked yet" : "";
  const std::uint64_t seed = std::hash<std::string>{}(key);
  const HealthSettings& settings = by_default ? default_check_settings_ : health_settings_;
  CheckScheduler scheduler(settings, seed);
  // A default check first runs one (jittered) interval from now: the instance already takes
  // traffic, and a new connection to every instance at start-up would tell nothing yet.
  const core::SteadyTime first =
      by_default ? scheduler.next_check(now, InstanceState::kHealthy) : now;
  auto [it, inserted] = health_.insert_or_assign(
      key, Health{HealthTracker(settings, now), std::move(scheduler), first, checked, false, s.name,
                  inst.id, inst.config.url, check, s.config.tls, inst.uid});
  by_uid_[inst.uid] = &it->second;
  it->second.by_default = by_default;
  if (checked) schedule_.emplace(first, &it->second);
}

void Registry::untrack(std::string_view service, std::string_view id) {
  const auto it = health_.find(health_key(service, id));
  if (it == health_.end()) return;
  Health& h = it->second;
  if (h.checked && !h.running) schedule_.erase({h.next_check, &h});
  by_uid_.erase(h.uid);
  health_.erase(it);
}

void Registry::CheckTiming::add(core::SteadyTime now, core::Duration late) {
  const std::int64_t p =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() / 10;
  if (p != period) {
    const bool adjacent = p == period + 1;
    lateness[1] = adjacent ? lateness[0] : LatencyHistogram{};
    max[1] = adjacent ? max[0] : core::Duration{};
    started[1] = adjacent ? started[0] : 0;
    lateness[0].clear();
    max[0] = {};
    started[0] = 0;
    period = p;
  }
  lateness[0].add(late);
  max[0] = std::max(max[0], late);
  ++started[0];
  ++started_total;
}

void Registry::apply(std::string_view service, std::string_view id, Health& h,
                     const std::optional<Transition>& t) {
  if (!t) return;
  Service* s = find_mut(service);
  if (s == nullptr) return;
  for (auto& inst : s->instances) {
    if (inst.id != id) continue;
    inst.state = t->to;
    inst.health_reason = t->reason;
    if (h.checked) inst.takes_traffic = h.by_default ? !h.check_down : h.tracker.takes_traffic();
    spdlog::info("registry: {}/{} is {} ({})", service, id, to_string(t->to), t->reason);
    event(kEventHealthChanged, service, id,
          fmt::format("{} -> {}: {}", to_string(t->from), to_string(t->to), t->reason), &inst);
  }
  // Health changes come in bursts (a restart brings thousands of instances up together):
  // one snapshot per control-loop turn, not one per change (see publish_pending).
  dirty_ = true;
}

void Registry::publish_pending() {
  std::lock_guard lock(mu_);
  if (dirty_) publish();
}

std::shared_ptr<LiveFeed> Registry::make_feed() {
  std::lock_guard lock(mu_);
  feeds_.push_back(std::make_shared<LiveFeed>());
  return feeds_.back();
}

void Registry::harvest() {
  std::lock_guard lock(mu_);
  const auto now = clock_.steady_now();
  // Samples come in runs for the same instance: the last lookup is kept. Each sample counts
  // toward rise and fall at once; each tracker's window is judged once, after the harvest
  // (all samples carry the same `now`, so judging it per sample would only repeat itself).
  std::uint64_t last_uid = 0;
  Health* last = nullptr;
  for (auto& feed : feeds_) {
    feed->drain([&](const LiveSample& sample) {
      if (sample.instance_uid != last_uid || last == nullptr) {
        const auto it = by_uid_.find(sample.instance_uid);
        if (it == by_uid_.end()) return;  // removed since
        last_uid = sample.instance_uid;
        last = it->second;
      }
      Health& h = *last;
      auto t = h.tracker.record_live(now, sample.ok, std::chrono::microseconds(sample.latency_us),
                                     /*reason=*/{},
                                     /*judge_window=*/false);
      if (t) apply(h.service, h.id, h, t);
      if (!h.harvested) {
        h.harvested = true;
        harvested_.push_back(&h);
      }
    });
  }
  for (Health* h : harvested_) {
    h->harvested = false;
    if (auto t = h->tracker.update(now)) apply(h->service, h->id, *h, t);
  }
  harvested_.clear();
}

std::vector<DueCheck> Registry::due_checks(std::size_t limit) {
  std::lock_guard lock(mu_);
  std::vector<DueCheck> due;
  const auto now = clock_.steady_now();
  while (due.size() < limit && !schedule_.empty() && schedule_.begin()->first <= now) {
    const auto [at, hp] = *schedule_.begin();
    schedule_.erase(schedule_.begin());
    Health& h = *hp;
    h.running = true;
    check_timing_.add(now, now - at);
    due.push_back(DueCheck{h.service, h.id, h.url, h.check, h.tls});
  }
  return due;
}

std::optional<core::SteadyTime> Registry::next_check_due() const {
  std::lock_guard lock(mu_);
  if (schedule_.empty()) return std::nullopt;
  return schedule_.begin()->first;
}

void Registry::set_on_change(std::function<void()> f) {
  std::lock_guard lock(on_change_mu_);
  on_change_ = std::move(f);
}

void Registry::changed() {
  std::lock_guard lock(on_change_mu_);
  if (on_change_) on_change_();
}

void Registry::record_check(std::string_view service, std::string_view id, bool ok,
                            core::Duration latency, std::string_view reason) {
  std::lock_guard lock(mu_);
  const auto it = health_.find(health_key(service, id));
  if (it == health_.end()) return;  // removed while the check ran
  Health& h = it->second;
  const auto now = clock_.steady_now();
  h.running = false;
  const auto transition = h.tracker.record_check(now, ok, latency, reason);
  h.next_check = h.scheduler.next_check(now, h.tracker);
  schedule_.emplace(h.next_check, &h);
  if (h.by_default) {
    h.check_failures = ok ? 0 : std::min(h.check_failures + 1, 1 << 20);
    h.check_successes = ok ? std::min(h.check_successes + 1, 1 << 20) : 0;
    const bool down = h.check_down ? h.check_successes < health_settings_.rise
                                   : h.check_failures >= health_settings_.fall;
    if (down != h.check_down) {
      h.check_down = down;
      if (Service* s = find_mut(service))
        for (auto& inst : s->instances)
          if (inst.id == id) inst.takes_traffic = !down;
      dirty_ = true;
      if (!transition)  // the tracker was already unhealthy (live failures): say why now
        spdlog::info("registry: {}/{} {} traffic ({})", service, id, down ? "gets no" : "takes",
                     reason);
    }
  }
  apply(service, id, h, transition);
}

void Registry::publish() const {
  dirty_ = false;
  auto snap = std::make_shared<Snapshot>();
  snap->version = version_.load(std::memory_order_relaxed) + 1;
  snap->services = services_;
  std::sort(snap->services.begin(), snap->services.end(),
            [](const Service& a, const Service& b) { return a.name < b.name; });
  snapshot_ = std::move(snap);
  published_.store(snapshot_, std::memory_order_release);
  version_.store(snapshot_->version, std::memory_order_release);
}

void Registry::record_event(std::string_view type, std::string_view service,
                            std::string_view instance, std::string reason, std::string data_json) {
  // Workers call this (breaker and outlier changes): only the log's own lock, never mu_,
  // which a change holds across its store commit.
  std::lock_guard lock(events_mu_);
  last_event_id_.store(
      events_.append(clock_.wall_now(), std::string(type), std::string(service),
                     std::string(instance), std::move(reason), std::move(data_json)),
      std::memory_order_release);
}

void Registry::event(std::string_view type, std::string_view service, std::string_view id,
                     std::string reason, const Instance* instance) {
  std::string data = "{}";
  if (instance != nullptr) data = json::serialize(instance_json(*instance, clock_.steady_now()));
  std::lock_guard lock(events_mu_);  // with mu_ held: mu_, then events_mu_
  last_event_id_.store(events_.append(clock_.wall_now(), std::string(type), std::string(service),
                                      std::string(id), std::move(reason), std::move(data)),
                       std::memory_order_release);
}

EventLog::Since Registry::events_since(std::uint64_t last_id) const {
  std::lock_guard lock(events_mu_);
  return events_.since(last_id);
}

std::vector<Event> Registry::events_after(std::uint64_t last_id, std::uint64_t* missed) const {
  std::lock_guard lock(events_mu_);
  // Ids never restart within a process, so last_id (at least origin()) is at most
  // last_id(); the gap up to the oldest held event is what the bounded log dropped.
  const std::uint64_t from = std::max(last_id, events_.first_id() - 1);
  *missed = from - last_id;
  return events_.since(from).events;
}

std::shared_ptr<const Snapshot> Registry::snapshot() const {
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    if (auto published = published_.load(std::memory_order_acquire)) return published;
    lock.lock();  // nothing published yet
  }
  if (dirty_) publish();
  return snapshot_;
}

std::optional<std::string> Registry::load() {
  if (store_ == nullptr) return std::nullopt;
  std::string error;
  auto stored = store_->load_all(&error);
  if (!error.empty()) return error;
  std::lock_guard lock(mu_);
  const auto wall = clock_.wall_now();
  const auto steady = clock_.steady_now();
  std::size_t restored = 0, lapsed = 0;
  for (const auto& si : stored) {
    std::string why;
    auto url = core::parse_upstream_url(si.url, &why);
    if (!url || !valid_service_name(si.service) || !valid_instance_id(si.id)) {
      spdlog::warn("registry store: skipping unreadable registration {}/{}: {}", si.service, si.id,
                   why.empty() ? "bad name" : why);
      continue;
    }
    std::optional<core::SteadyTime> deadline;
    if (si.ttl_ms > 0) {
      const auto left = std::chrono::milliseconds(si.deadline_unix_ms - unix_ms(wall));
      if (left <= std::chrono::milliseconds::zero()) {
        ++lapsed;
        spdlog::info("registry: {}/{} expired while Switchboard was down", si.service, si.id);
        event(kEventExpired, si.service, si.id, "ttl lapsed while Switchboard was down", nullptr);
        if (auto err = store_->remove(si.service, si.id)) spdlog::warn("registry store: {}", *err);
        continue;
      }
      deadline = steady + left;
    }
    Service* s = find_mut(si.service);
    if (s != nullptr && std::any_of(s->instances.begin(), s->instances.end(),
                                    [&](const Instance& i) { return i.id == si.id; })) {
      // Configuration now names an instance with this id: configuration wins.
      spdlog::warn(
          "registry: stored registration {}/{} hidden by a configured instance with the "
          "same id; dropping it",
          si.service, si.id);
      if (auto err = store_->remove(si.service, si.id)) spdlog::warn("registry store: {}", *err);
      continue;
    }
    if (s == nullptr) {
      services_.push_back(Service{si.service, api_defaults_, core::Source::kApi, {}});
      s = &services_.back();
      s->config.name = si.service;
    }
    Instance inst;
    inst.id = si.id;
    inst.config.url = *url;
    inst.config.zone = si.zone;
    inst.config.weight = si.weight == 0 ? 1 : si.weight;
    inst.source = core::Source::kApi;
    inst.ttl_seconds = si.ttl_ms / 1000;
    inst.deadline = deadline;
    inst.registered_at = si.registered_unix_ms > 0
                             ? core::WallTime(std::chrono::duration_cast<core::WallTime::duration>(
                                   std::chrono::milliseconds(si.registered_unix_ms)))
                             : wall;
    inst.metadata_json = si.metadata_json.empty() ? "{}" : si.metadata_json;
    if (!si.check_json.empty()) {
      auto check = parse_check(si.check_json);
      if (auto* e = std::get_if<ApiError>(&check)) {
        spdlog::warn("registry store: {}/{}: stored {} {}: the service's checks apply", si.service,
                     si.id, e->field, e->detail);
      } else {
        inst.check = std::get<core::HealthCheckConfig>(check);
        inst.check_json = si.check_json;
      }
    }
    s->instances.push_back(std::move(inst));
    track(*s, s->instances.back());
    ++restored;
  }
  if (restored > 0 || lapsed > 0)
    spdlog::info("registry: restored {} registration(s), {} expired while down", restored, lapsed);
  publish();
  return std::nullopt;
}

std::variant<Registry::PutOutcome, ApiError> Registry::put(const Registration& r) {
  std::unique_lock lock(mu_);
  Service* s = find_mut(r.service);
  if (s != nullptr && s->source != core::Source::kApi) {
    for (const auto& i : s->instances) {
      if (i.id == r.id && i.source != core::Source::kApi)
        return ApiError{409, "id",
                        fmt::format("instance {} of {} comes from {} and cannot be replaced "
                                    "through the API",
                                    r.id, r.service, core::to_string(i.source))};
    }
  }
  const auto wall = clock_.wall_now();
  const auto steady = clock_.steady_now();
  if (store_ != nullptr) {
    StoredInstance si;
    si.service = r.service;
    si.id = r.id;
    si.url = r.url.text;
    si.zone = r.zone;
    si.weight = r.weight;
    si.metadata_json = r.metadata_json;
    si.check_json = r.check_json;
    si.ttl_ms = r.ttl_seconds * 1000;
    si.deadline_unix_ms = r.ttl_seconds > 0 ? unix_ms(wall) + r.ttl_seconds * 1000 : 0;
    si.registered_unix_ms = unix_ms(wall);
    if (auto err = store_->put(si)) return ApiError{503, "", "registry store: " + *err};
  }
  if (s == nullptr) {
    services_.push_back(Service{r.service, api_defaults_, core::Source::kApi, {}});
    s = &services_.back();
    s->config.name = r.service;
  }
  Instance inst;
  inst.id = r.id;
  inst.config.url = r.url;
  inst.config.zone = r.zone;
  inst.config.weight = r.weight;
  inst.source = core::Source::kApi;
  inst.ttl_seconds = r.ttl_seconds;
  if (r.ttl_seconds > 0) inst.deadline = steady + std::chrono::seconds(r.ttl_seconds);
  inst.registered_at = wall;
  inst.metadata_json = r.metadata_json;
  inst.check = r.check;
  inst.check_json = r.check_json;
  PutOutcome outcome = PutOutcome::kCreated;
  for (auto& existing : s->instances) {
    if (existing.id == r.id) {
      existing = std::move(inst);
      outcome = PutOutcome::kReplaced;
      break;
    }
  }
  const Instance* stored = nullptr;
  if (outcome == PutOutcome::kCreated) s->instances.push_back(std::move(inst));
  for (auto& i : s->instances)
    if (i.id == r.id) {
      track(*s, i);
      stored = &i;
    }
  event(outcome == PutOutcome::kCreated ? kEventRegistered : kEventReplaced, r.service, r.id,
        "registration API", stored);
  spdlog::info("registry: {} {}/{} at {}",
               outcome == PutOutcome::kCreated ? "registered" : "replaced", r.service, r.id,
               r.url.text);
  publish();
  lock.unlock();
  changed();  // its first check may be due before the checker's next wake-up
  return outcome;
}

std::optional<ApiError> Registry::heartbeat(std::string_view service, std::string_view id) {
  std::lock_guard lock(mu_);
  Service* s = find_mut(service);
  Instance* inst = nullptr;
  if (s != nullptr)
    for (auto& i : s->instances)
      if (i.id == id) inst = &i;
  if (inst == nullptr)
    return ApiError{404, "id", fmt::format("no instance {} of service {}", id, service)};
  if (inst->ttl_seconds <= 0) return std::nullopt;  // nothing to renew
  if (store_ != nullptr) {
    const auto deadline = unix_ms(clock_.wall_now()) + inst->ttl_seconds * 1000;
    if (auto err = store_->renew(service, id, deadline))
      return ApiError{503, "", "registry store: " + *err};
  }
  inst->deadline = clock_.steady_now() + std::chrono::seconds(inst->ttl_seconds);
  publish();
  return std::nullopt;
}

std::optional<ApiError> Registry::remove(std::string_view service, std::string_view id) {
  std::lock_guard lock(mu_);
  Service* s = find_mut(service);
  if (s == nullptr) return ApiError{404, "service", fmt::format("no service {}", service)};
  auto it = std::find_if(s->instances.begin(), s->instances.end(),
                         [&](const Instance& i) { return i.id == id; });
  if (it == s->instances.end())
    return ApiError{404, "id", fmt::format("no instance {} of service {}", id, service)};
  if (it->source != core::Source::kApi)
    return ApiError{409, "id",
                    fmt::format("instance {} of {} comes from {} and cannot be removed through "
                                "the API",
                                id, service, core::to_string(it->source))};
  if (store_ != nullptr)
    if (auto err = store_->remove(service, id)) return ApiError{503, "", "registry store: " + *err};
  event(kEventDeregistered, service, id, "registration API", &*it);
  untrack(service, id);
  s->instances.erase(it);
  if (s->instances.empty() && s->source == core::Source::kApi)
    services_.erase(services_.begin() + (s - services_.data()));
  spdlog::info("registry: deregistered {}/{}", service, id);
  publish();
  return std::nullopt;
}

std::size_t Registry::expire() {
  std::lock_guard lock(mu_);
  const auto now = clock_.steady_now();
  std::size_t n = 0;
  for (auto& s : services_) {
    const auto deregister_after = s.config.health_check.deregister_after;
    for (auto it = s.instances.begin(); it != s.instances.end();) {
      // API instances whose checks have failed for deregister_after go away.
      if (deregister_after.count() > 0 && it->source == core::Source::kApi) {
        const auto h = health_.find(health_key(s.name, it->id));
        if (h != health_.end() && h->second.tracker.state() == InstanceState::kUnhealthy &&
            now - h->second.tracker.since() >= deregister_after) {
          const std::string why =
              fmt::format("unhealthy for deregister_after ({} ms)", deregister_after.count());
          spdlog::info("registry: {}/{} removed: {}", s.name, it->id, why);
          if (store_ != nullptr)
            if (auto err = store_->remove(s.name, it->id)) spdlog::warn("registry store: {}", *err);
          event(kEventDeregistered, s.name, it->id, why, &*it);
          untrack(s.name, it->id);
          it = s.instances.erase(it);
          ++n;
          continue;
        }
      }
      if (it->deadline && now >= *it->deadline) {
        spdlog::info("registry: {}/{} expired (no heartbeat within {} s)", s.name, it->id,
                     it->ttl_seconds);
        if (store_ != nullptr)
          if (auto err = store_->remove(s.name, it->id)) spdlog::warn("registry store: {}", *err);
        event(kEventExpired, s.name, it->id,
              fmt::format("no heartbeat within ttl_seconds ({})", it->ttl_seconds), &*it);
        untrack(s.name, it->id);
        it = s.instances.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
  }
  std::erase_if(services_, [](const Service& s) {
    return s.instances.empty() && s.source == core::Source::kApi;
  });
  if (n > 0) publish();
  return n;
}

std::string Registry::to_json() const {
  auto snap = snapshot();
  const auto now = clock_.steady_now();
  json::array services;
  for (const auto& s : snap->services) services.push_back(service_object(s, now));
  json::object o;
  o["version"] = snap->version;
  o["services"] = std::move(services);
  return json::serialize(o) + "\n";
}

std::string Registry::status_json() const {
  std::lock_guard lock(mu_);
  const auto now = clock_.steady_now();
  const auto wall = clock_.wall_now();
  const auto wall_of = [&](core::SteadyTime t) {
    return format_rfc3339_ms(wall - std::chrono::duration_cast<core::WallTime::duration>(now - t));
  };
  const auto ms = [](core::Duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  const double window_s = std::chrono::duration<double>(health_settings_.window).count();
  json::array services;
  std::vector<const Service*> sorted;
  for (const auto& svc : services_) sorted.push_back(&svc);
  std::sort(sorted.begin(), sorted.end(),
            [](const Service* a, const Service* b) { return a->name < b->name; });
  for (const Service* svc : sorted) {
    json::array instances;
    std::size_t available = 0, degraded = 0;
    for (const auto& inst : svc->instances) {
      json::object o;
      o["id"] = inst.id;
      o["url"] = inst.config.url.text;
      o["state"] = to_string(inst.state);
      o["takes_traffic"] = inst.takes_traffic;
      o["reason"] = inst.health_reason;
      o["in_flight"] = inst.in_flight ? inst.in_flight->load(std::memory_order_relaxed) : 0;
      if (inst.takes_traffic) ++available;
      if (inst.state == InstanceState::kDegraded) ++degraded;
      const auto h = health_.find(health_key(svc->name, inst.id));
      if (h != health_.end()) {
        const HealthTracker& t = h->second.tracker;
        o["since"] = wall_of(t.since());
        if (const auto& c = t.last_check()) {
          json::object check;
          check["at"] = wall_of(c->at);
          check["ok"] = c->ok;
          check["latency_ms"] = ms(c->latency);
          check["result"] = c->reason;
          o["last_check"] = std::move(check);
        }
        const WindowStats w = t.stats(now);
        o["requests"] = w.count;
        o["request_rate"] = window_s > 0 ? static_cast<double>(w.count) / window_s : 0.0;
        o["error_rate"] = w.error_rate;
        o["p50_ms"] = ms(w.p50);
        o["p95_ms"] = ms(w.p95);
        o["p99_ms"] = ms(w.p99);
      }
      instances.push_back(std::move(o));
    }
    json::object so;
    so["name"] = svc->name;
    so["state"] = available == 0                                        ? "unavailable"
                  : (degraded > 0 || available < svc->instances.size()) ? "degraded"
                                                                        : "healthy";
    so["critical"] = svc->config.critical;
    so["instances"] = std::move(instances);
    services.push_back(std::move(so));
  }
  json::object root;
  root["window_seconds"] = window_s;
  {
    // Check timing over the last 10-20 s: how late checks started against their schedule.
    LatencyHistogram late = check_timing_.lateness[0];
    late.add(check_timing_.lateness[1]);
    const std::uint64_t n = check_timing_.started[0] + check_timing_.started[1];
    json::object checks;
    checks["scheduled"] = schedule_.size();
    checks["started_total"] = check_timing_.started_total;
    checks["started_recently"] = n;
    checks["lateness_p50_ms"] = ms(late.value_at_rank((n + 1) / 2));
    checks["lateness_p99_ms"] = ms(late.value_at_rank((n * 99 + 99) / 100));
    checks["lateness_max_ms"] = ms(std::max(check_timing_.max[0], check_timing_.max[1]));
    root["checks"] = std::move(checks);
  }
  root["services"] = std::move(services);
  return json::serialize(root) + "\n";
}

std::optional<std::string> Registry::service_json(std::string_view name) const {
  auto snap = snapshot();
  const Service* s = snap->find(name);
  if (s == nullptr) return std::nullopt;
  return json::serialize(service_object(*s, clock_.steady_now())) + "\n";
}

}  // namespace sb::registry
