#include "testing/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace sb::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

milliseconds scaled(milliseconds base) {
  double scale = 1.0;
  if (const char* s = std::getenv("SB_TEST_TIMEOUT_SCALE")) {
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (end != s && v > 0) scale = v;
  }
  return milliseconds(static_cast<long long>(static_cast<double>(base.count()) * scale));
}

milliseconds default_timeout() { return scaled(milliseconds(10'000)); }

bool eventually(const std::function<bool()>& done, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

std::map<std::string, std::string> base_environment() {
  static const char* const kKeep[] = {"PATH",         "HOME",         "TMPDIR",
                                      "LANG",         "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                      "LSAN_OPTIONS", "TSAN_OPTIONS", "LLVM_PROFILE_FILE"};
  std::map<std::string, std::string> env;
  for (const char* key : kKeep) {
    if (const char* v = std::getenv(key)) env[key] = v;
  }
  if (!env.count("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  return env;
}

std::string find_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// ---------------------------------------------------------------------------------------
// Process

Process::Process(ProcessOptions options) : options_(std::move(options)) {
  if (options_.args.empty()) throw std::runtime_error("Process: no executable");

  // Everything the child needs is built before fork: after fork only async-signal-safe
  // calls are allowed (this process has other threads).
  std::vector<char*> argv;
  for (auto& a : options_.args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : options_.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* cwd = options_.cwd.empty() ? nullptr : options_.cwd.c_str();

  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  const std::string& in_path = options_.stdin_path.empty() ? "/dev/null" : options_.stdin_path;
  int stdin_fd = ::open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (stdin_fd < 0 && !options_.stdin_path.empty()) {
    const std::string why = errno_text(("open " + in_path).c_str());
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]})
      ::close(fd);
    throw std::runtime_error(why);
  }
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ < 0) {
    const std::string why = errno_text("fork");
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1],
                   stdin_fd}) {
      if (fd >= 0) ::close(fd);
    }
    throw std::runtime_error(why);
  }
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (stdin_fd >= 0) ::dup2(stdin_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (cwd != nullptr && ::chdir(cwd) != 0) {
      int e = errno;
      (void)!::write(exec_pipe[1], &e, sizeof e);
      ::_exit(127);
    }
    ::execve(argv[0], argv.data(), envp.data());
    int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  // Also set the group from the parent, so a signal to the group right after the
  // constructor cannot race the child's own setpgid.
  ::setpgid(pid_, pid_);
  if (stdin_fd >= 0) ::close(stdin_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n > 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    reap(true);
    throw std::runtime_error("cannot execute " + options_.args[0] + ": " +
                             std::strerror(child_errno));
  }
  reader_ = std::thread([this, o = out_pipe[0], e = err_pipe[0]] { read_loop(o, e); });
}

Process::~Process() {
  if (!exit_status()) {
    ::kill(-pid_, SIGKILL);
    reap(true);
  }
  wait_output_closed(milliseconds(2'000));
  stop_reader_ = true;  // a grandchild outside the group may still hold a pipe open
  if (reader_.joinable()) reader_.join();
}

void Process::read_loop(int out_fd, int err_fd) {
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    if (stop_reader_) break;
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int r = ::poll(fds, 2, 100);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      if (fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      std::lock_guard lock(mu_);
      Captured& c = i == 0 ? out_ : err_;
      if (n <= 0) {
        if (!c.partial.empty()) c.lines.push_back(std::move(c.partial));
        c.partial.clear();
        c.closed = true;
        close_fd(fd);
      } else {
        append(c, buf, static_cast<std::size_t>(n));
      }
      cv_.notify_all();
    }
  }
  close_fd(out_fd);
  close_fd(err_fd);
  {
    std::lock_guard lock(mu_);
    out_.closed = err_.closed = true;
  }
  cv_.notify_all();
}

void Process::append(Captured& c, const char* data, std::size_t n) {
  c.partial.append(data, n);
  std::size_t start = 0;
  for (std::size_t nl; (nl = c.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::size_t end = nl;
    if (end > start && c.partial[end - 1] == '\r') --end;
    c.lines.emplace_back(c.partial, start, end - start);
  }
  c.partial.erase(0, start);
}

bool Process::signal(int signo) {
  std::lock_guard lock(reap_mu_);
  if (status_) return false;
  return ::kill(pid_, signo) == 0;
}

bool Process::signal_group(int signo) {
  std::lock_guard lock(reap_mu_);
  if (status_) return false;
  return ::kill(-pid_, signo) == 0;
}

std::optional<int> Process::reap(bool block) {
  std::lock_guard lock(reap_mu_);
  if (status_) return status_;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    if (WIFEXITED(st)) {
      status_ = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
      status_ = 128 + WTERMSIG(st);
    } else {
      status_ = -1;
    }
  } else if (r < 0) {
    status_ = -1;  // not our child any more; treat as gone
  }
  return status_;
}

std::optional<int> Process::exit_status() { return reap(false); }

std::optional<int> Process::wait_exit(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto st = reap(false)) return st;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(2));  // polling waitpid, not a scenario delay
  }
}

void Process::wait_output_closed(milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return out_.closed && err_.closed; });
}

std::optional<LineMatch> Process::wait_for_line(Stream stream, const std::regex& re,
                                                milliseconds timeout, std::size_t from_line) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mu_);
  const Captured& c = stream == Stream::kStdout ? out_ : err_;
  std::size_t next = from_line;
  for (;;) {
    for (; next < c.lines.size(); ++next) {
      std::smatch m;
      if (std::regex_search(c.lines[next], m, re)) {
        LineMatch match{next, {}};
        for (const auto& g : m) match.groups.push_back(g.str());
        return match;
      }
    }
    if (c.closed) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next >= c.lines.size()) {
      return std::nullopt;
    }
  }
}

std::vector<std::string> Process::lines(Stream stream) const {
  std::lock_guard lock(mu_);
  return stream == Stream::kStdout ? out_.lines : err_.lines;
}

std::size_t Process::line_count(Stream stream) const {
  std::lock_guard lock(mu_);
  return stream == Stream::kStdout ? out_.lines.size() : err_.lines.size();
}

std::string Process::output(Stream stream) const {
  std::lock_guard lock(mu_);
  const Captured& c = stream == Stream::kStdout ? out_ : err_;
  std::string all;
  for (const auto& l : c.lines) all += l + "\n";
  return all + c.partial;
}

std::string Process::describe(std::size_t tail_lines) const {
  std::ostringstream os;
  os << "process " << pid_ << ":";
  for (const auto& a : options_.args) os << ' ' << a;
  os << '\n';
  std::lock_guard lock(mu_);
  for (const auto* c : {&out_, &err_}) {
    os << (c == &out_ ? "--- stdout" : "--- stderr");
    std::size_t from = c->lines.size() > tail_lines ? c->lines.size() - tail_lines : 0;
    if (from > 0) os << " (last " << tail_lines << " of " << c->lines.size() << " lines)";
    os << " ---\n";
    for (std::size_t i = from; i < c->lines.size(); ++i) os << c->lines[i] << '\n';
    if (!c->partial.empty()) os << c->partial << '\n';
  }
  return os.str();
}

RunResult run_process(ProcessOptions options, milliseconds timeout) {
  Process p(std::move(options));
  RunResult r;
  r.exit_code = p.wait_exit(timeout);
  if (!r.exit_code) p.signal_group(SIGKILL);
  p.wait_output_closed(milliseconds(2'000));
  r.out = p.output(Stream::kStdout);
  r.err = p.output(Stream::kStderr);
  return r;
}

// ---------------------------------------------------------------------------------------
// TempDir

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/sb-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error(errno_text("mkdtemp"));
  path_ = templ;
}

TempDir::~TempDir() {
  if (std::getenv("SB_TEST_KEEP_TMP") != nullptr) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write_file(const std::string& name, std::string_view content) const {
  std::string file = path_ + "/" + name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + file);
  return file;
}

std::optional<long> proc_status_kb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
    }
  }
  return std::nullopt;
}

}  // namespace sb::testing
