// Resilience with real upstream processes: failover when an instance dies, a slow instance
// losing its share, circuit breakers opening and closing, retry budgets bounding an outage,
// non-idempotent requests never retried, deadlines, fallbacks and operator breaker actions.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

class ResilienceTest : public ::testing::Test {
 protected:
  // Starts `n` upstreams named u0, u1, ... (delays from `delays_ms`, 0 when missing).
  void start_upstreams(int n, std::vector<int> delays_ms = {}) {
    for (int i = 0; i < n; ++i) {
      UpstreamOptions o;
      o.name = "u" + std::to_string(i);
      o.delay_ms = i < static_cast<int>(delays_ms.size()) ? delays_ms[i] : 0;
      ups_.push_back(std::make_unique<Upstream>(o));
      ASSERT_TRUE(ups_.back()->started()) << ups_.back()->error();
    }
  }

  // `instances: [...]` for the upstreams started so far.
  std::string instance_list() const {
    std::string out = "[";
    for (const auto& u : ups_) out += (out.size() > 1 ? ", \"" : "\"") + u->url() + "\"";
    return out + "]";
  }

  void start(const std::string& yaml, SwitchboardOptions options = {}) {
    options.args.push_back("--config");
    options.args.push_back(dir_.write_file("switchboard.yaml", yaml));
    sb_ = std::make_unique<Switchboard>(std::move(options));
    ASSERT_TRUE(sb_->started()) << sb_->error();
  }

  HttpClient client() const { return HttpClient(sb_->port()); }

  // The event stream from the start of the log, read for one second with curl. Ids are
  // "<epoch>-<sequence>": a first stream's snapshot names the epoch, and "<epoch>-0" (the id
  // before this process's first event) resumes from the start.
  std::string events_from_start() const {
    const auto curl_events = [&](const char* max_time, const std::string& last_event_id) {
      ProcessOptions o;
      o.args = {"/usr/bin/curl", "-sN", "--max-time", max_time};
      if (!last_event_id.empty()) {
        o.args.push_back("-H");
        o.args.push_back("Last-Event-ID: " + last_event_id);
      }
      o.args.push_back("http://127.0.0.1:" + std::to_string(sb_->port()) + "/api/services/events");
      o.env = {{"PATH", "/usr/bin:/bin"}};
      Process curl(o);
      curl.wait_exit(seconds(5));
      return curl.output(Stream::kStdout);
    };
    const std::string snapshot = curl_events("0.3", "");
    const auto id = snapshot.find("id: ");
    const auto dash = snapshot.find('-', id);
    if (id == std::string::npos || dash == std::string::npos) return snapshot;
    return curl_events("1", snapshot.substr(id + 4, dash - id - 4) + "-0");
  }

  // Requests the upstreams logged for targets containing `part`, once the count has reached
  // `at_least` and stopped moving for 200 ms (their logs are read as they come).
  std::size_t logged(std::string_view part, std::size_t at_least = 0, int only = -1) const {
    auto count = [&] {
      std::size_t n = 0;
      for (std::size_t i = 0; i < ups_.size(); ++i)
        if (only < 0 || static_cast<std::size_t>(only) == i) n += ups_[i]->requests_logged(part);
      return n;
    };
    const auto deadline = Clock::now() + scaled(seconds(5));
    std::size_t last = count();
    auto still_since = Clock::now();
    while (Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
      const std::size_t now = count();
      if (now != last) {
        last = now;
        still_since = Clock::now();
      } else if (now >= at_least && Clock::now() - still_since >= milliseconds(200)) {
        break;
      }
    }
    return last;
  }

  // Runs `threads` clients sending GET `target` until `duration` has passed; returns the
  // number of requests and, through `failed`, how many did not answer 200.
  std::size_t load(const std::string& target, int threads, Clock::duration duration,
                   std::size_t& failed, std::string* first_failure = nullptr) {
    std::atomic<std::size_t> total{0}, bad{0};
    std::mutex mu;
    const auto until = Clock::now() + duration;
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&] {
        auto c = std::make_unique<HttpClient>(sb_->port());
        while (Clock::now() < until) {
          Response r = c->get(target);
          ++total;
          if (!r.ok() || r.status != 200) {
            ++bad;
            if (first_failure) {
              std::lock_guard lock(mu);
              if (first_failure->empty()) *first_failure = r.ok() ? r.raw : r.error;
            }
            if (!r.ok()) c = std::make_unique<HttpClient>(sb_->port());  // after a broken one
          }
        }
      });
    }
    for (auto& t : ts) t.join();
    failed = bad;
    return total;
  }

  TempDir dir_;
  std::vector<std::unique_ptr<Upstream>> ups_;
  std::unique_ptr<Switchboard> sb_;
};

// (a) Three instances, one killed during a 20 s run of GETs: no client request fails
// (the request that hits the dying instance is retried on another).
TEST_F(ResilienceTest, KilledInstanceLosesNoRequest) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(3));
  ASSERT_NO_FATAL_FAILURE(start("services:\n  three:\n    instances: " + instance_list() + "\n"));
  std::thread killer([&] {
    std::this_thread::sleep_for(seconds(5));
    ups_[1]->process().signal(SIGKILL);
  });
  std::size_t failed = 0;
  std::string why;
  const std::size_t total = load("/svc/three/echo", 4, seconds(20), failed, &why);
  killer.join();
  EXPECT_GT(total, 100u);
  EXPECT_EQ(failed, 0u) << "of " << total << "; first: " << why;
}

// A small response cut between its head and its body is an attempt that failed (retried),
// not a response cut in front of the client: the client gets a clean 502.
TEST_F(ResilienceTest, TruncatedSmallResponseIsRetriedNotRelayed) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(1));
  ASSERT_NO_FATAL_FAILURE(
      start("services:\n  cut:\n    instances: " + instance_list() +
            "\n    breaker: {enabled: false}\n    outlier: {enabled: false}\n"));
  HttpClient c = client();
  Response r = c.get("/svc/cut/bad/truncated");
  expect_problem(r, 502);
  EXPECT_EQ(r.body.find("MALFORMED-BODY"), std::string::npos) << r.raw;
  EXPECT_EQ(logged("/bad/truncated", 3), 3u);  // the first try and two retries
}

// An instance that keeps answering 503 is ejected (an `ejected` event, shown in the status
// document) while retries carry its share to the others; it returns when its time is up.
TEST_F(ResilienceTest, FailingInstanceIsEjected) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(3));
  ASSERT_NO_FATAL_FAILURE(start("services:\n  ej:\n    instances: " + instance_list() +
                                "\n    breaker: {enabled: false}\n"
                                // Round robin: every instance gets its share (P2C would soon
                                // stop choosing the failing one at all, ejection or not).
                                "    balancer: {kind: round_robin}\n"
                                "    outlier: {consecutive_gateway_errors: 3, interval: 200ms,\n"
                                "              base_ejection_time: 1s}\n"));
  ASSERT_TRUE(ups_[2]->set_mode(503, 0));
  HttpClient c = client();
  for (int i = 0; i < 30; ++i) EXPECT_EQ(c.get("/svc/ej/echo/e").status, 200) << i;
  const std::string status = c.get("/api/services/status").body;
  EXPECT_NE(status.find("\"ejected\":true"), std::string::npos) << status;
  const std::size_t failing = logged("/echo/e", 0, 2);
  EXPECT_LE(failing, 6u) << "ejected after 3 gateway errors in a row";
  // It comes back after the ejection time (1 s) and the next analysis (200 ms).
  ASSERT_TRUE(ups_[2]->set_mode(0, 0));
  EXPECT_TRUE(eventually([&] {
    return c.get("/api/services/status").body.find("\"ejected\":true") == std::string::npos;
  })) << "still ejected";
  const std::string stream = events_from_start();
  EXPECT_NE(stream.find("event: ejected"), std::string::npos) << stream;
  EXPECT_NE(stream.find("event: returned"), std::string::npos) << stream;
  EXPECT_EQ(c.get("/api/services/status").body.find("\"ejected\":true"), std::string::npos);
}

// Zone awareness: with server.zone set, traffic stays on the instances of that zone while
// enough of them are available, and spills over to the others when they are not.
TEST_F(ResilienceTest, LocalZoneIsPreferredThenSpillsOver) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(3));
  ASSERT_NO_FATAL_FAILURE(
      start("server: {zone: a}\n"
            "services:\n  z:\n    instances: [{url: \"" +
            ups_[0]->url() + "\", zone: a}, {url: \"" + ups_[1]->url() + "\", zone: a}, {url: \"" +
            ups_[2]->url() +
            "\", zone: b}]\n    breaker: {consecutive_failures: 1, "
            "open_duration: 30s}\n    outlier: {enabled: false}\n"));
  HttpClient c = client();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(c.get("/svc/z/echo/local").status, 200);
  EXPECT_EQ(logged("/echo/local", 20, 2), 0u) << "zone b got traffic while zone a was fine";
  EXPECT_EQ(logged("/echo/local", 20), 20u);
  // Zone a's instances fail (their breakers open after one failure each): the requests
  // spill over to zone b once fewer than 70% of zone a is available.
  ASSERT_TRUE(ups_[0]->set_mode(503, 0));
  ASSERT_TRUE(ups_[1]->set_mode(503, 0));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(c.get("/svc/z/echo/spill").status, 200) << i;
  EXPECT_GE(logged("/echo/spill", 20, 2), 18u);
}

// (b) One instance 200 ms slower than the others: within 5 s its share is under 10%.
TEST_F(ResilienceTest, SlowInstanceGetsLittleTraffic) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(3, {0, 0, 200}));
  ASSERT_NO_FATAL_FAILURE(start("services:\n  three:\n    instances: " + instance_list() + "\n"));
  std::size_t failed = 0;
  const std::size_t total = load("/svc/three/echo/x", 4, seconds(5), failed);
  EXPECT_EQ(failed, 0u);
  const std::size_t slow = logged("/echo/x", 0, 2);
  EXPECT_GT(total, 50u);
  EXPECT_LT(slow * 10, total) << slow << " of " << total << " went to the slow instance";
}

// (c) Every instance answers 500: the breaker opens at the threshold, then answers fast 503s
// with Retry-After while the upstream sees nothing, half-opens after the open time and closes
// once the upstream has recovered. Each transition is an event.
TEST_F(ResilienceTest, BreakerOpensHalfOpensAndCloses) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(1));
  ASSERT_NO_FATAL_FAILURE(start("services:\n  flaky:\n    instances: " + instance_list() +
                                "\n    breaker: {consecutive_failures: 5, open_duration: 1s}\n"
                                "    retry: {max_retries: 0}\n    outlier: {enabled: false}\n"));
  HttpClient c = client();
  ASSERT_EQ(c.get("/svc/flaky/echo").status, 200);
  ASSERT_TRUE(ups_[0]->set_mode(500, 0));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.get("/svc/flaky/echo/fail").status, 500) << i;
  EXPECT_EQ(logged("/echo/fail", 5), 5u);
  // Open: fast 503s with Retry-After; nothing reaches the upstream.
  for (int i = 0; i < 20; ++i) {
    Response r = c.get("/svc/flaky/echo/fail");
    expect_problem(r, 503);
    EXPECT_FALSE(r.header("Retry-After").empty()) << r.raw;
  }
  EXPECT_EQ(logged("/echo/fail", 5), 5u);
  EXPECT_NE(c.get("/api/services/status").body.find("\"state\":\"open\""), std::string::npos);

  // Recovered upstream: after the open time (1 s with at most 10% jitter) probes go
  // through and close the breaker.
  ASSERT_TRUE(ups_[0]->set_mode(0, 0));
  // Until then it keeps answering 503 without calling; the first probe it lets through is
  // the first 200.
  EXPECT_TRUE(eventually([&] { return c.get("/svc/flaky/echo/ok").status == 200; }));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.get("/svc/flaky/echo/ok").status, 200) << i;
  const std::string status = c.get("/api/services/status").body;
  EXPECT_EQ(status.find("\"state\":\"open\""), std::string::npos) << status;
  EXPECT_EQ(status.find("\"state\":\"half_open\""), std::string::npos) << status;
  // The events, from the start of the log.
  const std::string stream = events_from_start();
  EXPECT_NE(stream.find("event: breaker_changed"), std::string::npos) << stream;
  EXPECT_NE(stream.find("closed -> open"), std::string::npos) << stream;
  EXPECT_NE(stream.find("open -> half_open"), std::string::npos) << stream;
  EXPECT_NE(stream.find("half_open -> closed"), std::string::npos) << stream;
}

// (d) A total outage under load (every instance answers 503; breakers and ejection off so
// that only the retry budget limits retries): the upstreams see at most 1.2 requests per
// client request, plus what the budget's floor (retry.budget_min_per_second, 10 per second)
// may grant while the window's percentage does not yet allow a retry: at most 10 per second
// of the run. (The bound was exactly 1.2x; an ASan run overshot it by one request.)
TEST_F(ResilienceTest, RetryBudgetBoundsAnOutage) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(2));
  ASSERT_NO_FATAL_FAILURE(start("services:\n  down:\n    instances: " + instance_list() +
                                "\n    breaker: {enabled: false}\n    outlier: {enabled: false}\n"
                                "    retry: {backoff_base: 0ms, backoff_max: 0ms}\n"));
  for (auto& u : ups_) ASSERT_TRUE(u->set_mode(503, 0));
  std::size_t failed = 0;
  const std::size_t total = load("/svc/down/echo/o", 4, seconds(4), failed);
  EXPECT_EQ(failed, total);
  const std::size_t upstream = logged("/echo/o", total);
  EXPECT_GT(total, 200u);
  EXPECT_LE(static_cast<double>(upstream), 1.2 * static_cast<double>(total) + 10 * 4)
      << upstream << " upstream requests for " << total << " client requests";
  EXPECT_GT(upstream, total) << "some requests were retried";
}

// (e) A POST without Idempotency-Key is never retried; with one it is.
TEST_F(ResilienceTest, OnlyIdempotentRequestsAreRetried) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(1));
  ASSERT_NO_FATAL_FAILURE(
      start("services:\n  one:\n    instances: " + instance_list() +
            "\n    breaker: {enabled: false}\n    outlier: {enabled: false}\n"));
  ASSERT_TRUE(ups_[0]->set_mode(503, 0));
  HttpClient c = client();
  EXPECT_EQ(c.request("POST", "/svc/one/echo/post", {}, "payload").status, 503);
  EXPECT_EQ(logged("/echo/post", 1), 1u);
  EXPECT_EQ(
      c.request("POST", "/svc/one/echo/keyed", {{"Idempotency-Key", "k-1"}}, "payload").status,
      503);
  EXPECT_EQ(logged("/echo/keyed", 3), 3u);  // the first try and 2 retries
  // A retried PUT carries its body every time (kept whole for the replay).
  ASSERT_TRUE(ups_[0]->set_mode(0, 0));
  Response r = c.request("PUT", "/svc/one/echo-body", {}, std::string(20000, 'b'));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, std::string(20000, 'b'));
}

// (f) An expired deadline never reaches the upstream; a live one is forwarded reduced; a
// malformed one is refused naming the header; a slow upstream is cut at the deadline.
TEST_F(ResilienceTest, Deadlines) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(1));
  ASSERT_NO_FATAL_FAILURE(start("services:\n  d:\n    instances: " + instance_list() + "\n"));
  HttpClient c = client();
  expect_problem(c.get("/svc/d/echo/expired", {{"X-Request-Timeout-Ms", "0"}}), 504);
  expect_problem(c.get("/svc/d/echo/expired", {{"grpc-timeout", "0m"}}), 504);
  EXPECT_EQ(logged("/echo/expired"), 0u);

  Response bad = c.get("/svc/d/echo", {{"X-Request-Timeout-Ms", "1.5"}});
  expect_problem(bad, 400);
  EXPECT_NE(bad.body.find("X-Request-Timeout-Ms"), std::string::npos) << bad.body;
  expect_problem(c.get("/svc/d/echo", {{"grpc-timeout", "10x"}}), 400);

  Response ok = c.get("/svc/d/echo", {{"X-Request-Timeout-Ms", "5000"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  auto doc = parse_json(ok.body);
  ASSERT_TRUE(doc.has_value());
  const auto& seen = doc->as_object().at("headers").as_object();
  ASSERT_TRUE(seen.contains("x-request-timeout-ms")) << ok.body;
  const std::string forwarded(seen.at("x-request-timeout-ms").as_array().at(0).as_string());
  EXPECT_LE(std::stoi(forwarded), 5000);
  EXPECT_GT(std::stoi(forwarded), 4000);

  const auto began = Clock::now();
  expect_problem(c.get("/svc/d/slow/3000", {{"X-Request-Timeout-Ms", "300"}}), 504);
  EXPECT_LT(Clock::now() - began, milliseconds(2500));
}

// A route's static fallback answers when every attempt failed, and when the breaker is
// open; operators can force a breaker open and reset it.
TEST_F(ResilienceTest, FallbackAndOperatorBreakerActions) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(1));
  ASSERT_NO_FATAL_FAILURE(start(
      "services:\n  fb:\n    instances: " + instance_list() +
      "\n    outlier: {enabled: false}\n"
      "routes:\n"
      "  - prefix: /cached\n    service: fb\n"
      "    fallback: {status: 200, headers: {Content-Type: application/json}, body: '[]'}\n"));
  HttpClient c = client();
  EXPECT_EQ(c.get("/cached/echo").status, 200);
  ASSERT_TRUE(ups_[0]->set_mode(503, 0));
  Response r = c.get("/cached/echo");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.header("X-Switchboard-Fallback"), "static");
  EXPECT_EQ(r.body, "[]");
  expect_problem(c.get("/svc/fb/echo"), 503);  // no fallback on the direct path
  ASSERT_TRUE(ups_[0]->set_mode(0, 0));
  // The failures opened the instance's breaker: the operator resets it rather than wait.
  EXPECT_EQ(
      c.request("POST", "/api/services/fb/instances/config-1/breaker", {}, R"({"action":"reset"})")
          .status,
      200);
  EXPECT_EQ(c.request("POST", "/api/services/fb/breaker", {}, R"({"action":"reset"})").status, 200);
  EXPECT_EQ(c.get("/svc/fb/echo").status, 200);

  // Operator: force the service breaker open, then reset it.
  Response forced = c.request("POST", "/api/services/fb/breaker", {}, R"({"action":"open"})");
  ASSERT_EQ(forced.status, 200) << forced.raw;
  EXPECT_NE(forced.body.find("forced_open"), std::string::npos) << forced.body;
  expect_problem(c.get("/svc/fb/echo"), 503);
  EXPECT_EQ(c.get("/cached/echo").header("X-Switchboard-Fallback"), "static");
  EXPECT_NE(c.get("/health").body.find("\"breaker\":\"forced_open\""), std::string::npos);
  EXPECT_EQ(c.request("POST", "/api/services/fb/breaker", {}, R"({"action":"reset"})").status, 200);
  EXPECT_EQ(c.get("/svc/fb/echo").status, 200);
  // An instance's breaker, by id.
  EXPECT_EQ(
      c.request("POST", "/api/services/fb/instances/config-1/breaker", {}, R"({"action":"open"})")
          .status,
      200);
  expect_problem(c.get("/svc/fb/echo"), 503);
  EXPECT_EQ(
      c.request("POST", "/api/services/fb/instances/config-1/breaker", {}, R"({"action":"close"})")
          .status,
      200);
  EXPECT_EQ(c.get("/svc/fb/echo").status, 200);
  // Bad input names the field; unknown targets are 404; other methods 405.
  Response bad = c.request("POST", "/api/services/fb/breaker", {}, R"({"action":"toggle"})");
  expect_problem(bad, 400);
  EXPECT_NE(bad.body.find("\"field\":\"action\""), std::string::npos) << bad.body;
  expect_problem(c.request("POST", "/api/services/nope/breaker", {}, R"({"action":"open"})"), 404);
  expect_problem(
      c.request("POST", "/api/services/fb/instances/nope/breaker", {}, R"({"action":"open"})"),
      404);
  expect_problem(c.get("/api/services/fb/breaker"), 405);
}

// Hedged GETs: when the first instance has not answered after the hedge delay, a second
// attempt goes to another instance and the first answer wins; POSTs are never hedged.
TEST_F(ResilienceTest, HedgedRequestsTakeTheFirstAnswer) {
  ASSERT_NO_FATAL_FAILURE(start_upstreams(2, {0, 400}));  // u1 answers after 400 ms
  ASSERT_NO_FATAL_FAILURE(start("services:\n  h:\n    instances: " + instance_list() +
                                "\n    balancer: {kind: round_robin}\n"
                                "    hedge: {enabled: true, delay: 50ms}\n"));
  HttpClient c = client();
  for (int i = 0; i < 6; ++i) {
    const auto began = Clock::now();
    Response r = c.get("/svc/h/echo/hedged");
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.header("X-Upstream-Name"), "u0");  // the fast one answers, first or hedged
    EXPECT_LT(Clock::now() - began, milliseconds(350)) << i;
  }
  EXPECT_GE(logged("/echo/hedged", 2, 1), 2u) << "the slow one was tried first";
  EXPECT_GE(logged("/echo/hedged", 6, 0), 6u);
  // Not for POST: it waits for the slow instance when that one is picked.
  int slow_posts = 0;
  for (int i = 0; i < 4; ++i) {
    Response r = c.request("POST", "/svc/h/echo/post", {}, "x");
    ASSERT_EQ(r.status, 200);
    slow_posts += r.header("X-Upstream-Name") == "u1";
  }
  EXPECT_GE(slow_posts, 1);
}

}  // namespace
}  // namespace sb::testing
