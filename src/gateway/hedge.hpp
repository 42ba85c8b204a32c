// Hedging: a GET's second attempt on another instance, raced against the first after a
// delay (the plan's hedge_delay). The first response wins; the loser's connection is
// closed. Internal to the gateway.
#pragma once

#include <memory>

#include "core/clock.hpp"
#include "gateway/plan.hpp"
#include "gateway/router.hpp"
#include "gateway/upstream_exchange.hpp"
#include "gateway/view.hpp"
#include "http/exchange.hpp"
#include "http/io.hpp"

namespace sb::gateway {

/// One race between a request's attempt (the primary) and its hedge. Shared by the two and
/// by the hedge's timer, so that a timer firing as the race ends never outlives it; the
/// primary waits for the hedge to end before it goes on, so the hedge may use the
/// exchange's request and the request's plan meanwhile.
struct HedgeRace {
  explicit HedgeRace(http::Executor e) : wake(e), timer(e) {}
  http::Timer wake;   // the primary waits on it until the hedge has ended; cancel() wakes it
  http::Timer timer;  // the hedge's delay, then its deadline
  bool primary_done = false;  // the primary attempt ended ...
  bool primary_ok = false;    // ... with a response
  bool started = false;       // the hedge attempt was sent
  bool ended = false;         // the hedge is over (won, lost, failed or never started)
  bool won = false;           // the hedge's response is the one to relay
  bool primary_cut = false;   // the primary's connection was closed because the hedge won
  bool hedge_cut = false;     // the hedge's connection was closed because the primary won
  bool timed_out = false;     // the request's deadline closed the hedge's connection
  http::UpstreamConnection* primary = nullptr;  // while the primary attempt holds one
  http::UpstreamConnection* hedge = nullptr;    // while the hedge attempt holds one
  std::shared_ptr<Service> view;                // the view the hedge's pick is from
  std::shared_ptr<Instance> inst;               // the hedge's instance
  Plan attempt;                                 // the hedge's attempt
  http::HeadBuffer head;
  Try result;
};

/// What a hedge uses of its worker.
struct HedgeContext {
  Planner& planner;
  const View& view;
  core::Clock& clock;
};

/// The hedge: after `delay`, unless the primary has ended, a second attempt on another
/// instance (spending the retry budget). Its response wins when it comes first; then the
/// primary's connection is closed. Bounded by the request's deadline.
http::Task<void> run_hedge(HedgeContext c, http::Exchange& ex, const RouteMatch& m,
                           std::shared_ptr<Service> svc, const Plan& plan,
                           std::shared_ptr<HedgeRace> race, core::Duration delay,
                           const Instance* primary);

/// After the primary attempt: stops the hedge when it has not started or lost, lets it
/// finish when the primary failed (the first success wins), and waits until it has ended.
http::Task<void> settle(HedgeRace& race, bool primary_ok);

}  // namespace sb::gateway
