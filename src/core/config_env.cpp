// The layers above the config file: dotenv files and the process environment (only the
// variables the key declarations name, see config_schema.hpp), then the command line.
#include <fmt/format.h>

#include <sys/stat.h>

#include <cerrno>
#include <set>
#include <string>

#include "core/config_schema.hpp"
#include "core/detail/config_loader.hpp"
#include "core/dotenv.hpp"
#include "core/text.hpp"

extern char** environ;  // NOLINT: POSIX

namespace sb::core {
namespace detail {
namespace {

// Collects the variables the declarations name (env extras), and the services' variables.
struct EnvNames : schema::SectionWalker<EnvNames> {
  template <class T, class F, class... X>
  void key(std::string_view, T&, const F&, const schema::Doc&, const X&... extras) {
    (add(extras), ...);
  }
  template <class C>
  void add(const schema::Env<C>& e) {
    names.insert(std::string(e.name));
  }
  template <class C>
  void add(const schema::Cli<C>&) {}

  std::set<std::string, std::less<>> names;
};

const std::set<std::string, std::less<>>& honoured_names() {
  static const auto names = [] {
    EnvNames v;
    Config c;
    schema::visit(v, c);
    for (const auto& s : schema::kEnvServices) v.names.insert(std::string(s.variable));
    return v.names;
  }();
  return names;
}

bool honoured(std::string_view name) { return honoured_names().count(name) > 0; }

// Applies the environment (Env extras) or the command line (Cli extras) to the keys of the
// global sections, recording origins; errors name the variable or the flag.
class LayerApplier : public schema::SectionWalker<LayerApplier> {
 public:
  LayerApplier(Loader& l, const std::map<std::string_view, std::string>* cli) : l_(l), cli_(cli) {}

  template <class T, class F, class... X>
  void key([[maybe_unused]] std::string_view name, [[maybe_unused]] T& target, const F&,
           const schema::Doc&, const X&... extras) {
    (apply(name, target, extras), ...);
  }

 private:
  template <class T, class C>
  void apply(std::string_view name, T& target, const schema::Env<C>& e) {
    if (cli_ != nullptr) return;
    const EnvValue* v = l_.env(e.name);
    if (v == nullptr) return;
    if (auto why = e.format.parse(v->value, target))
      l_.error(fmt::format("{}: {}", v->where, *why));
    else
      l_.record(prefix + std::string(name), v->origin, v->where);
  }
  template <class T, class C>
  void apply(std::string_view name, T& target, const schema::Cli<C>& c) {
    if (cli_ == nullptr) return;
    auto it = cli_->find(c.flag);
    if (it == cli_->end()) return;
    const std::string w = fmt::format("command line {}", c.flag);
    if (auto why = c.format.parse(it->second, target))
      l_.error(fmt::format("{}: {}", w, *why));
    else
      l_.record(prefix + std::string(name), w, w);
  }

  Loader& l_;
  const std::map<std::string_view, std::string>* cli_;  // null: apply the environment
};

}  // namespace

void Loader::load_dotenv(const std::string& path, bool required) {
  struct stat st {};
  if (!required && ::stat(path.c_str(), &st) != 0 && errno == ENOENT) return;
  std::string why;
  auto text = read_file(path, &why);
  if (!text) {
    error(fmt::format("{}: cannot read env file: {}", path, why));
    return;
  }
  auto parsed = parse_dotenv(*text);
  for (const auto& e : parsed.errors) error(fmt::format("{}:{}: {}", path, e.line, e.message));
  for (const auto& e : parsed.entries) {
    if (!honoured(e.key)) continue;
    env_[e.key] = {std::string(trim(e.value)),
                   fmt::format("env-file {}:{} ({})", path, e.line, e.key),
                   fmt::format("{}:{}: {}", path, e.line, e.key)};
  }
}

void Loader::load_env_layers() {
  for (const auto& f : opt_.env_files) load_dotenv(f, true);
  if (opt_.env_local_file) load_dotenv(*opt_.env_local_file, false);
  for (const auto& [k, v] : opt_.environment) {
    if (!honoured(k)) continue;
    env_[k] = {std::string(trim(v)), "env " + k, "env " + k};
  }
}

// An empty variable counts as unset (as with `LLM_SERVICE_URL=` in a compose file).
const EnvValue* Loader::env(std::string_view name) const {
  auto it = env_.find(std::string(name));
  return it == env_.end() || it->second.value.empty() ? nullptr : &it->second;
}

// Parses "URL[,URL...]"; reports errors with `where` as the prefix.
std::optional<std::vector<InstanceConfig>> Loader::parse_url_list(std::string_view text,
                                                                  const std::string& where_prefix) {
  std::vector<InstanceConfig> out;
  bool ok = true;
  for (const auto& item : split_list(text)) {
    if (item.empty()) {
      error(fmt::format("{}: empty URL in the list {}", where_prefix, quote(text)));
      ok = false;
      continue;
    }
    std::string why;
    auto u = parse_upstream_url(item, &why);
    if (!u) {
      error(fmt::format("{}: bad URL {}: {}", where_prefix, quote(item), why));
      ok = false;
      continue;
    }
    for (const auto& prev : out) {
      if (same_endpoint(prev.url, *u)) {
        error(fmt::format("{}: duplicate instance {}", where_prefix, quote(item)));
        ok = false;
      }
    }
    out.push_back({*u, "", 1});
  }
  if (!ok) return std::nullopt;
  return out;
}

// Registers `name` or replaces its instances (other settings of the service stay).
void Loader::set_service_instances(const std::string& name, std::vector<InstanceConfig> instances,
                                   Source source, const std::string& origin, const std::string& w) {
  ServiceConfig* s = find_service(name);
  if (s == nullptr) s = &add_service(name, source);
  s->instances = std::move(instances);
  s->source = source;
  record("services." + name + ".instances", origin, w);
}

void Loader::apply_env() {
  for (const auto& [service, var] : schema::kEnvServices) {
    const EnvValue* v = env(var);
    if (v == nullptr) continue;
    if (auto list = parse_url_list(v->value, v->where))
      set_service_instances(std::string(service), std::move(*list), Source::kEnvironment, v->origin,
                            v->where);
  }
  LayerApplier env_layer(*this, nullptr);
  schema::visit(env_layer, cfg_);
}

void Loader::apply_cli() {
  const CliOverrides& cli = opt_.cli;
  // One flag at a time, in the order of CliOverrides (so are its errors).
  auto apply = [&](std::string_view flag, std::string value) {
    const std::map<std::string_view, std::string> flags{{flag, std::move(value)}};
    LayerApplier layer(*this, &flags);
    schema::visit(layer, cfg_);
  };
  if (cli.listen) apply("--listen", *cli.listen);
  std::set<std::string> seen;
  for (const auto& arg : cli.services) {
    const std::string w = "command line --service";
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
      error(fmt::format("{}: expected NAME=URL[,URL...], got {}", w, quote(arg)));
      continue;
    }
    const std::string name = arg.substr(0, eq);
    if (auto why = schema::check_config_service_name(name)) {
      error(fmt::format("{}: {}: {}", w, quote(name), *why));
      continue;
    }
    if (!seen.insert(name).second) {
      error(fmt::format("{}: service {} given twice", w, quote(name)));
      continue;
    }
    if (auto list = parse_url_list(std::string_view(arg).substr(eq + 1), w + " " + name))
      set_service_instances(name, std::move(*list), Source::kCommandLine, w, w);
  }
  if (cli.threads) apply("--threads", std::to_string(*cli.threads));
  if (cli.log_level) apply("--log-level", *cli.log_level);
  if (cli.log_format) apply("--log-format", *cli.log_format);
}

}  // namespace detail

std::map<std::string, std::string> environ_map() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return out;
}

}  // namespace sb::core
