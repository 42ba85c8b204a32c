#include "registry/registry.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/config_load.hpp"
#include "registry/store.hpp"
#include "testing/manual_clock.hpp"

namespace sb::registry {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

/// An in-memory store that records calls; `fail` makes every write fail.
class FakeStore final : public RegistryStore {
 public:
  std::optional<std::string> put(const StoredInstance& i) override {
    if (fail) return "disk full";
    rows[i.service + "/" + i.id] = i;
    return std::nullopt;
  }
  std::optional<std::string> remove(std::string_view s, std::string_view id) override {
    if (fail) return "disk full";
    rows.erase(std::string(s) + "/" + std::string(id));
    return std::nullopt;
  }
  std::optional<std::string> renew(std::string_view s, std::string_view id,
                                   std::int64_t deadline) override {
    if (fail) return "disk full";
    rows[std::string(s) + "/" + std::string(id)].deadline_unix_ms = deadline;
    return std::nullopt;
  }
  std::vector<StoredInstance> load_all(std::string* error) override {
    if (fail) {
      *error = "cannot read";
      return {};
    }
    std::vector<StoredInstance> out;
    for (auto& [k, v] : rows) out.push_back(v);
    return out;
  }
  std::map<std::string, StoredInstance> rows;
  bool fail = false;
};

core::Config config_with(std::string_view name, std::string_view url) {
  core::Config c;
  core::ServiceConfig s;
  s.name = std::string(name);
  s.source = core::Source::kCommandLine;
  std::string why;
  s.instances.push_back(core::InstanceConfig{*core::parse_upstream_url(url, &why)});
  c.services.push_back(s);
  return c;
}

/// A store whose put() waits until release(): a commit on a slow disk.
class SlowStore final : public RegistryStore {
 public:
  std::optional<std::string> put(const StoredInstance&) override {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    return std::nullopt;
  }
  std::optional<std::string> remove(std::string_view, std::string_view) override {
    return std::nullopt;
  }
  std::optional<std::string> renew(std::string_view, std::string_view, std::int64_t) override {
    return std::nullopt;
  }
  std::vector<StoredInstance> load_all(std::string*) override { return {}; }
  void wait_entered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    const std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

Registration reg(std::string service, std::string id, std::int64_t ttl = 0) {
  auto r = parse_registration(
      service, id,
      ttl > 0 ? "{\"url\":\"http://127.0.0.1:9000\",\"ttl_seconds\":" + std::to_string(ttl) + "}"
              : "{\"url\":\"http://127.0.0.1:9000\"}");
  return std::get<Registration>(r);
}

ApiError error_of(std::string_view service, std::string_view id, std::string_view body) {
  auto r = parse_registration(service, id, body);
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

// Each bad input names its field.
TEST(ParseRegistrationTest, RefusesBadInputNamingTheField) {
  EXPECT_EQ(error_of("Bad", "i", R"({"url":"http://h"})").field, "service");
  EXPECT_EQ(error_of("status", "i", R"({"url":"http://h"})").field, "service");
  EXPECT_EQ(error_of("events", "i", R"({"url":"http://h"})").field, "service");
  EXPECT_EQ(error_of(std::string(64, 'a'), "i", R"({"url":"http://h"})").field, "service");
  EXPECT_EQ(error_of("s", "a b", R"({"url":"http://h"})").field, "id");
  EXPECT_EQ(error_of("s", std::string(129, 'a'), R"({"url":"http://h"})").field, "id");
  EXPECT_EQ(error_of("s", "i", R"({})").field, "url");
  EXPECT_EQ(error_of("s", "i", R"({"url":"ftp://h"})").field, "url");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://"})").field, "url");
  EXPECT_EQ(error_of("s", "i", R"({"url":7})").field, "url");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","ttl_seconds":0})").field, "ttl_seconds");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","ttl_seconds":604801})").field, "ttl_seconds");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","ttl_seconds":1.5})").field, "ttl_seconds");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","weight":0})").field, "weight");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","zone":"a b"})").field, "zone");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","metadata":[]})").field, "metadata");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{}})").field, "check.path");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":[]})").field, "check");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{"path":"x"}})").field, "check.path");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{"type":"udp"}})").field, "check.type");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{"path":"/h","method":"get"}})").field,
            "check.method");
  EXPECT_EQ(
      error_of("s", "i", R"({"url":"http://h","check":{"path":"/h","expect_status":"2xx"}})").field,
      "check.expect_status");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{"path":"/h","timeout_ms":0}})").field,
            "check.timeout_ms");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{"path":"/h","headers":{"A":"x\ny"}}})")
                .field,
            "check.headers");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","check":{"path":"/h","interval":1}})").field,
            "check.interval");
  EXPECT_EQ(error_of("s", "i", R"({"url":"http://h","color":"red"})").field, "color");
  EXPECT_EQ(error_of("s", "i", R"([1])").detail, "body must be a JSON object");
  EXPECT_EQ(error_of("s", "i", R"({"url":)").status, 400);
  EXPECT_EQ(error_of("s", "i", std::string(kMaxRegistrationBody + 1, ' ')).status, 413);
}

// Limits at their edges are accepted.
TEST(ParseRegistrationTest, AcceptsEdges) {
  auto r = parse_registration(std::string(63, 'a'), std::string(128, 'A'),
                              R"({"url":"https://h:443/base","ttl_seconds":604800,"weight":10000,)"
                              R"("zone":"eu-1.a_b","metadata":{"k":[1,2]}})");
  ASSERT_TRUE(std::holds_alternative<Registration>(r));
  const auto& reg = std::get<Registration>(r);
  EXPECT_EQ(reg.ttl_seconds, 604800);
  EXPECT_EQ(reg.weight, 10000u);
  EXPECT_TRUE(reg.url.tls);
  EXPECT_EQ(reg.metadata_json, R"({"k":[1,2]})");
}

class RegistryTest : public ::testing::Test {
 protected:
  testing::ManualClock clock_;
  FakeStore store_;
};

// Created, then replaced; every change publishes a new snapshot and an event.
TEST_F(RegistryTest, PutCreatesThenReplaces) {
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  const auto v0 = r.version();
  EXPECT_EQ(std::get<Registry::PutOutcome>(r.put(reg("svc", "a"))), Registry::PutOutcome::kCreated);
  EXPECT_GT(r.version(), v0);
  EXPECT_EQ(std::get<Registry::PutOutcome>(r.put(reg("svc", "a"))),
            Registry::PutOutcome::kReplaced);
  auto snap = r.snapshot();
  ASSERT_NE(snap->find("svc"), nullptr);
  EXPECT_EQ(snap->find("svc")->instances.size(), 1u);
  EXPECT_EQ(store_.rows.size(), 1u);
  const auto ev = r.events_since(r.event_origin());
  ASSERT_EQ(ev.events.size(), 2u);
  EXPECT_EQ(ev.events[0].type, "registered");
  EXPECT_EQ(ev.events[1].type, "replaced");
}

// A store failure refuses the registration and changes nothing.
TEST_F(RegistryTest, StoreFailureChangesNothing) {
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  store_.fail = true;
  const auto v0 = r.version();
  auto out = r.put(reg("svc", "a"));
  ASSERT_TRUE(std::holds_alternative<ApiError>(out));
  EXPECT_EQ(std::get<ApiError>(out).status, 503);
  EXPECT_EQ(r.version(), v0);
  EXPECT_EQ(r.snapshot()->find("svc"), nullptr);
}

// Configured and self instances cannot be removed or replaced through the API.
TEST_F(RegistryTest, ConfiguredInstancesAreProtected) {
  core::UpstreamUrl self;
  self.host = "127.0.0.1";
  self.port = 8080;
  self.text = "http://127.0.0.1:8080";
  Registry r(config_with("cfg", "http://127.0.0.1:1"), clock_, &store_, self);
  EXPECT_EQ(r.remove("cfg", "cli-1")->status, 409);
  EXPECT_EQ(r.remove("switchboard", "self")->status, 409);
  EXPECT_EQ(std::get<ApiError>(r.put(reg("cfg", "cli-1"))).status, 409);
  EXPECT_EQ(r.remove("cfg", "nope")->status, 404);
  EXPECT_EQ(r.remove("nope", "x")->status, 404);
  // Another id under a configured service is fine.
  EXPECT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("cfg", "extra"))));
}

// TTL: alive one tick before the deadline, gone at it; the empty API service goes too.
TEST_F(RegistryTest, TtlExpiresExactlyAtTheDeadline) {
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  r.put(reg("svc", "a", 10));
  clock_.advance(seconds(10) - std::chrono::nanoseconds(1));
  EXPECT_EQ(r.expire(), 0u);
  EXPECT_NE(r.snapshot()->find("svc"), nullptr);
  clock_.advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(r.expire(), 1u);
  EXPECT_EQ(r.snapshot()->find("svc"), nullptr);
  EXPECT_TRUE(store_.rows.empty());
  EXPECT_EQ(r.events_since(r.event_origin()).events.back().type, "expired");
}

// A heartbeat moves the deadline a whole TTL forward from now.
TEST_F(RegistryTest, HeartbeatRenews) {
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  r.put(reg("svc", "a", 10));
  clock_.advance(seconds(9));
  EXPECT_FALSE(r.heartbeat("svc", "a").has_value());
  clock_.advance(seconds(9));
  EXPECT_EQ(r.expire(), 0u);
  clock_.advance(seconds(1));
  EXPECT_EQ(r.expire(), 1u);
  EXPECT_EQ(r.heartbeat("svc", "a")->status, 404);
}

// Stored registrations come back on start; one whose TTL lapsed meanwhile does not.
TEST_F(RegistryTest, LoadRestoresAndExpiresLapsed) {
  {
    Registry r(core::Config{}, clock_, &store_, std::nullopt);
    r.put(reg("svc", "long", 600));
    r.put(reg("svc", "short", 1));
    r.put(reg("svc", "forever"));
  }
  clock_.advance(seconds(5));  // Switchboard was down for 5 s
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  ASSERT_FALSE(r.load().has_value());
  const Service* s = r.snapshot()->find("svc");
  ASSERT_NE(s, nullptr);
  std::vector<std::string> ids;
  for (const auto& i : s->instances) ids.push_back(i.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"forever", "long"}));
  EXPECT_EQ(store_.rows.count("svc/short"), 0u);
  // The restored TTL counts from the stored deadline, not from the restart.
  clock_.advance(seconds(595) - std::chrono::milliseconds(1));
  EXPECT_EQ(r.expire(), 0u);
  clock_.advance(std::chrono::milliseconds(1));
  EXPECT_EQ(r.expire(), 1u);
}

// An instance's own check is stored and comes back with it.
TEST_F(RegistryTest, LoadRestoresTheInstanceCheck) {
  {
    Registry r(core::Config{}, clock_, &store_, std::nullopt);
    auto reg = parse_registration("svc", "c", R"({"url":"http://h:1","check":{"type":"tcp"}})");
    ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(std::get<Registration>(reg))));
  }
  EXPECT_EQ(store_.rows.at("svc/c").check_json, R"({"type":"tcp"})");
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  ASSERT_FALSE(r.load().has_value());
  const auto due = r.due_checks(10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].check.type, core::HealthCheckConfig::Type::kTcp);
}

// A store that cannot be read is a startup error.
TEST_F(RegistryTest, UnreadableStoreIsAStartupError) {
  store_.fail = true;
  Registry r(core::Config{}, clock_, &store_, std::nullopt);
  EXPECT_EQ(r.load(), std::optional<std::string>("cannot read"));
}

// JSON views list services in name order with their instances.
TEST_F(RegistryTest, JsonViews) {
  Registry r(config_with("cfg", "http://127.0.0.1:1"), clock_, nullptr, std::nullopt);
  r.put(reg("api", "a", 30));
  const std::string all = r.to_json();
  EXPECT_LT(all.find("\"name\":\"api\""), all.find("\"name\":\"cfg\""));
  EXPECT_NE(all.find("\"ttl_seconds\":30"), std::string::npos);
  EXPECT_NE(all.find("\"expires_in_ms\":30000"), std::string::npos);
  EXPECT_TRUE(r.service_json("cfg").has_value());
  EXPECT_FALSE(r.service_json("nope").has_value());
}

}  // namespace
}  // namespace sb::registry

namespace sb::registry {
namespace {

core::Config checked_config() {
  core::Config c = config_with("svc", "http://127.0.0.1:9");
  c.services[0].health_check.path = "/health";
  c.health.check_interval = std::chrono::seconds(10);
  return c;
}

// An instance of a checked service gets no traffic until `rise` checks pass, and none
// after `fall` fail; each change is an event and a new snapshot.
TEST(RegistryHealthTest, ChecksDecideTraffic) {
  testing::ManualClock clock;
  Registry r(checked_config(), clock, nullptr, std::nullopt);
  auto inst = [&] { return r.snapshot()->find("svc")->instances.at(0); };
  EXPECT_FALSE(inst().takes_traffic);
  EXPECT_EQ(inst().state, InstanceState::kUnknown);

  auto due = r.due_checks(10);
  ASSERT_EQ(due.size(), 1u);  // checked at once
  EXPECT_EQ(due[0].check.path, "/health");
  EXPECT_TRUE(r.due_checks(10).empty());  // already running
  r.record_check("svc", due[0].id, true, std::chrono::milliseconds(3), "HTTP 200");
  EXPECT_FALSE(inst().takes_traffic);  // rise is 2

  clock.advance(std::chrono::seconds(5));  // the unhealthy/unknown interval
  due = r.due_checks(10);
  ASSERT_EQ(due.size(), 1u);
  const auto v = r.version();
  r.record_check("svc", due[0].id, true, std::chrono::milliseconds(3), "HTTP 200");
  // The event at once,
  EXPECT_EQ(r.events_since(r.event_origin()).events.back().type, "health_changed");
  EXPECT_EQ(r.version(), v);  // the snapshot with the control loop's next turn
  r.publish_pending();
  EXPECT_GT(r.version(), v);
  EXPECT_TRUE(inst().takes_traffic);
  EXPECT_EQ(inst().state, InstanceState::kHealthy);
  r.publish_pending();  // nothing pending: no new snapshot
  EXPECT_EQ(r.version(), v + 1);

  for (int i = 0; i < 3; ++i) {
    clock.advance(std::chrono::seconds(12));
    due = r.due_checks(10);
    ASSERT_EQ(due.size(), 1u) << i;
    EXPECT_TRUE(inst().takes_traffic) << "still healthy before the third failure";
    r.record_check("svc", due[0].id, false, std::chrono::milliseconds(3), "HTTP 503");
  }
  EXPECT_FALSE(inst().takes_traffic);
  EXPECT_EQ(inst().state, InstanceState::kUnhealthy);
}

// An instance registered with its own check is checked with it, even in a service without
// checks; the check survives a restart through the store's check_json.
TEST(RegistryHealthTest, InstanceCheckReplacesTheService) {
  testing::ManualClock clock;
  Registry r(config_with("svc", "http://127.0.0.1:9"), clock, nullptr, std::nullopt);
  auto reg = parse_registration(
      "svc", "own",
      R"({"url":"http://127.0.0.1:9100","check":{"type":"http","path":"/ready","method":"HEAD",)"
      R"("expect_status":"204","expect_body":"ok","headers":{"X-A":"1"},"timeout_ms":250}})");
  ASSERT_TRUE(std::holds_alternative<Registration>(reg));
  ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(std::get<Registration>(reg))));
  const auto due = r.due_checks(10);
  ASSERT_EQ(due.size(), 1u);  // the configured instance has no checks; this one has
  EXPECT_EQ(due[0].id, "own");
  EXPECT_EQ(due[0].url.port, 9100);
  EXPECT_EQ(due[0].check.path, "/ready");
  EXPECT_EQ(due[0].check.method, "HEAD");
  EXPECT_EQ(due[0].check.expect_status, "204");
  EXPECT_EQ(due[0].check.expect_body, "ok");
  EXPECT_EQ(due[0].check.headers.at("X-A"), "1");
  EXPECT_EQ(due[0].check.timeout, std::chrono::milliseconds(250));
  const auto* svc = r.snapshot()->find("svc");
  EXPECT_FALSE(svc->instances.at(1).takes_traffic);  // not proven yet
  EXPECT_TRUE(svc->instances.at(0).takes_traffic);
  EXPECT_NE(r.to_json().find(R"("check":{"type":"http","path":"/ready")"), std::string::npos);
  // A TCP check needs no path.
  EXPECT_TRUE(std::holds_alternative<core::HealthCheckConfig>(parse_check(R"({"type":"tcp"})")));
}

// Checks start in order of their due time, at most `limit` at once, and the status document
// says how late they started against their schedule.
TEST(RegistryHealthTest, ChecksRunInDueOrderAndReportLateness) {
  testing::ManualClock clock;
  core::Config c = checked_config();
  c.services[0].instances.push_back(c.services[0].instances[0]);
  c.services[0].instances.push_back(c.services[0].instances[0]);
  Registry r(c, clock, nullptr, std::nullopt);
  clock.advance(std::chrono::milliseconds(30));  // 30 ms late
  auto due = r.due_checks(2);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(r.due_checks(2).size(), 1u);
  EXPECT_TRUE(r.due_checks(2).empty());
  const std::string status = r.status_json();
  EXPECT_NE(status.find("\"scheduled\":0"), std::string::npos) << status;  // all running
  EXPECT_NE(status.find("\"started_total\":3"), std::string::npos) << status;
  EXPECT_NE(status.find("\"lateness_max_ms\":3E1"), std::string::npos) << status;
  r.record_check("svc", due[0].id, true, {}, "HTTP 200");
  EXPECT_NE(r.status_json().find("\"scheduled\":1"), std::string::npos);
}

// Services without a health check path route to every instance, unchecked.
TEST(RegistryHealthTest, UncheckedServicesTakeTraffic) {
  testing::ManualClock clock;
  Registry r(config_with("svc", "http://127.0.0.1:9"), clock, nullptr, std::nullopt);
  EXPECT_TRUE(r.snapshot()->find("svc")->instances.at(0).takes_traffic);
  EXPECT_TRUE(r.due_checks(10).empty());
}

// A result for an instance removed while its check ran is ignored.
TEST(RegistryHealthTest, ResultAfterRemovalIsIgnored) {
  testing::ManualClock clock;
  Registry r(checked_config(), clock, nullptr, std::nullopt);
  auto due = r.due_checks(10);
  ASSERT_EQ(due.size(), 1u);
  r.record_check("svc", "nope", true, {}, "HTTP 200");  // unknown: no effect, no crash
  r.record_check("svc", due[0].id, true, {}, "HTTP 200");
  EXPECT_EQ(r.snapshot()->find("svc")->instances.at(0).state, InstanceState::kUnknown);
}

}  // namespace
}  // namespace sb::registry

namespace sb::registry {
namespace {

// Live samples from a worker's feed reach the trackers: failures count toward `fall` for a
// checked service, and every instance's window shows in the status document.
TEST(RegistryLiveTest, HarvestFeedsTrackersAndStatus) {
  testing::ManualClock clock;
  core::Config c = config_with("svc", "http://127.0.0.1:9");
  c.services[0].health_check.path = "/health";
  Registry r(c, clock, nullptr, std::nullopt);
  auto feed = r.make_feed();
  // Prove the instance healthy first.
  for (int i = 0; i < 2; ++i) {
    auto due = r.due_checks(1);
    ASSERT_EQ(due.size(), 1u);
    r.record_check("svc", due[0].id, true, std::chrono::milliseconds(1), "HTTP 200");
    clock.advance(std::chrono::seconds(5));
  }
  const auto inst = r.snapshot()->find("svc")->instances.at(0);
  ASSERT_TRUE(inst.takes_traffic);
  for (int i = 0; i < 2; ++i) feed->push(LiveSample{inst.uid, 2000, false});
  r.harvest();
  EXPECT_TRUE(r.snapshot()->find("svc")->instances.at(0).takes_traffic) << "fall is 3";
  feed->push(LiveSample{inst.uid, 2000, false});
  feed->push(LiveSample{999999, 1, false});  // an unknown uid is ignored
  r.harvest();
  EXPECT_FALSE(r.snapshot()->find("svc")->instances.at(0).takes_traffic);
  const std::string status = r.status_json();
  EXPECT_NE(status.find("\"state\":\"unhealthy\""), std::string::npos) << status;
  EXPECT_NE(status.find("\"error_rate\":6E-1"), std::string::npos) << status;  // 3 of 5
  EXPECT_NE(status.find("\"state\":\"unavailable\""), std::string::npos) << status;
}

// One harvest of samples interleaved for two instances (windows judged once, at its end):
// the slow instance turns degraded, the fast one stays healthy.
TEST(RegistryLiveTest, HarvestDegradesTheSlowInstanceOnly) {
  testing::ManualClock clock;
  core::Config c = config_with("svc", "http://127.0.0.1:9");
  std::string why;
  c.services[0].instances.push_back(
      core::InstanceConfig{*core::parse_upstream_url("http://127.0.0.1:10", &why)});
  c.services[0].health_check.path = "/health";
  Registry r(c, clock, nullptr, std::nullopt);
  auto feed = r.make_feed();
  for (int i = 0; i < 2; ++i) {
    for (const auto& due : r.due_checks(2))
      r.record_check("svc", due.id, true, std::chrono::milliseconds(1), "HTTP 200");
    clock.advance(std::chrono::seconds(5));
  }
  const auto instances = r.snapshot()->find("svc")->instances;
  ASSERT_EQ(instances.size(), 2u);
  for (int i = 0; i < 40; ++i) {
    feed->push(LiveSample{instances[0].uid, 1'500'000, true});  // 1.5 s: slow
    feed->push(LiveSample{instances[1].uid, 1'000, true});
  }
  r.harvest();
  const auto after = r.snapshot()->find("svc")->instances;
  EXPECT_EQ(after[0].state, InstanceState::kDegraded) << after[0].health_reason;
  EXPECT_EQ(after[1].state, InstanceState::kHealthy) << after[1].health_reason;
  EXPECT_TRUE(after[0].takes_traffic);
}

// A change holds the registry's lock across its store commit; meanwhile readers get the
// last published snapshot, and the event log (read, or written by a worker's breaker)
// does not wait for the disk either.
TEST(RegistryLiveTest, ReadersDoNotWaitForACommit) {
  testing::ManualClock clock;
  SlowStore store;
  Registry r(config_with("cfg", "http://127.0.0.1:1"), clock, &store, std::nullopt);
  const auto before = r.snapshot();
  const std::uint64_t events = r.last_event_id();
  std::thread writer([&] { (void)r.put(reg("svc", "a")); });
  store.wait_entered();
  const auto during = r.snapshot();  // would deadlock here if it waited for the lock
  EXPECT_EQ(during, before);
  EXPECT_EQ(during->find("svc"), nullptr);
  EXPECT_TRUE(r.events_since(events).events.empty());
  r.record_event(kEventBreakerChanged, "cfg", "", "opened");
  EXPECT_EQ(r.events_since(events).events.size(), 1u);
  store.release();
  writer.join();
  EXPECT_NE(r.snapshot()->find("svc"), nullptr);
  EXPECT_EQ(r.events_since(events).events.size(), 2u);
}

// The feed is a bounded ring: a full ring drops and counts instead of blocking.
TEST(LiveFeedTest, FullRingDrops) {
  LiveFeed feed;
  for (std::size_t i = 0; i < LiveFeed::kCapacity; ++i)
    ASSERT_TRUE(feed.push(LiveSample{1, 1, true}));
  EXPECT_FALSE(feed.push(LiveSample{1, 1, true}));
  EXPECT_EQ(feed.dropped(), 1u);
  std::size_t n = 0;
  EXPECT_EQ(feed.drain([&](const LiveSample&) { ++n; }), LiveFeed::kCapacity);
  EXPECT_EQ(n, LiveFeed::kCapacity);
  EXPECT_TRUE(feed.push(LiveSample{1, 1, true}));
}

}  // namespace
}  // namespace sb::registry

namespace sb::registry {
namespace {

// deregister_after removes an API instance whose checks have failed that long, exactly at
// the edge, and never a configured one.
TEST(RegistryHealthTest, DeregisterAfter) {
  testing::ManualClock clock;
  core::Config c = config_with("svc", "http://127.0.0.1:9");
  c.services[0].health_check.path = "/health";
  c.services[0].health_check.deregister_after = std::chrono::seconds(30);
  c.health.check_interval = std::chrono::seconds(1);
  Registry r(c, clock, nullptr, std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", "api-1"))));
  // fall = 3: both go unhealthy on their third failed check (checks are ~1 s apart).
  for (int i = 0; i < 3; ++i) {
    for (const auto& d : r.due_checks(10)) r.record_check("svc", d.id, false, {}, "HTTP 503");
    if (i < 2) clock.advance(std::chrono::seconds(2));
  }
  for (const auto& inst : r.snapshot()->find("svc")->instances)
    ASSERT_EQ(inst.state, InstanceState::kUnhealthy) << inst.id;
  clock.advance(std::chrono::seconds(30) - std::chrono::nanoseconds(1));
  EXPECT_EQ(r.expire(), 0u);  // just before deregister_after
  clock.advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(r.expire(), 1u);  // at it
  const auto* s = r.snapshot()->find("svc");
  ASSERT_EQ(s->instances.size(), 1u);
  EXPECT_EQ(s->instances[0].source, core::Source::kCommandLine);
  EXPECT_EQ(r.events_since(r.event_origin()).events.back().type, "deregistered");
}

}  // namespace
}  // namespace sb::registry

namespace sb::registry {
namespace {

// Issue 10: event ids carry an epoch from the start time, so a registry started later (a
// restart) answers the previous one's ids with too_old (a snapshot), not with its events.
TEST(RegistryEventEpochTest, ARestartedRegistryDoesNotResumeOldIds) {
  testing::ManualClock clock;
  core::Config c;
  std::uint64_t old_id = 0;
  {
    Registry r(c, clock, nullptr, std::nullopt);
    for (const char* id : {"a", "b", "c"})
      ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", id))));
    old_id = r.last_event_id();
    EXPECT_EQ(r.events_since(r.event_origin()).events.size(), 3u);
  }
  clock.advance(std::chrono::milliseconds(1));  // the next process starts (at least) 1 ms later
  Registry r(c, clock, nullptr, std::nullopt);
  EXPECT_NE(r.event_origin() >> 32, old_id >> 32) << "a new epoch";
  EXPECT_EQ(r.last_event_id(), r.event_origin());
  for (const char* id : {"a", "b", "c", "d", "e"})
    ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", id))));
  EXPECT_TRUE(r.events_since(old_id).too_old);
  std::uint64_t missed = 0;
  EXPECT_EQ(r.events_after(r.event_origin(), &missed).size(), 5u);
  EXPECT_EQ(missed, 0u) << "webhooks start at the origin: nothing counts as lost";
}

// Issue 10: an instance without any check gets a TCP check (health.default_check: tcp)
// one interval after it appears; it routes meanwhile, and failed connects take it out.
TEST(RegistryDefaultCheckTest, UncheckedInstancesGetATcpCheck) {
  testing::ManualClock clock;
  core::Config c;
  c.health.check_interval = std::chrono::seconds(10);
  c.health.unhealthy_interval = std::chrono::seconds(2);
  Registry r(c, clock, nullptr, std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", "a"))));
  auto inst = [&] { return r.snapshot()->find("svc")->instances.at(0); };
  EXPECT_TRUE(inst().takes_traffic) << "routes at once, as without checks";
  EXPECT_TRUE(r.due_checks(10).empty()) << "not at once";
  const auto due_at = r.next_check_due();
  ASSERT_TRUE(due_at);
  EXPECT_GE(*due_at, clock.steady_now() + std::chrono::seconds(9));  // 10 s, jitter 10%
  EXPECT_LE(*due_at, clock.steady_now() + std::chrono::seconds(11));
  clock.advance(std::chrono::seconds(11));
  for (int i = 0; i < 3; ++i) {
    auto due = r.due_checks(10);
    ASSERT_EQ(due.size(), 1u) << i;
    EXPECT_EQ(due[0].check.type, core::HealthCheckConfig::Type::kTcp);
    r.record_check("svc", "a", false, std::chrono::milliseconds(1),
                   "TCP connect: Connection refused");
    if (i < 2) {
      EXPECT_TRUE(inst().takes_traffic) << "fall is 3";
    }
    clock.advance(std::chrono::seconds(3));
  }
  r.publish_pending();
  EXPECT_FALSE(inst().takes_traffic);
  EXPECT_EQ(inst().state, InstanceState::kUnhealthy);
  EXPECT_EQ(inst().health_reason,
            "check failed: TCP connect: Connection refused (3 consecutive failures)");
}

// health.default_check: none keeps the old behaviour: no check at all.
TEST(RegistryDefaultCheckTest, NoneMeansNoCheck) {
  testing::ManualClock clock;
  core::Config c;
  c.health.default_check = core::HealthConfig::DefaultCheck::kNone;
  Registry r(c, clock, nullptr, std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", "a"))));
  EXPECT_FALSE(r.next_check_due());
}

// A live failure's reason names it once (it said "live request failed: live request failed").
TEST(RegistryDefaultCheckTest, LiveFailureReasonSaysItOnce) {
  testing::ManualClock clock;
  core::Config c;
  // Live failures decide only without the default TCP check (which alone decides then).
  c.health.default_check = core::HealthConfig::DefaultCheck::kNone;
  Registry r(c, clock, nullptr, std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", "a"))));
  auto feed = r.make_feed();
  const std::uint64_t uid = r.snapshot()->find("svc")->instances.at(0).uid;
  for (int i = 0; i < 3; ++i) feed->push(LiveSample{uid, 1000, false});
  r.harvest();
  r.publish_pending();
  EXPECT_EQ(r.snapshot()->find("svc")->instances.at(0).health_reason,
            "live request failed (3 consecutive failures)");
  // Only its TCP checks decide its traffic (the breaker and ejection act on live failures).
  EXPECT_TRUE(r.snapshot()->find("svc")->instances.at(0).takes_traffic);
}

// A default-checked instance that failed its connects comes back after `rise` good ones.
TEST(RegistryDefaultCheckTest, TcpCheckBringsItBack) {
  testing::ManualClock clock;
  core::Config c;
  c.health.check_interval = std::chrono::seconds(1);
  Registry r(c, clock, nullptr, std::nullopt);
  ASSERT_TRUE(std::holds_alternative<Registry::PutOutcome>(r.put(reg("svc", "a"))));
  auto inst = [&] { return r.snapshot()->find("svc")->instances.at(0); };
  auto check = [&](bool ok) {
    clock.advance(std::chrono::seconds(2));
    auto due = r.due_checks(10);
    ASSERT_EQ(due.size(), 1u);
    r.record_check("svc", "a", ok, std::chrono::milliseconds(1),
                   ok ? "TCP connect" : "TCP connect: refused");
  };
  for (int i = 0; i < 3; ++i) check(false);
  EXPECT_FALSE(inst().takes_traffic);
  check(true);
  EXPECT_FALSE(inst().takes_traffic) << "rise is 2";
  check(true);
  EXPECT_TRUE(inst().takes_traffic);
  EXPECT_EQ(inst().state, InstanceState::kHealthy);
}

}  // namespace
}  // namespace sb::registry
