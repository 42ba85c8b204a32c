// The answers the proxy makes itself, as plain functions: problems (RFC 9457), body
// errors, an attempt's failure, the route's static fallback, operations and API
// responses, and the two heads it writes (the upstream's request head, the client's
// response head). Each prepares its bytes into one of the exchange's head buffers; a
// coroutine sends them. Internal to the gateway.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "gateway/plan.hpp"
#include "gateway/router.hpp"
#include "http/exchange.hpp"
#include "resilience/deadline.hpp"

namespace sb::gateway {

class Gateway;

/// What the access log says about one exchange (and what keeps its service alive).
struct RequestOutcome {
  int status = 0;
  std::shared_ptr<Service> service;
  std::shared_ptr<Instance> instance;
};

/// Why an attempt got no usable response, for its problem answer.
struct AttemptFailure {
  AttemptKind kind = AttemptKind::kReset;
  http::AcquireError acquire = http::AcquireError::kNone;  // kConnectFailed
  const char* why = nullptr;                               // kBadResponse
  std::string_view detail;                                 // kConnectFailed
};

/// Prepares a problem answer into ex.scratch(). Returns false when the response has
/// already begun (then there is nothing to prepare: the connection must be cut).
bool prepare_problem(http::Exchange& ex, RequestOutcome& out, int status, std::string_view slug,
                     std::string_view detail, std::string_view extra = {});
/// 408, 413 or 400 for a request body that failed; the client gone: nothing (499).
void prepare_body_error(http::Exchange& ex, RequestOutcome& out, http::BodyPiece::Error e);
/// The answer for an attempt that got no usable response (the last one).
void prepare_failure(http::Exchange& ex, RequestOutcome& out, const Service& svc,
                     const Instance& inst, const AttemptFailure& t, core::Duration waited);
/// The route's static fallback answer, marked X-Switchboard-Fallback: static.
void prepare_fallback(http::Exchange& ex, RequestOutcome& out, const core::FallbackConfig& fb,
                      std::string_view why);
/// A complete response of our own (operations and API answers).
void prepare_response(http::Exchange& ex, RequestOutcome& out, int status,
                      std::string_view content_type, std::string_view body,
                      std::string_view extra_fields);
/// /health, /health/live, /health/ready.
void prepare_admin(Gateway& gw, http::Exchange& ex, RequestOutcome& out, core::SteadyTime now);
/// The request head for the upstream, into `h`. A deadline the client sent goes on
/// reduced by the time spent here.
void prepare_upstream_head(http::Exchange& ex, const RouteMatch& m, const Service& svc,
                           const Instance& inst, const resilience::Deadline& deadline,
                           core::SteadyTime now, http::HeadBuffer& h);
/// The response head for the client, into ex.scratch2(). Returns whether the body is
/// re-chunked (upstream chunked or close-delimited, client HTTP/1.1).
bool prepare_client_head(http::Exchange& ex, const http::ResponseHead& rh,
                         const http::ResponseInfo& ri);

}  // namespace sb::gateway
