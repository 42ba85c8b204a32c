// GET /metrics: the scrape, answered before routing (like /health) on the admin listener
// when there is one, else on the main one, and on telemetry.prometheus_port. The
// exposition is written on the scrape thread, never on a worker. Internal to the gateway.
#pragma once

#include "gateway/answers.hpp"
#include "http/exchange.hpp"

namespace sb::http {
class Worker;
}

namespace sb::gateway {

class Gateway;

/// Whether this request is a scrape this listener answers (telemetry.prometheus_exporter
/// on, path /metrics).
bool serves_metrics(const Gateway& gw, const http::Exchange& ex);

/// Answers it: GET or HEAD (else 405), in the format the Accept header asks for, gzip when
/// Accept-Encoding allows it.
http::Task<void> answer_metrics(Gateway& gw, http::Worker& worker, http::Exchange& ex,
                                RequestOutcome& out);

}  // namespace sb::gateway
