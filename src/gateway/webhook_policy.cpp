#include "gateway/webhook_policy.hpp"

#include <algorithm>

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

WebhookPolicy::Outcome WebhookPolicy::record(core::SteadyTime now, core::WallTime wall, int status,
                                             std::string_view error) {
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
      out.decision = Decision::kRetry;
      out.retry_at = now + core::Duration(pick(random_));
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
