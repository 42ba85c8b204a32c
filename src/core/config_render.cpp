// --print-config (render_config) and the key tables of docs/configuration.md
// (render_config_docs), both walked from the key declarations of config_schema.hpp.
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "core/config_load.hpp"
#include "core/config_schema.hpp"
#include "core/detail/config_loader.hpp"
#include "core/text.hpp"

namespace sb::core {
namespace {

using schema::EmptyIsUnset;
using schema::NullIsUnset;

// Walks the configuration in declaration order. Each leaf goes out as "key: value  #
// origin"; `paths`, when set, collects every leaf key path too.
class Renderer {
 public:
  Renderer(const Config& c, std::vector<std::string>* paths) : c_(c), paths_(paths) {}

  std::string run() {
    out_ =
        "# Effective Switchboard configuration. After each value: where it came from.\n"
        "# This is itself a valid config file.\n";
    // The visitor protocol takes fields by non-const reference; the renderer only reads.
    schema::visit(*this, const_cast<Config&>(c_));
    return std::move(out_);
  }

  // --- the visitor ----------------------------------------------------------------------
  template <class T, class F, class... X>
  void key(std::string_view name, T& value, const F& format, const schema::Doc&, const X&...) {
    // Route keys that may be left out are shown only when set.
    if constexpr (EmptyIsUnset<F>) {
      if (format.empty_is_unset && value.empty()) return;
    }
    if constexpr (NullIsUnset<F>) {
      if (format.null_is_unset && !value) return;
    }
    leaf(name, format.render(value));
  }

  template <class S>
  void section(std::string_view name, S& sub, const schema::Doc&) {
    header(name);
    nested(std::string(name), [&] { schema::visit(*this, sub); });
  }

  void services(std::vector<ServiceConfig>& services) {
    if (services.empty()) {
      out_ += "services: {}\n";
      return;
    }
    header("services");
    nested("services", [&] {
      for (auto& svc : services) {
        header(svc.name == "null" ? quote(svc.name) : svc.name);
        nested(svc.name, [&] { schema::visit(*this, svc); });
      }
    });
  }

  void routes(std::vector<RouteConfig>& routes) { list("routes", routes); }
  void webhooks(std::vector<WebhookConfig>& webhooks) { list("webhooks", webhooks); }

  void route_policy(std::optional<RequestPolicy>& policy) {
    if (policy) schema::visit(*this, *policy);
  }

 private:
  // A list of maps: "name:" then each item's first key after "  - ".
  template <class T>
  void list(std::string_view name, std::vector<T>& items) {
    if (items.empty()) {
      out_ += fmt::format("{}: []\n", name);
      return;
    }
    header(name);
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::string saved_path = path_;
      const int saved_indent = indent_;
      path_ = fmt::format("{}[{}]", name, i);
      indent_ = 4;
      lead_ = "  - ";
      schema::visit(*this, items[i]);
      lead_.clear();
      path_ = saved_path;
      indent_ = saved_indent;
    }
  }

  template <class Fn>
  void nested(const std::string& key, Fn&& fn) {
    const std::string saved = path_;
    path_ = path_.empty() ? key : path_ + "." + key;
    indent_ += 2;
    fn();
    indent_ -= 2;
    path_ = saved;
  }

  void indent() {
    if (lead_.empty()) {
      out_.append(static_cast<std::size_t>(indent_), ' ');
    } else {
      out_ += lead_;
      lead_.clear();
    }
  }

  void header(std::string_view key) {
    indent();
    out_ += key;
    out_ += ":\n";
  }

  void leaf(std::string_view key, const std::string& value) {
    const std::string path = path_ + "." + std::string(key);
    if (paths_ != nullptr) paths_->push_back(path);
    indent();
    out_ += key;
    out_ += ": ";
    out_ += value;
    auto it = c_.origins.find(path);
    std::string origin = it == c_.origins.end() ? "default" : it->second;
    std::replace(origin.begin(), origin.end(), '\n', ' ');
    out_ += "  # ";
    out_ += origin;
    out_ += '\n';
  }

  const Config& c_;
  std::vector<std::string>* paths_;
  std::string out_;
  std::string path_;
  std::string lead_;  // replaces the indentation of the next line ("  - ": a list item)
  int indent_ = 0;
};

// ---------------------------------------------------------------------------------------
// The docs tables
// ---------------------------------------------------------------------------------------

// "|" in a cell would end it.
std::string cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else
      out += c;
  }
  return out;
}

struct Row {
  std::string key, type, default_value, meaning, also;
};

// Collects the rows of one docs table: the keys of one struct, nested sections with no
// text of their own flattened ("timeouts.connect"), the others as one row.
class DocRows : public schema::SectionWalker<DocRows> {
 public:
  template <class T, class F, class... X>
  void key(std::string_view name, T& value, const F& format, const schema::Doc& doc,
           const X&... extras) {
    Row r;
    r.key = fmt::format("`{}{}`", prefix, name);
    r.type = cell(format.type());
    r.default_value = doc.default_text.empty() ? fmt::format("`{}`", format.render(value))
                                               : std::string(doc.default_text);
    r.meaning = cell(doc.text);
    (also(r, extras), ...);
    rows.push_back(std::move(r));
  }
  template <class S>
  void section(std::string_view name, S& sub, const schema::Doc& doc) {
    if (!doc.text.empty()) {
      rows.push_back({fmt::format("`{}{}`", prefix, name), "map",
                      doc.default_text.empty() ? "see below" : std::string(doc.default_text),
                      cell(doc.text), ""});
      return;
    }
    SectionWalker::section(name, sub, doc);
  }
  template <class P>
  void route_policy(P&) {
    rows.push_back(
        {"`request_timeout`, `retry`, `hedge`, `fallback`", "maps", "the service's",
         "override the service's request policy for this route ([resilience](#resilience))", ""});
  }

  std::vector<Row> rows;

 private:
  template <class C>
  static void also(Row& r, const schema::Env<C>& e) {
    r.also = fmt::format("`{}`", e.name);
  }
  template <class C>
  static void also(Row& r, const schema::Cli<C>& c) {
    r.also = c.arg.empty() ? fmt::format("`{}`", c.flag) : fmt::format("`{} {}`", c.flag, c.arg);
    if (!c.after.empty()) r.also += fmt::format(" {}", c.after);
  }
};

template <class S>
std::string table_of() {
  DocRows v;
  S defaults{};
  schema::visit(v, defaults);
  const bool also =
      std::any_of(v.rows.begin(), v.rows.end(), [](const Row& r) { return !r.also.empty(); });
  std::string out = also ? "| key | type | default | meaning | also set by |\n"
                           "| --- | --- | --- | --- | --- |\n"
                         : "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const auto& r : v.rows) {
    out += fmt::format("| {} | {} | {} | {} |", r.key, r.type, r.default_value, r.meaning);
    if (also) out += r.also.empty() ? " |" : fmt::format(" {} |", r.also);
    out += '\n';
  }
  return out;
}

// The environment variables: those of the declarations, then the services' ones.
struct EnvRows : schema::SectionWalker<EnvRows> {
  template <class T, class F, class... X>
  void key([[maybe_unused]] std::string_view name, T&, const F&, const schema::Doc&,
           const X&... extras) {
    (add(name, extras), ...);
  }
  template <class C>
  void add(std::string_view name, const schema::Env<C>& e) {
    out += fmt::format("| `{}` | `{}{}` | {} |\n", e.name, prefix, name, cell(e.format.type()));
  }
  template <class C>
  void add(std::string_view, const schema::Cli<C>&) {}
  std::string out;
};

std::string env_table() {
  std::string out = "| variable | sets | value |\n| --- | --- | --- |\n";
  for (const auto& s : schema::kEnvServices)
    out += fmt::format("| `{}` | `services.{}.instances` | URL or comma-separated URLs |\n",
                       s.variable, s.service);
  EnvRows v;
  Config defaults;
  schema::visit(v, defaults);
  return out + v.out;
}

}  // namespace

namespace detail {
std::vector<std::string> rendered_paths(const Config& config) {
  std::vector<std::string> paths;
  Renderer(config, &paths).run();
  return paths;
}
}  // namespace detail

std::string render_config(const Config& config) { return Renderer(config, nullptr).run(); }

std::optional<std::string> config_docs_table(std::string_view name) {
  if (name == "server") return table_of<ServerConfig>();
  if (name == "api") return table_of<ApiConfig>();
  if (name == "limits") return table_of<LimitsConfig>();
  if (name == "upstream") return table_of<UpstreamDefaults>();
  if (name == "drain") return table_of<DrainConfig>();
  if (name == "logging") return table_of<LoggingConfig>();
  if (name == "health") return table_of<HealthConfig>();
  if (name == "telemetry") return table_of<TelemetryConfig>();
  if (name == "services") return table_of<ServiceConfig>();
  if (name == "breaker") return table_of<BreakerConfig>();
  if (name == "outlier") return table_of<OutlierConfig>();
  if (name == "balancer") return table_of<BalancerConfig>();
  if (name == "retry") return table_of<RetryConfig>();
  if (name == "hedge") return table_of<HedgeConfig>();
  if (name == "fallback") return table_of<FallbackConfig>();
  if (name == "routes") return table_of<RouteConfig>();
  if (name == "webhooks") return table_of<WebhookConfig>();
  if (name == "environment") return env_table();
  return std::nullopt;
}

std::vector<std::string_view> config_docs_tables() {
  return {"server", "api",       "limits",   "upstream", "drain",    "logging",
          "health", "telemetry", "services", "breaker",  "outlier",  "balancer",
          "retry",  "hedge",     "fallback", "routes",   "webhooks", "environment"};
}

}  // namespace sb::core
