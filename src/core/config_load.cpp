// Loading a configuration: the YAML file read through the key declarations of
// config_schema.hpp, the rules across keys once every layer is in, and the order of the
// layers (run()). The other layers are in config_env.cpp; --print-config in
// config_render.cpp; the value formats in config_text.cpp.
#include "core/config_load.hpp"

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>
#include <type_traits>
#include <utility>

#include "core/config_schema.hpp"
#include "core/detail/config_loader.hpp"
#include "core/text.hpp"

namespace sb::core {
namespace detail {
namespace {

int line_of(const YAML::Node& n, int fallback) {
  if (n.IsNull() || n.Mark().is_null()) return fallback;
  return n.Mark().line + 1;
}

// "a list", "a map", "\"text\"" or "nothing": what was found instead of what we wanted.
std::string describe(const YAML::Node& n) {
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  if (n.IsScalar()) return quote(n.Scalar());
  return "nothing";
}

// The scalar at `f`; reports and returns nullopt for a missing value, a list or a map.
std::optional<std::string> scalar(Loader& l, const Field& f, std::string_view expected) {
  if (f.value.IsScalar()) return f.value.Scalar();
  if (f.value.IsNull())
    l.fail(f, fmt::format("missing value ({})", expected));
  else
    l.fail(f, fmt::format("{}, got {}", expected, describe(f.value)));
  return std::nullopt;
}

using schema::EmptyIsUnset;
using schema::NodeFormat;
using schema::NullIsUnset;

// Reads one YAML map through the key declarations (the schema visitor for the YAML file).
// Each declared key present in the map is parsed, checked, stored and its origin noted;
// finish() reports the keys that are not declared.
class Reader {
 public:
  Reader(Loader& l, const Field& map) : l_(l), entries_(l.map_entries(map)) {}
  // Only `entries` (a route's policy overrides, taken from the route's map).
  Reader(Loader& l, std::vector<Field> entries) : l_(l), entries_(std::move(entries)) {}

  /// Instance maps: their keys are checked but not noted (the list's origin covers them).
  void quiet() { noting_ = false; }
  /// A route: keep its request_timeout, retry, hedge and fallback for later.
  void defer_policy_to(std::vector<Field>* out) { deferred_ = out; }

  // --- the visitor ----------------------------------------------------------------------
  template <class T, class F, class... Extras>
  void key(std::string_view name, T& target, const F& format, const schema::Doc&,
           const Extras&...) {
    known_.push_back(name);
    if (const Field* e = find(name)) read_leaf(*e, target, format);
  }

  template <class S>
  void section(std::string_view name, S& sub, const schema::Doc&) {
    known_.push_back(name);
    const Field* e = find(name);
    if (e == nullptr) return;
    Reader r(l_, *e);
    schema::visit(r, sub);
    r.finish();
    if constexpr (std::is_same_v<S, FallbackConfig>) {
      if (sub.status != 0 && sub.status < 200)
        l_.fail(*e, fmt::format("status: a fallback answers with a final status (200-599), got {}",
                                sub.status));
    }
  }

  void services(std::vector<ServiceConfig>&) { collection("services", &Loader::read_services); }
  void routes(std::vector<RouteConfig>&) { collection("routes", &Loader::read_routes); }
  void webhooks(std::vector<WebhookConfig>&) { collection("webhooks", &Loader::read_webhooks); }

  void route_policy(std::optional<RequestPolicy>&) {
    static const std::vector<std::string_view> kPolicyKeys = schema::top_keys<RequestPolicy>();
    for (std::string_view name : kPolicyKeys) {
      known_.push_back(name);
      if (const Field* e = find(name); e != nullptr && deferred_ != nullptr)
        deferred_->push_back(*e);
    }
  }

  // --- after the visit --------------------------------------------------------------------
  /// Reports the keys no declaration took, with a hint.
  void finish() {
    for (const auto& e : entries_) {
      if (std::find(known_.begin(), known_.end(), e.key) != known_.end()) continue;
      std::string hint = did_you_mean(e.key, known_);
      if (hint.empty()) hint = " (known keys: " + join(known_) + ")";
      l_.fail_at(e.key_line, e.path, "unknown key" + hint);
    }
  }
  /// The line of key `name` when the map has it, else 0.
  int line_of_key(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.key == name) return e.line;
    return 0;
  }
  bool failed(std::string_view name) const {
    return std::find(failed_.begin(), failed_.end(), name) != failed_.end();
  }
  bool failed_any() const { return !failed_.empty(); }

 private:
  const Field* find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.key == name) return &e;
    return nullptr;
  }

  void collection(std::string_view name, void (Loader::*read)(const Field&)) {
    known_.push_back(name);
    if (const Field* e = find(name)) (l_.*read)(*e);
  }

  template <class T, class F>
  void read_leaf(const Field& e, T& target, const F& format) {
    const std::size_t errors_before = l_.error_count();
    read_value(e, target, format);
    if (l_.error_count() != errors_before) failed_.push_back(e.key);
  }

  template <class T, class F>
  void read_value(const Field& e, T& target, const F& format) {
    if constexpr (NodeFormat<F>) {
      read_node(e, target, format);
    } else {
      if constexpr (NullIsUnset<F>) {
        if (e.value.IsNull()) {
          if (!format.null_is_unset) {
            target.reset();
            if (noting_) l_.note(e);
          }
          return;
        }
      }
      auto s = scalar(l_, e, format.expected());
      if (!s) return;
      if constexpr (EmptyIsUnset<F>) {
        if (format.empty_is_unset && s->empty()) return;
      }
      if (auto why = format.parse(*s, target)) {
        l_.fail(e, *why);
        return;
      }
      if (noting_) l_.note(e);
    }
  }

  void read_node(const Field& e, std::vector<InstanceConfig>& t, const schema::Instances&) {
    l_.read_instances(e, t);
  }
  void read_node(const Field& e, std::map<std::string, std::string>& t, const schema::Headers& h) {
    l_.read_headers(e, t, h.reserved);
  }
  void read_node(const Field& e, std::vector<IpNetwork>& t, const schema::Networks&) {
    auto list =
        l_.read_string_list(e, "networks (e.g. 10.0.0.0/8, fd00::/8)", schema::check_network);
    if (!list) return;
    std::vector<IpNetwork> networks;
    for (const auto& s : *list) networks.push_back(*IpNetwork::parse(s));
    t = std::move(networks);
    l_.note(e);
  }
  void read_node(const Field& e, std::vector<std::string>& t, const schema::StringList& f) {
    if (auto v = l_.read_string_list(e, f.noun, f.check)) {
      t = std::move(*v);
      l_.note(e);
    }
  }

  Loader& l_;
  std::vector<Field> entries_;
  std::vector<std::string_view> known_;
  std::vector<std::string> failed_;  // keys whose value was reported
  std::vector<Field>* deferred_ = nullptr;
  bool noting_ = true;
};

// Records where a YAML document starts; ignores the rest (see Loader::load_file).
class DocumentProbe final : public YAML::EventHandler {
 public:
  YAML::Mark start;
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Errors and origins
// ---------------------------------------------------------------------------------------

void Loader::fail_at(int line, std::string_view path, std::string_view what) {
  if (path.empty())
    errors_.push_back({line, fmt::format("{}:{}: {}", file_, line, what)});
  else
    errors_.push_back({line, fmt::format("{}:{}: {}: {}", file_, line, path, what)});
}

void Loader::record(const std::string& path, std::string origin, std::string prefix, int line) {
  cfg_.origins[path] = std::move(origin);
  where_[path] = {std::move(prefix), line};
}

void Loader::note(const Field& f) {
  record(f.path, fmt::format("file {}:{}", file_, f.key_line),
         fmt::format("{}:{}: {}", file_, f.key_line, f.path), f.key_line);
}

Loader::Where Loader::where(const std::string& path) const {
  auto it = where_.find(path);
  return it == where_.end() ? Where{path, -1} : it->second;
}

void Loader::error_about(const std::string& path, std::string_view what) {
  const Where w = where(path);
  errors_.push_back({w.line, fmt::format("{}: {}", w.prefix, what)});
}

// ---------------------------------------------------------------------------------------
// The layers, in order
// ---------------------------------------------------------------------------------------

LoadResult Loader::run() {
  if (opt_.config_file) load_file(*opt_.config_file);
  load_env_layers();
  apply_env();
  apply_cli();
  check_whole();

  for (const auto& p : rendered_paths(cfg_)) cfg_.origins.emplace(p, "default");

  // Errors in the config file first, in line order; then the others as found.
  std::stable_sort(errors_.begin(), errors_.end(), [](const Pending& a, const Pending& b) {
    return a.line >= 0 && (b.line < 0 || a.line < b.line);
  });
  LoadResult result;
  for (auto& e : errors_) result.errors.push_back({std::move(e.message)});
  if (result.errors.empty()) result.config = std::move(cfg_);
  return result;
}

// ---------------------------------------------------------------------------------------
// The YAML file
// ---------------------------------------------------------------------------------------

void Loader::load_file(const std::string& path) {
  file_ = path;
  std::string why;
  auto text = read_file(path, &why);
  if (!text) {
    error(fmt::format("{}: cannot read config file: {}", path, why), 0);
    return;
  }
  YAML::Node root;
  try {
    // yaml-cpp 0.7 never finishes YAML::LoadAll on some malformed input (a stray ',' at
    // the top level, jbeder/yaml-cpp#1040), allocating until the OOM killer steps in,
    // and YAML::Load returns an empty document for it. So count the documents with the
    // event parser first, a bounded number of them, and stop when one starts where the
    // previous one did (the parser made no progress).
    std::istringstream in(*text);
    YAML::Parser parser(in);
    std::vector<YAML::Mark> starts;
    DocumentProbe probe;
    while (starts.size() < 3 && parser.HandleNextDocument(probe)) {
      if (!starts.empty() && probe.start.pos == starts.back().pos) {
        const auto pos = static_cast<std::size_t>(probe.start.pos);
        error(fmt::format("{}:{}:{}: YAML syntax error: unexpected {}", path, probe.start.line + 1,
                          probe.start.column + 1,
                          pos < text->size() ? quote(text->substr(pos, 1)) : "end of file"),
              0);
        return;
      }
      starts.push_back(probe.start);
    }
    if (starts.empty()) return;  // empty file or only comments: all defaults
    if (starts.size() > 1) {
      fail_at(starts[1].line + 1, "",
              "expected one YAML document, found more (remove the extra '---')");
      return;
    }
    root = YAML::Load(*text);               // reads the first (and only) document
  } catch (const YAML::DeepRecursion& e) {  // its message is just "bad file"
    error(fmt::format("{}:{}:{}: YAML syntax error: nested too deeply", path, e.mark.line + 1,
                      e.mark.column + 1),
          0);
    return;
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null())
      error(fmt::format("{}: YAML error: {}", path, e.msg), 0);
    else
      error(fmt::format("{}:{}:{}: YAML syntax error: {}", path, e.mark.line + 1, e.mark.column + 1,
                        e.msg),
            0);
    return;
  }
  Field f{"", "", root, line_of(root, 1), line_of(root, 1)};
  if (root.IsNull()) return;
  if (!root.IsMap()) {
    fail(f,
         "expected a map of sections (server, limits, upstream, services, routes, ...), "
         "got " +
             describe(root));
    return;
  }
  Reader top(*this, f);
  schema::visit(top, cfg_);
  top.finish();
}

// The entries of a map (null counts as empty), without duplicates (reported).
std::vector<Field> Loader::map_entries(const Field& f, std::string_view noun) {
  std::vector<Field> out;
  if (f.value.IsNull()) return out;
  if (!f.value.IsMap()) {
    fail(f, "expected a map, got " + describe(f.value));
    return out;
  }
  std::map<std::string, int> first_line;
  for (auto it = f.value.begin(); it != f.value.end(); ++it) {
    const int key_line = line_of(it->first, f.line);
    if (!it->first.IsScalar()) {
      fail_at(key_line, f.path, "keys must be plain strings (quote them)");
      continue;
    }
    std::string key = it->first.Scalar();
    std::string path = f.path.empty() ? key : f.path + "." + key;
    const auto [pos, inserted] = first_line.emplace(key, key_line);
    if (!inserted) {
      fail_at(key_line, path,
              fmt::format("duplicate {} (first defined at line {})", noun, pos->second));
      continue;
    }
    out.push_back(
        {std::move(key), std::move(path), it->second, line_of(it->second, key_line), key_line});
  }
  return out;
}

void Loader::read_services(const Field& f) {
  for (const Field& sf : map_entries(f, "service")) {
    if (auto why = schema::check_config_service_name(sf.key)) {
      fail_at(sf.key_line, sf.path, *why);
      continue;
    }
    if (!sf.value.IsMap() && !sf.value.IsNull()) {
      fail(sf, "expected a map (instances: [...], critical: ...), got " + describe(sf.value));
      continue;
    }
    ServiceConfig& s = add_service(sf.key, Source::kFile);
    service_lines_[sf.key] = sf.key_line;
    Reader r(*this, sf);
    schema::visit(r, s);
    r.finish();
  }
}

void Loader::read_instances(const Field& f, std::vector<InstanceConfig>& target) {
  if (!f.value.IsSequence()) {
    fail(f, "expected a list of URLs, got " + describe(f.value));
    bad_instances_.insert(f.path);
    return;
  }
  std::vector<InstanceConfig> out;
  std::vector<std::size_t> out_index;  // position of out[k] in the YAML list
  bool ok = true;
  std::size_t i = 0;
  for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
    const int line = line_of(*it, f.line);
    Field item{"", fmt::format("{}[{}]", f.path, i), *it, line, line};
    std::optional<InstanceConfig> inst;
    if (item.value.IsScalar()) {
      InstanceConfig c;
      if (auto why = schema::UrlValue{}.parse(item.value.Scalar(), c.url))
        fail(item, *why);
      else
        inst = std::move(c);
    } else if (!item.value.IsMap()) {
      fail(item, "expected a URL or a map (url, zone, weight), got " + describe(item.value));
    } else {
      InstanceConfig c;
      Reader r(*this, item);
      r.quiet();
      schema::visit(r, c);
      r.finish();
      if (r.line_of_key("url") == 0 && !r.failed("url"))
        fail(item, "missing key \"url\"");
      else if (!r.failed_any())
        inst = std::move(c);
    }
    if (!inst) {
      ok = false;
      continue;
    }
    for (std::size_t k = 0; k < out.size(); ++k) {
      if (same_endpoint(out[k].url, inst->url)) {
        fail(item, fmt::format("duplicate instance {} (same as {}[{}])", quote(inst->url.text),
                               f.path, out_index[k]));
        ok = false;
      }
    }
    out.push_back(std::move(*inst));
    out_index.push_back(i);
  }
  if (!ok) {
    bad_instances_.insert(f.path);
    return;
  }
  target = std::move(out);
  note(f);
}

// A map of header names to values. Names in `reserved` (lower case) are refused: the
// caller sets those headers itself.
void Loader::read_headers(const Field& x, std::map<std::string, std::string>& target,
                          const std::vector<std::string_view>& reserved) {
  if (!x.value.IsMap()) {
    fail(x, "expected a map of header names to values, got " + describe(x.value));
    return;
  }
  std::map<std::string, std::string> h;
  for (const auto& kv : x.value) {
    const std::string name = kv.first.as<std::string>("");
    const bool scalar = kv.second.IsScalar();
    const std::string value = scalar ? kv.second.Scalar() : "";
    if (name.empty() || name.find_first_of(" :\r\n\t") != std::string::npos || !scalar ||
        value.find_first_of("\r\n") != std::string::npos) {
      fail(x, fmt::format("bad header {}", quote(name)));
      return;
    }
    std::string lower = name;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::find(reserved.begin(), reserved.end(), lower) != reserved.end()) {
      fail(x, fmt::format("header {} is set by Switchboard", quote(name)));
      return;
    }
    h[name] = value;
  }
  target = std::move(h);
  note(x);
}

// A list of distinct plain strings, each checked by `check`.
std::optional<std::vector<std::string>> Loader::read_string_list(
    const Field& f, std::string_view expected,
    std::optional<std::string> (*check)(std::string_view)) {
  if (!f.value.IsSequence()) {
    fail(f, fmt::format("expected a list of {}, got {}", expected, describe(f.value)));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  std::size_t i = 0;
  for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
    const int line = line_of(*it, f.line);
    Field item{"", fmt::format("{}[{}]", f.path, i), *it, line, line};
    auto s = scalar(*this, item, fmt::format("expected one of {}", expected));
    std::optional<std::string> why;
    if (s && check != nullptr) why = check(*s);
    if (why) fail(item, *why);
    if (!s || why) {
      ok = false;
      continue;
    }
    if (std::find(out.begin(), out.end(), *s) != out.end()) {
      fail(item, fmt::format("{} is listed twice", quote(*s)));
      ok = false;
      continue;
    }
    out.push_back(*s);
  }
  if (!ok) return std::nullopt;
  return out;
}

void Loader::read_routes(const Field& f) {
  if (f.value.IsNull()) return;
  if (!f.value.IsSequence()) {
    fail(f, "expected a list of routes, got " + describe(f.value));
    return;
  }
  std::size_t i = 0;
  for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
    const int line = line_of(*it, f.line);
    Field rf{"", fmt::format("routes[{}]", i), *it, line, line};
    if (!it->IsMap()) {
      fail(rf, "expected a map (prefix, host, service, rewrite), got " + describe(*it));
      continue;
    }
    RouteConfig r;
    RouteMeta meta{line, 0};
    Reader rr(*this, rf);
    // Overrides of the service's request policy, applied once the services are complete
    // (check_whole).
    rr.defer_policy_to(&meta.policy);
    schema::visit(rr, r);
    rr.finish();
    meta.service_line = rr.line_of_key("service");
    const bool bad_field = rr.failed("prefix") || rr.failed("host");  // reported already
    if (r.prefix.empty() && r.host.empty() && !bad_field)
      fail(rf, "a route needs a prefix, a host, or both");
    if (meta.service_line == 0) fail(rf, "missing key \"service\"");
    cfg_.routes.push_back(std::move(r));
    route_meta_.push_back(meta);
  }
}

void Loader::read_webhooks(const Field& f) {
  if (f.value.IsNull()) return;
  if (!f.value.IsSequence()) {
    fail(f, "expected a list of webhooks (url, events, ...), got " + describe(f.value));
    return;
  }
  std::size_t i = 0;
  for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
    const int line = line_of(*it, f.line);
    Field wf{"", fmt::format("webhooks[{}]", i), *it, line, line};
    if (!it->IsMap()) {
      fail(wf, "expected a map (url, events, services, headers, ...), got " + describe(*it));
      cfg_.webhooks.emplace_back();  // keeps webhooks[i] the i-th item of the file
      continue;
    }
    WebhookConfig w;
    Reader r(*this, wf);
    schema::visit(r, w);
    r.finish();
    if (r.line_of_key("url") == 0) fail(wf, "missing key \"url\"");
    cfg_.webhooks.push_back(std::move(w));
  }
}

// A new service with the upstream defaults; its inherited keys say so in their origin.
ServiceConfig& Loader::add_service(const std::string& name, Source source) {
  ServiceConfig s;
  s.name = name;
  s.timeouts = cfg_.upstream.timeouts;
  s.pool = cfg_.upstream.pool;
  s.tls = cfg_.upstream.tls;
  s.source = source;
  cfg_.services.push_back(std::move(s));
  const std::string p = "services." + name;
  for (const std::string& key : schema::leaf_paths(cfg_.upstream)) {
    const std::string up = "upstream." + key;
    auto it = cfg_.origins.find(up);
    const Where w = where(up);
    record(p + "." + key,
           fmt::format("inherited from {} ({})", up,
                       it == cfg_.origins.end() ? "default" : it->second),
           w.prefix, w.line);
  }
  return cfg_.services.back();
}

ServiceConfig* Loader::find_service(std::string_view name) {
  for (auto& s : cfg_.services)
    if (s.name == name) return &s;
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// Rules across keys, once every layer is in
// ---------------------------------------------------------------------------------------

// max_idle above max_connections is an error when max_idle was written for this pool;
// a default or inherited max_idle is lowered to max_connections instead.
void Loader::check_pool(const std::string& p, PoolConfig& pool) {
  if (pool.max_idle <= pool.max_connections) return;
  const std::string key = p + ".pool.max_idle";
  auto origin = cfg_.origins.find(key);
  if (origin != cfg_.origins.end() && origin->second.rfind("file ", 0) == 0) {
    error_about(key, fmt::format("must not exceed {}.pool.max_connections ({}), got {}", p,
                                 pool.max_connections, pool.max_idle));
    return;
  }
  pool.max_idle = pool.max_connections;
  std::string was = origin == cfg_.origins.end() ? "default" : origin->second;
  cfg_.origins[key] = was + ", lowered to max_connections";
}

void Loader::check_retry(const std::string& p, const RetryConfig& r) {
  if (r.backoff_max < r.backoff_base)
    error_about(p + ".retry.backoff_max",
                fmt::format("must not be below {}.retry.backoff_base ({}), got {}", p,
                            format_duration(r.backoff_base), format_duration(r.backoff_max)));
}

void Loader::check_resilience(const std::string& p, const ServiceConfig& svc) {
  const auto& b = svc.breaker;
  if (b.max_open_duration < b.open_duration)
    error_about(
        p + ".breaker.max_open_duration",
        fmt::format("must not be below {}.breaker.open_duration ({}), got {}", p,
                    format_duration(b.open_duration), format_duration(b.max_open_duration)));
  if (b.window < Millis(b.window_buckets))
    error_about(p + ".breaker.window_buckets",
                fmt::format("buckets must be at least 1ms wide: {} buckets over {}",
                            b.window_buckets, format_duration(b.window)));
  const auto& o = svc.outlier;
  if (o.max_ejection_time < o.base_ejection_time)
    error_about(
        p + ".outlier.max_ejection_time",
        fmt::format("must not be below {}.outlier.base_ejection_time ({}), got {}", p,
                    format_duration(o.base_ejection_time), format_duration(o.max_ejection_time)));
  check_retry(p, svc.policy.retry);
}

void Loader::check_whole() {
  const auto& l = cfg_.limits;
  if (l.max_request_line > l.max_header_bytes)
    error_about("limits.max_request_line",
                fmt::format("must not exceed limits.max_header_bytes ({}), got {}",
                            l.max_header_bytes, l.max_request_line));
  check_pool("upstream", cfg_.upstream.pool);

  const auto& s = cfg_.server;
  if (s.admin_listen && s.admin_listen->port != 0 && *s.admin_listen == s.listen)
    error_about("server.admin_listen",
                fmt::format("same address as server.listen ({})", s.listen.str()));

  const auto& t = cfg_.telemetry;
  if (t.jaeger_exporter && t.jaeger_endpoint.empty())
    error_about("telemetry.jaeger_exporter",
                "the Jaeger exporter is on but telemetry.jaeger_endpoint (JAEGER_ENDPOINT) "
                "is empty");

  for (auto& svc : cfg_.services) {
    const std::string p = "services." + svc.name;
    check_pool(p, svc.pool);
    check_resilience(p, svc);
    if (!svc.instances.empty() || bad_instances_.count(p + ".instances")) continue;
    if (cfg_.origins.count(p + ".instances")) {
      error_about(p + ".instances", "no instances (the list is empty)");
      continue;
    }
    std::string hint = fmt::format("--service {}=URL", svc.name);
    for (const auto& [service, var] : schema::kEnvServices)
      if (service == svc.name) hint = std::string(var) + " or " + hint;
    auto it = service_lines_.find(svc.name);
    fail_at(it == service_lines_.end() ? 0 : it->second, p,
            fmt::format("no instances (add instances: [\"http://HOST:PORT\"], or set {})", hint));
  }

  for (std::size_t i = 0; i < cfg_.webhooks.size(); ++i) {
    const auto& w = cfg_.webhooks[i];
    if (w.backoff <= w.max_backoff) continue;
    // Blame the key that was written (a default backoff above a small max_backoff).
    const std::string p = fmt::format("webhooks[{}]", i);
    if (where_.count(p + ".backoff"))
      error_about(p + ".backoff",
                  fmt::format("must not exceed {}.max_backoff ({}), got {}", p,
                              format_duration(w.max_backoff), format_duration(w.backoff)));
    else
      error_about(p + ".max_backoff",
                  fmt::format("must be at least {}.backoff ({}), got {}", p,
                              format_duration(w.backoff), format_duration(w.max_backoff)));
  }

  std::vector<std::string_view> names;
  for (const auto& svc : cfg_.services) names.push_back(svc.name);
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const auto& r = cfg_.routes[i];
    const auto& meta = route_meta_[i];
    const ServiceConfig* svc = r.service.empty() ? nullptr : cfg_.find_service(r.service);
    if (!r.service.empty() && svc == nullptr) {
      fail_at(
          meta.service_line, fmt::format("routes[{}].service", i),
          fmt::format("unknown service {}{}", quote(r.service), did_you_mean(r.service, names)));
    }
    if (svc != nullptr) apply_route_policy(i, *svc);
    if (r.policy && r.policy->retry != svc->policy.retry)
      check_retry(fmt::format("routes[{}]", i), r.policy->retry);
    for (std::size_t j = 0; j < i; ++j) {
      const auto& o = cfg_.routes[j];
      if (o.prefix == r.prefix && o.host == r.host && (!r.prefix.empty() || !r.host.empty()))
        fail_at(
            meta.line, fmt::format("routes[{}]", i),
            fmt::format("same prefix and host as routes[{}] (line {})", j, route_meta_[j].line));
    }
  }
}

// A route's policy: its service's, with the route's keys on top. Keys the route does not
// set say where they came from.
void Loader::apply_route_policy(std::size_t i, const ServiceConfig& svc) {
  auto& r = cfg_.routes[i];
  const auto& meta = route_meta_[i];
  if (meta.policy.empty()) return;
  r.policy = svc.policy;
  {
    // The route's own keys, read with the declarations of a service's policy.
    Reader overrides(*this, meta.policy);
    schema::visit(overrides, *r.policy);
  }
  const std::string route = fmt::format("routes[{}]", i);
  for (const auto& leaf : schema::leaf_paths(*r.policy)) {
    if (cfg_.origins.count(route + "." + leaf)) continue;
    const std::string from = "services." + svc.name + "." + leaf;
    auto it = cfg_.origins.find(from);
    const Where w = where(from);
    record(route + "." + leaf,
           fmt::format("inherited from {} ({})", from,
                       it == cfg_.origins.end() ? "default" : it->second),
           w.prefix, w.line);
  }
}

}  // namespace detail

LoadResult load_config(const LoadOptions& options) { return detail::Loader(options).run(); }

}  // namespace sb::core
