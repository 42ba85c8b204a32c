#include "core/config.hpp"

#include <fmt/format.h>

namespace sb::core {

std::string HostPort::str() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string UpstreamUrl::authority() const {
  const bool default_port = (tls && port == 443) || (!tls && port == 80);
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? h : fmt::format("{}:{}", h, port);
}

const char* to_string(Source s) {
  switch (s) {
    case Source::kDefault:
      return "default";
    case Source::kFile:
      return "config";
    case Source::kEnvironment:
      return "env";
    case Source::kCommandLine:
      return "cli";
    case Source::kApi:
      return "api";
  }
  return "unknown";
}

namespace {
// Calls f(lo, hi) for each item of "200-399,404"; false when an item is malformed.
template <class F>
bool for_each_status_range(std::string_view list, F&& f) {
  if (list.empty()) return false;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const auto dash = item.find('-');
    auto num = [](std::string_view v, int& out) {
      if (v.size() != 3) return false;
      out = 0;
      for (char c : v) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + (c - '0');
      }
      return out >= 100 && out <= 599;
    };
    int lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (!num(item, lo)) return false;
      hi = lo;
    } else if (!num(item.substr(0, dash), lo) || !num(item.substr(dash + 1), hi) || hi < lo) {
      return false;
    }
    if (f(lo, hi)) return true;
  }
  return true;
}
}  // namespace

bool status_matches(std::string_view list, int status) {
  bool hit = false;
  const bool ok = for_each_status_range(list, [&](int lo, int hi) {
    hit = status >= lo && status <= hi;
    return hit;
  });
  return ok && hit;
}

bool valid_status_list(std::string_view list) {
  return for_each_status_range(list, [](int, int) { return false; });
}

StatusSet StatusSet::parse(std::string_view list) {
  StatusSet set;
  const bool ok = for_each_status_range(list, [&](int lo, int hi) {
    for (int s = lo; s <= hi; ++s) set.bits_.set(static_cast<std::size_t>(s));
    return false;
  });
  return ok ? set : StatusSet{};
}

const char* to_string(BalancerKind k) {
  switch (k) {
    case BalancerKind::kRoundRobin:
      return "round_robin";
    case BalancerKind::kWeightedRoundRobin:
      return "weighted_round_robin";
    case BalancerKind::kRandom:
      return "random";
    case BalancerKind::kLeastRequest:
      return "least_request";
    case BalancerKind::kPeakEwma:
      return "peak_ewma";
  }
  return "unknown";
}

const ServiceConfig* Config::find_service(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace sb::core
