#include "testing/switchboard.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <regex>

#include "testing/http_client.hpp"

#ifndef SB_SWITCHBOARD_BIN
#error "SB_SWITCHBOARD_BIN must name the switchboard binary"
#endif
#ifndef SB_SOURCE_DIR
#error "SB_SOURCE_DIR must name the source tree"
#endif

namespace sb::testing {
namespace {

using std::chrono::milliseconds;

std::map<std::string, std::string> merged_env(const std::map<std::string, std::string>& extra) {
  auto env = base_environment();
  for (const auto& [k, v] : extra) env[k] = v;
  return env;
}

void print_on_failure(const char* what, const Process* p) {
  if (p != nullptr && ::testing::Test::HasFailure()) {
    std::cerr << "=== " << what << " (test failed) ===\n" << p->describe(60);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Switchboard

std::string Switchboard::binary() {
  if (const char* b = std::getenv("SB_SWITCHBOARD_BIN"); b != nullptr && *b != '\0') return b;
  return SB_SWITCHBOARD_BIN;
}

Switchboard::Switchboard(SwitchboardOptions options) {
  const std::string bin = binary();
  if (::access(bin.c_str(), X_OK) != 0) {
    error_ = "switchboard binary not found (not built yet?): " + bin;
    return;
  }
  ProcessOptions p;
  p.args = {bin, "serve"};
  if (options.listen) {
    p.args.push_back("--listen");
    p.args.push_back("127.0.0.1:0");
  }
  p.args.insert(p.args.end(), options.args.begin(), options.args.end());
  p.env = merged_env(options.env);
  p.cwd = cwd_.path();
  try {
    process_ = std::make_unique<Process>(std::move(p));
  } catch (const std::exception& e) {
    error_ = e.what();
    return;
  }
  static const std::regex kReady(R"(listening on proxy=127\.0\.0\.1:([0-9]+))");
  static const std::regex kAdmin(R"(admin=127\.0\.0\.1:([0-9]+))");
  auto ready = process_->wait_for_line(Stream::kStderr, kReady, options.startup_timeout);
  if (!ready) {
    error_ = "switchboard did not log `listening on proxy=127.0.0.1:PORT` within " +
             std::to_string(options.startup_timeout.count()) + " ms\n" + process_->describe();
    return;
  }
  std::uint16_t port = static_cast<std::uint16_t>(std::stoi(ready->groups[1]));
  if (options.expect_admin) {
    const std::string line = process_->lines(Stream::kStderr)[ready->index];
    std::smatch m;
    if (!std::regex_search(line, m, kAdmin)) {
      error_ = "the ready line has no admin=127.0.0.1:PORT: " + line;
      return;
    }
    admin_port_ = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  }
  port_ = port;
}

Switchboard::Switchboard(std::vector<std::string> args)
    : Switchboard([&] {
        SwitchboardOptions o;
        o.args = std::move(args);
        return o;
      }()) {}

Switchboard::~Switchboard() { print_on_failure("switchboard", process_.get()); }

RunResult run_switchboard(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env, milliseconds timeout) {
  TempDir cwd;
  ProcessOptions p;
  p.args.push_back(Switchboard::binary());
  p.args.insert(p.args.end(), args.begin(), args.end());
  p.env = merged_env(env);
  p.cwd = cwd.path();
  if (::access(p.args[0].c_str(), X_OK) != 0) {
    RunResult r;
    r.exit_code = -1;
    r.err = "switchboard binary not found (not built yet?): " + p.args[0];
    return r;
  }
  return run_process(std::move(p), timeout);
}

// ---------------------------------------------------------------------------------------
// Upstream

std::string python_binary() {
  if (const char* p = std::getenv("SB_PYTHON"); p != nullptr && *p != '\0') return p;
  if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return find_executable("python3");
}

Upstream::Upstream(UpstreamOptions options) : options_(std::move(options)) {
  ProcessOptions p;
  p.args = {python_binary(), std::string(SB_SOURCE_DIR) + "/tests/integration/upstream.py",
            "--name", options_.name};
  if (options_.port != 0) p.args.insert(p.args.end(), {"--port", std::to_string(options_.port)});
  if (options_.delay_ms != 0)
    p.args.insert(p.args.end(), {"--delay-ms", std::to_string(options_.delay_ms)});
  if (!options_.tls_cert.empty()) {
    p.args.insert(p.args.end(), {"--tls", options_.tls_cert, options_.tls_key});
  }
  p.env = base_environment();
  p.env["PYTHONUNBUFFERED"] = "1";
  try {
    process_ = std::make_unique<Process>(std::move(p));
  } catch (const std::exception& e) {
    error_ = e.what();
    return;
  }
  static const std::regex kPort(R"(^PORT ([0-9]+)$)");
  auto m = process_->wait_for_line(Stream::kStdout, kPort, default_timeout());
  if (!m) {
    error_ = "upstream.py did not print PORT\n" + process_->describe();
    return;
  }
  port_ = static_cast<std::uint16_t>(std::stoi(m->groups[1]));
}

Upstream::Upstream(std::string name)
    : Upstream([&] {
        UpstreamOptions o;
        o.name = std::move(name);
        return o;
      }()) {}

Upstream::~Upstream() {
  print_on_failure(("upstream " + options_.name).c_str(), process_.get());
  if (process_ && process_->signal(SIGTERM)) process_->wait_exit(scaled(milliseconds(2'000)));
}

std::string Upstream::url() const {
  return (options_.tls_cert.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") +
         std::to_string(port_);
}

bool Upstream::set_mode(int status, int delay_ms) {
  HttpClient c(port_);
  Response r = c.get("/__control?status=" + std::to_string(status) +
                     "&delay_ms=" + std::to_string(delay_ms));
  return r.ok() && r.status == 204;
}

std::optional<UpstreamStats> Upstream::stats() {
  HttpClient c(port_);
  Response r = c.get("/stats");
  if (!r.ok() || r.status != 200) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  UpstreamStats s;
  const auto& o = v.as_object();
  if (auto* c_ = o.if_contains("connections_accepted"); c_ && c_->is_int64()) {
    s.connections_accepted = static_cast<long>(c_->as_int64());
  }
  if (auto* q = o.if_contains("requests"); q && q->is_int64()) {
    s.requests = static_cast<long>(q->as_int64());
  }
  return s;
}

std::size_t Upstream::requests_logged(std::string_view target_part) const {
  std::size_t n = 0;
  for (const auto& l : process_->lines(Stream::kStdout)) {
    n += l.rfind("REQ ", 0) == 0 && l.find(target_part) != std::string::npos;
  }
  return n;
}

std::size_t Upstream::wait_logged(std::string_view target_part, std::size_t n) const {
  eventually([&] { return requests_logged(target_part) >= n; });
  return requests_logged(target_part);
}

// ---------------------------------------------------------------------------------------
// Test PKI

TestPki make_test_pki(const std::string& dir) {
  TestPki pki;
  const std::string openssl = find_executable("openssl");
  if (openssl.empty()) {
    pki.error = "openssl not found on PATH";
    return pki;
  }
  pki.ca_cert = dir + "/ca.pem";
  pki.server_cert = dir + "/server.pem";
  pki.server_key = dir + "/server.key";
  const std::string ca_key = dir + "/ca.key";
  const std::string csr = dir + "/server.csr";
  const std::string ext = dir + "/server.ext";
  {
    std::ofstream out(ext);
    out << "basicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth\n"
           "subjectAltName=IP:127.0.0.1\n";
    if (!out) {
      pki.error = "cannot write " + ext;
      return pki;
    }
  }

  const std::vector<std::vector<std::string>> steps = {
      {openssl,
       "req",
       "-x509",
       "-newkey",
       "ec",
       "-pkeyopt",
       "ec_paramgen_curve:prime256v1",
       "-nodes",
       "-keyout",
       ca_key,
       "-out",
       pki.ca_cert,
       "-days",
       "2",
       "-subj",
       "/CN=switchboard test CA",
       "-addext",
       "basicConstraints=critical,CA:TRUE",
       "-addext",
       "keyUsage=critical,keyCertSign,cRLSign"},
      {openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", pki.server_key, "-out", csr, "-subj", "/CN=127.0.0.1"},
      {openssl, "x509", "-req", "-in", csr, "-CA", pki.ca_cert, "-CAkey", ca_key, "-CAcreateserial",
       "-out", pki.server_cert, "-days", "2", "-extfile", ext},
  };
  for (const auto& args : steps) {
    ProcessOptions p;
    p.args = args;
    p.env = base_environment();
    p.cwd = dir;
    RunResult r = run_process(std::move(p), default_timeout());
    if (r.exit_code != 0) {
      pki.error = "openssl " + args[1] + " failed: " + r.err;
      return pki;
    }
  }
  return pki;
}

}  // namespace sb::testing
