// The processes an integration test talks to: the real switchboard binary and the Python
// upstream (tests/integration/upstream.py), each started on 127.0.0.1 port 0 with the
// bound port read back from its output.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "testing/process.hpp"

namespace sb::testing {

struct SwitchboardOptions {
  std::vector<std::string> args;           // appended after `serve --listen 127.0.0.1:0`
  std::map<std::string, std::string> env;  // added to base_environment()
  bool listen = true;                      // pass `--listen 127.0.0.1:0`
  bool expect_admin = false;               // the ready line must also carry admin=127.0.0.1:PORT
  std::chrono::milliseconds startup_timeout = scaled(std::chrono::milliseconds(15'000));
};

/// A running `switchboard serve`. Its working directory is a fresh temporary directory
/// (so no stray .env.local is read). When the current test has failed, the destructor
/// prints the command line and the tail of stdout and stderr.
class Switchboard {
 public:
  explicit Switchboard(SwitchboardOptions options = {});
  /// `switchboard serve --listen 127.0.0.1:0 <args...>` with the defaults otherwise.
  explicit Switchboard(std::vector<std::string> args);
  ~Switchboard();

  /// The binary under test: $SB_SWITCHBOARD_BIN if set, else the one built with the tests.
  static std::string binary();

  bool started() const { return port_ != 0; }
  /// Why start-up failed (with the process output), or "".
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  std::uint16_t admin_port() const { return admin_port_; }
  Process& process() { return *process_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  std::string describe() const { return process_ ? process_->describe() : error_; }

 private:
  TempDir cwd_;
  std::unique_ptr<Process> process_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::string error_;
};

/// Runs `switchboard <args...>` to completion (for validate, version, bad configs).
RunResult run_switchboard(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env = {},
                          std::chrono::milliseconds timeout = default_timeout());

struct UpstreamOptions {
  std::string name = "upstream";  // reported in /echo documents and X-Upstream-Name
  std::string tls_cert;           // both set: serve HTTPS
  std::string tls_key;
  std::uint16_t port = 0;  // 0: an ephemeral port; else this one (restart where it was)
  int delay_ms = 0;        // every answer waits this long (see /__control in upstream.py)
};

struct UpstreamStats {
  long connections_accepted = -1;
  long requests = -1;  // not counting /stats requests
};

/// A running upstream.py.
class Upstream {
 public:
  explicit Upstream(UpstreamOptions options = {});
  /// A plain HTTP upstream called `name`.
  explicit Upstream(std::string name);
  ~Upstream();

  bool started() const { return port_ != 0; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  /// "http://127.0.0.1:PORT" (https for a TLS upstream).
  std::string url() const;
  Process& process() { return *process_; }
  /// GET /stats straight from the upstream (plain HTTP only). Note that this adds one
  /// accepted connection itself.
  std::optional<UpstreamStats> stats();
  /// Sets the upstream's mode (plain HTTP only): every later request waits `delay_ms`,
  /// then answers `status` when it is not 0. Returns false when the upstream did not answer.
  bool set_mode(int status, int delay_ms);
  /// How many request heads the upstream has logged so far ("REQ <conn> <method>
  /// <target>" lines), counting only targets that contain `target_part`.
  std::size_t requests_logged(std::string_view target_part = {}) const;
  /// The log reaches the test through a pipe and a reader thread, so a line can come after
  /// the answer it belongs to: waits until at least `n` matching lines are there (or the
  /// default deadline passes), then returns requests_logged(target_part).
  std::size_t wait_logged(std::string_view target_part, std::size_t n) const;

 private:
  UpstreamOptions options_;
  std::unique_ptr<Process> process_;
  std::uint16_t port_ = 0;
  std::string error_;
};

/// The Python interpreter for upstream.py: $SB_PYTHON, else /usr/bin/python3, else
/// python3 on PATH. (A pyenv shim would run Python as a grandchild, which a signal to the
/// shim does not reach.)
std::string python_binary();

/// A test CA and a server certificate for IP 127.0.0.1 signed by it, made with the
/// openssl command in `dir`.
struct TestPki {
  std::string ca_cert;      // PEM
  std::string server_cert;  // PEM, subjectAltName IP:127.0.0.1
  std::string server_key;   // PEM
  std::string error;        // "" on success
  bool ok() const { return error.empty(); }
};
TestPki make_test_pki(const std::string& dir);

}  // namespace sb::testing
