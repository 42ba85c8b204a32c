// Writing a scrape: Prometheus text 0.0.4, OpenMetrics 1.0 text, delimited protobuf
// MetricFamily messages (with native histograms); Accept negotiation; gzip.
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "metrics.pb.h"
#include "telemetry/detail/series.hpp"
#include "telemetry/metrics.hpp"

namespace sb::telemetry {

namespace {

namespace pb = io::prometheus::client;

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// HELP text: the text format escapes \ and newline; OpenMetrics also escapes ".
void append_help(std::string& out, std::string_view help, bool openmetrics) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && openmetrics) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

/// The unit OpenMetrics announces in # UNIT: the suffix of the family name, if it is one.
std::string_view unit_of(std::string_view name) {
  for (std::string_view u : {"seconds", "bytes", "ratio"}) {
    if (name.size() > u.size() + 1 && name.ends_with(u) && name[name.size() - u.size() - 1] == '_')
      return u;
  }
  return {};
}

/// A counter's value: an exact integer unless a collector set a base from outside.
struct CounterValue {
  std::uint64_t sum;
  double base;
};
CounterValue read_counter(const detail::Series& s) {
  std::uint64_t n = 0;
  for (unsigned i = 0; i < s.shards; ++i) n += s.counter_cell(i).load(std::memory_order_relaxed);
  return {n, s.set_value.load(std::memory_order_relaxed)};
}
void append_counter(std::string& out, const CounterValue& v) {
  if (v.base == 0) {
    append_uint(out, v.sum);
  } else {
    append_double(out, static_cast<double>(v.sum) + v.base);
  }
}

/// One sample line up to its value: name+suffix{labels,extra}. The caller appends the value
/// and ends the line (an OpenMetrics exemplar, when there is one, goes between the two).
void begin_sample(std::string& out, std::string_view name, std::string_view suffix,
                  const detail::Series& s, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  out += name;
  out += suffix;
  bool labels = !s.labels_text.empty();
  bool extra = !extra_name.empty();
  if (labels || extra) {
    out += '{';
    out += s.labels_text;
    if (extra) {
      if (labels) out += ',';
      out += extra_name;
      out += "=\"";
      out += extra_value;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
}

/// The text formats (0.0.4 and OpenMetrics differ in the metadata lines, HELP escaping, the
/// family name of a counter and the trailing # EOF).
void write_text_family(std::string& out, const detail::Family& f,
                       const std::vector<detail::Series*>& series, bool om) {
  const std::string& name = f.spec.name;
  std::string_view type = f.kind == Kind::kCounter ? "counter"
                          : f.kind == Kind::kGauge ? "gauge"
                                                   : "histogram";
  // Text 0.0.4 names a counter family with its _total; OpenMetrics without.
  std::string meta_name = name;
  if (f.kind == Kind::kCounter && !om) meta_name += "_total";
  out += "# HELP ";
  out += meta_name;
  out += ' ';
  append_help(out, f.spec.help, om);
  out += "\n# TYPE ";
  out += meta_name;
  out += ' ';
  out += type;
  out += '\n';
  if (om) {
    if (std::string_view unit = unit_of(name); !unit.empty()) {
      out += "# UNIT ";
      out += name;
      out += ' ';
      out += unit;
      out += '\n';
    }
  }
  std::vector<std::string> les;  // the le values, formatted once for the family
  for (double b : f.spec.bounds) append_double(les.emplace_back(), b);
  les.emplace_back("+Inf");
  for (const detail::Series* s : series) {
    switch (f.kind) {
      case Kind::kCounter:
        begin_sample(out, name, "_total", *s);
        append_counter(out, read_counter(*s));
        out += '\n';
        break;
      case Kind::kGauge:
        begin_sample(out, name, "", *s);
        append_double(out, s->gauge_value());
        out += '\n';
        break;
      case Kind::kHistogram: {
        HistogramSnapshot h = s->histogram_snapshot(false);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i <= h.bounds.size(); ++i) {
          cumulative += h.classic[i];
          begin_sample(out, name, "_bucket", *s, "le", les[i]);
          append_uint(out, cumulative);
          out += '\n';
        }
        begin_sample(out, name, "_sum", *s);
        append_double(out, h.sum);
        out += '\n';
        begin_sample(out, name, "_count", *s);
        append_uint(out, h.count);
        out += '\n';
        break;
      }
    }
  }
}

void append_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void fill_native(pb::Histogram& ph, const HistogramSnapshot& h) {
  ph.set_schema(HistogramSnapshot::kSchema);
  ph.set_zero_threshold(HistogramSnapshot::kZeroThreshold);
  ph.set_zero_count(h.zero_count);
  // Spans of consecutive buckets; a gap of up to two empty buckets is cheaper written as
  // zero deltas than as a new span (what Prometheus' Go client does too).
  std::int64_t previous_count = 0;
  std::int32_t next_index = 0;  // one past the last bucket written
  pb::BucketSpan* span = nullptr;
  for (const auto& [index, n] : h.native) {
    bool first = span == nullptr;
    std::int32_t gap = first ? 0 : index - next_index;
    if (first || gap > 2) {
      span = ph.add_positive_span();
      span->set_offset(first ? index : gap);  // the first from 0, the others from the last
      span->set_length(0);
    } else {
      for (std::int32_t g = 0; g < gap; ++g) {
        ph.add_positive_delta(-previous_count);
        previous_count = 0;
        span->set_length(span->length() + 1);
      }
    }
    auto count = static_cast<std::int64_t>(n);
    ph.add_positive_delta(count - previous_count);
    previous_count = count;
    span->set_length(span->length() + 1);
    next_index = index + 1;
  }
}

void write_protobuf_family(std::string& out, const detail::Family& f,
                           const std::vector<detail::Series*>& series) {
  pb::MetricFamily mf;
  mf.set_name(f.kind == Kind::kCounter ? f.spec.name + "_total" : f.spec.name);
  mf.set_help(f.spec.help);
  mf.set_type(f.kind == Kind::kCounter ? pb::COUNTER
              : f.kind == Kind::kGauge ? pb::GAUGE
                                       : pb::HISTOGRAM);
  // The family's head, then each Metric as field 4 (length-delimited), serialized from one
  // reused message: the same bytes as one MetricFamily holding them all, without building
  // 10,000 Metric objects per scrape.
  std::string body = mf.SerializeAsString();
  pb::Metric reused;
  for (const detail::Series* s : series) {
    reused.Clear();
    pb::Metric* m = &reused;
    for (std::size_t i = 0; i < s->values.size(); ++i) {
      pb::LabelPair* lp = m->add_label();
      lp->set_name(f.spec.labels[i]);
      lp->set_value(s->values[i]);
    }
    if (s->overflow) {
      pb::LabelPair* lp = m->add_label();
      lp->set_name("otel_metric_overflow");
      lp->set_value("true");
    }
    switch (f.kind) {
      case Kind::kCounter: {
        CounterValue v = read_counter(*s);
        m->mutable_counter()->set_value(static_cast<double>(v.sum) + v.base);
        break;
      }
      case Kind::kGauge:
        m->mutable_gauge()->set_value(s->gauge_value());
        break;
      case Kind::kHistogram: {
        HistogramSnapshot h = s->histogram_snapshot();
        pb::Histogram* ph = m->mutable_histogram();
        ph->set_sample_count(h.count);
        ph->set_sample_sum(h.sum);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.bounds.size(); ++i) {  // +Inf is sample_count
          cumulative += h.classic[i];
          pb::Bucket* b = ph->add_bucket();
          b->set_cumulative_count(cumulative);
          b->set_upper_bound(h.bounds[i]);
        }
        fill_native(*ph, h);
        break;
      }
    }
    std::size_t size = m->ByteSizeLong();     // caches the sizes the write below uses
    body += static_cast<char>((4 << 3) | 2);  // MetricFamily.metric, wire type LEN
    append_varint(body, size);
    std::size_t at = body.size();
    body.resize(at + size);
    m->SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(body.data() + at));
  }
  append_varint(out, body.size());
  out += body;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

}  // namespace

std::string Registry::expose(Format f) {
  std::vector<std::shared_ptr<const std::function<void()>>> collectors;
  {
    std::lock_guard lock(state_->mu);
    collectors = state_->collectors;
  }
  for (const auto& c : collectors) (*c)();

  std::string out;
  for (detail::Family* family : state_->family_list()) {
    // The series are written without the family's lock (with() never waits for a scrape);
    // the references taken keep them alive meanwhile.
    std::vector<detail::Series*> series = family->acquire_all();
    if (!series.empty()) {
      switch (f) {
        case Format::kText:
          write_text_family(out, *family, series, false);
          break;
        case Format::kOpenMetrics:
          write_text_family(out, *family, series, true);
          break;
        case Format::kProtobuf:
          write_protobuf_family(out, *family, series);
          break;
      }
    }
    for (detail::Series* s : series) detail::release(s);
  }
  if (f == Format::kOpenMetrics) out += "# EOF\n";
  return out;
}

Format negotiate(std::string_view accept) {
  Format best = Format::kText;
  double best_q = -1;
  while (!accept.empty()) {
    std::size_t comma = accept.find(',');
    std::string_view item = trim(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);

    std::size_t semi = item.find(';');
    std::string_view type = trim(item.substr(0, semi));
    std::string_view params = semi == std::string_view::npos ? "" : item.substr(semi + 1);
    double q = 1;
    std::string_view proto, encoding;
    while (!params.empty()) {
      std::size_t next = params.find(';');
      std::string_view p = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
      std::size_t eq = p.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = trim(p.substr(0, eq));
      std::string_view value = trim(p.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (iequals(key, "q")) {
        double parsed = 0;
        auto r = std::from_chars(value.data(), value.data() + value.size(), parsed);
        q = r.ec == std::errc() ? std::clamp(parsed, 0.0, 1.0) : 0;
      } else if (iequals(key, "proto")) {
        proto = value;
      } else if (iequals(key, "encoding")) {
        encoding = value;
      }
    }

    std::optional<Format> offered;
    if (iequals(type, "application/vnd.google.protobuf")) {
      if (proto == "io.prometheus.client.MetricFamily" && encoding == "delimited")
        offered = Format::kProtobuf;
    } else if (iequals(type, "application/openmetrics-text")) {
      offered = Format::kOpenMetrics;
    } else if (iequals(type, "text/plain") || iequals(type, "text/*") || type == "*/*") {
      offered = Format::kText;
    }
    if (offered && q > 0 && q > best_q) {  // ties: the first listed wins
      best = *offered;
      best_q = q;
    }
  }
  return best;
}

std::string_view content_type(Format f) {
  switch (f) {
    case Format::kText:
      return "text/plain; version=0.0.4; charset=utf-8";
    case Format::kOpenMetrics:
      return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case Format::kProtobuf:
      return "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
             "encoding=delimited";
  }
  return "text/plain; version=0.0.4; charset=utf-8";
}

std::string gzip(std::string_view data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: deflateInit2 failed");
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish");
  out.resize(zs.total_out);
  return out;
}

}  // namespace sb::telemetry
