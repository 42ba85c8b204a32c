// The registry's Server-Sent Events stream, read with curl as a user would.
#include <gtest/gtest.h>

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
  // Ids increase by one.
  std::vector<long> ids;
  for (const auto& l : c->lines(Stream::kStdout))
    if (l.rfind("id: ", 0) == 0) ids.push_back(std::stol(l.substr(4)));
  ASSERT_EQ(ids.size(), 5u);
  for (std::size_t i = 2; i < ids.size(); ++i) EXPECT_EQ(ids[i], ids[i - 1] + 1);
}

// Last-Event-ID resumes after that event; an id the log does not hold gets a snapshot.
TEST_F(EventsTest, LastEventIdResumes) {
  ASSERT_NO_FATAL_FAILURE(start_gateway());
  EXPECT_EQ(put_instance("ev", "a").status, 201);  // event 1
  EXPECT_EQ(put_instance("ev", "b").status, 201);  // event 2
  auto resumed = curl(1.0, {"Last-Event-ID: 1"});
  resumed->wait_exit(scaled(std::chrono::milliseconds(5000)));
  EXPECT_EQ(events(*resumed), (std::vector<std::string>{"registered"}));
  auto future = curl(1.0, {"Last-Event-ID: 99"});
  future->wait_exit(scaled(std::chrono::milliseconds(5000)));
  EXPECT_EQ(events(*future), (std::vector<std::string>{"snapshot"}));
}

}  // namespace
}  // namespace sb::testing
