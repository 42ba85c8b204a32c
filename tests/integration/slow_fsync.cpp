// An LD_PRELOAD library for integration tests: while the file named by SB_SLOW_FSYNC_WHEN
// exists, fsync() and fdatasync() first create "<that file>.entered" and then sleep
// SB_SLOW_FSYNC_MS milliseconds, as a slow disk would. Lets a test hold the registry's
// store inside a commit and watch what else the process does meanwhile.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

void maybe_stall() {
  const char* when = std::getenv("SB_SLOW_FSYNC_WHEN");
  const char* ms = std::getenv("SB_SLOW_FSYNC_MS");
  if (when == nullptr || ms == nullptr || ::access(when, F_OK) != 0) return;
  const std::string entered = std::string(when) + ".entered";
  const int fd = ::open(entered.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(ms)));
}

template <class Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fsync(int fd) {
  static const auto real = next<int (*)(int)>("fsync");
  maybe_stall();
  return real(fd);
}

extern "C" int fdatasync(int fd) {
  static const auto real = next<int (*)(int)>("fdatasync");
  maybe_stall();
  return real(fd);
}
