#include "registry/events.hpp"

#include "core/logging.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <utility>

namespace sb::registry {

namespace {

/// Appends `s` as a quoted JSON string (invalid UTF-8 bytes become U+FFFD).
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  core::append_json_escaped(out, s);
  out += '"';
}

/// Appends a JSON document that is embedded verbatim, with raw CR/LF (which valid JSON can
/// only hold as whitespace) turned into spaces so that an SSE data line stays one line.
void append_one_line(std::string& out, std::string_view json) {
  for (char c : json) out += (c == '\n' || c == '\r') ? ' ' : c;
}

/// Appends an SSE field value with CR and LF dropped (they would end the field).
void append_sse_token(std::string& out, std::string_view s) {
  for (char c : s)
    if (c != '\n' && c != '\r') out += c;
}

}  // namespace

EventLog::EventLog(std::size_t capacity, std::uint32_t epoch)
    : capacity_(capacity == 0 ? 1 : capacity),
      origin_(std::uint64_t{epoch} << 32),
      next_id_(origin_ + 1) {}

std::uint64_t EventLog::append(Event event) {
  event.id = next_id_++;
  if (event.data_json.empty()) event.data_json = "{}";
  if (events_.size() == capacity_) {
    events_.pop_front();
    ++dropped_total_;
  }
  events_.push_back(std::move(event));
  return events_.back().id;
}

std::uint64_t EventLog::append(core::WallTime at, std::string type, std::string service,
                               std::string instance, std::string reason, std::string data_json) {
  return append(Event{.id = 0,
                      .at = at,
                      .type = std::move(type),
                      .service = std::move(service),
                      .instance = std::move(instance),
                      .reason = std::move(reason),
                      .data_json = std::move(data_json)});
}

EventLog::Since EventLog::since(std::uint64_t last_id) const {
  Since out;
  // The client needs ids last_id + 1 ... last_id(); all of them are held iff the oldest
  // held id is at most last_id + 1. An id above last_id() or below origin() is another
  // epoch's: another process's ids.
  if (last_id > this->last_id() || last_id < origin_ || last_id + 1 < first_id()) {
    out.too_old = true;
    return out;
  }
  // Ids are consecutive, so the first wanted event sits at a computed offset.
  const std::size_t skip = static_cast<std::size_t>(last_id + 1 - first_id());
  out.events.assign(events_.begin() + static_cast<std::ptrdiff_t>(skip), events_.end());
  return out;
}

std::string format_rfc3339_ms(core::WallTime at) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(at);
  const auto day = floor<days>(ms);
  const year_month_day ymd{day};
  const hh_mm_ss hms{ms - day};
  char buf[40];
  const int n = std::snprintf(
      buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
      static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
      static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
      static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string format_event_id(std::uint64_t id) {
  std::string out = std::to_string(id >> 32);
  out += '-';
  out += std::to_string(id & 0xffff'ffffu);
  return out;
}

std::string to_json(const Event& event) {
  std::string out;
  out.reserve(128 + event.service.size() + event.instance.size() + event.reason.size() +
              event.data_json.size());
  out += "{\"id\":\"";
  out += format_event_id(event.id);
  out += "\",\"at\":\"";
  out += format_rfc3339_ms(event.at);
  out += "\",\"type\":";
  append_json_string(out, event.type);
  out += ",\"service\":";
  append_json_string(out, event.service);
  out += ",\"instance\":";
  append_json_string(out, event.instance);
  out += ",\"reason\":";
  append_json_string(out, event.reason);
  out += ",\"data\":";
  append_one_line(out, event.data_json.empty() ? std::string_view("{}") : event.data_json);
  out += '}';
  return out;
}

std::string to_sse(const Event& event) {
  std::string out = "id: ";
  out += format_event_id(event.id);
  out += "\nevent: ";
  append_sse_token(out, event.type);
  out += "\ndata: ";
  out += to_json(event);
  out += "\n\n";
  return out;
}

std::string sse_snapshot(std::uint64_t id, std::string_view registry_json) {
  std::string out = "id: ";
  out += format_event_id(id);
  out += "\nevent: snapshot\ndata: ";
  append_one_line(out, registry_json);
  out += "\n\n";
  return out;
}

std::optional<std::uint64_t> parse_last_event_id(std::string_view value) {
  // One part: 1 to 10 digits, no leading zero (but "0"), below 2^32.
  const auto part = [](std::string_view digits) -> std::optional<std::uint64_t> {
    if (digits.empty() || digits.size() > 10 || (digits.size() > 1 && digits[0] == '0'))
      return std::nullopt;
    for (char c : digits)
      if (c < '0' || c > '9') return std::nullopt;
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc() || end != digits.data() + digits.size() || n > 0xffff'ffffu)
      return std::nullopt;
    return n;
  };
  const auto dash = value.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto epoch = part(value.substr(0, dash));
  const auto seq = part(value.substr(dash + 1));
  if (!epoch || !seq) return std::nullopt;
  return (*epoch << 32) | *seq;
}

}  // namespace sb::registry
