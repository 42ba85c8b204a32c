// Child processes for integration tests: spawned in their own process group with their
// output captured line by line, so a test can wait for a log line with a deadline.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace sb::testing {

/// `base` multiplied by the environment variable SB_TEST_TIMEOUT_SCALE (a positive
/// number, default 1), so slow machines and sanitizer builds can stretch every deadline.
std::chrono::milliseconds scaled(std::chrono::milliseconds base);

/// The default deadline for one wait in a test (10 s, scaled).
std::chrono::milliseconds default_timeout();

/// Re-reads `done` (a status field, a count) every 20 ms until it holds or `timeout` has
/// passed; returns whether it held. For conditions no log line announces: prefer
/// Process::wait_for_line when one does.
bool eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = default_timeout());

/// The variables a child should inherit: PATH, HOME, TMPDIR, LANG and the sanitizer
/// options. Nothing else, so a developer's environment cannot change a test.
std::map<std::string, std::string> base_environment();

/// The absolute path of `name` found on PATH, or "" when there is none.
std::string find_executable(const std::string& name);

enum class Stream { kStdout, kStderr };

struct ProcessOptions {
  std::vector<std::string> args;           // args[0] is the executable (an absolute path)
  std::map<std::string, std::string> env;  // the child's whole environment
  std::string cwd;                         // empty: the test's working directory
  std::string stdin_path;                  // the child's stdin; empty: /dev/null
};

/// A line that matched: its index in the stream and the regex groups (0 is the match).
struct LineMatch {
  std::size_t index = 0;
  std::vector<std::string> groups;
};

/// A spawned child. Its stdin is ProcessOptions::stdin_path (default /dev/null); stdout
/// and stderr are read by a thread.
/// The child leads its own process group and gets SIGKILL if this process dies; the
/// destructor kills the group and reaps it. Not copyable or movable; methods are
/// thread-safe.
class Process {
 public:
  /// Spawns the child; throws std::runtime_error when it cannot be executed.
  explicit Process(ProcessOptions options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  /// Sends `signo` to the child itself. False when it has already been reaped.
  bool signal(int signo);
  /// Sends `signo` to the child's whole process group.
  bool signal_group(int signo);

  /// Waits for a line of `stream` at index >= `from_line` that `re` matches (a search,
  /// not a full match). Nullopt on timeout, or once the stream is closed without one.
  std::optional<LineMatch> wait_for_line(Stream stream, const std::regex& re,
                                         std::chrono::milliseconds timeout,
                                         std::size_t from_line = 0);

  /// Waits for the child to exit: its exit code, or 128 + signal number when a signal
  /// ended it. Nullopt on timeout (the child keeps running).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  /// The exit status if the child has exited, without waiting.
  std::optional<int> exit_status();

  /// Waits (bounded) until both output streams are closed, so they are complete.
  void wait_output_closed(std::chrono::milliseconds timeout);

  std::vector<std::string> lines(Stream stream) const;
  std::string output(Stream stream) const;
  std::size_t line_count(Stream stream) const;

  /// The command line and the last `tail_lines` lines of each stream, for failure messages.
  std::string describe(std::size_t tail_lines = 40) const;

 private:
  struct Captured {
    std::vector<std::string> lines;
    std::string partial;
    bool closed = false;
  };

  void read_loop(int out_fd, int err_fd);
  void append(Captured& c, const char* data, std::size_t n);
  std::optional<int> reap(bool block);

  ProcessOptions options_;
  pid_t pid_ = -1;
  std::optional<int> status_;  // set once reaped
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Captured out_;
  Captured err_;
  std::atomic<bool> stop_reader_{false};
  std::thread reader_;
  std::mutex reap_mu_;
};

/// Runs a command to completion (bounded by `timeout`, then killed): for short tools
/// such as `switchboard validate` or `openssl`.
struct RunResult {
  std::optional<int> exit_code;  // nullopt: timed out and killed
  std::string out;
  std::string err;
};
RunResult run_process(ProcessOptions options, std::chrono::milliseconds timeout);

/// A temporary directory, removed with its contents on destruction unless the
/// environment variable SB_TEST_KEEP_TMP is set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// Writes `content` to `name` inside the directory and returns the file's path.
  std::string write_file(const std::string& name, std::string_view content) const;

 private:
  std::string path_;
};

/// One value (in kB) from /proc/PID/status, e.g. "VmHWM" or "VmRSS"; nullopt if absent.
std::optional<long> proc_status_kb(pid_t pid, const std::string& key);

}  // namespace sb::testing
