// The loader's state, shared by its parts: config_load.cpp (the YAML file and the rules
// across keys), config_env.cpp (dotenv files, the environment and the command line) and
// config_render.cpp (the leaf paths that get "default" origins). Internal to sb_core.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_load.hpp"

namespace sb::core::detail {

/// One map entry or list item of the YAML file, with its key path and line.
struct Field {
  std::string key;   // the last path component as written ("" for list items)
  std::string path;  // "limits.header_timeout", "services.x.instances[1]"
  YAML::Node value;
  int line = 0;      // 1-based line of the value (of the key when the value is empty)
  int key_line = 0;  // 1-based line of the key (= line for list items)
};

/// An honoured variable's effective value (from a dotenv file or the environment).
struct EnvValue {
  std::string value;   // trimmed
  std::string origin;  // "env NAME" or "env-file PATH:LINE (NAME)"
  std::string where;   // error prefix: "env NAME" or "PATH:LINE: NAME"
};

/// The leaf key paths --print-config shows for `config`, in its order.
std::vector<std::string> rendered_paths(const Config& config);

class Loader {
 public:
  explicit Loader(const LoadOptions& options) : opt_(options) {}
  LoadResult run();

  // --- errors and origins (any part) -------------------------------------------------
  /// An error not located in the config file (line -1), or at `line` of it (0: the whole).
  void error(std::string message, int line = -1) { errors_.push_back({line, std::move(message)}); }
  /// An error at `line` of the config file.
  void fail_at(int line, std::string_view path, std::string_view what);
  void fail(const Field& f, std::string_view what) { fail_at(f.line, f.path, what); }

  /// Where the value at a path came from, for Config::origins and for error messages.
  struct Where {
    std::string prefix;  // "FILE:LINE: path", "env NAME", "command line --flag"
    int line = -1;       // its line in the config file, else -1
  };
  void record(const std::string& path, std::string origin, std::string prefix, int line = -1);
  /// The value at `f` came from the file.
  void note(const Field& f);
  Where where(const std::string& path) const;
  /// An error about the value at `path`, wherever it came from.
  void error_about(const std::string& path, std::string_view what);

  std::size_t error_count() const { return errors_.size(); }
  Config& config() { return cfg_; }
  const std::string& file() const { return file_; }

  // --- the YAML file (config_load.cpp) -------------------------------------------------
  void load_file(const std::string& path);
  /// The entries of a map (null counts as empty), without duplicates (reported).
  std::vector<Field> map_entries(const Field& f, std::string_view noun = "key");
  void read_services(const Field& f);
  void read_routes(const Field& f);
  void read_webhooks(const Field& f);
  void read_instances(const Field& f, std::vector<InstanceConfig>& target);
  void read_headers(const Field& f, std::map<std::string, std::string>& target,
                    const std::vector<std::string_view>& reserved);
  std::optional<std::vector<std::string>> read_string_list(
      const Field& f, std::string_view noun, std::optional<std::string> (*check)(std::string_view));

  /// A new service with the upstream defaults; its inherited keys say so in their origin.
  ServiceConfig& add_service(const std::string& name, Source source);
  ServiceConfig* find_service(std::string_view name);

  // --- dotenv files, the environment, the command line (config_env.cpp) ------------------
  void load_env_layers();
  void apply_env();
  void apply_cli();
  /// An honoured variable's effective value; nullptr when unset or empty.
  const EnvValue* env(std::string_view name) const;

 private:
  void load_dotenv(const std::string& path, bool required);
  std::optional<std::vector<InstanceConfig>> parse_url_list(std::string_view text,
                                                            const std::string& where_prefix);
  void set_service_instances(const std::string& name, std::vector<InstanceConfig> instances,
                             Source source, const std::string& origin, const std::string& w);

  // --- rules across keys, once every layer is in (config_load.cpp) -----------------------
  void check_whole();
  void check_pool(const std::string& p, PoolConfig& pool);
  void check_retry(const std::string& p, const RetryConfig& r);
  void check_resilience(const std::string& p, const ServiceConfig& svc);
  void apply_route_policy(std::size_t i, const ServiceConfig& svc);

  struct RouteMeta {
    int line = 0;                 // the route's first line
    int service_line = 0;         // 0: no `service` key
    std::vector<Field> policy{};  // request_timeout, retry, hedge, fallback overrides
  };
  struct Pending {
    int line;  // in the config file; -1: elsewhere
    std::string message;
  };

  const LoadOptions& opt_;
  Config cfg_;
  std::vector<Pending> errors_;
  std::string file_;                          // the config file, as named in messages
  std::map<std::string, Where> where_;        // key path -> where its value came from
  std::set<std::string> bad_instances_;       // instance-list paths whose list had errors
  std::map<std::string, int> service_lines_;  // service defined in the file -> its line
  std::vector<RouteMeta> route_meta_;         // parallel to cfg_.routes
  std::map<std::string, EnvValue> env_;       // effective honoured variables
};

}  // namespace sb::core::detail
