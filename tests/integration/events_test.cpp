// The registry's Server-Sent Events stream, read with curl as a user would.
#include <gtest/gtest.h>

#include <signal.h>

#include <regex>

#include "testing/gateway_fixture.hpp"

namespace sb::testing {
namespace {

class EventsTest : public GatewayTest {
 protected:
  Response put_instance(const std::string& service, const std::string& id) {
    return client().request("PUT", "/api/services/" + service + "/instances/" + id,
                            {{"Content-Type", "application/json"}},
                            "{\"url\":\"" + up_->url() + "\"}");
  }

  // `curl -sN` on the events stream, with extra headers; stops after `seconds`.
  std::unique_ptr<Process> curl(double seconds, std::vector<std::string> headers = {}) {
    ProcessOptions o;
    o.args = {"/usr/bin/curl", "-sN", "--max-time", std::to_string(seconds)};
    for (auto& h : headers) {
      o.args.push_back("-H");
      o.args.push_back(h);
    }
    o.args.push_back("http://127.0.0.1:" + std::to_string(sb_->port()) + "/api/services/events");
    o.env = {{"PATH", "/usr/bin:/bin"}};
    return std::make_unique<Process>(o);
  }

  static std::vector<std::string> events(const Process& p) {
    std::vector<std::string> out;
    for (const auto& l : p.lines(Stream::kStdout))
      if (l.rfind("event: ", 0) == 0) out.push_back(l.substr(7));
    return out;
  }
  // The frames' ids, "<epoch>-<sequence>".
  static std::vector<std::string> ids(const Process& p) {
    std::vector<std::string> out;
    for (const auto& l : p.lines(Stream::kStdout))
      if (l.rfind("id: ", 0) == 0) out.push_back(l.substr(4));
    return out;
  }
  // The id a new stream's snapshot carries: the newest event's.
  std::string snapshot_id() {
    auto c = curl(1.0);
    c->wait_exit(scaled(std::chrono::milliseconds(5000)));
    const auto got = ids(*c);
    return got.empty() ? "" : got.front();
  }
  static const std::regex& id_form() {
    static const std::regex kId("^[0-9]+-[0-9]+$");
    return kId;
  }
};

// A new stream starts with a snapshot, then shows registry changes in order.
TEST_F(EventsTest, StreamShowsChangesInOrder) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  auto c = curl(3 * static_cast<double>(scaled(std::chrono::milliseconds(1000)).count()) / 1000);
  ASSERT_TRUE(c->wait_for_line(Stream::kStdout, std::regex("^event: snapshot$"),
                               scaled(std::chrono::milliseconds(5000))));
  EXPECT_EQ(put_instance("ev", "a").status, 201);
  EXPECT_EQ(put_instance("ev", "b").status, 201);
  EXPECT_EQ(put_instance("ev", "a").status, 200);
  EXPECT_EQ(client().request("DELETE", "/api/services/ev/instances/b").status, 204);
  ASSERT_TRUE(c->wait_for_line(Stream::kStdout, std::regex("^event: deregistered$"),
                               scaled(std::chrono::milliseconds(5000))));
  EXPECT_EQ(events(*c), (std::vector<std::string>{"snapshot", "registered", "registered",
                                                  "replaced", "deregistered"}));
  // Ids are "<epoch>-<sequence>": one epoch, the sequence increasing by one.
  const auto got = ids(*c);
  ASSERT_EQ(got.size(), 5u);
  const auto epoch = got[0].substr(0, got[0].find('-'));
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::regex_match(got[i], id_form())) << got[i];
    EXPECT_EQ(got[i].substr(0, got[i].find('-')), epoch) << got[i];
    if (i >= 2) {
      EXPECT_EQ(std::stol(got[i].substr(got[i].find('-') + 1)),
                std::stol(got[i - 1].substr(got[i - 1].find('-') + 1)) + 1);
    }
  }
}

// Last-Event-ID resumes after that event; an id the log does not hold, or one not of the
// "<epoch>-<sequence>" form, gets a snapshot.
TEST_F(EventsTest, LastEventIdResumes) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  EXPECT_EQ(put_instance("ev", "a").status, 201);
  const std::string first = snapshot_id();
  ASSERT_TRUE(std::regex_match(first, id_form())) << first;
  EXPECT_EQ(put_instance("ev", "b").status, 201);
  auto resumed = curl(1.0, {"Last-Event-ID: " + first});
  resumed->wait_exit(scaled(std::chrono::milliseconds(5000)));
  EXPECT_EQ(events(*resumed), (std::vector<std::string>{"registered"}));
  const std::string epoch = first.substr(0, first.find('-'));
  for (const std::string& other : {epoch + "-99", std::string("1"), std::string("x")}) {
    auto c = curl(1.0, {"Last-Event-ID: " + other});
    c->wait_exit(scaled(std::chrono::milliseconds(5000)));
    EXPECT_EQ(events(*c), (std::vector<std::string>{"snapshot"})) << other;
  }
}

// Issue 10: after a restart on the same data directory, a Last-Event-ID from the previous
// process gets a snapshot, not the new process's events that happen to follow its number.
TEST_F(EventsTest, IdFromBeforeARestartGetsASnapshot) {
  const std::string data = dir_.path() + "/data";
  up_ = std::make_unique<Upstream>("up");
  ASSERT_TRUE(up_->started()) << up_->error();
  const auto start = [&] {
    SwitchboardOptions o;
    o.args = {"--data-dir", data};
    sb_ = std::make_unique<Switchboard>(std::move(o));
  };
  start();
  ASSERT_TRUE(sb_->started()) << sb_->error();
  EXPECT_EQ(put_instance("ev", "a").status, 201);
  const std::string old_id = snapshot_id();  // the client has seen the first event
  EXPECT_EQ(put_instance("ev", "b").status, 201);
  ASSERT_TRUE(sb_->process().signal(SIGTERM));
  ASSERT_TRUE(sb_->process().wait_exit(scaled(std::chrono::milliseconds(10000))));

  start();
  ASSERT_TRUE(sb_->started()) << sb_->error();
  // Two new events, so that the old id's number is inside the new process's range.
  EXPECT_EQ(put_instance("ev", "c").status, 201);
  EXPECT_EQ(put_instance("ev", "d").status, 201);
  auto c = curl(1.0, {"Last-Event-ID: " + old_id});
  c->wait_exit(scaled(std::chrono::milliseconds(5000)));
  EXPECT_EQ(events(*c), (std::vector<std::string>{"snapshot"})) << c->output(Stream::kStdout);
  const auto got = ids(*c);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].substr(0, got[0].find('-')), old_id.substr(0, old_id.find('-')))
      << "a new epoch";
  // The snapshot holds the restored registrations and the new ones.
  for (const char* id : {"\"a\"", "\"b\"", "\"c\"", "\"d\""})
    EXPECT_NE(c->output(Stream::kStdout).find(id), std::string::npos) << id;
}

}  // namespace
}  // namespace sb::testing
