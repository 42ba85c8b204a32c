#include "resilience/retry.hpp"

#include <algorithm>
#include <climits>

namespace sb::resilience {
namespace {

using Rep = core::Duration::rep;
constexpr Rep kNsPerSecond = 1'000'000'000;
constexpr std::uint64_t kFloorCountBits = 24;
constexpr std::uint64_t kFloorCountMask = (std::uint64_t{1} << kFloorCountBits) - 1;

std::int64_t floor_div(Rep a, Rep b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

RetryBudget::RetryBudget(const core::RetryConfig& config)
    : percent_(config.budget_percent),
      min_per_second_(static_cast<std::uint32_t>(
          std::min<std::uint64_t>(config.budget_min_per_second, kFloorCountMask))),
      window_(config.budget_window, kBuckets) {}

RetryBudget::~RetryBudget() = default;

void RetryBudget::record_request(core::SteadyTime now) {
  window_.add(window_.epoch_of(now), kRequests);
}

// Counts one retry in `second`; unless `force`, only while under the floor.
bool RetryBudget::take_floor(std::int64_t second, bool force) {
  std::uint64_t cur = floor_.load(std::memory_order_acquire);
  for (;;) {
    const auto held = static_cast<std::int64_t>(cur >> kFloorCountBits);
    std::uint64_t count = held == second ? (cur & kFloorCountMask) : 0;
    if (held > second) return force;  // a later second already started; count nothing
    if (!force && count >= min_per_second_) return false;
    count = std::min(count + 1, kFloorCountMask);
    const std::uint64_t next = (static_cast<std::uint64_t>(second) << kFloorCountBits) | count;
    if (floor_.compare_exchange_weak(cur, next, std::memory_order_acq_rel)) return true;
  }
}

bool RetryBudget::try_acquire(core::SteadyTime now) {
  const std::int64_t epoch = window_.epoch_of(now);
  const std::int64_t second =
      std::max<std::int64_t>(0, floor_div(now.time_since_epoch().count(), kNsPerSecond));
  // Count this retry first, then check with it included, and take it back when refused:
  // threads racing for the last retry then see each other's claims, so the budget is never
  // over-granted (at worst a racing claim makes another thread refuse).
  const bool counted = window_.add(epoch, kRetries);
  const auto t = window_.totals(epoch);
  const std::uint64_t before = t[kRetries] - (counted && t[kRetries] > 0 ? 1 : 0);
  const bool by_percent = (before + 1) * 100 <= std::uint64_t{percent_} * t[kRequests];
  // The floor is a minimum, not an addition: it lets a quiet service retry up to
  // budget_min_per_second, but once the window holds that many retries only the percentage
  // counts (so a busy service in a total outage sends at most 1.2x its requests).
  const std::uint64_t floor_cap =
      std::uint64_t{min_per_second_} *
      static_cast<std::uint64_t>(
          (window_.step() * kBuckets + std::chrono::seconds(1) - core::Duration(1)) /
          std::chrono::seconds(1));
  const bool granted = (by_percent || before < floor_cap) && take_floor(second, by_percent);
  if (!granted && counted) window_.sub(epoch, kRetries);
  return granted;
}

BudgetSnapshot RetryBudget::snapshot(core::SteadyTime now) const {
  BudgetSnapshot s;
  const auto t = window_.totals(window_.epoch_of(now));
  s.window_requests = t[kRequests];
  s.window_retries = t[kRetries];
  const std::uint64_t f = floor_.load(std::memory_order_acquire);
  const std::int64_t second = floor_div(now.time_since_epoch().count(), kNsPerSecond);
  if (static_cast<std::int64_t>(f >> kFloorCountBits) == second) {
    s.second_retries = static_cast<std::uint32_t>(f & kFloorCountMask);
  }
  return s;
}

RetryPolicy::RetryPolicy(const core::RetryConfig& config)
    : max_retries_(config.max_retries),
      retry_on_status_(core::StatusSet::parse(config.retry_on_status)),
      on_connect_failure_(config.retry_on_connect_failure),
      on_reset_(config.retry_on_reset),
      on_timeout_(config.per_try_timeout.count() > 0),
      per_try_timeout_(config.per_try_timeout),
      backoff_base_(config.backoff_base),
      backoff_max_(config.backoff_max),
      max_replay_body_(config.max_replay_body) {}

bool RetryPolicy::is_idempotent(std::string_view method, bool has_idempotency_key) {
  if (has_idempotency_key) return true;
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE";
}

bool RetryPolicy::retryable(Outcome outcome) const {
  switch (outcome.error) {
    case TransportError::kNone:
      return retry_on_status_.contains(outcome.status);
    case TransportError::kConnectFailure:
      return on_connect_failure_;
    case TransportError::kReset:
      return on_reset_;
    case TransportError::kTimeout:
      return on_timeout_;
  }
  return false;
}

core::Duration RetryPolicy::backoff(std::uint32_t retry, Rng& rng) const {
  core::Duration cap = backoff_base_;
  for (std::uint32_t i = 0; i < retry && cap < backoff_max_; ++i) cap *= 2;
  cap = std::min(cap, backoff_max_);
  if (cap <= core::Duration::zero()) return core::Duration::zero();
  return core::Duration(static_cast<Rep>(rng.below(static_cast<std::uint64_t>(cap.count()) + 1)));
}

core::Duration RetryPolicy::delay(std::uint32_t retry, Rng& rng,
                                  std::optional<core::Duration> retry_after) const {
  if (retry_after && *retry_after >= core::Duration::zero() && *retry_after <= backoff_max_) {
    return *retry_after;
  }
  return backoff(retry, rng);
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
  if (value.empty() || value.size() > 9) return std::nullopt;
  std::int64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return std::chrono::seconds(n);
}

}  // namespace sb::resilience
