#include "telemetry/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <set>
#include <stdexcept>

#include "telemetry/detail/series.hpp"

namespace sb::telemetry {

namespace {
// Constant-initialised, no destructor: an access is one %fs-relative load.
thread_local unsigned t_shard = 0;

constexpr std::string_view kOverflowLabel = "otel_metric_overflow";

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::size_t round_up(std::size_t n) {
  return (n + detail::kLine - 1) / detail::kLine * detail::kLine;
}
}  // namespace

void set_thread_shard(unsigned shard) { t_shard = shard; }
unsigned thread_shard() { return t_shard; }

const std::vector<double>& latency_buckets() {
  static const std::vector<double> b = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return b;
}

const std::vector<double>& size_buckets() {
  static const std::vector<double> b = [] {
    std::vector<double> v;
    for (double x = 64; x <= 64.0 * 1024 * 1024; x *= 4) v.push_back(x);
    return v;
  }();
  return b;
}

namespace detail {

Series::Series(Kind k, unsigned nshards, const std::vector<double>& family_bounds)
    : shards(nshards == 0 ? 1 : nshards), kind(k) {
  std::size_t head = 0;
  switch (kind) {
    case Kind::kCounter:
      head = sizeof(std::atomic<std::uint64_t>);
      break;
    case Kind::kGauge:
      head = sizeof(std::atomic<std::int64_t>);
      break;
    case Kind::kHistogram:
      own_bounds = family_bounds;
      bounds = own_bounds.data();
      nbounds = own_bounds.size();
      head = sizeof(HistogramShard) + (nbounds + 1) * sizeof(std::atomic<std::uint64_t>);
      break;
  }
  stride = round_up(head);
  cells = static_cast<std::byte*>(::operator new(stride* shards, std::align_val_t(kLine)));
  for (unsigned s = 0; s < shards; ++s) {
    std::byte* b = block(s);
    switch (kind) {
      case Kind::kCounter:
        new (b) std::atomic<std::uint64_t>(0);
        break;
      case Kind::kGauge:
        new (b) std::atomic<std::int64_t>(0);
        break;
      case Kind::kHistogram: {
        auto* h = new (b) HistogramShard();
        auto* c = reinterpret_cast<std::byte*>(h->classic());
        for (std::size_t i = 0; i <= nbounds; ++i)
          new (c + i * sizeof(std::atomic<std::uint64_t>)) std::atomic<std::uint64_t>(0);
        break;
      }
    }
  }
}

Series::~Series() {
  if (kind == Kind::kHistogram) {
    for (unsigned s = 0; s < shards; ++s) {
      HistogramShard& h = histogram_shard(s);
      for (auto& c : h.chunks) delete c.load(std::memory_order_acquire);
    }
  }
  // The cells hold only atomics of trivially destructible types.
  ::operator delete(cells, std::align_val_t(kLine));
}

unsigned Series::shard() const {
  unsigned s = t_shard;
  return s < shards ? s : s % shards;
}

double Series::counter_value() const {
  std::uint64_t n = 0;
  for (unsigned s = 0; s < shards; ++s) n += counter_cell(s).load(std::memory_order_relaxed);
  return static_cast<double>(n) + set_value.load(std::memory_order_relaxed);
}

double Series::gauge_value() const {
  std::int64_t n = 0;
  for (unsigned s = 0; s < shards; ++s) n += gauge_cell(s).load(std::memory_order_relaxed);
  return static_cast<double>(n) + set_value.load(std::memory_order_relaxed);
}

void acquire(Series* s) { s->refs.fetch_add(1, std::memory_order_relaxed); }

void release(Series* s) {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete s;
}

namespace {
template <class A, class B>
bool lex_less(const A& a, const B& b) {
  return std::lexicographical_compare(
      a.begin(), a.end(), b.begin(), b.end(),
      [](const auto& x, const auto& y) { return std::string_view(x) < std::string_view(y); });
}
}  // namespace

bool VectorLess::operator()(const std::vector<std::string>& a,
                            std::span<const std::string_view> b) const {
  return lex_less(a, b);
}
bool VectorLess::operator()(std::span<const std::string_view> a,
                            const std::vector<std::string>& b) const {
  return lex_less(a, b);
}

void append_escaped_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

Family::Family(RegistryState* st, FamilySpec s, Kind k)
    : state(st),
      spec(std::move(s)),
      kind(k),
      limit(spec.series_limit != 0 ? spec.series_limit : st->options.series_limit) {}

Family::~Family() {
  overflow_count = Counter();
  for (auto& [k, s] : series) release(s);
  if (overflow != nullptr) release(overflow);
}

Series* Family::resolve(std::span<const std::string_view> values) {
  if (values.size() != spec.labels.size())
    throw std::logic_error("metric " + spec.name + ": " + std::to_string(values.size()) +
                           " label values for " + std::to_string(spec.labels.size()) + " labels");
  auto make_series = [&](bool is_overflow, std::vector<std::string> vals) {
    auto* s = new Series(kind, state->options.shards, spec.bounds);
    s->overflow = is_overflow;
    for (std::size_t i = 0; i < vals.size(); ++i) {
      if (i > 0) s->labels_text += ',';
      s->labels_text += spec.labels[i];
      s->labels_text += "=\"";
      append_escaped_label_value(s->labels_text, vals[i]);
      s->labels_text += '"';
    }
    if (is_overflow) {
      if (!vals.empty()) s->labels_text += ',';
      s->labels_text += kOverflowLabel;
      s->labels_text += "=\"true\"";
    }
    s->values = std::move(vals);
    return s;
  };

  std::lock_guard lock(mu);
  if (auto it = series.find(values); it != series.end()) {
    it->second->idle_since.reset();
    acquire(it->second);
    return it->second;
  }
  if (series.size() < limit) {
    std::vector<std::string> key(values.begin(), values.end());
    Series* s = make_series(false, key);
    series.emplace(std::move(key), s);
    acquire(s);
    return s;
  }
  if (overflow == nullptr)
    overflow = make_series(true, std::vector<std::string>(spec.labels.size()));
  overflow->idle_since.reset();
  acquire(overflow);
  if (!overflow_count) {
    // Lock order: a family, then the overflow family (which never overflows itself).
    std::string_view name = spec.name;
    overflow_count =
        make<Counter>(state->overflow_family->resolve(std::span<const std::string_view>(&name, 1)));
  }
  overflow_count.inc();
  return overflow;
}

std::vector<Series*> Family::acquire_all() {
  std::lock_guard lock(mu);
  std::vector<Series*> out;
  out.reserve(series.size() + 1);
  for (auto& [k, s] : series) {
    acquire(s);
    out.push_back(s);
  }
  if (overflow != nullptr) {
    acquire(overflow);
    out.push_back(overflow);
  }
  return out;
}

void Family::sweep(core::SteadyTime now, core::Duration ttl) {
  // refs == 1: only the registry holds the series. No handle can appear meanwhile: with()
  // takes this lock, and copying a handle needs one.
  auto idle_for_long = [&](Series* s) {
    if (s->refs.load(std::memory_order_acquire) != 1) return false;
    if (!s->idle_since) s->idle_since = now;
    return now - *s->idle_since >= ttl;
  };
  std::lock_guard lock(mu);
  for (auto it = series.begin(); it != series.end();) {
    if (idle_for_long(it->second)) {
      release(it->second);
      it = series.erase(it);
    } else {
      ++it;
    }
  }
  if (overflow != nullptr && idle_for_long(overflow)) {
    release(overflow);
    overflow = nullptr;
  }
}

std::size_t Family::size() const {
  std::lock_guard lock(mu);
  return series.size() + (overflow != nullptr ? 1 : 0);
}

std::vector<Family*> RegistryState::family_list() const {
  std::lock_guard lock(mu);
  std::vector<Family*> out;
  out.reserve(families.size());
  for (auto& f : families) out.push_back(f.get());
  return out;
}

}  // namespace detail

// SeriesRef ---------------------------------------------------------------------------------

SeriesRef::SeriesRef(detail::Series* s) : series_(s) {}
SeriesRef::SeriesRef(const SeriesRef& o) : series_(o.series_) {
  if (series_ != nullptr) detail::acquire(series_);
}
SeriesRef& SeriesRef::operator=(const SeriesRef& o) {
  if (this != &o) {
    if (o.series_ != nullptr) detail::acquire(o.series_);
    if (series_ != nullptr) detail::release(series_);
    series_ = o.series_;
  }
  return *this;
}
SeriesRef::SeriesRef(SeriesRef&& o) noexcept : series_(std::exchange(o.series_, nullptr)) {}
SeriesRef& SeriesRef::operator=(SeriesRef&& o) noexcept {
  if (this != &o) {
    if (series_ != nullptr) detail::release(series_);
    series_ = std::exchange(o.series_, nullptr);
  }
  return *this;
}
SeriesRef::~SeriesRef() {
  if (series_ != nullptr) detail::release(series_);
}

// Counter, Gauge, Histogram -----------------------------------------------------------------

void Counter::add(std::uint64_t n) const {
  detail::Series* s = series_;
  if (s == nullptr) return;
  s->counter_cell(s->shard()).fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t Counter::value() const {
  if (series_ == nullptr) return 0;
  return static_cast<std::uint64_t>(series_->counter_value());
}

void Gauge::add(std::int64_t delta) const {
  detail::Series* s = series_;
  if (s == nullptr) return;
  s->gauge_cell(s->shard()).fetch_add(delta, std::memory_order_relaxed);
}

void Gauge::set(double v) const {
  if (series_ != nullptr) series_->set_value.store(v, std::memory_order_relaxed);
}

double Gauge::value() const { return series_ == nullptr ? 0 : series_->gauge_value(); }

void Histogram::observe(double v) const {
  detail::Series* s = series_;
  if (s == nullptr || std::isnan(v)) return;  // a NaN would poison the sum for good
  detail::HistogramShard& h = s->histogram_shard(s->shard());
  std::size_t i =
      static_cast<std::size_t>(std::lower_bound(s->bounds, s->bounds + s->nbounds, v) - s->bounds);
  h.classic()[i].fetch_add(1, std::memory_order_relaxed);
  h.sum.fetch_add(v, std::memory_order_relaxed);
  if (!(v > HistogramSnapshot::kZeroThreshold)) {
    h.zero.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  detail::NativeSlot ns = detail::native_slot(v);
  std::atomic<detail::Chunk*>& slot = h.chunks[ns.chunk];
  detail::Chunk* c = slot.load(std::memory_order_acquire);
  if (c == nullptr) [[unlikely]] {
    auto* fresh = new detail::Chunk();
    if (slot.compare_exchange_strong(c, fresh, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      c = fresh;
      h.present[ns.chunk / 64].fetch_or(std::uint64_t{1} << (ns.chunk % 64),
                                        std::memory_order_release);
    } else {
      delete fresh;  // another thread of this shard got there first; c is its chunk
    }
  }
  c->n[ns.slot].fetch_add(1, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::snapshot() const {
  if (series_ == nullptr) return {};
  return series_->histogram_snapshot();
}

// Family<Handle> ----------------------------------------------------------------------------

template <class Handle>
Handle Family<Handle>::with(std::initializer_list<std::string_view> values) {
  return detail::Family::make<Handle>(
      f_->resolve(std::span<const std::string_view>(values.begin(), values.size())));
}

template <class Handle>
Handle Family<Handle>::with(const std::vector<std::string>& values) {
  std::vector<std::string_view> v(values.begin(), values.end());
  return detail::Family::make<Handle>(f_->resolve(v));
}

template <class Handle>
const std::string& Family<Handle>::name() const {
  return f_->spec.name;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// Registry ----------------------------------------------------------------------------------

namespace {
// The names a family's samples use, to refuse two families that would write the same one.
std::vector<std::string> sample_names(const FamilySpec& spec, Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return {spec.name + "_total"};
    case Kind::kGauge:
      return {spec.name};
    case Kind::kHistogram:
      return {spec.name, spec.name + "_bucket", spec.name + "_count", spec.name + "_sum"};
  }
  return {};
}

void validate(FamilySpec& spec, Kind kind) {
  auto fail = [&](const std::string& why) {
    throw std::logic_error("metric " + spec.name + ": " + why);
  };
  if (!valid_metric_name(spec.name)) fail("not a valid metric name");
  if (kind == Kind::kCounter && spec.name.ends_with("_total"))
    fail("a counter is named without _total (the exposition adds it)");
  std::set<std::string_view> seen;
  for (const auto& l : spec.labels) {
    if (!valid_label_name(l)) fail("label '" + l + "' is not a valid label name");
    if (l == kOverflowLabel) fail("label '" + l + "' is reserved");
    if (kind == Kind::kHistogram && l == "le") fail("a histogram cannot have the label 'le'");
    if (!seen.insert(l).second) fail("label '" + l + "' appears twice");
  }
  if (kind != Kind::kHistogram) {
    if (!spec.bounds.empty()) fail("only a histogram has bucket bounds");
    return;
  }
  if (spec.bounds.empty()) spec.bounds = latency_buckets();
  if (std::isinf(spec.bounds.back()) && spec.bounds.back() > 0) spec.bounds.pop_back();
  for (std::size_t i = 0; i < spec.bounds.size(); ++i) {
    if (!std::isfinite(spec.bounds[i])) fail("bucket bounds must be finite");
    if (i > 0 && !(spec.bounds[i - 1] < spec.bounds[i])) fail("bucket bounds must ascend");
  }
}

bool same_spec(const FamilySpec& a, const FamilySpec& b) {
  return a.name == b.name && a.help == b.help && a.labels == b.labels && a.bounds == b.bounds &&
         a.series_limit == b.series_limit;
}

detail::Family& register_family(detail::RegistryState& st, FamilySpec spec, Kind kind) {
  validate(spec, kind);
  std::lock_guard lock(st.mu);
  auto names = sample_names(spec, kind);
  for (auto& f : st.families) {
    if (f->spec.name == spec.name) {
      if (f->kind != kind || !same_spec(f->spec, spec))
        throw std::logic_error("metric " + spec.name + " is registered twice with different specs");
      return *f;
    }
    for (const auto& theirs : sample_names(f->spec, f->kind))
      for (const auto& ours : names)
        if (theirs == ours)
          throw std::logic_error("metric " + spec.name + " would write " + ours +
                                 ", which metric " + f->spec.name + " writes");
  }
  st.families.push_back(std::make_unique<detail::Family>(&st, std::move(spec), kind));
  return *st.families.back();
}
}  // namespace

Registry::Registry(RegistryOptions options)
    : state_(std::make_unique<detail::RegistryState>(options)) {
  if (state_->options.shards == 0) state_->options.shards = 1;
  if (state_->options.series_limit == 0) state_->options.series_limit = 1;
  state_->overflow_family = &register_family(
      *state_,
      FamilySpec{.name = "switchboard_metric_series_overflow",
                 .help = "Label sets that went to a metric's overflow series "
                         "(otel_metric_overflow=\"true\") because the metric held its series cap",
                 .labels = {"metric"},
                 .series_limit = std::numeric_limits<std::size_t>::max()},
      Kind::kCounter);
}

Registry::~Registry() {
  // Families release their overflow counters (series of the overflow family) first.
  for (auto& f : state_->families) f->overflow_count = Counter();
}

Family<Counter>& Registry::counter(FamilySpec spec) {
  detail::Family& f = register_family(*state_, std::move(spec), Kind::kCounter);
  std::lock_guard lock(state_->mu);
  if (!f.as_counter) f.as_counter.reset(new Family<Counter>(&f));
  return *f.as_counter;
}

Family<Gauge>& Registry::gauge(FamilySpec spec) {
  detail::Family& f = register_family(*state_, std::move(spec), Kind::kGauge);
  std::lock_guard lock(state_->mu);
  if (!f.as_gauge) f.as_gauge.reset(new Family<Gauge>(&f));
  return *f.as_gauge;
}

Family<Histogram>& Registry::histogram(FamilySpec spec) {
  detail::Family& f = register_family(*state_, std::move(spec), Kind::kHistogram);
  std::lock_guard lock(state_->mu);
  if (!f.as_histogram) f.as_histogram.reset(new Family<Histogram>(&f));
  return *f.as_histogram;
}

void Registry::add_collector(std::function<void()> collect) {
  std::lock_guard lock(state_->mu);
  state_->collectors.push_back(std::make_shared<const std::function<void()>>(std::move(collect)));
}

void Registry::sweep(core::SteadyTime now) {
  for (detail::Family* f : state_->family_list()) f->sweep(now, state_->options.series_idle_ttl);
}

std::size_t Registry::series_count() const {
  std::size_t n = 0;
  for (detail::Family* f : state_->family_list()) n += f->size();
  return n;
}

const RegistryOptions& Registry::options() const { return state_->options; }

}  // namespace sb::telemetry
