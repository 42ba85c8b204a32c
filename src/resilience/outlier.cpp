#include "resilience/outlier.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/text.hpp"

namespace sb::resilience {
namespace {

using core::human;

constexpr std::int64_t kNotEjected = INT64_MIN;

std::int64_t ns_of(core::SteadyTime t) { return t.time_since_epoch().count(); }

}  // namespace

namespace detail {
struct OutlierShared {
  explicit OutlierShared(const core::OutlierConfig& c) : config(c) {}

  std::uint32_t cap() const {
    const std::uint32_t n = hosts.load(std::memory_order_relaxed);
    if (n < 2 || config.max_ejection_percent == 0) return 0;
    const auto pct = static_cast<std::uint32_t>(
        std::uint64_t{n} * std::min<std::uint32_t>(config.max_ejection_percent, 100) / 100);
    return std::max<std::uint32_t>(1, pct);
  }
  bool reserve() {
    std::uint32_t cur = ejected.load(std::memory_order_relaxed);
    do {
      if (cur >= cap()) return false;
    } while (!ejected.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel));
    return true;
  }
  void release() { ejected.fetch_sub(1, std::memory_order_acq_rel); }

  core::OutlierConfig config;
  std::atomic<std::uint32_t> hosts{0};
  std::atomic<std::uint32_t> ejected{0};
};
}  // namespace detail

const char* to_string(OutlierState s) { return s == OutlierState::kEjected ? "ejected" : "active"; }

OutlierHost::OutlierHost(std::shared_ptr<detail::OutlierShared> shared, std::uint64_t id)
    : shared_(std::move(shared)), id_(id), until_ns_(kNotEjected), active_since_ns_(INT64_MIN) {
  shared_->hosts.fetch_add(1, std::memory_order_relaxed);
}

OutlierHost::~OutlierHost() {
  if (until_ns_.load(std::memory_order_acquire) != kNotEjected) shared_->release();
  shared_->hosts.fetch_sub(1, std::memory_order_relaxed);
}

bool OutlierHost::ejected(core::SteadyTime now) const {
  const std::int64_t u = until_ns_.load(std::memory_order_relaxed);
  return u != kNotEjected && ns_of(now) < u;
}

std::optional<core::SteadyTime> OutlierHost::ejected_until() const {
  const std::int64_t u = until_ns_.load(std::memory_order_acquire);
  if (u == kNotEjected) return std::nullopt;
  return core::SteadyTime(core::Duration(u));
}

std::optional<OutlierTransition> OutlierHost::try_eject(core::SteadyTime now, std::string why) {
  std::int64_t expected = kNotEjected;
  if (until_ns_.load(std::memory_order_acquire) != kNotEjected) return std::nullopt;
  if (!shared_->reserve()) return std::nullopt;
  const auto& c = shared_->config;
  const std::uint32_t level = level_.load(std::memory_order_relaxed);
  const core::Duration time =
      std::min<core::Duration>(core::Duration(c.base_ejection_time) * (std::int64_t{level} + 1),
                               core::Duration(c.max_ejection_time));
  if (!until_ns_.compare_exchange_strong(expected, ns_of(now + time), std::memory_order_acq_rel)) {
    shared_->release();
    return std::nullopt;
  }
  level_.fetch_add(1, std::memory_order_relaxed);
  times_ejected_.fetch_add(1, std::memory_order_relaxed);
  consecutive_.store(0, std::memory_order_relaxed);
  return OutlierTransition{id_, OutlierState::kActive, OutlierState::kEjected,
                           fmt::format("{} (ejected for {})", why, human(time)), now};
}

std::optional<OutlierTransition> OutlierHost::record(core::SteadyTime now, Outcome outcome) {
  const auto& c = shared_->config;
  if (!c.enabled) return std::nullopt;
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (!is_gateway_error(outcome)) {
    if (outcome.status < 500) successes_.fetch_add(1, std::memory_order_relaxed);
    if (consecutive_.load(std::memory_order_relaxed) != 0) {
      consecutive_.store(0, std::memory_order_relaxed);
    }
    return std::nullopt;
  }
  const std::uint32_t n = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (c.consecutive_gateway_errors == 0 || n < c.consecutive_gateway_errors) return std::nullopt;
  return try_eject(now, fmt::format("{} consecutive gateway errors", n));
}

OutlierDetector::OutlierDetector(const core::OutlierConfig& config)
    : shared_(std::make_shared<detail::OutlierShared>(config)) {}

OutlierDetector::~OutlierDetector() = default;

std::shared_ptr<OutlierHost> OutlierDetector::add_host(std::uint64_t id) {
  return std::shared_ptr<OutlierHost>(new OutlierHost(shared_, id));
}

std::uint32_t OutlierDetector::host_count() const {
  return shared_->hosts.load(std::memory_order_relaxed);
}
std::uint32_t OutlierDetector::ejected_count() const {
  return shared_->ejected.load(std::memory_order_relaxed);
}
std::uint32_t OutlierDetector::max_ejected() const { return shared_->cap(); }

std::vector<OutlierTransition> OutlierDetector::evaluate(
    core::SteadyTime now, std::span<const std::shared_ptr<OutlierHost>> hosts) {
  std::vector<OutlierTransition> out;
  const auto& c = shared_->config;
  const std::int64_t now_ns = ns_of(now);
  const std::int64_t interval_ns = core::Duration(c.interval).count();

  // Returns, then the decay of levels.
  for (const auto& h : hosts) {
    if (!h) continue;
    std::int64_t u = h->until_ns_.load(std::memory_order_acquire);
    if (u != kNotEjected && now_ns >= u &&
        h->until_ns_.compare_exchange_strong(u, kNotEjected, std::memory_order_acq_rel)) {
      shared_->release();
      h->active_since_ns_.store(now_ns, std::memory_order_relaxed);
      const std::uint32_t level = h->level_.load(std::memory_order_relaxed);
      const core::Duration was = std::min<core::Duration>(
          core::Duration(c.base_ejection_time) * std::int64_t{std::max<std::uint32_t>(level, 1)},
          core::Duration(c.max_ejection_time));
      out.push_back({h->id_, OutlierState::kEjected, OutlierState::kActive,
                     fmt::format("ejection time of {} elapsed", human(was)), now});
      continue;
    }
    if (u != kNotEjected) continue;
    const std::int64_t since = h->active_since_ns_.load(std::memory_order_relaxed);
    const std::uint32_t level = h->level_.load(std::memory_order_relaxed);
    if (level > 0 && (since == INT64_MIN || now_ns - since >= interval_ns)) {
      h->level_.store(level - 1, std::memory_order_relaxed);
      h->active_since_ns_.store(now_ns, std::memory_order_relaxed);
    }
  }

  // Success rate over the interval that ends now.
  struct Rate {
    OutlierHost* host;
    double rate;
    std::uint32_t requests;
  };
  std::vector<Rate> rates;
  rates.reserve(hosts.size());
  for (const auto& h : hosts) {
    if (!h) continue;
    const std::uint32_t req = h->requests_.exchange(0, std::memory_order_relaxed);
    const std::uint32_t ok = std::min(h->successes_.exchange(0, std::memory_order_relaxed), req);
    if (c.enabled && req >= c.success_rate_request_volume && req > 0) {
      rates.push_back({h.get(), 100.0 * ok / req, req});
    }
  }
  if (!c.enabled || rates.size() < c.success_rate_minimum_hosts || rates.empty()) return out;
  double mean = 0;
  for (const auto& r : rates) mean += r.rate;
  mean /= static_cast<double>(rates.size());
  double var = 0;
  for (const auto& r : rates) var += (r.rate - mean) * (r.rate - mean);
  const double stdev = std::sqrt(var / static_cast<double>(rates.size()));
  const double threshold = mean - c.success_rate_stdev_factor * stdev;
  // Worst first, so that the ejection cap removes the worst outliers.
  std::sort(rates.begin(), rates.end(),
            [](const Rate& a, const Rate& b) { return a.rate < b.rate; });
  for (const auto& r : rates) {
    if (r.rate >= threshold) break;
    auto t = r.host->try_eject(
        now, fmt::format("success rate {:.1f}% below threshold {:.1f}% (mean {:.1f}%, stdev "
                         "{:.1f}%, {} requests)",
                         r.rate, threshold, mean, stdev, r.requests));
    if (t) out.push_back(std::move(*t));
  }
  return out;
}

}  // namespace sb::resilience
