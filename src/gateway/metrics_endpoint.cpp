#include "gateway/metrics_endpoint.hpp"

#include <spdlog/spdlog.h>

#include <string>

#include "core/text.hpp"
#include "gateway/flush.hpp"
#include "gateway/gateway.hpp"
#include "gateway/metrics.hpp"
#include "gateway/run_on.hpp"
#include "http/parser.hpp"
#include "telemetry/metrics.hpp"

namespace sb::gateway {
namespace {

/// Every value of the field `name`, joined with ", " (RFC 9110 5.3).
std::string field_values(const http::RequestHead& head, std::string_view name) {
  std::string out;
  for (std::size_t i = 0; i < head.field_count; ++i) {
    if (!http::iequals(head.fields[i].name, name)) continue;
    if (!out.empty()) out += ", ";
    out += head.fields[i].value;
  }
  return out;
}

/// Whether Accept-Encoding allows gzip: listed (or `*`) with a q above 0.
bool accepts_gzip(std::string_view accept_encoding) {
  bool star = false, gzip = false, gzip_listed = false;
  std::size_t pos = 0;
  while (pos <= accept_encoding.size()) {
    auto comma = accept_encoding.find(',', pos);
    if (comma == std::string_view::npos) comma = accept_encoding.size();
    std::string_view item = core::trim(accept_encoding.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    double q = 1.0;
    const auto semi = item.find(';');
    std::string_view coding = core::trim(item.substr(0, semi));
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      const auto qpos = params.find("q=");
      if (qpos != std::string_view::npos) {
        try {
          q = std::stod(std::string(params.substr(qpos + 2)));
        } catch (const std::exception&) {
          q = 0;
        }
      }
    }
    if (http::iequals(coding, "gzip") || http::iequals(coding, "x-gzip")) {
      gzip_listed = true;
      gzip = q > 0;
    } else if (coding == "*") {
      star = q > 0;
    }
  }
  return gzip_listed ? gzip : star;
}

const char* format_name(telemetry::Format f) {
  switch (f) {
    case telemetry::Format::kText:
      return "text";
    case telemetry::Format::kOpenMetrics:
      return "openmetrics";
    case telemetry::Format::kProtobuf:
      return "protobuf";
  }
  return "text";
}

struct Scrape {
  std::string body;
  std::string content_type;
  bool gzipped = false;
};

}  // namespace

bool serves_metrics(const Gateway& gw, const http::Exchange& ex) {
  if (ex.info().path != "/metrics" || !gw.config().telemetry.prometheus_exporter) return false;
  switch (ex.listener()) {
    case http::ListenerKind::kMetrics:
    case http::ListenerKind::kAdmin:
      return true;
    case http::ListenerKind::kProxy:
      return !gw.config().server.admin_listen.has_value();
  }
  return false;
}

http::Task<void> answer_metrics(Gateway& gw, http::Worker& worker, http::Exchange& ex,
                                RequestOutcome& out) {
  const std::string_view method = ex.head().method;
  if (method != "GET" && method != "HEAD") {
    prepare_problem(ex, out, 405, "method-not-allowed", "/metrics answers GET and HEAD",
                    "Allow: GET, HEAD\r\n");
    co_await send_scratch(ex);
    co_return;
  }
  const telemetry::Format format = telemetry::negotiate(field_values(ex.head(), "Accept"));
  const bool gzip = accepts_gzip(field_values(ex.head(), "Accept-Encoding"));
  // On the scrape thread: a scrape costs O(series) and must not hold up this worker's
  // other connections. Named, so that it lives in this frame until it has launched.
  auto call = run_on(gw.scraper(), worker, [&gw, format, gzip] {
    Scrape s;
    try {
      gw.control_metrics().collect();
      gw.metrics().scrapes.with({format_name(format)}).inc();
      s.body = gw.telemetry().expose(format);
      s.content_type = std::string(telemetry::content_type(format));
      if (gzip) {
        s.body = telemetry::gzip(s.body);
        s.gzipped = true;
      }
    } catch (const std::exception& e) {  // nothing may escape the scrape thread
      spdlog::error("metrics scrape failed: {}", e.what());
      s.body.clear();
      s.content_type.clear();
    }
    return s;
  });
  auto [s] = co_await std::move(call);
  if (s.content_type.empty()) {
    prepare_problem(ex, out, 500, "internal-error", "the scrape failed (see the log)");
  } else {
    prepare_response(ex, out, 200, s.content_type, s.body,
                     s.gzipped ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
                               : "Vary: Accept-Encoding\r\n");
  }
  co_await send_scratch(ex);
}

}  // namespace sb::gateway
