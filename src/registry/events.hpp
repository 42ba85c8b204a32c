// Registry events: every change to the registry (registered, replaced, deregistered, expired,
// health changed, ...) as a numbered record, kept in a bounded log so that Server-Sent Events
// subscribers can resume with Last-Event-ID, plus the JSON and SSE renderings of an event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"

namespace sb::registry {

/// Event type names used by the registry. Later components add their own (breaker, ejection).
inline constexpr std::string_view kEventRegistered = "registered";
inline constexpr std::string_view kEventReplaced = "replaced";
inline constexpr std::string_view kEventDeregistered = "deregistered";
inline constexpr std::string_view kEventExpired = "expired";
inline constexpr std::string_view kEventHealthChanged = "health_changed";
inline constexpr std::string_view kEventBreakerChanged = "breaker_changed";
inline constexpr std::string_view kEventEjected = "ejected";
inline constexpr std::string_view kEventReturned = "returned";

/// One change to the registry.
struct Event {
  std::uint64_t id = 0;  ///< assigned by EventLog::append; see EventLog for its two parts
  core::WallTime at{};   ///< when it happened (wall time: it is shown to people)
  std::string type{};    ///< kEventRegistered, ...; a token without spaces or newlines
  std::string service{};
  std::string instance{};  ///< instance id; empty for events about a whole service
  std::string reason{};    ///< human-readable, e.g. "3 failed checks: connection refused"
  /// Extra fields as one serialized JSON object (e.g. `{"from":"healthy","to":"degraded"}`),
  /// embedded verbatim in to_json(). Kept as text so that the header needs no JSON library
  /// and each event is serialized once, by whoever built it. Empty means `{}`.
  std::string data_json = "{}";
};

/// A bounded, in-memory log of the most recent events, oldest dropped first.
///
/// An id is one 64-bit number in two parts: the log's `epoch` in the high 32 bits (the
/// registry picks one per process, so ids never repeat across restarts) and a sequence in
/// the low 32 (1, 2, 3, ... for the process's events); people and clients see it as
/// "<epoch>-<sequence>" (format_event_id). Ids increase by one per append, so a subscriber's
/// Last-Event-ID tells exactly which events it has missed, and an id of another epoch (a
/// previous process) is either below first_id() or above last_id(): too old, the caller
/// sends a snapshot. (After 2^32 events in one process the sequence carries into the epoch
/// part; ids still increase.)
///
/// Not thread-safe: one owner thread (the registry's control thread) appends and reads.
/// Workers that serve SSE streams get copies of events from that thread.
class EventLog {
 public:
  /// Keeps at most `capacity` events (0 is treated as 1); ids start at origin() + 1.
  explicit EventLog(std::size_t capacity = 10000, std::uint32_t epoch = 0);

  /// Appends an event, assigning it the next id (event.id is ignored), and returns that id.
  /// When the log is full the oldest event is dropped.
  std::uint64_t append(Event event);

  /// Shorthand for append(Event{...}). An empty `data_json` means `{}`.
  std::uint64_t append(core::WallTime at, std::string type, std::string service,
                       std::string instance, std::string reason, std::string data_json = "{}");

  /// The result of since().
  struct Since {
    /// True when the events after `last_id` cannot all be returned, because some were
    /// dropped or because `last_id` is of another epoch (from before a restart). The caller
    /// then sends a snapshot of the registry with id last_id(), then later events.
    bool too_old = false;
    std::vector<Event> events;  ///< ids > last_id, in order; empty when too_old
  };

  /// Events with id > `last_id`, oldest first. since(last_id()) is empty; since(origin()) on
  /// a log that never dropped anything returns everything.
  Since since(std::uint64_t last_id) const;

  /// The id before the first: epoch << 32. last_id() while nothing was appended.
  std::uint64_t origin() const { return origin_; }
  /// The id of the newest event appended, origin() when none yet.
  std::uint64_t last_id() const { return next_id_ - 1; }
  /// The id of the oldest event still held; last_id() + 1 when the log is empty.
  std::uint64_t first_id() const { return events_.empty() ? next_id_ : events_.front().id; }
  /// Number of events held.
  std::size_t size() const { return events_.size(); }
  std::size_t capacity() const { return capacity_; }
  /// Events dropped since construction, for a metric.
  std::uint64_t dropped_total() const { return dropped_total_; }

 private:
  std::size_t capacity_;
  std::uint64_t origin_;
  std::uint64_t next_id_;
  std::uint64_t dropped_total_ = 0;
  std::deque<Event> events_;
};

/// `at` as RFC 3339 UTC with milliseconds: "2026-11-29T11:46:51.123Z".
std::string format_rfc3339_ms(core::WallTime at);

/// An event id as clients see it: "<epoch>-<sequence>", both parts decimal ("4211081-7").
std::string format_event_id(std::uint64_t id);

/// The event as one RFC 8259 JSON object on one line:
/// `{"id":"<epoch>-<sequence>","at":"<RFC 3339>","type":..,"service":..,"instance":..,
/// "reason":..,"data":{..}}`.
/// Strings are escaped (quotes, backslashes, control bytes); bytes that are not valid UTF-8
/// become U+FFFD. The result never contains a raw CR or LF.
std::string to_json(const Event& event);

/// The event as one Server-Sent Events frame: "id: E-N\nevent: <type>\ndata: <json>\n\n".
std::string to_sse(const Event& event);

/// The frame that opens a stream which cannot resume: "id: E-N\nevent: snapshot\ndata: <json>\n\n".
/// `id` is the log's last_id() when the snapshot was taken, so that a client reconnecting
/// with it as Last-Event-ID gets exactly the later events. `registry_json` must be one JSON
/// document; any raw CR or LF in it (only possible as whitespace) becomes a space.
std::string sse_snapshot(std::uint64_t id, std::string_view registry_json);

/// Parses a Last-Event-ID header value as format_event_id() writes it: "<epoch>-<sequence>",
/// each part decimal without leading zeros (but "0") and below 2^32. nullopt for anything
/// else (empty, signs, spaces, overflow, a bare number from an older Switchboard); the
/// caller then treats the client as new. An id of another epoch parses: EventLog::since()
/// answers it with too_old. The value comes from the client: never trust it further.
std::optional<std::uint64_t> parse_last_event_id(std::string_view value);

}  // namespace sb::registry
