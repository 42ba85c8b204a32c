// The request plan: one request's resilience decisions across its attempts. Its deadline
// (the route's timeout shortened by the client's headers), the service breaker's permit,
// which instance each attempt goes to, what an attempt's outcome means (relay it, retry
// after how long, or answer), and how long to wait before hedging. Each decision takes
// `now` and returns what to do; the driver (proxy.cpp) does the I/O. No timers, no clock
// reads: tests drive it on a manual clock.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "gateway/view.hpp"
#include "resilience/circuit_breaker.hpp"
#include "resilience/deadline.hpp"
#include "resilience/outcome.hpp"
#include "resilience/random.hpp"

namespace sb::registry {
class LiveFeed;
}

namespace sb::gateway {

/// How one attempt on an upstream ended.
enum class AttemptKind : std::uint8_t {
  kResponse,       // a complete, valid response head (with `status`)
  kConnectFailed,  // no connection (refused, timeout, TLS, limit)
  kReset,          // the connection closed or reset before a complete response
  kTimeout,        // no response head before the attempt's deadline
  kBadResponse,    // a malformed response head
  kClient,         // the client's side failed (its body, its connection): says nothing of
                   // the instance
};

/// What the plan learns from an attempt.
struct AttemptEnd {
  AttemptKind kind = AttemptKind::kReset;
  int status = 0;                               // kResponse
  std::optional<core::Duration> retry_after{};  // a 429/503's Retry-After
};

inline resilience::Outcome outcome_of(const AttemptEnd& e) {
  using resilience::Outcome;
  using resilience::TransportError;
  switch (e.kind) {
    case AttemptKind::kResponse:
      return Outcome::response(e.status);
    case AttemptKind::kConnectFailed:
      return Outcome::failed(TransportError::kConnectFailure);
    case AttemptKind::kTimeout:
      return Outcome::failed(TransportError::kTimeout);
    case AttemptKind::kBadResponse:
      return Outcome::response(502);
    default:
      return Outcome::failed(TransportError::kReset);
  }
}

/// The facts of the request the plan decides on (from the parsed head).
struct RequestFacts {
  std::string_view method;
  bool idempotency_key = false;
  bool has_request_timeout = false;
  std::string_view request_timeout_ms;
  bool has_grpc_timeout = false;
  std::string_view grpc_timeout;
  bool body_done = true;  // no body, or all of it read
  bool body_fits = true;  // the body fits the request buffer (kept for replays)
  std::uint64_t content_length = 0;
};

/// One request's decisions, across its attempts.
struct Plan {
  const core::RequestPolicy* policy = nullptr;
  const resilience::RetryPolicy* retry = nullptr;
  resilience::Deadline deadline{core::SteadyTime{}, core::Duration{}};
  resilience::Permit service_permit{};
  // The current attempt.
  Service* view = nullptr;  // the view whose order `index` is in
  Instance* instance = nullptr;
  resilience::Permit permit{};  // from its instance's breaker
  std::size_t index = 0;        // its instance in view->instances
  core::SteadyTime began{};     // its start
  core::Duration wait{};        // backoff before the next attempt
  std::array<const Instance*, 4> tried{};
  std::uint8_t n_tried = 0;
  std::uint32_t retries = 0;
  bool idempotent = false;  // safe to send twice (RFC 9110 9.2.2, or an Idempotency-Key)
  bool may_retry = false;
  bool failed = false;          // the last attempt failed (breaker classification)
  bool sent = true;             // an attempt reached an instance
  bool client_failed = false;   // the client's side ended the request (says nothing upstream)
  bool budget_refused = false;  // a retry was due but the retry budget was spent
  AttemptKind last_kind = AttemptKind::kReset;
  int last_status = 0;       // the last attempt's response status
  core::SteadyTime ended{};  // when the last attempt ended
};

/// Why the request cannot start.
enum class Refusal : std::uint8_t {
  kNone,
  kBadTimeout,   // a deadline header is malformed: `header`, `error`
  kExpired,      // the deadline expired before an upstream was called
  kBreakerOpen,  // the service's breaker refuses: `retry_after`
};
struct Start {
  Refusal refusal = Refusal::kNone;
  std::string_view header;  // kBadTimeout: which one
  std::string_view error;   // kBadTimeout: why
  std::chrono::seconds retry_after{};
  explicit operator bool() const { return refusal == Refusal::kNone; }
};

/// What follows an attempt.
enum class Next : std::uint8_t {
  kRelay,     // relay the response
  kRetry,     // another attempt after plan.wait
  kFallback,  // answer with the route's fallback (the response, if any, is dropped)
  kFail,      // answer with this attempt's failure (a problem)
  kPrepared,  // the answer is prepared already (the client's body failed), or there is
              // nobody to answer (the client went away)
};

/// A worker's planner: the decisions, and the records every attempt feeds (breakers,
/// outlier records, balancers, latency, the registry's live health). Not thread-safe (one
/// worker); the policies it feeds are shared and lock-free.
class Planner {
 public:
  Planner(registry::LiveFeed* feed, std::uint64_t seed) : feed_(feed), rng_(seed) {}

  /// The deadline, the service breaker's permit and whether the request may be retried.
  Start begin(const RequestFacts& facts, Service& svc, const core::RequestPolicy& policy,
              const resilience::RetryPolicy& retry, core::SteadyTime now, Plan& plan);

  /// The instance for the next attempt, from `svc` (which must be current: see
  /// View::current): balanced over those whose breaker admits and that are not ejected,
  /// avoiding instances this request tried. Sets plan.view/instance/index/permit; nullptr
  /// when none can take it.
  Instance* choose(Service& svc, Plan& plan, core::SteadyTime now);

  /// The attempt on plan.instance starts (in-flight counts, its start time).
  void start_attempt(Plan& plan, core::SteadyTime now) {
    plan.began = now;
    plan.view->lb->balancer.on_start(plan.index);  // the view is current: choose() just ran
    if (plan.instance->in_flight) plan.instance->in_flight->fetch_add(1, std::memory_order_relaxed);
  }

  /// Records the attempt's end with every policy and decides what follows (plan.wait for
  /// kRetry). Ends the attempt (in-flight counts).
  Next finish_attempt(Plan& plan, const AttemptEnd& end, core::SteadyTime now);

  /// An attempt that ended without telling anything about its instance (the client went
  /// away, or the other side of a hedge won): its probe permit and balancer slot go back.
  /// Ends the attempt (in-flight counts) unless `started` is false.
  void abandon_attempt(Plan& plan, bool started = true);

  /// The relayed attempt's response has been relayed (or cut): it is no longer in flight.
  void end_relay(Plan& plan) { end_in_flight(plan); }

  /// Records an attempt's outcome (breaker, outlier, balancer, latency, live health)
  /// without deciding anything (a hedge race's loser that failed). Ends the attempt.
  void record_only(Plan& plan, const AttemptEnd& end, core::SteadyTime now);

  /// How long to wait before hedging this attempt, or nullopt for no hedge: only the first
  /// attempt of an idempotent GET without a body, on a route with hedging, with another
  /// instance to go to and time left for it.
  std::optional<core::Duration> hedge_delay(bool get_without_body, const Plan& plan,
                                            core::SteadyTime now) const {
    if (!plan.policy->hedge.enabled) return std::nullopt;  // most routes: inline
    return hedge_delay_enabled(get_without_body, plan, now);
  }

  /// Feeds the request's final outcome (`status`, 0 for none) to its service's breaker.
  void finish_request(Service& svc, const Plan& plan, int status, bool client_gone,
                      core::SteadyTime start, core::SteadyTime now);

  /// Per-try timeout for an attempt of `plan` on `svc`.
  static core::Duration per_try(const Plan& plan, const Service& svc) {
    return plan.retry->per_try_timeout() > core::Duration::zero()
               ? plan.retry->per_try_timeout()
               : core::Duration(svc.config->timeouts.response);
  }

 private:
  std::optional<core::Duration> hedge_delay_enabled(bool get_without_body, const Plan& plan,
                                                    core::SteadyTime now) const;
  /// Records the attempt (whose outcome is `o`, outcome_of(end)) with every policy;
  /// returns whether it was a failure.
  bool record(Plan& plan, const AttemptEnd& end, const resilience::Outcome& o,
              core::SteadyTime now);
  static void end_in_flight(Plan& plan) {
    if (plan.instance->in_flight) plan.instance->in_flight->fetch_sub(1, std::memory_order_relaxed);
  }

  registry::LiveFeed* feed_;
  resilience::Rng rng_;  // backoff jitter
};

}  // namespace sb::gateway
