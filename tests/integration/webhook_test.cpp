// Webhook sinks with real processes: registry changes made through the API reach
// upstream.py's /hook/<name> recorder as JSON POSTs, in order, filtered, retried; a dead
// sink is counted in the status document and delays neither the others nor shutdown.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

#include <boost/json/serialize.hpp>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace json = boost::json;

// A TCP socket on 127.0.0.1 that listens (so connects succeed) but never accepts or answers:
// the sink that hangs. With `listen` false the port is closed again: nothing listens there.
class DeadPort {
 public:
  explicit DeadPort(bool listen) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    if (listen) {
      ::listen(fd_, 16);
    } else {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~DeadPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

class WebhookTest : public GatewayTest {
 protected:
  Response put_instance(const std::string& service, const std::string& id) {
    return client().request("PUT", "/api/services/" + service + "/instances/" + id,
                            {{"Content-Type", "application/json"}},
                            "{\"url\":\"" + up_->url() + "\"}");
  }

  // What upstream.py's /hook/<name> recorded, read straight from it.
  json::array recorded(const std::string& name) {
    Response r = HttpClient(up_->port()).get("/hooks/" + name);
    auto v = parse_json(r.body);
    return v && v->is_array() ? v->as_array() : json::array{};
  }

  // Polls until /hook/<name> has recorded at least `n` requests; returns what it holds.
  json::array wait_recorded(const std::string& name, std::size_t n, milliseconds within) {
    const auto deadline = Clock::now() + scaled(within);
    json::array got;
    while ((got = recorded(name)).size() < n && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(20));
    return got;
  }

  // The status document's webhooks entry for `url`, polled until `done` holds for it.
  json::object wait_sink_status(const std::string& url, milliseconds within,
                                const std::function<bool(const json::object&)>& done) {
    const auto deadline = Clock::now() + scaled(within);
    json::object last;
    do {
      Response r = client().get("/api/services/status");
      auto doc = parse_json(r.body);
      if (doc && doc->is_object() && doc->as_object().contains("webhooks")) {
        for (const auto& s : doc->as_object().at("webhooks").as_array())
          if (s.as_object().at("url") == url.c_str()) last = s.as_object();
        if (done(last)) return last;
      }
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < deadline);
    return last;
  }

  static std::string body_field(const json::value& rec, std::string_view key) {
    auto body = parse_json(rec.as_object().at("body").as_string());
    if (!body || !body->is_object() || !body->as_object().contains(key)) return "?";
    const auto& v = body->as_object().at(key);
    return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
  }
  static std::string header(const json::value& rec, std::string_view name) {
    const auto& h = rec.as_object().at("headers").as_object();
    if (!h.contains(name)) return "";
    return std::string(h.at(name).as_array().at(0).as_string());
  }
  static std::uint64_t counter(const json::object& o, std::string_view key) {
    return o.contains(key) ? o.at(key).to_number<std::uint64_t>() : 0;
  }
};

// Registering and deregistering through the API POSTs each event, in order, as JSON with
// the event id, User-Agent and the configured headers; a sink's filter keeps the others out.
TEST_F(WebhookTest, EventsArePostedInOrderAndFiltered) {
  up_ = std::make_unique<Upstream>("hooks");
  ASSERT_TRUE(up_->started()) << up_->error();
  const std::string yaml =
      "webhooks:\n"
      "  - url: " +
      up_->url() +
      "/hook/all\n"
      "    headers: {Authorization: \"Bearer s3cret\"}\n"
      "  - url: " +
      up_->url() +
      "/hook/gone\n"
      "    events: [deregistered, expired]\n"
      "    services: [web]\n";
  SwitchboardOptions options;
  options.args = {"--config", write_config(yaml)};
  sb_ = std::make_unique<Switchboard>(std::move(options));
  ASSERT_TRUE(sb_->started()) << sb_->error();

  EXPECT_EQ(put_instance("web", "a").status, 201);
  EXPECT_EQ(put_instance("web", "b").status, 201);
  EXPECT_EQ(put_instance("web", "a").status, 200);
  EXPECT_EQ(put_instance("other", "c").status, 201);
  EXPECT_EQ(client().request("DELETE", "/api/services/other/instances/c").status, 204);
  EXPECT_EQ(client().request("DELETE", "/api/services/web/instances/b").status, 204);

  const json::array all = wait_recorded("all", 6, milliseconds(5000));
  ASSERT_EQ(all.size(), 6u) << json::serialize(all);
  const std::vector<std::string> types = {"registered", "registered",   "replaced",
                                          "registered", "deregistered", "deregistered"};
  const std::vector<std::string> instances = {"a", "b", "a", "c", "c", "b"};
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& rec = all[i];
    EXPECT_EQ(rec.as_object().at("method"), "POST");
    EXPECT_EQ(rec.as_object().at("path"), "/hook/all");
    EXPECT_EQ(body_field(rec, "type"), types[i]) << i;
    EXPECT_EQ(body_field(rec, "instance"), instances[i]) << i;
    // "<epoch>-<sequence>": the process's epoch, then the log's sequence.
    const std::string id = body_field(rec, "id");
    EXPECT_EQ(id.substr(id.find('-') + 1), std::to_string(i + 1)) << "ids follow the log";
    EXPECT_EQ(id.substr(0, id.find('-')),
              body_field(all[0], "id").substr(0, body_field(all[0], "id").find('-')));
    EXPECT_EQ(header(rec, "x-switchboard-event-id"), id);
    EXPECT_EQ(header(rec, "content-type"), "application/json");
    EXPECT_EQ(header(rec, "user-agent").rfind("switchboard/", 0), 0u) << header(rec, "user-agent");
    EXPECT_EQ(header(rec, "authorization"), "Bearer s3cret");
    EXPECT_NE(body_field(rec, "at"), "?");
  }
  // The filtered sink: web's deregistration only (not other's, not registrations).
  const json::array gone = wait_recorded("gone", 1, milliseconds(5000));
  ASSERT_EQ(gone.size(), 1u) << json::serialize(gone);
  EXPECT_EQ(body_field(gone[0], "type"), "deregistered");
  EXPECT_EQ(body_field(gone[0], "service"), "web");
  EXPECT_EQ(body_field(gone[0], "instance"), "b");
  EXPECT_EQ(header(gone[0], "authorization"), "");

  const auto st =
      wait_sink_status(up_->url() + "/hook/all", milliseconds(5000),
                       [](const json::object& o) { return counter(o, "delivered") == 6; });
  EXPECT_EQ(counter(st, "queued"), 6u);
  EXPECT_EQ(counter(st, "failed"), 0u);
  EXPECT_EQ(counter(st, "dropped"), 0u);
  EXPECT_TRUE(st.contains("last_success") && st.at("last_success").is_string())
      << json::serialize(st);
}

// A sink that answers 500 twice, then 200, gets the event on the third attempt (same id);
// the status document counts the retries.
TEST_F(WebhookTest, RetriesUntilTheSinkRecovers) {
  up_ = std::make_unique<Upstream>("hooks");
  ASSERT_TRUE(up_->started()) << up_->error();
  const std::string url = up_->url() + "/hook/flaky/500,503,200";
  SwitchboardOptions options;
  options.args = {"--config", write_config("webhooks:\n  - url: " + url +
                                           "\n    backoff: 20ms\n    max_backoff: 100ms\n")};
  sb_ = std::make_unique<Switchboard>(std::move(options));
  ASSERT_TRUE(sb_->started()) << sb_->error();

  EXPECT_EQ(put_instance("web", "a").status, 201);
  const json::array got = wait_recorded("flaky", 3, milliseconds(5000));
  ASSERT_EQ(got.size(), 3u) << json::serialize(got);
  const std::string id = header(got[0], "x-switchboard-event-id");
  EXPECT_EQ(id.substr(id.find('-') + 1), "1") << id;
  for (const auto& rec : got) EXPECT_EQ(header(rec, "x-switchboard-event-id"), id);
  EXPECT_EQ(got[2].as_object().at("status"), 200);
  const auto st = wait_sink_status(
      url, milliseconds(5000), [](const json::object& o) { return counter(o, "delivered") == 1; });
  EXPECT_EQ(counter(st, "delivered"), 1u) << json::serialize(st);
  EXPECT_EQ(counter(st, "retries"), 2u);
  EXPECT_EQ(counter(st, "failed"), 0u);
  EXPECT_EQ(st.at("last_error"), "HTTP 503");
  const std::string logs =
      sb_->process().output(Stream::kStdout) + sb_->process().output(Stream::kStderr);
  EXPECT_NE(logs.find("event " + id + " attempt 1 failed: HTTP 500"), std::string::npos)
      << "each failed attempt is logged";
}

// A sink URL keeps its query string (sent as given), and a 503 with Retry-After: 1 makes the
// retry wait that second although the backoff is 10 ms.
TEST_F(WebhookTest, QueryIsSentAndRetryAfterIsHonoured) {
  up_ = std::make_unique<Upstream>("hooks");
  ASSERT_TRUE(up_->started()) << up_->error();
  const std::string url = up_->url() + "/hook/later/503,200?retry_after=1&x=a%20b";
  SwitchboardOptions options;
  options.args = {"--config", write_config("webhooks:\n  - url: \"" + url +
                                           "\"\n    backoff: 10ms\n    max_backoff: 10s\n")};
  sb_ = std::make_unique<Switchboard>(std::move(options));
  ASSERT_TRUE(sb_->started()) << sb_->error();

  EXPECT_EQ(put_instance("web", "a").status, 201);
  const json::array got = wait_recorded("later", 2, milliseconds(5000));
  ASSERT_EQ(got.size(), 2u) << json::serialize(got);
  EXPECT_EQ(got[0].as_object().at("path"), "/hook/later/503,200");
  EXPECT_EQ(got[0].as_object().at("query"), "retry_after=1&x=a%20b");
  EXPECT_EQ(got[0].as_object().at("status"), 503);
  EXPECT_EQ(got[1].as_object().at("status"), 200);
  const double gap = got[1].as_object().at("at").to_number<double>() -
                     got[0].as_object().at("at").to_number<double>();
  EXPECT_GE(gap, 0.95) << "Retry-After: 1 was not waited for";
  const auto st = wait_sink_status(
      url, milliseconds(5000), [](const json::object& o) { return counter(o, "delivered") == 1; });
  EXPECT_EQ(counter(st, "retries"), 1u) << json::serialize(st);
}

// Retry-After is bounded by max_backoff: a sink asking for an hour is retried after 200 ms.
TEST_F(WebhookTest, RetryAfterIsBoundedByMaxBackoff) {
  up_ = std::make_unique<Upstream>("hooks");
  ASSERT_TRUE(up_->started()) << up_->error();
  const std::string url = up_->url() + "/hook/busy/429,200?retry_after=3600";
  SwitchboardOptions options;
  options.args = {"--config", write_config("webhooks:\n  - url: \"" + url +
                                           "\"\n    backoff: 10ms\n    max_backoff: 200ms\n")};
  sb_ = std::make_unique<Switchboard>(std::move(options));
  ASSERT_TRUE(sb_->started()) << sb_->error();

  EXPECT_EQ(put_instance("web", "a").status, 201);
  const json::array got = wait_recorded("busy", 2, milliseconds(5000));
  ASSERT_EQ(got.size(), 2u) << json::serialize(got);
  EXPECT_EQ(got[0].as_object().at("status"), 429);
  const double gap = got[1].as_object().at("at").to_number<double>() -
                     got[0].as_object().at("at").to_number<double>();
  EXPECT_GE(gap, 0.19) << "Retry-After counts up to max_backoff";
  EXPECT_LT(gap, 3.0);
}

// A sink with nothing listening and one that never answers: the healthy sink gets every
// event at once, the dead one's failures are counted, and SIGTERM exits promptly although
// an attempt on the silent sink is still in flight.
TEST_F(WebhookTest, DeadSinksDelayNeitherOthersNorShutdown) {
  up_ = std::make_unique<Upstream>("hooks");
  ASSERT_TRUE(up_->started()) << up_->error();
  DeadPort refused(false), silent(true);
  const std::string yaml =
      "webhooks:\n"
      "  - url: " +
      refused.url() +
      "\n"
      "    max_retries: 2\n"
      "    backoff: 10ms\n"
      "    max_backoff: 20ms\n"
      "  - url: " +
      silent.url() +
      "\n"
      "    timeout: 20s\n"
      "  - url: " +
      up_->url() + "/hook/ok\n";
  SwitchboardOptions options;
  options.args = {"--config", write_config(yaml)};
  sb_ = std::make_unique<Switchboard>(std::move(options));
  ASSERT_TRUE(sb_->started()) << sb_->error();

  const auto began = Clock::now();
  for (const char* id : {"a", "b", "c"}) EXPECT_EQ(put_instance("web", id).status, 201);
  EXPECT_EQ(wait_recorded("ok", 3, milliseconds(5000)).size(), 3u);
  EXPECT_LT(Clock::now() - began, scaled(milliseconds(5000)))
      << "the silent sink's 20 s timeout must not hold the healthy sink up";

  const auto dead = wait_sink_status(refused.url(), milliseconds(5000), [](const json::object& o) {
    return counter(o, "failed") == 3;
  });
  EXPECT_EQ(counter(dead, "failed"), 3u) << json::serialize(dead);
  EXPECT_EQ(counter(dead, "retries"), 6u) << "2 retries per event";
  EXPECT_EQ(counter(dead, "delivered"), 0u);
  EXPECT_EQ(std::string(dead.at("last_error").as_string()).rfind("connect: ", 0), 0u)
      << json::serialize(dead);
  EXPECT_TRUE(dead.at("last_success").is_null());

  const auto hung = wait_sink_status(silent.url(), milliseconds(1000), [](const json::object& o) {
    return counter(o, "queued") == 3;
  });
  EXPECT_EQ(counter(hung, "queued"), 3u) << json::serialize(hung);
  EXPECT_EQ(counter(hung, "pending"), 3u) << "the first is in flight, two wait behind it";
  EXPECT_EQ(counter(hung, "delivered"), 0u);

  const auto stop_began = Clock::now();
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  const auto status = sb_->process().wait_exit(scaled(milliseconds(5000)));
  ASSERT_TRUE(status.has_value()) << "switchboard hung on the silent sink";
  EXPECT_EQ(*status, 0);
  EXPECT_LT(Clock::now() - stop_began, scaled(milliseconds(5000)));
}

}  // namespace
}  // namespace sb::testing
