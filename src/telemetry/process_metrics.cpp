// Process metrics read from /proc at each scrape, named as Prometheus' client libraries name
// them, and the build info.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "telemetry/detail/series.hpp"
#include "telemetry/metrics.hpp"

namespace sb::telemetry {

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The fields of /proc/self/stat after the command name (which may hold spaces and
/// parentheses, so the split starts after the last ')'). fields[0] is field 3 (state).
std::vector<std::string> stat_fields() {
  std::string stat = read_file("/proc/self/stat");
  std::size_t close = stat.rfind(')');
  std::vector<std::string> fields;
  if (close == std::string::npos) return fields;
  std::istringstream in(stat.substr(close + 1));
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

double field(const std::vector<std::string>& fields, int number) {  // number as in proc(5)
  std::size_t i = static_cast<std::size_t>(number - 3);
  return i < fields.size() ? std::stod(fields[i]) : 0;
}

double boot_time_seconds() {
  std::istringstream in(read_file("/proc/stat"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  return 0;
}

double open_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  double n = 0;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

double max_fds() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  return rl.rlim_cur == RLIM_INFINITY ? 0 : static_cast<double>(rl.rlim_cur);
}

}  // namespace

void register_process_metrics(Registry& registry, std::string_view version,
                              std::string_view commit) {
  Counter cpu = registry
                    .counter({.name = "process_cpu_seconds",
                              .help = "Total user and system CPU time spent in seconds."})
                    .with({});
  Gauge rss = registry
                  .gauge({.name = "process_resident_memory_bytes",
                          .help = "Resident memory size in bytes."})
                  .with({});
  Gauge vsize =
      registry
          .gauge({.name = "process_virtual_memory_bytes", .help = "Virtual memory size in bytes."})
          .with({});
  Gauge fds =
      registry.gauge({.name = "process_open_fds", .help = "Number of open file descriptors."})
          .with({});
  Gauge max =
      registry
          .gauge({.name = "process_max_fds", .help = "Maximum number of open file descriptors."})
          .with({});
  Gauge start = registry
                    .gauge({.name = "process_start_time_seconds",
                            .help = "Start time of the process since unix epoch in seconds."})
                    .with({});
  registry
      .gauge({.name = "switchboard_build_info",
              .help = "Always 1; the labels say which build of Switchboard runs.",
              .labels = {"version", "commit"}})
      .with({version, commit})
      .set(1);

  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double boot = boot_time_seconds();
  registry.add_collector([=] {
    std::vector<std::string> f = stat_fields();
    if (f.empty()) return;
    // The counter's value comes from the kernel: it is set as the base of the series.
    detail::Family::series_of(cpu)->set_value.store((field(f, 14) + field(f, 15)) / ticks,
                                                    std::memory_order_relaxed);
    vsize.set(field(f, 23));
    rss.set(field(f, 24) * page);
    start.set(boot + field(f, 22) / ticks);
    fds.set(open_fds());
    max.set(max_fds());
  });
}

}  // namespace sb::telemetry
