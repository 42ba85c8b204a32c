#include "resilience/balancer.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <unordered_map>

namespace sb::resilience {
namespace {

// exp(-x) for x >= 0, within 2e-5 relative error: 2^-(n + f) = 2^-n x 2^-f, with 2^-f from
// a degree-6 Taylor polynomial on f in [0, 1) and 2^-n built in the exponent bits. std::exp
// cost ~15 ns and pick() evaluates two of these; balancing does not need more precision.
double decay_factor(double x) {
  if (!(x > 0)) return 1.0;
  if (x >= 700) return 0.0;
  const double y = x * 1.4426950408889634;  // log2(e)
  const auto n = static_cast<std::int64_t>(y);
  const double f = (y - static_cast<double>(n)) * 0.6931471805599453;  // f x ln 2
  const double p =
      1 - f * (1 - f * (0.5 - f * (1.0 / 6 - f * (1.0 / 24 - f * (1.0 / 120 - f * (1.0 / 720))))));
  return p * std::bit_cast<double>(static_cast<std::uint64_t>(1023 - n) << 52);
}

}  // namespace

struct Balancer::Filter {
  const std::uint32_t* set = nullptr;  // nullptr: every node
  std::size_t n = 0;
  AvailableRef available;
  std::span<const std::size_t> exclude;
  bool check_exclude = true;
  bool check_avoid = true;
  core::SteadyTime now{};
  const std::vector<Node>* nodes = nullptr;

  std::size_t index(std::size_t pos) const { return set != nullptr ? set[pos] : pos; }
  // Cheap checks first; the caller's predicate (breaker, ejection, health) last.
  bool accept(std::size_t i) const {
    if (check_exclude && std::find(exclude.begin(), exclude.end(), i) != exclude.end())
      return false;
    if (check_avoid && (*nodes)[i].avoid_until > now) return false;
    return available(i);
  }
};

Balancer::Balancer(const core::BalancerConfig& config, std::string local_zone, std::uint64_t seed)
    : config_(config),
      local_zone_(std::move(local_zone)),
      rng_(seed),
      inv_tau_ns_(1.0 /
                  std::max<double>(1.0, static_cast<double>(core::Duration(config.decay).count()))),
      default_rtt_ns_(static_cast<double>(core::Duration(config.default_rtt).count())) {}

void Balancer::set_endpoints(std::span<const BalancerEndpoint> endpoints, core::SteadyTime now) {
  std::unordered_map<std::uint64_t, std::size_t> old;
  old.reserve(nodes_.size());
  for (std::size_t i = 0; i < nodes_.size(); ++i) old.emplace(nodes_[i].id, i);
  std::vector<Node> next;
  next.reserve(endpoints.size());
  local_.clear();
  for (const auto& e : endpoints) {
    Node n;
    if (auto it = old.find(e.id); it != old.end()) n = nodes_[it->second];
    n.id = e.id;
    n.weight = std::max<std::uint32_t>(1, e.weight);
    n.inv_weight = 1.0 / n.weight;
    n.local = !local_zone_.empty() && e.zone == local_zone_;
    if (e.available_since) n.since = e.available_since;
    n.wrr_current = 0;
    if (n.local) local_.push_back(static_cast<std::uint32_t>(next.size()));
    next.push_back(n);
  }
  nodes_ = std::move(next);
  zone_checked_.reset();  // re-measure the zone with the new list
  (void)now;
}

void Balancer::on_start(std::size_t index) { ++nodes_[index].in_flight; }

void Balancer::on_abandon(std::size_t index) {
  Node& n = nodes_[index];
  if (n.in_flight > 0) --n.in_flight;
}

void Balancer::on_finish(std::size_t index, core::SteadyTime now, core::Duration latency) {
  Node& n = nodes_[index];
  if (n.in_flight > 0) --n.in_flight;
  const double rtt = static_cast<double>(std::max(latency, core::Duration::zero()).count());
  if (!n.has_sample || rtt > n.ewma_ns) {
    n.ewma_ns = rtt;  // peak: a slow answer counts in full at once
  } else {
    const double w = decay_factor(static_cast<double>((now - n.stamp).count()) * inv_tau_ns_);
    n.ewma_ns = n.ewma_ns * w + rtt * (1.0 - w);
  }
  n.has_sample = true;
  n.stamp = std::max(n.stamp, now);
}

void Balancer::avoid_until(std::size_t index, core::SteadyTime until) {
  nodes_[index].avoid_until = std::max(nodes_[index].avoid_until, until);
}

void Balancer::set_available_since(std::size_t index, core::SteadyTime since) {
  nodes_[index].since = since;
}

double Balancer::decayed_ewma(const Node& n, core::SteadyTime now) const {
  if (!n.has_sample) return default_rtt_ns_;
  return n.ewma_ns * decay_factor(static_cast<double>((now - n.stamp).count()) * inv_tau_ns_);
}

core::Duration Balancer::ewma(std::size_t index, core::SteadyTime now) const {
  return core::Duration(static_cast<core::Duration::rep>(decayed_ewma(nodes_[index], now)));
}

double Balancer::ramp_factor(const Node& n, core::SteadyTime now) const {
  const auto ramp = core::Duration(config_.slow_start);
  if (ramp.count() <= 0 || !n.since || now >= *n.since + ramp) return 1.0;
  const double done = std::max(
      0.0, static_cast<double>((now - *n.since).count()) / static_cast<double>(ramp.count()));
  return 0.1 + 0.9 * done;
}

double Balancer::effective_weight(std::size_t index, core::SteadyTime now) const {
  return nodes_[index].weight * ramp_factor(nodes_[index], now);
}

double Balancer::cost(std::size_t index, core::SteadyTime now) const {
  const Node& n = nodes_[index];
  const double load = static_cast<double>(n.in_flight) + 1.0;
  // Multiply by the stored 1/weight: divisions were most of pick()'s time.
  double inv_w = n.inv_weight;
  if (n.since) inv_w /= ramp_factor(n, now);
  if (config_.kind == core::BalancerKind::kPeakEwma) {
    // An instance never measured is probed first, one request at a time: at default_rtt it
    // would starve next to measured instances faster than that until its EWMA decayed.
    if (!n.has_sample && n.in_flight == 0) return 0.0;
    return decayed_ewma(n, now) * load * inv_w;
  }
  return load * inv_w;
}

void Balancer::recheck_zone(core::SteadyTime now, AvailableRef available) {
  if (zone_checked_ && now < *zone_checked_ + kZoneRecheck && now >= *zone_checked_) return;
  zone_checked_ = now;
  std::size_t up = 0;
  for (std::uint32_t i : local_) up += available(i) ? 1 : 0;
  local_preferred_ = up > 0 && up * 100 >= std::size_t{config_.zone_min_available} * local_.size();
}

std::size_t Balancer::scan_first(const Filter& f, std::size_t start) {
  for (std::size_t k = 0; k < f.n; ++k) {
    const std::size_t i = f.index((start + k) % f.n);
    if (f.accept(i)) return i;
  }
  return kNone;
}

std::size_t Balancer::p2c(const Filter& f, core::SteadyTime now) {
  if (f.n == 1) {  // one candidate (a service with one instance): nothing to sample
    const std::size_t i = f.index(0);
    return f.accept(i) ? i : kNone;
  }
  std::size_t found[2] = {kNone, kNone};
  int got = 0;
  for (int t = 0; t < kSampleTries && got < 2; ++t) {
    const std::size_t i = f.index(static_cast<std::size_t>(rng_.below(f.n)));
    if (i == found[0]) continue;
    if (f.accept(i)) found[got++] = i;
  }
  if (got == 2) return cost(found[1], now) < cost(found[0], now) ? found[1] : found[0];
  if (got == 1) return found[0];
  // Sampling kept hitting unavailable instances: scan them all, cheapest wins.
  const std::size_t start = static_cast<std::size_t>(rng_.below(f.n));
  std::size_t best = kNone;
  double best_cost = 0;
  for (std::size_t k = 0; k < f.n; ++k) {
    const std::size_t i = f.index((start + k) % f.n);
    if (!f.accept(i)) continue;
    const double c = cost(i, now);
    if (best == kNone || c < best_cost) {
      best = i;
      best_cost = c;
    }
  }
  return best;
}

std::size_t Balancer::wrr(const Filter& f, core::SteadyTime now) {
  std::size_t best = kNone;
  double total = 0;
  for (std::size_t k = 0; k < f.n; ++k) {
    const std::size_t i = f.index(k);
    if (!f.accept(i)) continue;
    Node& n = nodes_[i];
    const double w = effective_weight(i, now);
    n.wrr_current += w;
    total += w;
    if (best == kNone || n.wrr_current > nodes_[best].wrr_current) best = i;
  }
  if (best != kNone) nodes_[best].wrr_current -= total;
  return best;
}

std::size_t Balancer::pick_in(const Filter& f, core::SteadyTime now) {
  if (f.n == 0) return kNone;
  switch (config_.kind) {
    case core::BalancerKind::kRoundRobin:
      return scan_first(f, rr_next_++ % f.n);
    case core::BalancerKind::kWeightedRoundRobin:
      return wrr(f, now);
    case core::BalancerKind::kRandom: {
      for (int t = 0; t < kSampleTries; ++t) {
        const std::size_t i = f.index(static_cast<std::size_t>(rng_.below(f.n)));
        if (f.accept(i)) return i;
      }
      return scan_first(f, static_cast<std::size_t>(rng_.below(f.n)));
    }
    case core::BalancerKind::kLeastRequest:
    case core::BalancerKind::kPeakEwma:
      return p2c(f, now);
  }
  return kNone;
}

std::size_t Balancer::pick_impl(core::SteadyTime now, AvailableRef available,
                                std::span<const std::size_t> exclude) {
  if (nodes_.empty()) return kNone;
  Filter f{.set = nullptr,
           .n = nodes_.size(),
           .available = available,
           .exclude = exclude,
           .check_exclude = !exclude.empty(),
           .check_avoid = true,
           .now = now,
           .nodes = &nodes_};
  if (!local_.empty()) {
    recheck_zone(now, available);
    if (local_preferred_ && local_.size() < nodes_.size()) {
      Filter local = f;
      local.set = local_.data();
      local.n = local_.size();
      if (std::size_t i = pick_in(local, now); i != kNone) return i;
    }
  }
  if (std::size_t i = pick_in(f, now); i != kNone) return i;
  f.check_avoid = false;
  if (std::size_t i = pick_in(f, now); i != kNone) return i;
  if (!f.check_exclude) return kNone;
  f.check_exclude = false;
  return pick_in(f, now);
}

}  // namespace sb::resilience
