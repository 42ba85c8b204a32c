// Correlation ids: making one per request, and checking an incoming one.
#include <benchmark/benchmark.h>

#include <string>

#include "core/correlation_id.hpp"

namespace {

using sb::core::CorrelationIdGenerator;

// One random version-4 UUID per call (xoshiro256** + hex formatting).
void bm_correlation_id_next(benchmark::State& state) {
  CorrelationIdGenerator gen(0x5eed);
  CorrelationIdGenerator::Id id;
  for (auto _ : state) {
    gen.next(id);
    benchmark::DoNotOptimize(id);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(id.size()));
}
BENCHMARK(bm_correlation_id_next);

// Validating a well-formed incoming id of range(0) bytes (36: a UUID; 128: the longest kept).
void bm_is_valid_correlation_id(benchmark::State& state) {
  const auto len = static_cast<std::size_t>(state.range(0));
  std::string id;
  const std::string_view alphabet = "0123456789abcdef-ABCDEF._:@/+=";
  for (std::size_t i = 0; i < len; ++i) id += alphabet[i % alphabet.size()];
  for (auto _ : state) {
    bool ok = sb::core::is_valid_correlation_id(id);
    benchmark::DoNotOptimize(ok);
    if (!ok) state.SkipWithError("id refused");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(len));
}
BENCHMARK(bm_is_valid_correlation_id)->Arg(16)->Arg(36)->Arg(128);

}  // namespace
