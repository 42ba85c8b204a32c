// switchboard: command line, configuration and wiring. Nothing else lives here.
#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>
#include <thread>

#include "core/clock.hpp"
#include "core/config_load.hpp"
#include "core/logging.hpp"
#include "gateway/gateway.hpp"

#ifndef SB_VERSION
#define SB_VERSION "0.0.0"
#endif

namespace {

constexpr int kConfigError = 2;

int print_errors(const std::vector<sb::core::ConfigError>& errors) {
  std::cerr << "switchboard: invalid configuration:\n";
  for (const auto& e : errors) std::cerr << "  " << e.message << '\n';
  return kConfigError;
}

int serve(const sb::core::LoadOptions& options, bool print_config, const std::string& data_dir) {
  auto loaded = sb::core::load_config(options);
  if (!loaded.ok()) return print_errors(loaded.errors);
  sb::core::Config config = std::move(*loaded.config);
  if (print_config) {
    std::cout << sb::core::render_config(config);
    return 0;
  }
  if (config.server.threads == 0)
    config.server.threads = std::max(1u, std::thread::hardware_concurrency());
  sb::core::init_logging(config.logging.level, config.logging.format);

  const auto admin = config.server.admin_listen;
  sb::gateway::Gateway gateway(std::move(config), sb::core::SystemClock::instance(), data_dir);
  if (auto err = gateway.prepare()) return print_errors({{*err}});
  if (auto err = gateway.bind()) {
    const bool is_admin = admin && err->starts_with(admin->str());
    const std::string key = is_admin ? "server.admin_listen" : "server.listen";
    // "x.yaml:12: server.listen: ..." when the file set it, else "server.listen (from
    // command line --listen): ...".
    const auto it = gateway.config().origins.find(key);
    const std::string origin = it != gateway.config().origins.end() ? it->second : "default";
    const std::string where = origin.starts_with("file ") ? origin.substr(5) + ": " + key
                                                          : key + " (from " + origin + ")";
    return print_errors({{where + ": cannot listen on " + *err +
                          (err->find("in use") != std::string::npos ? " (port in use)" : "")}});
  }
  if (auto err = gateway.open_registry()) return print_errors({{*err}});
  gateway.start();
  return gateway.run_until_signalled();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Switchboard: service registry, health-aware routing and proxy for the platform"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");

  sb::core::LoadOptions options;
  bool print_config = false;
  std::string config_file;
  std::vector<std::string> env_files;
  std::string listen, log_level, log_format;
  std::string data_dir = "./data";
  std::optional<unsigned> threads;

  auto* serve_cmd = app.add_subcommand("serve", "Run the gateway");
  serve_cmd->add_option("-c,--config", config_file, "YAML configuration file");
  serve_cmd->add_option("--listen", listen,
                        "Proxy listen address HOST:PORT (default 127.0.0.1:8080)");
  serve_cmd->add_option("--service", options.cli.services,
                        "Register a service: NAME=URL[,URL...] (repeatable)");
  serve_cmd->add_option("--threads", threads, "Worker threads (default: number of cores)");
  serve_cmd->add_option("--env-file", env_files,
                        "Load environment variables from a dotenv file (repeatable)");
  serve_cmd->add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
  serve_cmd->add_option("--log-format", log_format, "text or json");
  serve_cmd->add_option("--data-dir", data_dir,
                        "Where API registrations are kept across restarts (default ./data; "
                        "an empty value keeps them in memory only)");
  serve_cmd->add_flag(
      "--print-config", print_config,
      "Print the effective configuration, with where each value came from, and exit");

  std::string validate_file;
  auto* validate_cmd =
      app.add_subcommand("validate", "Check a configuration file and exit (0 valid, 2 invalid)");
  validate_cmd->add_option("FILE", validate_file, "YAML configuration file")->required();

  app.add_subcommand("version", "Print the version and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kConfigError;
  }

  if (app.got_subcommand("version")) {
    std::cout << "switchboard " << SB_VERSION << '\n';
    return 0;
  }

  options.environment = sb::core::environ_map();
  if (app.got_subcommand("validate")) {
    options.config_file = validate_file;
    options.env_local_file.reset();
    options.environment.clear();  // validate the file alone
    auto loaded = sb::core::load_config(options);
    if (!loaded.ok()) return print_errors(loaded.errors);
    std::cout << validate_file << ": ok (" << loaded.config->services.size() << " services, "
              << loaded.config->routes.size() << " routes)\n";
    return 0;
  }

  if (!config_file.empty()) options.config_file = config_file;
  options.env_files = env_files;
  if (!listen.empty()) options.cli.listen = listen;
  options.cli.threads = threads;
  if (!log_level.empty()) options.cli.log_level = log_level;
  if (!log_format.empty()) options.cli.log_format = log_format;
  return serve(options, print_config, data_dir);
}
