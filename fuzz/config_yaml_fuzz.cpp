// load_config on an arbitrary YAML file with an empty environment: it never crashes or
// throws; every failure is reported; on success render_config (--print-config) loads
// again, to the same values.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/config_load.hpp"
#include "fuzz_check.hpp"

namespace {

namespace core = sb::core;

// An unlinked temporary file, named through /proc/self/fd so that load_config can open it:
// nothing is left behind, even when the process dies on a crash.
class TempFile {
 public:
  TempFile() {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/sb_config_fuzz_XXXXXX";
    fd_ = ::mkstemp(tmpl.data());
    SB_FUZZ_CHECK(fd_ >= 0);
    ::unlink(tmpl.c_str());
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& path() const { return path_; }
  void write(const void* data, std::size_t size) const {
    SB_FUZZ_CHECK(::ftruncate(fd_, 0) == 0);
    const char* p = static_cast<const char*>(data);
    std::size_t off = 0;
    while (off < size) {
      const ssize_t n = ::pwrite(fd_, p + off, size - off, static_cast<off_t>(off));
      SB_FUZZ_CHECK(n > 0);
      off += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_ = -1;
  std::string path_;
};

core::LoadResult load(const std::string& path) {
  core::LoadOptions options;
  options.config_file = path;
  options.env_local_file = std::nullopt;  // never pick up a .env.local from the cwd
  return core::load_config(options);      // options.environment stays empty
}

bool same_values(const core::Config& a, const core::Config& b) {
  return a.server == b.server && a.limits == b.limits && a.upstream == b.upstream &&
         a.drain == b.drain && a.logging == b.logging && a.health == b.health &&
         a.telemetry == b.telemetry && a.services == b.services && a.routes == b.routes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const TempFile input;
  static const TempFile rendered;
  input.write(data, size);
  const core::LoadResult first = load(input.path());
  SB_FUZZ_CHECK(first.ok() == first.errors.empty());
  for (const auto& e : first.errors) SB_FUZZ_CHECK(!e.message.empty());
  if (!first.ok()) return 0;

  const std::string yaml = core::render_config(*first.config);
  rendered.write(yaml.data(), yaml.size());
  const core::LoadResult second = load(rendered.path());
  if (!second.ok()) {
    std::fprintf(stderr, "render_config output does not load:\n%s\nfirst error: %s\n", yaml.c_str(),
                 second.errors.front().message.c_str());
    std::abort();
  }
  if (!same_values(*first.config, *second.config)) {
    std::fprintf(stderr, "render_config output loads to other values:\n%s\n", yaml.c_str());
    std::abort();
  }
  return 0;
}
