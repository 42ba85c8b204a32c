#include "gateway/webhook_policy.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace sb::gateway {

std::optional<std::string> WebhookSettings::validate() const {
  if (queue_size == 0) return "queue_size: must be at least 1";
  if (backoff <= core::Duration::zero()) return "backoff: must be positive";
  if (max_backoff < backoff) return "max_backoff: must be at least backoff";
  return std::nullopt;
}

WebhookPolicy::WebhookPolicy(WebhookSettings settings)
    : settings_(std::move(settings)), random_(settings_.seed) {
  if (settings_.queue_size == 0) settings_.queue_size = 1;
}

bool WebhookPolicy::wants(const registry::Event& e) const {
  const auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return v.empty() || std::find(v.begin(), v.end(), x) != v.end();
  };
  return has(settings_.events, e.type) && has(settings_.services, e.service);
}

void WebhookPolicy::offer(registry::Event e) {
  if (queue_.size() >= settings_.queue_size) {
    // The front is kept once an attempt on it has begun: its retry state belongs to it.
    const bool front_busy = in_flight_ || attempts_ > 0;
    const std::size_t oldest_waiting = front_busy ? 1 : 0;
    ++stats_.dropped;
    if (oldest_waiting >= queue_.size()) return;  // queue_size 1: nothing else to drop
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(oldest_waiting));
  }
  queue_.push_back(std::move(e));
  ++stats_.queued;
}

void WebhookPolicy::lost(std::uint64_t n) { stats_.dropped += n; }

const registry::Event* WebhookPolicy::next(core::SteadyTime now) {
  if (in_flight_ || queue_.empty()) return nullptr;
  if (retry_at_ && now < *retry_at_) return nullptr;
  in_flight_ = true;
  retry_at_.reset();
  ++attempts_;
  if (attempts_ > 1) ++stats_.retries;
  return &queue_.front();
}

std::optional<core::SteadyTime> WebhookPolicy::due() const {
  if (in_flight_ || queue_.empty()) return std::nullopt;
  return retry_at_.value_or(core::SteadyTime::min());
}

bool WebhookPolicy::retryable(int status) {
  return status == 0 || status == 429 || (status >= 500 && status <= 599);
}

core::Duration WebhookPolicy::backoff_cap(std::uint32_t n) const {
  core::Duration cap = settings_.backoff;
  // Doubling stops at the cap, so this never overflows whatever n is.
  for (std::uint32_t i = 1; i < n && cap < settings_.max_backoff; ++i) cap *= 2;
  return std::min(cap, settings_.max_backoff);
}

std::optional<core::Duration> WebhookPolicy::parse_retry_after(std::string_view v,
                                                               core::WallTime now) {
  const auto number = [](std::string_view digits, std::uint64_t max) -> std::optional<unsigned> {
    unsigned n = 0;
    if (digits.empty() || digits.size() > 10) return std::nullopt;
    for (char c : digits)
      if (c < '0' || c > '9') return std::nullopt;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc() || end != digits.data() + digits.size() || n > max) return std::nullopt;
    return n;
  };
  if (!v.empty() && v.front() >= '0' && v.front() <= '9') {
    // delay-seconds; a value above a day is read as a day (max_backoff caps it anyway).
    if (v.size() > 10) return std::chrono::hours(24);
    const auto n = number(v, 0xffff'ffffu);
    if (!n) return std::nullopt;
    return std::min<core::Duration>(std::chrono::seconds(*n), std::chrono::hours(24));
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 bytes.
  static constexpr std::array<std::string_view, 7> kDays = {"Mon", "Tue", "Wed", "Thu",
                                                            "Fri", "Sat", "Sun"};
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (v.size() != 29 || v.substr(3, 2) != ", " || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
      v[19] != ':' || v[22] != ':' || v.substr(25) != " GMT")
    return std::nullopt;
  if (std::find(kDays.begin(), kDays.end(), v.substr(0, 3)) == kDays.end()) return std::nullopt;
  const auto month = std::find(kMonths.begin(), kMonths.end(), v.substr(8, 3));
  const auto day = number(v.substr(5, 2), 31);
  const auto year = number(v.substr(12, 4), 9999);
  const auto hour = number(v.substr(17, 2), 23);
  const auto minute = number(v.substr(20, 2), 59);
  const auto second = number(v.substr(23, 2), 60);
  if (month == kMonths.end() || !day || !year || !hour || !minute || !second) return std::nullopt;
  const std::chrono::year_month_day ymd{
      std::chrono::year(static_cast<int>(*year)),
      std::chrono::month(static_cast<unsigned>(month - kMonths.begin()) + 1),
      std::chrono::day(*day)};
  if (!ymd.ok()) return std::nullopt;
  const auto at = std::chrono::sys_days(ymd) + std::chrono::hours(*hour) +
                  std::chrono::minutes(*minute) + std::chrono::seconds(*second);
  const auto wall = std::chrono::time_point_cast<std::chrono::seconds>(now);
  if (at <= wall) return core::Duration::zero();
  return std::min<core::Duration>(at - wall, std::chrono::hours(24));
}

WebhookPolicy::Outcome WebhookPolicy::record(core::SteadyTime now, core::WallTime wall, int status,
                                             std::string_view error,
                                             std::optional<core::Duration> retry_after) {
  Outcome out;
  if (!in_flight_ || queue_.empty()) return out;  // nothing was attempted: ignore
  in_flight_ = false;
  out.attempt = attempts_;
  if (status >= 200 && status <= 299) {
    ++stats_.delivered;
    stats_.last_success = wall;
  } else {
    stats_.last_error = std::string(error);
    stats_.last_failure = wall;
    if (retryable(status) && attempts_ <= settings_.max_retries) {
      // Full jitter: a uniform wait in [0, cap] spreads the retries of many Switchboards
      // (and of many events after an outage) instead of retrying them in lockstep.
      const auto cap = backoff_cap(attempts_);
      std::uniform_int_distribution<core::Duration::rep> pick(0, cap.count());
      core::Duration wait(pick(random_));
      // The sink said when it can take it: not before then, but never past max_backoff.
      if (retry_after && (status == 429 || status == 503))
        wait = std::min<core::Duration>(std::max(wait, *retry_after), settings_.max_backoff);
      out.decision = Decision::kRetry;
      out.retry_at = now + wait;
      retry_at_ = out.retry_at;
      return out;
    }
    out.decision = Decision::kFailed;
    ++stats_.failed;
  }
  queue_.pop_front();
  attempts_ = 0;
  retry_at_.reset();
  return out;
}

}  // namespace sb::gateway
