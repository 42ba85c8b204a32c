#include "registry/events.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "testing/json.hpp"

namespace sb::registry {
namespace {

using std::chrono::milliseconds;

// 2026-11-29T11:46:51.123Z
const core::WallTime kAt{milliseconds(1795952811123)};

std::uint64_t append_n(EventLog& log, int n) {
  std::uint64_t id = 0;
  for (int i = 0; i < n; ++i)
    id = log.append(kAt, "registered", "api", "i-" + std::to_string(i), "registered via API");
  return id;
}

std::vector<std::uint64_t> ids(const std::vector<Event>& events) {
  std::vector<std::uint64_t> out;
  for (const Event& e : events) out.push_back(e.id);
  return out;
}

// A new log has no events and last_id 0; since(0) is empty and not too old.
TEST(EventLogTest, EmptyLog) {
  EventLog log(4);
  EXPECT_EQ(log.last_id(), 0u);
  EXPECT_EQ(log.first_id(), 1u);
  const auto s = log.since(0);
  EXPECT_FALSE(s.too_old);
  EXPECT_TRUE(s.events.empty());
}

// Ids start at 1, increase by one, and since(0) returns every event in order with its fields.
TEST(EventLogTest, IdsStartAtOneAndIncrease) {
  EventLog log(10);
  EXPECT_EQ(log.append(kAt, "registered", "api", "a", "r1"), 1u);
  EXPECT_EQ(log.append(kAt, "health_changed", "api", "a", "r2", R"({"to":"healthy"})"), 2u);
  EXPECT_EQ(log.append(Event{.id = 77, .at = kAt, .type = "expired", .service = "llm"}), 3u);
  EXPECT_EQ(log.last_id(), 3u);
  const auto s = log.since(0);
  ASSERT_FALSE(s.too_old);
  EXPECT_EQ(ids(s.events), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(s.events[1].type, "health_changed");
  EXPECT_EQ(s.events[1].reason, "r2");
  EXPECT_EQ(s.events[1].data_json, R"({"to":"healthy"})");
  EXPECT_EQ(s.events[2].service, "llm");
  EXPECT_EQ(s.events[2].at, kAt);
}

// An empty data_json is stored as {} so that to_json always emits an object.
TEST(EventLogTest, EmptyDataBecomesEmptyObject) {
  EventLog log;
  log.append(kAt, "registered", "api", "a", "", "");
  EXPECT_EQ(log.since(0).events.at(0).data_json, "{}");
}

// since(last_id()) is empty; since(k) returns exactly the events after k.
TEST(EventLogTest, SinceReturnsEventsAfterId) {
  EventLog log(10);
  append_n(log, 5);
  EXPECT_TRUE(log.since(log.last_id()).events.empty());
  EXPECT_FALSE(log.since(log.last_id()).too_old);
  EXPECT_EQ(ids(log.since(3).events), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(ids(log.since(4).events), (std::vector<std::uint64_t>{5}));
}

// A full ring drops its oldest event per append and counts the drops.
TEST(EventLogTest, RingDropsOldest) {
  EventLog log(3);
  append_n(log, 3);
  EXPECT_EQ(log.first_id(), 1u);
  EXPECT_EQ(log.dropped_total(), 0u);
  append_n(log, 2);
  EXPECT_EQ(log.size(), 3u);
  EXPECT_EQ(log.first_id(), 3u);
  EXPECT_EQ(log.last_id(), 5u);
  EXPECT_EQ(log.dropped_total(), 2u);
}

// At the eviction edge: with oldest held id O, last_id O-2 missed the dropped O-1 (too old);
// O-1 missed nothing (gets O..last); O gets O+1..last.
TEST(EventLogTest, SinceAtTheEvictionEdge) {
  EventLog log(3);
  append_n(log, 5);  // holds 3, 4, 5
  ASSERT_EQ(log.first_id(), 3u);
  const auto before = log.since(1);
  EXPECT_TRUE(before.too_old);
  EXPECT_TRUE(before.events.empty());
  const auto just_at = log.since(2);
  EXPECT_FALSE(just_at.too_old);
  EXPECT_EQ(ids(just_at.events), (std::vector<std::uint64_t>{3, 4, 5}));
  const auto after = log.since(3);
  EXPECT_FALSE(after.too_old);
  EXPECT_EQ(ids(after.events), (std::vector<std::uint64_t>{4, 5}));
}

// since(0) is too old once anything was dropped: a new client cannot get "everything".
TEST(EventLogTest, SinceZeroAfterDropIsTooOld) {
  EventLog log(2);
  append_n(log, 2);
  EXPECT_FALSE(log.since(0).too_old);
  append_n(log, 1);
  EXPECT_TRUE(log.since(0).too_old);
}

// An id above last_id() (from before a restart) is too old: the client needs a snapshot.
TEST(EventLogTest, SinceFutureIdIsTooOld) {
  EventLog log(10);
  append_n(log, 3);
  EXPECT_TRUE(log.since(4).too_old);
  EXPECT_TRUE(log.since(UINT64_MAX).too_old);
}

// Capacity 0 is treated as 1: the newest event is always kept.
TEST(EventLogTest, CapacityZeroKeepsOne) {
  EventLog log(0);
  append_n(log, 2);
  EXPECT_EQ(log.capacity(), 1u);
  EXPECT_EQ(ids(log.since(1).events), (std::vector<std::uint64_t>{2}));
}

// Wall time renders as RFC 3339 UTC with milliseconds, including the epoch and leap days.
TEST(EventJsonTest, FormatsRfc3339WithMilliseconds) {
  EXPECT_EQ(format_rfc3339_ms(kAt), "2026-11-29T11:46:51.123Z");
  EXPECT_EQ(format_rfc3339_ms(core::WallTime{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(core::WallTime{milliseconds(951782400007)}),
            "2000-02-29T00:00:00.007Z");
}

// to_json emits every field, in a document a JSON parser reads back.
TEST(EventJsonTest, ToJsonHasEveryField) {
  const Event e{.id = 42,
                .at = kAt,
                .type = "health_changed",
                .service = "api",
                .instance = "i-1",
                .reason = "3 failed checks",
                .data_json = R"({"from":"healthy","to":"unhealthy"})"};
  EXPECT_EQ(
      to_json(e),
      R"({"id":"0-42","at":"2026-11-29T11:46:51.123Z","type":"health_changed","service":"api",)"
      R"("instance":"i-1","reason":"3 failed checks","data":{"from":"healthy","to":"unhealthy"}})");
  const auto v = testing::parse_json(to_json(e));
  ASSERT_TRUE(v);
  EXPECT_EQ(testing::json_string(*v, "id"), "0-42");
  EXPECT_EQ(v->at("data").at("to").as_string(), "unhealthy");
}

// Quotes, backslashes, newlines and control bytes are escaped; the parsed value is the input.
TEST(EventJsonTest, EscapesSpecialCharacters) {
  const std::string reason = std::string("say \"hi\"\\ line1\nline2\r\ttab \b\f nul:") +
                             std::string(1, '\0') + "\x01\x1f\x7f";
  const Event e{.id = 1, .at = kAt, .type = "expired", .service = "api", .reason = reason};
  const std::string json = to_json(e);
  EXPECT_NE(json.find(R"(say \"hi\"\\ line1\nline2\r\ttab \b\f nul:\u0000\u0001\u001f)"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.find('\0'), std::string::npos);
  const auto v = testing::parse_json(json);
  ASSERT_TRUE(v) << json;
  EXPECT_EQ(testing::json_string(*v, "reason"), reason);
}

// Valid UTF-8 passes through unchanged; invalid bytes become U+FFFD so the output is valid JSON.
TEST(EventJsonTest, NonAsciiKeptInvalidUtf8Replaced) {
  const std::string valid = "Zürich 東京 🚀";
  Event e{.id = 1, .at = kAt, .type = "registered", .service = "api", .reason = valid};
  EXPECT_NE(to_json(e).find(valid), std::string::npos);
  EXPECT_EQ(testing::json_string(*testing::parse_json(to_json(e)), "reason"), valid);

  // Lone continuation byte, truncated sequence, overlong '/', surrogate, above U+10FFFF.
  e.reason =
      "a\x80"
      "b\xE2\x82"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xF4\x90\x80\x80";
  const auto v = testing::parse_json(to_json(e));
  ASSERT_TRUE(v) << to_json(e);
  const std::string parsed = *testing::json_string(*v, "reason");
  // One U+FFFD per byte that does not start or continue a valid sequence.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(parsed, "a" + r + "b" + r + r + "c" + r + r + "d" + r + r + r + "e" + r + r + r + r);
}

// An SSE frame is id, event and one data line, ended by a blank line.
TEST(EventSseTest, FrameShape) {
  const Event e{.id = 7, .at = kAt, .type = "registered", .service = "api", .instance = "a"};
  EXPECT_EQ(to_sse(e), "id: 0-7\nevent: registered\ndata: " + to_json(e) + "\n\n");
}

// Newlines anywhere in an event (reason, data whitespace, type) never break the data line.
TEST(EventSseTest, DataNeverHoldsARawNewline) {
  const Event e{.id = 9,
                .at = kAt,
                .type = "health\nchanged",
                .service = "api",
                .instance = "a\r\nb",
                .reason = "line1\nline2\n\nline3",
                .data_json = "{\n  \"k\": \"v\"\r\n}"};
  const std::string frame = to_sse(e);
  ASSERT_GE(frame.size(), 2u);
  EXPECT_EQ(frame.substr(frame.size() - 2), "\n\n");
  const std::string body = frame.substr(0, frame.size() - 2);
  EXPECT_EQ(body.find("\n\n"), std::string::npos);
  EXPECT_EQ(body.find('\r'), std::string::npos);
  // Exactly three lines: id, event, data.
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 2);
  const std::size_t data = body.find("\ndata: ");
  ASSERT_NE(data, std::string::npos);
  const auto v = testing::parse_json(body.substr(data + 7));
  ASSERT_TRUE(v);
  EXPECT_EQ(testing::json_string(*v, "reason"), "line1\nline2\n\nline3");
  EXPECT_EQ(v->at("data").at("k").as_string(), "v");
}

// The snapshot frame carries the given id and the registry document on one data line.
TEST(EventSseTest, Snapshot) {
  EXPECT_EQ(sse_snapshot((std::uint64_t{5} << 32) + 12, R"({"services":[]})"),
            "id: 5-12\nevent: snapshot\ndata: {\"services\":[]}\n\n");
  const std::string frame = sse_snapshot(3, "{\n\"services\": []\n}");
  EXPECT_EQ(std::count(frame.begin(), frame.end(), '\n'), 4);
  EXPECT_TRUE(testing::parse_json(frame.substr(frame.find("data: ") + 6)));
}

// Last-Event-ID: "<epoch>-<sequence>", each part canonical decimal below 2^32; anything
// else (a bare number from an older Switchboard included) is rejected.
TEST(LastEventIdTest, Parse) {
  EXPECT_EQ(parse_last_event_id("0-0"), 0u);
  EXPECT_EQ(parse_last_event_id("0-42"), 42u);
  EXPECT_EQ(parse_last_event_id("0"), 0u);  // from the start of this process's log
  EXPECT_EQ(parse_last_event_id("3-7"), (std::uint64_t{3} << 32) + 7);
  EXPECT_EQ(parse_last_event_id("4294967295-4294967295"), UINT64_MAX);
  EXPECT_EQ(format_event_id(UINT64_MAX), "4294967295-4294967295");
  EXPECT_EQ(format_event_id((std::uint64_t{1234} << 32) + 9), "1234-9");
  for (std::uint64_t id : {std::uint64_t{0}, std::uint64_t{1}, (std::uint64_t{77} << 32) + 5})
    EXPECT_EQ(parse_last_event_id(format_event_id(id)), id) << "round trip";
  // clang-format off
  for (std::string_view bad :
       {"", "00", "42", "-", "1-", "-1", "01-1", "1-01", "4294967296-1", "1-4294967296",
        "99999999999-1", " 1-1", "1-1 ", "+1-1", "1-+1", "1--1", "1-1-1", "1a-1", "0x1-1",
        "1.0-1", "１-1", "18446744073709551615"})
    // clang-format on
    EXPECT_EQ(parse_last_event_id(bad), std::nullopt) << bad;
}

// An id of another epoch (a previous process's, lower or higher) is too old: the caller
// sends a snapshot, never events that only look like a continuation.
TEST(EventLogEpochTest, IdsOfAnotherEpochAreTooOld) {
  EventLog previous(100, 7);
  for (int i = 0; i < 3; ++i) previous.append(kAt, "registered", "api", "a", "");
  EXPECT_EQ(format_event_id(previous.last_id()), "7-3");

  EventLog log(100, 8);  // the restarted process
  EXPECT_EQ(log.last_id(), log.origin());
  EXPECT_FALSE(log.since(log.origin()).too_old);
  EXPECT_TRUE(log.since(previous.last_id()).too_old) << "an older epoch";
  for (int i = 0; i < 5; ++i) log.append(kAt, "registered", "api", "b", "");
  EXPECT_EQ(format_event_id(log.first_id()), "8-1");
  EXPECT_TRUE(log.since(previous.last_id()).too_old) << "7-3 must not resume at 8-4";
  EXPECT_TRUE(log.since((std::uint64_t{9} << 32) + 1).too_old) << "a newer epoch";
  EXPECT_TRUE(log.since(3).too_old) << "epoch 0, as ids were before epochs";
  const auto resumed = log.since(*parse_last_event_id("8-3"));
  ASSERT_FALSE(resumed.too_old);
  ASSERT_EQ(resumed.events.size(), 2u);
  EXPECT_EQ(format_event_id(resumed.events[0].id), "8-4");
  EXPECT_EQ(log.since(log.origin()).events.size(), 5u);
}

}  // namespace
}  // namespace sb::registry
