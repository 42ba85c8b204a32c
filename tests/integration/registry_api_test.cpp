// The registration API (/api/services) against the real binary: registering, replacing and
// removing instances, validation, TTLs with heartbeats, persistence in
// <data-dir>/registry.sqlite3 across restarts, and a corrupt database at startup.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
namespace json = boost::json;

const Headers kJson{{"Content-Type", "application/json"}};

std::string instance_path(std::string_view service, std::string_view id) {
  return "/api/services/" + std::string(service) + "/instances/" + std::string(id);
}

/// Polls `cond` every 25 ms until it holds or `timeout` passes; true when it held. The
/// interval only paces the polling, it is not a scenario delay.
bool wait_until(const std::function<bool()>& cond, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(25));
  }
}

/// The instance `id` of `service` in a GET /api/services document, or null.
const json::object* find_instance(const json::value& doc, std::string_view service,
                                  std::string_view id) {
  if (!doc.is_object()) return nullptr;
  const json::value* services = doc.as_object().if_contains("services");
  if (services == nullptr || !services->is_array()) return nullptr;
  for (const auto& s : services->as_array()) {
    if (json_string(s, "name") != service) continue;
    const json::value* instances = s.as_object().if_contains("instances");
    if (instances == nullptr || !instances->is_array()) return nullptr;
    for (const auto& i : instances->as_array()) {
      if (json_string(i, "id") == id) return &i.as_object();
    }
  }
  return nullptr;
}

/// Whether a GET /api/services document lists `service`.
bool has_service(const json::value& doc, std::string_view service) {
  if (!doc.is_object()) return false;
  const json::value* services = doc.as_object().if_contains("services");
  if (services == nullptr || !services->is_array()) return false;
  for (const auto& s : services->as_array()) {
    if (json_string(s, "name") == service) return true;
  }
  return false;
}

class RegistryApiTest : public ::testing::Test {
 protected:
  /// The data directory every Switchboard of this test shares.
  std::string data_dir() const { return dir_.path() + "/data"; }

  /// `switchboard serve --listen 127.0.0.1:0 --data-dir <data_dir()> <args...>`. Fatal on
  /// failure: call through ASSERT_NO_FATAL_FAILURE.
  void start(std::vector<std::string> args = {}) {
    SwitchboardOptions o;
    o.args = {"--data-dir", data_dir()};
    o.args.insert(o.args.end(), args.begin(), args.end());
    sb_ = std::make_unique<Switchboard>(std::move(o));
    ASSERT_TRUE(sb_->started()) << sb_->error();
  }

  /// SIGTERM, then waits for a clean exit (0). Fatal on failure.
  void stop() {
    ASSERT_TRUE(sb_->process().signal(SIGTERM));
    auto code = sb_->process().wait_exit(default_timeout());
    ASSERT_TRUE(code.has_value()) << "switchboard did not exit after SIGTERM\n" << sb_->describe();
    EXPECT_EQ(*code, 0) << sb_->describe();
  }

  Response request(std::string_view method, std::string_view target, std::string_view body = {},
                   bool chunked = false) const {
    HttpClient c(sb_->port());
    return c.request(method, target, kJson, body, chunked);
  }
  Response get(std::string_view target) const { return request("GET", target); }
  Response put_instance(std::string_view service, std::string_view id,
                        std::string_view body) const {
    return request("PUT", instance_path(service, id), body);
  }
  Response heartbeat(std::string_view service, std::string_view id) const {
    return request("PUT", instance_path(service, id) + "/heartbeat");
  }
  Response remove(std::string_view service, std::string_view id) const {
    return request("DELETE", instance_path(service, id));
  }

  /// GET /api/services, parsed; nullopt (with a failure) when it is not a 200 JSON object.
  std::optional<json::value> services() const {
    Response r = get("/api/services");
    EXPECT_EQ(r.status, 200) << r.error << r.raw;
    if (r.status != 200) return std::nullopt;
    auto doc = parse_json(r.body);
    EXPECT_TRUE(doc && doc->is_object()) << r.body;
    if (!doc || !doc->is_object()) return std::nullopt;
    return doc;
  }

  /// Whether GET /api/services/<service> answers 200 (false on 404; anything else fails).
  /// The first instance's expires_in_ms in GET /api/services/<service>; nullopt when none.
  std::optional<std::int64_t> expires_in_ms(std::string_view service) const {
    Response r = get("/api/services/" + std::string(service));
    auto doc = r.status == 200 ? parse_json(r.body) : std::nullopt;
    if (!doc || !doc->is_object()) return std::nullopt;
    return json_int(doc->as_object().at("instances").as_array().at(0), "expires_in_ms");
  }

  bool service_exists(std::string_view service) const {
    Response r = get("/api/services/" + std::string(service));
    EXPECT_TRUE(r.status == 200 || r.status == 404) << r.error << r.raw;
    return r.status == 200;
  }

  /// GET /svc/<service>/echo: the upstream's name from the echo document, or nullopt with
  /// a failure.
  std::optional<std::string> echo_name(std::string_view service) const {
    Response r = get("/svc/" + std::string(service) + "/echo");
    EXPECT_EQ(r.status, 200) << r.error << r.raw;
    if (r.status != 200) return std::nullopt;
    auto doc = parse_json(r.body);
    EXPECT_TRUE(doc) << r.body;
    if (!doc) return std::nullopt;
    EXPECT_EQ(json_string(*doc, "path"), "/echo") << r.body;
    return json_string(*doc, "name");
  }

  TempDir dir_;  // destroyed last: holds the data directory
  std::unique_ptr<Switchboard> sb_;
};

/// The "field" of a problem response, "" when the body has none, nullopt when the body is
/// not a JSON object.
std::optional<std::string> problem_field(const Response& r) {
  auto doc = parse_json(r.body);
  if (!doc || !doc->is_object()) return std::nullopt;
  const json::value* f = doc->as_object().if_contains("field");
  if (f == nullptr) return std::string();
  if (!f->is_string()) return "<not a string: " + json::serialize(*f) + ">";
  return std::string(f->as_string());
}

// ---------------------------------------------------------------------------------------

// A registration is committed to the store (fsync) off the worker: while the disk is slow
// (an LD_PRELOAD library holds fsync for seconds), the one worker keeps proxying and
// answering /health, and an API read sent meanwhile waits its turn and sees the change.
TEST_F(RegistryApiTest, SlowStoreCommitsDoNotStallTheWorker) {
  Upstream one("one");
  ASSERT_TRUE(one.started()) << one.error();
  const std::string when = dir_.path() + "/slow-disk";
  const auto stall = scaled(milliseconds(2000));
  SwitchboardOptions o;
  o.args = {"--data-dir", data_dir(), "--threads", "1", "--service", "echo=" + one.url()};
  o.env["LD_PRELOAD"] = SB_SLOW_FSYNC_LIB;
  o.env["SB_SLOW_FSYNC_WHEN"] = when;
  o.env["SB_SLOW_FSYNC_MS"] = std::to_string(stall.count());
  // A sanitizer build's runtime must otherwise come first in the library list.
  const char* asan = std::getenv("ASAN_OPTIONS");
  o.env["ASAN_OPTIONS"] = std::string(asan ? asan : "") + ":verify_asan_link_order=0";
  sb_ = std::make_unique<Switchboard>(std::move(o));
  ASSERT_TRUE(sb_->started()) << sb_->error();
  ASSERT_EQ(get("/svc/echo/echo").status, 200);

  (void)dir_.write_file("slow-disk", "");  // from now on every fsync takes `stall`
  std::atomic<bool> put_done{false};
  Response put;
  std::thread writer([&] {
    put = put_instance("shop", "i-1", R"({"url":")" + one.url() + R"("})");
    put_done = true;
  });
  const bool in_commit = wait_until([&] { return std::filesystem::exists(when + ".entered"); },
                                    scaled(milliseconds(10'000)));
  EXPECT_TRUE(in_commit) << "the registration never reached fsync";

  const auto before = Clock::now();
  const Response health = get("/health");
  const Response proxied = get("/svc/echo/echo");
  const auto took = Clock::now() - before;
  const bool put_pending = !put_done;
  EXPECT_EQ(health.status, 200) << health.error << health.raw;
  EXPECT_EQ(proxied.status, 200) << proxied.error << proxied.raw;
  EXPECT_TRUE(put_pending) << "answered only after the commit: the worker waited for the disk";
  EXPECT_LT(took, stall / 2);

  // Queued behind the registration on the writer thread, so it sees the service (which
  // exists only once the registration is done).
  const Response listed = get("/api/services/shop");
  EXPECT_EQ(listed.status, 200) << "an API read overtook the change before it\n" << listed.raw;
  std::filesystem::remove(when);
  writer.join();
  EXPECT_EQ(put.status, 201) << put.error << put.raw;
}

// Register (201 + Location), read it back, route to it, replace it (200, traffic moves to
// the new URL), delete it (204); then the service and its route are gone.
TEST_F(RegistryApiTest, RegisterRouteReplaceDelete) {
  Upstream one("one");
  Upstream two("two");
  ASSERT_TRUE(one.started()) << one.error();
  ASSERT_TRUE(two.started()) << two.error();
  ASSERT_NO_FATAL_FAILURE(start());

  // Not routable before it is registered.
  expect_problem(get("/svc/shop/echo"), 404);

  Response created = put_instance(
      "shop", "i-1",
      R"({"url":")" + one.url() + R"(","zone":"eu-1a","weight":3,"metadata":{"team":"cart"}})");
  ASSERT_EQ(created.status, 201) << created.error << created.raw;
  EXPECT_EQ(created.header("Location"), "/api/services/shop/instances/i-1");
  EXPECT_EQ(created.header("Content-Type").rfind("application/json", 0), 0u) << created.raw;
  {
    auto doc = parse_json(created.body);
    ASSERT_TRUE(doc && doc->is_object()) << created.body;
    EXPECT_EQ(json_string(*doc, "name"), "shop");
    EXPECT_EQ(json_string(*doc, "source"), "api");
  }

  {
    Response r = get("/api/services/shop");
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, created.body) << "the PUT answer and GET of the service differ";
  }
  {
    auto doc = services();
    ASSERT_TRUE(doc);
    const json::object* inst = find_instance(*doc, "shop", "i-1");
    ASSERT_NE(inst, nullptr) << json::serialize(*doc);
    const json::value v(*inst);
    EXPECT_EQ(json_string(v, "url"), one.url());
    EXPECT_EQ(json_string(v, "zone"), "eu-1a");
    EXPECT_EQ(json_int(v, "weight"), 3);
    EXPECT_EQ(json_string(v, "source"), "api");
    EXPECT_FALSE(inst->contains("ttl_seconds")) << json::serialize(v);
    EXPECT_FALSE(inst->contains("expires_in_ms")) << json::serialize(v);
    EXPECT_TRUE(json_string(v, "registered_at").has_value()) << json::serialize(v);
    ASSERT_TRUE(inst->contains("metadata"));
    EXPECT_EQ(json::serialize(inst->at("metadata")), R"({"team":"cart"})");
  }

  // Traffic reaches the registered upstream at once.
  EXPECT_EQ(echo_name("shop"), "one");
  EXPECT_EQ(one.wait_logged("/echo", 1), 1u);

  // Replace: same id, new URL.
  Response replaced = put_instance("shop", "i-1", R"({"url":")" + two.url() + R"("})");
  ASSERT_EQ(replaced.status, 200) << replaced.error << replaced.raw;
  {
    auto doc = parse_json(replaced.body);
    ASSERT_TRUE(doc && doc->is_object()) << replaced.body;
    const json::value* instances = doc->as_object().if_contains("instances");
    ASSERT_TRUE(instances && instances->is_array()) << replaced.body;
    ASSERT_EQ(instances->as_array().size(), 1u) << replaced.body;
    EXPECT_EQ(json_string(instances->as_array()[0], "url"), two.url()) << replaced.body;
    EXPECT_EQ(json_int(instances->as_array()[0], "weight"), 1) << "a replacement is whole";
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(echo_name("shop"), "two");
  EXPECT_EQ(two.wait_logged("/echo", 3), 3u);
  EXPECT_EQ(one.requests_logged("/echo"), 1u) << "the old URL still received traffic";

  // Delete.
  Response deleted = remove("shop", "i-1");
  ASSERT_TRUE(deleted.ok()) << deleted.error;
  EXPECT_EQ(deleted.status, 204) << deleted.raw;
  EXPECT_TRUE(deleted.body.empty()) << deleted.raw;

  expect_problem(get("/api/services/shop"), 404);
  {
    auto doc = services();
    ASSERT_TRUE(doc);
    EXPECT_FALSE(has_service(*doc, "shop")) << json::serialize(*doc);
  }
  expect_problem(get("/svc/shop/echo"), 404);
  expect_problem(remove("shop", "i-1"), 404);
  EXPECT_EQ(two.wait_logged("/echo", 3), 3u);
}

// Two instances of one service take turns (round robin) on one connection.
// Registered instances take traffic at once (no checks configured): the balancer probes
// each new instance before it settles on the faster ones.
TEST_F(RegistryApiTest, RequestsReachEveryRegisteredInstance) {
  Upstream a("a");
  Upstream b("b");
  ASSERT_TRUE(a.started()) << a.error();
  ASSERT_TRUE(b.started()) << b.error();
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(put_instance("pair", "a", R"({"url":")" + a.url() + R"("})").status, 201);
  ASSERT_EQ(put_instance("pair", "b", R"({"url":")" + b.url() + R"("})").status, 201);

  HttpClient c(sb_->port());
  std::set<std::string> names;
  for (int i = 0; i < 4; ++i) {
    Response r = c.get("/svc/pair/echo");
    ASSERT_EQ(r.status, 200) << r.error << r.raw;
    names.insert(r.header("X-Upstream-Name"));
  }
  EXPECT_EQ(names, (std::set<std::string>{"a", "b"}));
  EXPECT_GE(a.wait_logged("/echo", 1), 1u);
  EXPECT_GE(b.wait_logged("/echo", 1), 1u);
}

struct BadCase {
  std::string label;
  std::string service;
  std::string id;
  std::string body;
  int status;
  std::optional<std::string> field;  // nullopt: not checked; "": must be absent
  bool chunked = false;
};

// Every kind of invalid registration is refused with 400 (413 for a body over 64 KiB) and
// the field at fault; afterwards GET /api/services is byte-for-byte what it was.
TEST_F(RegistryApiTest, InvalidRegistrationsAreRefusedAndChangeNothing) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start({"--service", "cfg=" + up.url()}));
  // An API service already there, so that refused replacements could show up as changes.
  ASSERT_EQ(put_instance("base", "b1", R"({"url":")" + up.url() + R"(","zone":"z"})").status, 201);

  Response before = get("/api/services");
  ASSERT_EQ(before.status, 200) << before.raw;
  auto before_doc = parse_json(before.body);
  ASSERT_TRUE(before_doc && before_doc->is_object()) << before.body;

  const std::string url = R"("url":")" + up.url() + R"(")";
  auto with = [&](const std::string& extra) { return "{" + url + "," + extra + "}"; };
  // A body of exactly `n` bytes: a valid registration padded in its metadata.
  auto padded = [&](std::size_t n) {
    const std::string head = "{" + url + R"(,"metadata":{"pad":")";
    const std::string tail = "\"}}";
    return head + std::string(n - head.size() - tail.size(), 'x') + tail;
  };

  const std::vector<BadCase> cases = {
      // url
      {"url missing", "base", "b1", "{}", 400, "url"},
      {"url missing, other fields", "mx", "i1", R"({"zone":"z","weight":2})", 400, "url"},
      {"url number", "mx", "i1", R"({"url":5})", 400, "url"},
      {"url null", "mx", "i1", R"({"url":null})", 400, "url"},
      {"url empty", "mx", "i1", R"({"url":""})", 400, "url"},
      {"url ftp", "mx", "i1", R"({"url":"ftp://127.0.0.1:21"})", 400, "url"},
      {"url no scheme", "mx", "i1", R"({"url":"127.0.0.1:8080"})", 400, "url"},
      {"url no host", "mx", "i1", R"({"url":"http://"})", 400, "url"},
      {"url not a url", "base", "b1", R"({"url":"not a url"})", 400, "url"},
      // ttl_seconds
      {"ttl 0", "mx", "i1", with(R"("ttl_seconds":0)"), 400, "ttl_seconds"},
      {"ttl -1", "mx", "i1", with(R"("ttl_seconds":-1)"), 400, "ttl_seconds"},
      {"ttl 604801", "mx", "i1", with(R"("ttl_seconds":604801)"), 400, "ttl_seconds"},
      {"ttl huge", "mx", "i1", with(R"("ttl_seconds":18446744073709551615)"), 400, "ttl_seconds"},
      {"ttl fraction", "mx", "i1", with(R"("ttl_seconds":1.5)"), 400, "ttl_seconds"},
      {"ttl string", "mx", "i1", with(R"("ttl_seconds":"10")"), 400, "ttl_seconds"},
      {"ttl bool", "mx", "i1", with(R"("ttl_seconds":true)"), 400, "ttl_seconds"},
      {"ttl null", "base", "b1", with(R"("ttl_seconds":null)"), 400, "ttl_seconds"},
      // weight
      {"weight 0", "mx", "i1", with(R"("weight":0)"), 400, "weight"},
      {"weight -1", "mx", "i1", with(R"("weight":-1)"), 400, "weight"},
      {"weight 10001", "base", "b1", with(R"("weight":10001)"), 400, "weight"},
      {"weight huge", "mx", "i1", with(R"("weight":4294967297)"), 400, "weight"},
      {"weight fraction", "mx", "i1", with(R"("weight":2.5)"), 400, "weight"},
      {"weight string", "mx", "i1", with(R"("weight":"3")"), 400, "weight"},
      // zone
      {"zone 64 chars", "mx", "i1", with(R"("zone":")" + std::string(64, 'z') + "\""), 400, "zone"},
      {"zone space", "mx", "i1", with(R"("zone":"eu 1")"), 400, "zone"},
      {"zone slash", "base", "b1", with(R"("zone":"eu/1")"), 400, "zone"},
      {"zone non-ascii", "mx", "i1", with(R"("zone":"zürich")"), 400, "zone"},
      {"zone number", "mx", "i1", with(R"("zone":5)"), 400, "zone"},
      // metadata
      {"metadata array", "mx", "i1", with(R"("metadata":[1])"), 400, "metadata"},
      {"metadata string", "mx", "i1", with(R"("metadata":"x")"), 400, "metadata"},
      {"metadata null", "base", "b1", with(R"("metadata":null)"), 400, "metadata"},
      // unknown fields and check
      {"unknown field", "mx", "i1", with(R"("colour":"red")"), 400, "colour"},
      {"unknown field on replace", "base", "b1", with(R"("URL":"x")"), 400, "URL"},
      {"check without path", "mx", "i1", with(R"("check":{"method":"GET"})"), 400, "check.path"},
      {"check bad type", "mx", "i1", with(R"("check":{"type":"icmp"})"), 400, "check.type"},
      {"check unknown key", "mx", "i1", with(R"("check":{"path":"/h","every":1})"), 400,
       "check.every"},
      {"check null", "base", "b1", with(R"("check":null)"), 400, "check"},
      // not a JSON object
      {"array body", "mx", "i1", "[]", 400, ""},
      {"string body", "mx", "i1", R"("http://127.0.0.1:1")", 400, ""},
      {"number body", "mx", "i1", "1", 400, ""},
      {"null body", "base", "b1", "null", 400, ""},
      // not JSON
      {"empty body", "mx", "i1", "", 400, ""},
      {"truncated JSON", "mx", "i1", "{" + url, 400, ""},
      {"trailing garbage", "mx", "i1", "{" + url + "} x", 400, ""},
      {"single quotes", "mx", "i1", "{'url':'http://127.0.0.1:1'}", 400, ""},
      // the path
      {"service upper case", "Mx", "i1", "{" + url + "}", 400, "service"},
      {"service underscore", "m_x", "i1", "{" + url + "}", 400, "service"},
      {"service dot", "m.x", "i1", "{" + url + "}", 400, "service"},
      {"service 64 chars", std::string(64, 'm'), "i1", "{" + url + "}", 400, "service"},
      {"service status", "status", "i1", "{" + url + "}", 400, "service"},
      {"service events", "events", "i1", "{" + url + "}", 400, "service"},
      {"id 129 chars", "mx", std::string(129, 'i'), "{" + url + "}", 400, "id"},
      {"id colon", "mx", "a:b", "{" + url + "}", 400, "id"},
      {"id tilde", "mx", "a~b", "{" + url + "}", 400, "id"},
      {"id percent-encoded space", "mx", "a%20b", "{" + url + "}", 400, "id"},
      // size
      {"body 64 KiB + 1", "mx", "i1", padded(64 * 1024 + 1), 413, std::nullopt},
      {"body 65 KiB", "base", "b1", padded(65 * 1024), 413, std::nullopt},
      {"body 65 KiB chunked", "mx", "i1", padded(65 * 1024), 413, std::nullopt, true},
  };

  for (const auto& c : cases) {
    SCOPED_TRACE(c.label + ": PUT " + instance_path(c.service, c.id).substr(0, 100) + " " +
                 c.body.substr(0, 100));
    Response r = request("PUT", instance_path(c.service, c.id), c.body, c.chunked);
    expect_problem(r, c.status);
    if (c.field) {
      EXPECT_EQ(problem_field(r), *c.field) << r.body;
    }
  }

  Response after = get("/api/services");
  ASSERT_EQ(after.status, 200) << after.raw;
  auto after_doc = parse_json(after.body);
  ASSERT_TRUE(after_doc && after_doc->is_object()) << after.body;
  EXPECT_EQ(json::serialize(after_doc->as_object().at("version")),
            json::serialize(before_doc->as_object().at("version")))
      << "refused registrations changed the registry version";
  EXPECT_EQ(json::serialize(after_doc->as_object().at("services")),
            json::serialize(before_doc->as_object().at("services")));
  EXPECT_EQ(after.body, before.body);
  expect_problem(get("/api/services/mx"), 404);
}

// The largest values the API allows are accepted: a 64 KiB body, ttl_seconds 604800,
// weight 10000, a 63-character zone and service name, a 128-character id.
TEST_F(RegistryApiTest, EdgeValuesAreAccepted) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string url = R"("url":")" + up.url() + R"(")";

  const std::string head = "{" + url + R"(,"metadata":{"pad":")";
  const std::string tail = "\"}}";
  const std::string body64k = head + std::string(64 * 1024 - head.size() - tail.size(), 'x') + tail;
  ASSERT_EQ(body64k.size(), 64u * 1024);
  Response r = put_instance("edge", "big", body64k);
  EXPECT_EQ(r.status, 201) << r.error << r.raw.substr(0, 2000);

  r = put_instance("edge", "max",
                   "{" + url + R"(,"ttl_seconds":604800,"weight":10000,"zone":")" +
                       std::string(63, 'z') + R"(","metadata":{}})");
  EXPECT_EQ(r.status, 201) << r.raw;
  r = put_instance("edge", "min", "{" + url + R"(,"ttl_seconds":1,"weight":1,"zone":""})");
  EXPECT_EQ(r.status, 201) << r.raw;
  const std::string long_service(63, 'a');
  const std::string long_id = std::string(64, 'A') + std::string(61, 'z') + "._-";
  ASSERT_EQ(long_id.size(), 128u);
  r = put_instance(long_service, long_id, "{" + url + "}");
  EXPECT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(echo_name(long_service), "up");

  auto doc = services();
  ASSERT_TRUE(doc);
  const json::object* max = find_instance(*doc, "edge", "max");
  ASSERT_NE(max, nullptr) << json::serialize(*doc);
  EXPECT_EQ(json_int(json::value(*max), "ttl_seconds"), 604800);
  EXPECT_EQ(json_int(json::value(*max), "weight"), 10000);
  EXPECT_NE(find_instance(*doc, long_service, long_id), nullptr) << json::serialize(*doc);
}

// Instances from the command line and Switchboard's own instance cannot be deleted (409);
// they stay listed and routable.
TEST_F(RegistryApiTest, ConfigAndSelfInstancesCannotBeDeleted) {
  Upstream up("cfg-up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start({"--service", "cfg=" + up.url()}));

  auto doc = services();
  ASSERT_TRUE(doc);
  // The command-line instance's id, read back rather than assumed.
  std::string cfg_id;
  for (const auto& s : doc->as_object().at("services").as_array()) {
    if (json_string(s, "name") != "cfg") continue;
    EXPECT_EQ(json_string(s, "source"), "cli") << json::serialize(s);
    const auto& instances = s.as_object().at("instances").as_array();
    ASSERT_EQ(instances.size(), 1u) << json::serialize(s);
    cfg_id = json_string(instances[0], "id").value_or("");
    EXPECT_EQ(json_string(instances[0], "url"), up.url());
    EXPECT_EQ(json_string(instances[0], "source"), "cli");
  }
  ASSERT_FALSE(cfg_id.empty()) << "no cfg instance in " << json::serialize(*doc);
  const json::object* self = find_instance(*doc, "switchboard", "self");
  ASSERT_NE(self, nullptr) << json::serialize(*doc);
  EXPECT_EQ(json_string(json::value(*self), "source"), "default");
  EXPECT_EQ(json_string(json::value(*self), "url"),
            "http://127.0.0.1:" + std::to_string(sb_->port()));

  Response r = remove("cfg", cfg_id);
  expect_problem(r, 409);
  EXPECT_EQ(problem_field(r), "id") << r.body;
  r = remove("switchboard", "self");
  expect_problem(r, 409);
  EXPECT_EQ(problem_field(r), "id") << r.body;

  // Nor replaced through the API.
  r = put_instance("cfg", cfg_id, R"({"url":"http://127.0.0.1:1"})");
  expect_problem(r, 409);
  r = put_instance("switchboard", "self", R"({"url":"http://127.0.0.1:1"})");
  expect_problem(r, 409);

  auto after = services();
  ASSERT_TRUE(after);
  const json::object* cfg_after = find_instance(*after, "cfg", cfg_id);
  const json::object* self_after = find_instance(*after, "switchboard", "self");
  ASSERT_NE(cfg_after, nullptr) << json::serialize(*after);
  ASSERT_NE(self_after, nullptr) << json::serialize(*after);
  EXPECT_EQ(json_string(json::value(*cfg_after), "url"), up.url());
  EXPECT_EQ(json_string(json::value(*self_after), "url"),
            "http://127.0.0.1:" + std::to_string(sb_->port()));
  EXPECT_EQ(json::serialize(after->as_object().at("version")),
            json::serialize(doc->as_object().at("version")));
  EXPECT_EQ(echo_name("cfg"), "cfg-up");
}

// Heartbeats: 404 for an unknown instance; with ttl_seconds 1, a heartbeat every 300 ms
// keeps the instance past 2 s; without them it is gone within about 2 s, and so is its
// route.
TEST_F(RegistryApiTest, HeartbeatsKeepTtlInstanceAliveAndItExpiresWithout) {
  Upstream up("hb-up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start());

  expect_problem(heartbeat("nosuch", "i1"), 404);
  ASSERT_EQ(put_instance("other", "x", R"({"url":")" + up.url() + R"("})").status, 201);
  expect_problem(heartbeat("other", "nosuch"), 404);

  Response r = put_instance("hb", "i1", R"({"url":")" + up.url() + R"(","ttl_seconds":1})");
  ASSERT_EQ(r.status, 201) << r.raw;
  {
    auto doc = parse_json(r.body);
    ASSERT_TRUE(doc) << r.body;
    const json::value& inst = doc->as_object().at("instances").as_array().at(0);
    EXPECT_EQ(json_int(inst, "ttl_seconds"), 1) << r.body;
    const auto left = json_int(inst, "expires_in_ms");
    ASSERT_TRUE(left.has_value()) << r.body;
    EXPECT_GT(*left, 0) << r.body;
    EXPECT_LE(*left, 1000) << r.body;
  }

  // Heartbeats paced by the registry's own figure (the exact renewal and expiry edges are
  // unit tests: RegistryTest.HeartbeatRenews, TtlExpiresExactlyAtTheDeadline): each time
  // half the TTL is left, a heartbeat brings expires_in_ms back up. Four of them carry the
  // instance past twice its TTL.
  auto last_heartbeat_sent = Clock::now();
  const auto first_put = Clock::now();
  for (int beats = 0; beats < 4; ++beats) {
    ASSERT_TRUE(wait_until(
        [&] {
          const auto left = expires_in_ms("hb");
          return !left || *left <= 500;
        },
        scaled(milliseconds(5'000))))
        << "expires_in_ms did not fall";
    ASSERT_TRUE(expires_in_ms("hb").has_value()) << "expired despite heartbeats after " << beats;
    last_heartbeat_sent = Clock::now();
    Response hb = heartbeat("hb", "i1");
    ASSERT_EQ(hb.status, 200) << "heartbeat " << beats << ": " << hb.error << hb.raw;
    const auto renewed = expires_in_ms("hb");
    ASSERT_TRUE(renewed.has_value());
    EXPECT_GT(*renewed, 500) << "heartbeat " << beats << " did not renew the TTL";
  }
  EXPECT_GE(Clock::now() - first_put, milliseconds(1'500)) << "past the 1 s TTL";
  EXPECT_EQ(echo_name("hb"), "hb-up");

  // No more heartbeats: gone within ~2 s of the last one, not before its 1 s TTL.
  const auto deadline = last_heartbeat_sent + scaled(milliseconds(2'000));
  const bool gone = wait_until([&] { return !service_exists("hb"); },
                               std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  const auto after_last =
      std::chrono::duration_cast<milliseconds>(Clock::now() - last_heartbeat_sent);
  ASSERT_TRUE(gone) << "still registered " << after_last.count() << " ms after the last heartbeat";
  EXPECT_GE(after_last, milliseconds(1'000)) << "expired before its TTL";
  {
    auto doc = services();
    ASSERT_TRUE(doc);
    EXPECT_FALSE(has_service(*doc, "hb")) << json::serialize(*doc);
    EXPECT_NE(find_instance(*doc, "other", "x"), nullptr) << "an instance without TTL expired";
  }
  expect_problem(get("/svc/hb/echo"), 404);
  expect_problem(heartbeat("hb", "i1"), 404);
}

// Registrations (with and without TTL) survive a restart on the same data directory: listed
// with their fields and routable again.
TEST_F(RegistryApiTest, RegistrationsSurviveRestart) {
  Upstream one("one");
  Upstream two("two");
  ASSERT_TRUE(one.started()) << one.error();
  ASSERT_TRUE(two.started()) << two.error();
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(
      put_instance("keep-ttl", "t1",
                   R"({"url":")" + one.url() +
                       R"(","ttl_seconds":600,"zone":"z-a","weight":7,"metadata":{"v":[1,2]}})")
          .status,
      201);
  ASSERT_EQ(put_instance("keep-plain", "p1",
                         R"({"url":")" + two.url() + R"(","zone":"z-b","metadata":{"k":"v"}})")
                .status,
            201);
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_TRUE(std::filesystem::exists(data_dir() + "/registry.sqlite3"));

  ASSERT_NO_FATAL_FAILURE(start());
  auto doc = services();
  ASSERT_TRUE(doc);
  const json::object* t1 = find_instance(*doc, "keep-ttl", "t1");
  const json::object* p1 = find_instance(*doc, "keep-plain", "p1");
  ASSERT_NE(t1, nullptr) << json::serialize(*doc);
  ASSERT_NE(p1, nullptr) << json::serialize(*doc);
  const json::value t(*t1), p(*p1);
  EXPECT_EQ(json_string(t, "url"), one.url());
  EXPECT_EQ(json_string(t, "zone"), "z-a");
  EXPECT_EQ(json_int(t, "weight"), 7);
  EXPECT_EQ(json_string(t, "source"), "api");
  EXPECT_EQ(json_int(t, "ttl_seconds"), 600);
  const auto left = json_int(t, "expires_in_ms");
  ASSERT_TRUE(left.has_value()) << json::serialize(t);
  EXPECT_GT(*left, 600'000 - scaled(milliseconds(30'000)).count()) << json::serialize(t);
  EXPECT_LE(*left, 600'000) << json::serialize(t);
  EXPECT_EQ(json::serialize(t1->at("metadata")), R"({"v":[1,2]})");
  EXPECT_EQ(json_string(p, "url"), two.url());
  EXPECT_EQ(json_string(p, "zone"), "z-b");
  EXPECT_EQ(json_int(p, "weight"), 1);
  EXPECT_FALSE(p1->contains("ttl_seconds")) << json::serialize(p);
  EXPECT_EQ(json::serialize(p1->at("metadata")), R"({"k":"v"})");

  EXPECT_EQ(echo_name("keep-ttl"), "one");
  EXPECT_EQ(echo_name("keep-plain"), "two");

  // Still API instances after the restart: they can be deleted, and the deletion persists.
  EXPECT_EQ(remove("keep-plain", "p1").status, 204);
  ASSERT_NO_FATAL_FAILURE(stop());
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_FALSE(service_exists("keep-plain"));
  EXPECT_TRUE(service_exists("keep-ttl"));
}

// registered_at is when the instance was registered: a restart does not change it.
TEST_F(RegistryApiTest, RegisteredAtSurvivesRestart) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(put_instance("aged", "a1", R"({"url":"http://127.0.0.1:1"})").status, 201);
  auto before = services();
  ASSERT_TRUE(before);
  const json::object* a1 = find_instance(*before, "aged", "a1");
  ASSERT_NE(a1, nullptr) << json::serialize(*before);
  const auto registered_at = json_string(json::value(*a1), "registered_at");
  ASSERT_TRUE(registered_at.has_value()) << json::serialize(*before);

  ASSERT_NO_FATAL_FAILURE(stop());
  ASSERT_NO_FATAL_FAILURE(start());
  auto after = services();
  ASSERT_TRUE(after);
  a1 = find_instance(*after, "aged", "a1");
  ASSERT_NE(a1, nullptr) << json::serialize(*after);
  EXPECT_EQ(json_string(json::value(*a1), "registered_at"), registered_at)
      << "registered_at became the time of the restart";
}

// An instance whose 1 s TTL lapses while Switchboard is down (>= 1.5 s) is gone after the
// restart, while one without TTL registered alongside it is back.
TEST_F(RegistryApiTest, TtlLapsedWhileDownIsGoneAfterRestart) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(put_instance("control", "c1", R"({"url":")" + up.url() + R"("})").status, 201);
  Response r = put_instance("short", "s1", R"({"url":")" + up.url() + R"(","ttl_seconds":1})");
  ASSERT_EQ(r.status, 201) << r.raw;
  const auto registered = Clock::now();
  ASSERT_NO_FATAL_FAILURE(stop());
  const auto stopped = Clock::now();
  // The scenario is a lapse while down: the process must be gone before the TTL ends.
  ASSERT_LT(stopped - registered, milliseconds(900))
      << "shutdown took too long for the TTL to lapse while down";

  // The scenario needs time to pass: Switchboard stays down for 1.5 s.
  std::this_thread::sleep_for(milliseconds(1'500));

  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_TRUE(service_exists("control")) << "the store was not reloaded at all";
  EXPECT_FALSE(service_exists("short"));
  auto doc = services();
  ASSERT_TRUE(doc);
  EXPECT_EQ(find_instance(*doc, "short", "s1"), nullptr) << json::serialize(*doc);
  expect_problem(get("/svc/short/echo"), 404);

  // ...and it does not come back on a further restart either.
  ASSERT_NO_FATAL_FAILURE(stop());
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_FALSE(service_exists("short"));
  EXPECT_TRUE(service_exists("control"));
}

/// Expects `switchboard serve` on `data_dir` to exit 2 naming registry.sqlite3, without
/// having served.
void expect_corrupt_database_refused(const std::string& data_dir) {
  RunResult r = run_switchboard({"serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir});
  ASSERT_TRUE(r.exit_code.has_value()) << "did not exit; stderr:\n" << r.err;
  EXPECT_EQ(*r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("registry.sqlite3"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.err;
}

// A registry.sqlite3 of garbage bytes makes `serve` exit 2 naming the file, which it
// leaves as it was.
TEST_F(RegistryApiTest, GarbageDatabaseExitsTwo) {
  std::filesystem::create_directories(data_dir());
  std::string garbage;
  for (int i = 0; i < 512; ++i) garbage += "this is not an SQLite database ";
  const std::string file = data_dir() + "/registry.sqlite3";
  {
    std::ofstream out(file, std::ios::binary);
    out << garbage;
  }
  ASSERT_NO_FATAL_FAILURE(expect_corrupt_database_refused(data_dir()));
  std::ifstream in(file, std::ios::binary);
  const std::string now((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(now == garbage) << "the corrupt file was changed";
}

// A real registry database with its pages after the first overwritten makes `serve` exit
// 2 naming the file.
TEST_F(RegistryApiTest, DamagedDatabaseExitsTwo) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(
        put_instance("dmg", "i" + std::to_string(i), R"({"url":")" + up.url() + R"("})").status,
        201);
  }
  ASSERT_NO_FATAL_FAILURE(stop());
  const std::string file = data_dir() + "/registry.sqlite3";
  const auto size = std::filesystem::file_size(file);
  ASSERT_GT(size, 4096u) << "expected more than one page";
  {
    std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4096);
    f << std::string(size - 4096, '\xAB');
    ASSERT_TRUE(f.good());
  }
  ASSERT_NO_FATAL_FAILURE(expect_corrupt_database_refused(data_dir()));
}

// A second Switchboard on a data directory in use exits 2 naming the database, and the
// first one keeps serving its registrations.
TEST_F(RegistryApiTest, SecondSwitchboardOnSameDataDirExitsTwo) {
  Upstream up("up");
  ASSERT_TRUE(up.started()) << up.error();
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(put_instance("held", "h1", R"({"url":")" + up.url() + R"("})").status, 201);
  RunResult r = run_switchboard({"serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir()});
  ASSERT_TRUE(r.exit_code.has_value()) << "did not exit; stderr:\n" << r.err;
  EXPECT_EQ(*r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("registry.sqlite3"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("listening on"), std::string::npos) << r.err;
  EXPECT_EQ(echo_name("held"), "up");
  ASSERT_EQ(put_instance("held", "h2", R"({"url":")" + up.url() + R"("})").status, 201);
}

// Wrong methods are 405 problems with an Allow header.
TEST_F(RegistryApiTest, WrongMethodIs405WithAllow) {
  ASSERT_NO_FATAL_FAILURE(start());
  Response r = request("POST", "/api/services", "{}");
  expect_problem(r, 405);
  EXPECT_TRUE(r.has_header("Allow")) << r.raw;
  EXPECT_NE(r.header("Allow").find("GET"), std::string::npos) << r.raw;
  EXPECT_EQ(r.header("Allow").find("POST"), std::string::npos) << r.raw;

  r = request("POST", instance_path("svc", "i1"), "{}");
  expect_problem(r, 405);
  EXPECT_NE(r.header("Allow").find("PUT"), std::string::npos) << r.raw;
  EXPECT_NE(r.header("Allow").find("DELETE"), std::string::npos) << r.raw;

  r = get(instance_path("svc", "i1") + "/heartbeat");
  expect_problem(r, 405);
  EXPECT_EQ(r.header("Allow"), "PUT") << r.raw;
}

}  // namespace
}  // namespace sb::testing
