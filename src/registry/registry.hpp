// The service registry: which services exist and which instances each has, from
// configuration, environment and the registration API, with TTLs. Workers read it as an
// immutable Snapshot: they check version() (one relaxed atomic load) per request and take
// the new snapshot only when it changed, so a routing lookup takes no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "registry/events.hpp"
#include "registry/health.hpp"
#include "registry/live_feed.hpp"

namespace sb::registry {

class RegistryStore;

/// A refused API call: the HTTP status, the field at fault ("" for none) and why.
struct ApiError {
  int status = 400;
  std::string field;
  std::string detail;
};

/// A registration from the API, validated.
struct Registration {
  std::string service;
  std::string id;
  core::UpstreamUrl url;
  std::int64_t ttl_seconds = 0;  // 0: no TTL
  std::string zone;
  std::uint32_t weight = 1;
  std::string metadata_json = "{}";  // a JSON object, as sent
  /// The instance's own health check, replacing the service's; check_json as sent.
  std::optional<core::HealthCheckConfig> check;
  std::string check_json;
};

inline constexpr std::size_t kMaxRegistrationBody = 64 * 1024;

/// core::valid_service_name (`[a-z0-9-]{1,63}`, not "status" or "events"); `why` gets the
/// API's wording of the problem ("must be 1 to 63 characters", ...).
bool valid_service_name(std::string_view name, std::string* why = nullptr);
/// `[A-Za-z0-9._-]{1,128}`.
bool valid_instance_id(std::string_view id);

/// Parses and validates `PUT /api/services/{service}/instances/{id}` with its JSON body
/// `{url, ttl_seconds?, zone?, weight?, metadata?, check?}`. Unknown fields are refused.
std::variant<Registration, ApiError> parse_registration(std::string_view service,
                                                        std::string_view id, std::string_view body);

/// Parses an instance's own health check, `{type?, path?, method?, expect_status?,
/// expect_body?, headers?, timeout_ms?}` as serialized JSON; errors name the field as
/// "check.<key>". Unset keys take the defaults of core::HealthCheckConfig.
std::variant<core::HealthCheckConfig, ApiError> parse_check(std::string_view check_json);

struct Instance {
  std::string id;
  core::InstanceConfig config;
  core::Source source = core::Source::kFile;
  /// Health from active checks (services with health_check.path); kUnknown and routable
  /// for services without checks.
  InstanceState state = InstanceState::kUnknown;
  bool takes_traffic = true;
  std::string health_reason;
  /// Identifies the instance in live samples; unique for the registry's lifetime.
  std::uint64_t uid = 0;
  /// Requests in flight to it, over all workers (relaxed; for the status document).
  std::shared_ptr<std::atomic<std::int32_t>> in_flight;
  std::int64_t ttl_seconds = 0;
  std::optional<core::SteadyTime> deadline;  // TTL expiry
  core::WallTime registered_at{};
  std::string metadata_json = "{}";
  /// Its own health check (API registrations), replacing the service's.
  std::optional<core::HealthCheckConfig> check;
  std::string check_json;  // as registered, for the store and the registry document
};

struct Service {
  std::string name;
  core::ServiceConfig config;  // policies (timeouts, pool, TLS, critical); instances below
  core::Source source = core::Source::kFile;
  std::vector<Instance> instances;
};

/// An active check that is due: the checker runs it and reports with record_check().
struct DueCheck {
  std::string service;
  std::string id;
  core::UpstreamUrl url;
  core::HealthCheckConfig check;
  core::TlsConfig tls;  // the service's, for https instances
};

/// An immutable view of the registry; shared by every worker.
struct Snapshot {
  std::uint64_t version = 0;
  std::vector<Service> services;  // sorted by name
  const Service* find(std::string_view name) const;
};

class Registry {
 public:
  /// Services and instances from `config` (file, environment, command line). `store` may be
  /// null (no persistence). Switchboard registers itself as service "switchboard" at
  /// `self_url`.
  Registry(const core::Config& config, core::Clock& clock, RegistryStore* store,
           std::optional<core::UpstreamUrl> self_url);
  ~Registry();

  /// Loads registrations kept by the store; those whose TTL lapsed while Switchboard was
  /// down are dropped (and deleted). Returns a startup error for people, or nullopt.
  std::optional<std::string> load();

  enum class PutOutcome { kCreated, kReplaced };
  /// Creates or replaces an API instance; written to the store before it returns.
  std::variant<PutOutcome, ApiError> put(const Registration& r);
  /// Renews an instance's TTL.
  std::optional<ApiError> heartbeat(std::string_view service, std::string_view id);
  /// Removes an API instance (config and environment instances answer 409).
  std::optional<ApiError> remove(std::string_view service, std::string_view id);
  /// Removes instances whose TTL has passed; returns how many.
  std::size_t expire();

  /// Active checks due now, at most `limit`; each is marked running until its result comes.
  std::vector<DueCheck> due_checks(std::size_t limit);
  /// When the soonest waiting check is due (nullopt: none waits). Thread-safe.
  std::optional<core::SteadyTime> next_check_due() const;
  /// Called (on the changing thread, without locks held) after a change that may bring a
  /// check due sooner: a registration, a load. The checker wakes on it. nullptr: none.
  void set_on_change(std::function<void()> f);

  /// The result of a check from due_checks(). A change of health is an event at once and
  /// part of the next snapshot (publish_pending); instances that are not healthy or
  /// degraded get no traffic.
  void record_check(std::string_view service, std::string_view id, bool ok, core::Duration latency,
                    std::string_view reason);

  /// A ring for one worker's live samples (call once per worker, at start).
  std::shared_ptr<LiveFeed> make_feed();
  /// Feeds every worker's live samples to the trackers (the control loop, every 50 ms).
  /// Live failures count toward `fall` for checked services, whose checks bring an instance
  /// back; for unchecked ones they only show in the status document.
  void harvest();
  /// `GET /api/services/status`: state, reason, since, last check, in-flight, request and
  /// error rates and p50/p95/p99 over the window, per service and instance.
  std::string status_json() const;

  /// Publishes the health changes recorded since the last snapshot as a new one. The
  /// control loop calls it every turn (10 ms), so a change reaches the workers within
  /// one turn while a burst of changes costs one snapshot.
  void publish_pending();

  /// The current snapshot, including pending health changes. Thread-safe, and it never
  /// waits for a writer: a change holds the lock across its store commit (fsync), and a
  /// reader that finds it taken gets the last published snapshot instead.
  std::shared_ptr<const Snapshot> snapshot() const;
  /// Changes with every snapshot. Thread-safe and lock-free: workers poll it per request.
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }

  /// Events after `last_id` (registered, replaced, deregistered, expired); too_old when the
  /// bounded log no longer holds them all. Thread-safe; never waits for a store commit.
  EventLog::Since events_since(std::uint64_t last_id) const;
  /// The newest event's id; event_origin() before the first. Thread-safe.
  std::uint64_t last_event_id() const { return last_event_id_.load(std::memory_order_acquire); }
  /// The id before this process's first event (its epoch << 32, see EventLog): where a
  /// consumer that must see every event (webhooks) starts reading.
  std::uint64_t event_origin() const { return events_.origin(); }
  /// For consumers that must account for every event (webhooks): the events after
  /// `last_id` that the log still holds, oldest first, and in `missed` how many after
  /// `last_id` it dropped before they were read. Thread-safe.
  std::vector<Event> events_after(std::uint64_t last_id, std::uint64_t* missed) const;

  /// Records an event raised by another component (breaker changes, ejections): a numbered
  /// registry event like the registry's own, seen by SSE subscribers and webhooks.
  /// `data_json` is one JSON object. Thread-safe.
  void record_event(std::string_view type, std::string_view service, std::string_view instance,
                    std::string reason, std::string data_json = "{}");

  /// The registry as JSON (`GET /api/services`), or one service (nullopt when unknown).
  std::string to_json() const;
  std::optional<std::string> service_json(std::string_view name) const;

 private:
  void publish() const;                          // with mu_ held
  void track(const Service& s, Instance& inst);  // starts active checks when configured
  void untrack(std::string_view service, std::string_view id);
  void event(std::string_view type, std::string_view service, std::string_view id,
             std::string reason, const Instance* instance);  // with mu_ held
  Service* find_mut(std::string_view name);

  core::Clock& clock_;
  RegistryStore* store_;
  core::ServiceConfig api_defaults_;  // policies for services created through the API
  mutable std::mutex mu_;
  std::vector<Service> services_;
  // The published view is a cache of services_: built lazily, so const readers may build it.
  mutable std::shared_ptr<const Snapshot> snapshot_;
  // snapshot_ as last published, for readers that find mu_ taken.
  mutable std::atomic<std::shared_ptr<const Snapshot>> published_;
  mutable bool dirty_ = false;  // health changed since snapshot_ was built
  mutable std::atomic<std::uint64_t> version_{0};
  // The event log has a lock of its own, taken after mu_ when both are: readers and workers
  // recording breaker changes never wait for a change's store commit (which holds mu_).
  mutable std::mutex events_mu_;
  EventLog events_;  // its epoch: see the constructor
  std::atomic<std::uint64_t> last_event_id_;

  struct Health {
    HealthTracker tracker;
    CheckScheduler scheduler;
    core::SteadyTime next_check;
    bool checked = false;  // active checks configured: the tracker decides routing
    bool running = false;
    std::string service;
    std::string id;
    core::UpstreamUrl url{};
    core::HealthCheckConfig check{};  // the instance's own, else its service's
    core::TlsConfig tls{};
    std::uint64_t uid = 0;
    bool harvested = false;  // in harvested_ (during harvest())
    // The TCP check of health.default_check: only its own results decide traffic (`fall`
    // failed connects in a row take the instance out, `rise` good ones bring it back); live
    // failures show in the tracker's state, as for instances without checks, but the
    // breaker and outlier ejection are what act on them.
    bool by_default = false;
    int check_failures = 0;
    int check_successes = 0;
    bool check_down = false;
  };
  /// Checked instances waiting for their next check, soonest first (running ones are out).
  std::set<std::pair<core::SteadyTime, Health*>> schedule_;
  /// How late checks start against their schedule, over the current and the previous
  /// 10 s period (for the status document and the registry benchmark).
  struct CheckTiming {
    std::int64_t period = -1;
    LatencyHistogram lateness[2];
    core::Duration max[2]{};
    std::uint64_t started[2]{};
    std::uint64_t started_total = 0;
    void add(core::SteadyTime now, core::Duration late);
  };
  CheckTiming check_timing_;
  void apply(std::string_view service, std::string_view id, Health& h,
             const std::optional<Transition>& t);  // with mu_ held
  HealthSettings health_settings_;
  HealthSettings default_check_settings_;  // the TCP check of health.default_check
  bool default_tcp_check_ = true;
  std::map<std::string, Health, std::less<>> health_;  // "service/id"
  std::unordered_map<std::uint64_t, Health*> by_uid_;  // live samples -> tracker
  std::vector<Health*> harvested_;                     // trackers fed by the current harvest()
  std::uint64_t next_uid_ = 1;
  std::vector<std::shared_ptr<LiveFeed>> feeds_;
  mutable std::mutex on_change_mu_;  // after mu_ is released, never with it
  std::function<void()> on_change_;
  void changed();  // calls on_change_
};

}  // namespace sb::registry
