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

struct RetryBudget::Bucket {
  std::atomic<std::int64_t> epoch{INT64_MIN};
  std::atomic<std::uint32_t> requests{0};
  std::atomic<std::uint32_t> retries{0};
};

RetryBudget::RetryBudget(const core::RetryConfig& config)
    : percent_(config.budget_percent),
      min_per_second_(static_cast<std::uint32_t>(
          std::min<std::uint64_t>(config.budget_min_per_second, kFloorCountMask))),
      bucket_width_(std::max<Rep>(1, core::Duration(config.budget_window).count() / kBuckets)),
      buckets_(new Bucket[kBuckets]) {}

RetryBudget::~RetryBudget() = default;

std::int64_t RetryBudget::epoch_of(core::SteadyTime now) const {
  return floor_div(now.time_since_epoch().count(), bucket_width_.count());
}

RetryBudget::Bucket& RetryBudget::bucket_for(std::int64_t epoch) {
  Bucket& b = buckets_[static_cast<std::size_t>(((epoch % kBuckets) + kBuckets) % kBuckets)];
  std::int64_t held = b.epoch.load(std::memory_order_acquire);
  if (held < epoch && b.epoch.compare_exchange_strong(held, epoch, std::memory_order_acq_rel)) {
    // Increments that raced with this recycle may be lost: the documented approximation.
    b.requests.store(0, std::memory_order_relaxed);
    b.retries.store(0, std::memory_order_relaxed);
  }
  return b;
}

RetryBudget::Totals RetryBudget::totals(std::int64_t epoch) const {
  Totals t;
  for (std::uint32_t i = 0; i < kBuckets; ++i) {
    const Bucket& b = buckets_[i];
    const std::int64_t e = b.epoch.load(std::memory_order_acquire);
    if (e > epoch || e <= epoch - static_cast<std::int64_t>(kBuckets)) continue;
    t.requests += b.requests.load(std::memory_order_relaxed);
    t.retries += b.retries.load(std::memory_order_relaxed);
  }
  return t;
}

void RetryBudget::record_request(core::SteadyTime now) {
  const std::int64_t epoch = epoch_of(now);
  Bucket& b = bucket_for(epoch);
  // A sample from before the bucket's step (a slow thread) is dropped, not misfiled.
  if (b.epoch.load(std::memory_order_relaxed) == epoch) {
    b.requests.fetch_add(1, std::memory_order_relaxed);
  }
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
  const std::int64_t epoch = epoch_of(now);
  const std::int64_t second =
      std::max<std::int64_t>(0, floor_div(now.time_since_epoch().count(), kNsPerSecond));
  // Count this retry first, then check with it included, and take it back when refused:
  // threads racing for the last retry then see each other's claims, so the budget is never
  // over-granted (at worst a racing claim makes another thread refuse).
  Bucket& b = bucket_for(epoch);
  const bool counted = b.epoch.load(std::memory_order_relaxed) == epoch;
  if (counted) b.retries.fetch_add(1, std::memory_order_acq_rel);
  const Totals t = totals(epoch);
  const std::uint64_t before = t.retries - (counted && t.retries > 0 ? 1 : 0);
  const bool by_percent = (before + 1) * 100 <= std::uint64_t{percent_} * t.requests;
  // The floor is a minimum, not an addition: it lets a quiet service retry up to
  // budget_min_per_second, but once the window holds that many retries only the percentage
  // counts (so a busy service in a total outage sends at most 1.2x its requests).
  const std::uint64_t floor_cap =
      std::uint64_t{min_per_second_} *
      static_cast<std::uint64_t>(
          (bucket_width_ * kBuckets + std::chrono::seconds(1) - core::Duration(1)) /
          std::chrono::seconds(1));
  const bool granted = (by_percent || before < floor_cap) && take_floor(second, by_percent);
  if (!granted && counted) b.retries.fetch_sub(1, std::memory_order_acq_rel);
  return granted;
}

BudgetSnapshot RetryBudget::snapshot(core::SteadyTime now) const {
  BudgetSnapshot s;
  const Totals t = totals(epoch_of(now));
  s.window_requests = t.requests;
  s.window_retries = t.retries;
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
