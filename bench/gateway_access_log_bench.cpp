// AccessLog::record in text and JSON: formatting one line into the worker's buffer (and,
// every 32 KiB, one write to /dev/null).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "core/clock.hpp"
#include "gateway/access_log.hpp"

namespace {

namespace core = sb::core;
using sb::gateway::AccessLog;
using sb::gateway::AccessRecord;

const AccessRecord kRecord{
    .method = "POST",
    .target = "/llm/v1/chat/completions?stream=false",
    .status = 200,
    .duration_ms = 1234.567,
    .service = "llm-service",
    .instance = "http://127.0.0.1:3003",
    .bytes_sent = 18342,
    .correlation_id = "0b9f5c3e-8d2a-4c1b-9f3e-5a6b7c8d9e0f",
    .peer = "192.168.10.24:53122",
};

// Bytes of one formatted line: logged once to a temporary file, outside the timed loop.
std::size_t line_bytes(core::LogFormat format) {
  std::FILE* f = std::tmpfile();
  if (f == nullptr) return 0;
  {
    AccessLog log(format, true, core::SystemClock::instance(), fileno(f));
    log.record(kRecord);
  }  // the destructor writes the buffered line
  struct stat st {};
  const bool ok = ::fstat(fileno(f), &st) == 0;
  std::fclose(f);
  return ok ? static_cast<std::size_t>(st.st_size) : 0;
}

// One record() per iteration; bytes/s counts formatted log bytes.
void bm_access_log_record(benchmark::State& state, core::LogFormat format) {
  const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    state.SkipWithError("cannot open /dev/null");
    return;
  }
  const std::size_t bytes = line_bytes(format);
  {
    AccessLog log(format, true, core::SystemClock::instance(), fd);
    for (auto _ : state) log.record(kRecord);
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
  state.counters["line_bytes"] = static_cast<double>(bytes);
}
BENCHMARK_CAPTURE(bm_access_log_record, text, core::LogFormat::kText);
BENCHMARK_CAPTURE(bm_access_log_record, json, core::LogFormat::kJson);

}  // namespace
