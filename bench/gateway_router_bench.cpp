// Router::match and Router::append_upstream_path: the per-request routing decision, for the
// /svc/<name>/ shortcut and for route tables of realistic sizes.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gateway/router.hpp"

namespace {

namespace core = sb::core;
using sb::gateway::RouteMatch;
using sb::gateway::Router;

// The example configuration's four services.
std::vector<core::ServiceConfig> example_services() {
  std::vector<core::ServiceConfig> out;
  for (const char* n : {"backend", "telegram-bot", "llm-service", "frontend"})
    out.push_back(core::ServiceConfig{.name = n});
  return out;
}

// A table of `n` services and `n` routes: "/api/v1/svc-<i>" prefixes, every odd one
// rewritten, every tenth one bound to a host; plus a catch-all "/" route.
struct Table {
  std::vector<core::ServiceConfig> services;
  std::vector<core::RouteConfig> routes;
};
Table make_table(std::size_t n) {
  Table t;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string name = "svc-" + std::to_string(i);
    t.services.push_back(core::ServiceConfig{.name = name});
    core::RouteConfig r{.prefix = "/api/v1/" + name, .service = name};
    if (i % 2 == 1) r.rewrite = "/v" + std::to_string(i % 3 + 1);
    if (i % 10 == 0) r.host = "tenant" + std::to_string(i) + ".example.com";
    t.routes.push_back(std::move(r));
  }
  t.routes.push_back(core::RouteConfig{.prefix = "/", .service = "svc-0"});
  return t;
}

// /svc/<name>/... addresses one of four services directly.
void bm_router_match_svc(benchmark::State& state) {
  const Router router(example_services(), {});
  for (auto _ : state) {
    auto m = router.match("gateway.example.com", "/svc/llm-service/v1/chat/completions");
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_router_match_svc);

// Prefix routing over a table of range(0) routes; requests spread evenly over the routes.
void bm_router_match_table(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const Table t = make_table(n);
  const Router router(t.services, t.routes);
  std::mt19937 rng(42);
  std::vector<std::string> paths, hosts;
  for (int i = 0; i < 1024; ++i) {
    const std::size_t k = rng() % n;
    paths.push_back("/api/v1/svc-" + std::to_string(k) + "/items/" + std::to_string(rng() % 1000));
    hosts.push_back(k % 10 == 0 ? "tenant" + std::to_string(k) + ".example.com:8080"
                                : "gateway.example.com");
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto m = router.match(hosts[i], paths[i]);
    benchmark::DoNotOptimize(m);
    i = (i + 1) & 1023;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_router_match_table)->Arg(10)->Arg(100);

// Worst case: a path no specific route matches walks the whole table to the catch-all.
void bm_router_match_fallthrough(benchmark::State& state) {
  const Table t = make_table(static_cast<std::size_t>(state.range(0)));
  const Router router(t.services, t.routes);
  for (auto _ : state) {
    auto m = router.match("gateway.example.com", "/static/app.js");
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_router_match_fallthrough)->Arg(10)->Arg(100);

// Joining a rewrite and the rest of the path into a reused string.
void bm_router_append_upstream_path(benchmark::State& state) {
  const Router router(example_services(),
                      {{.prefix = "/llm", .service = "llm-service", .rewrite = "/v1/"}});
  const RouteMatch m = router.match("gateway.example.com", "/llm/chat/completions");
  std::string out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    Router::append_upstream_path(m, out);
    benchmark::DoNotOptimize(out.data());
  }
  if (out != "/v1/chat/completions") state.SkipWithError(("unexpected path " + out).c_str());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_router_append_upstream_path);

}  // namespace
