#include "gateway/plan.hpp"

#include <algorithm>

#include "core/assert.hpp"
#include "registry/live_feed.hpp"

namespace sb::gateway {

Start Planner::begin(const RequestFacts& facts, Service& svc, const core::RequestPolicy& policy,
                     const resilience::RetryPolicy& retry, core::SteadyTime now, Plan& plan) {
  plan.policy = &policy;
  plan.retry = &retry;
  Start s;
  // The client's deadline: X-Request-Timeout-Ms or grpc-timeout; when both came, the
  // smaller one counts.
  std::optional<core::Duration> asked;
  const auto take = [&](bool present, bool ms) {
    if (!present) return true;
    const auto parsed = ms ? resilience::parse_request_timeout_ms(facts.request_timeout_ms)
                           : resilience::parse_grpc_timeout(facts.grpc_timeout);
    if (!parsed) {
      s.refusal = Refusal::kBadTimeout;
      s.header = ms ? "X-Request-Timeout-Ms" : "grpc-timeout";
      s.error = parsed.error;
      return false;
    }
    asked = asked ? std::min(*asked, *parsed.value) : *parsed.value;
    return true;
  };
  if (!take(facts.has_request_timeout, true) || !take(facts.has_grpc_timeout, false)) return s;
  plan.deadline = resilience::Deadline(now, resilience::effective_budget(policy.timeout, asked));
  if (plan.deadline.expired(now)) {
    s.refusal = Refusal::kExpired;
    return s;
  }
  const auto adm = svc.guard->breaker.allow(now);
  svc.guard->report(adm.transition);
  if (!adm.allowed()) {
    s.refusal = Refusal::kBreakerOpen;
    s.retry_after = adm.retry_after;
    return s;
  }
  plan.service_permit = adm.permit;
  plan.began = now;  // the first attempt starts now
  svc.guard->budget.record_request(now);
  plan.idempotent = resilience::RetryPolicy::is_idempotent(facts.method, facts.idempotency_key);
  plan.may_retry =
      retry.attempts_left(0) && plan.idempotent &&
      (facts.body_done || (facts.body_fits && retry.body_replayable(facts.content_length)));
  return s;
}

Instance* Planner::choose(Service& svc, Plan& plan, core::SteadyTime now) {
  // The balancer's indices are this view's only while it is current: a pick from an older
  // view would name another instance, or one past the end.
  SB_ASSERT(svc.current());
  std::array<std::size_t, 8> exclude{};
  std::size_t n = 0;
  for (std::size_t k = 0; k < plan.n_tried; ++k)
    for (std::size_t j = 0; j < svc.instances.size(); ++j)
      if (svc.instances[j].get() == plan.tried[k] && n < exclude.size()) exclude[n++] = j;
  auto available = [&](std::size_t i) {
    const InstanceGuard& g = *svc.instances[i]->guard;
    return !(g.outlier && g.outlier->ejected(now)) && g.breaker.may_allow(now);
  };
  while (true) {
    const std::size_t i = svc.lb->balancer.pick(now, available, {exclude.data(), n});
    if (i == resilience::Balancer::kNone) return nullptr;
    Instance& inst = *svc.instances[i];
    const auto a = inst.guard->breaker.allow(now);
    inst.guard->report(a.transition);
    if (a.allowed()) {
      plan.view = &svc;
      plan.instance = &inst;
      plan.permit = a.permit;
      plan.index = i;
      return &inst;
    }
    // Another request took the last half-open probe: try the others.
    if (n == exclude.size()) return nullptr;
    exclude[n++] = i;
  }
}

bool Planner::record(Plan& plan, const AttemptEnd& end, const resilience::Outcome& o,
                     core::SteadyTime now) {
  Service& svc = *plan.view;
  Instance& inst = *plan.instance;
  const core::Duration latency = now - plan.began;
  const std::size_t li = svc.lb_index(plan.index);
  const bool failure = inst.guard->breaker.is_failure(o);
  inst.guard->report(inst.guard->breaker.record(now, plan.permit, failure, latency));
  if (inst.guard->outlier) inst.guard->report(inst.guard->outlier->record(now, o));
  if (end.kind == AttemptKind::kResponse) {
    if (li != resilience::Balancer::kNone) {
      svc.lb->balancer.on_finish(li, now, latency);
      if (end.retry_after) svc.lb->balancer.avoid_until(li, now + *end.retry_after);
    }
    inst.latency.record(latency);
  } else if (li != resilience::Balancer::kNone) {
    svc.lb->balancer.on_abandon(li);
  }
  // The registry's view of the instance (health from live traffic): a failure is a 5xx,
  // a reset or a timeout.
  if (feed_ != nullptr)
    feed_->push(registry::LiveSample{
        inst.uid,
        static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(latency).count()),
        end.kind == AttemptKind::kResponse && (o.status < 500 || o.status > 599)});
  return failure;
}

void Planner::abandon_attempt(Plan& plan, bool started) {
  plan.instance->guard->breaker.release(plan.permit);
  if (!started) return;
  const std::size_t li = plan.view->lb_index(plan.index);
  if (li != resilience::Balancer::kNone) plan.view->lb->balancer.on_abandon(li);
  end_in_flight(plan);
}

void Planner::record_only(Plan& plan, const AttemptEnd& end, core::SteadyTime now) {
  (void)record(plan, end, outcome_of(end), now);
  end_in_flight(plan);
}

Next Planner::finish_attempt(Plan& plan, const AttemptEnd& end, core::SteadyTime now) {
  if (end.kind == AttemptKind::kClient) {
    abandon_attempt(plan);
    plan.client_failed = true;
    return Next::kPrepared;
  }
  const resilience::Outcome o = outcome_of(end);
  const bool failure = record(plan, end, o, now);
  plan.ended = now;
  plan.failed = failure;
  plan.last_status = o.status;
  plan.last_kind = end.kind;
  Instance& inst = *plan.instance;
  Service& svc = *plan.view;
  if (plan.may_retry && plan.retry->retryable(o) && plan.retry->attempts_left(plan.retries)) {
    const core::Duration wait = plan.retry->delay(plan.retries, rng_, end.retry_after);
    const core::Duration remaining = plan.deadline.remaining(now);
    if (remaining > wait && resilience::worth_retrying(remaining - wait, inst.latency.median())) {
      if (svc.guard->budget.try_acquire(now)) {
        plan.wait = wait;
        ++plan.retries;
        if (plan.n_tried < plan.tried.size()) plan.tried[plan.n_tried++] = &inst;
        end_in_flight(plan);
        return Next::kRetry;
      }
      plan.budget_refused = true;
    }
  }
  const bool fallback = plan.policy->fallback.enabled();
  if (end.kind == AttemptKind::kResponse && !(fallback && failure))
    return Next::kRelay;  // in flight until the relay ends (end_relay)
  end_in_flight(plan);
  return fallback ? Next::kFallback : Next::kFail;
}

std::optional<core::Duration> Planner::hedge_delay_enabled(bool get_without_body, const Plan& plan,
                                                           core::SteadyTime now) const {
  const auto& h = plan.policy->hedge;
  if (plan.retries > 0 || plan.n_tried > 0 || plan.view->instances.size() < 2 || !get_without_body)
    return std::nullopt;
  Instance& inst = *plan.instance;  // its latency estimate refreshes on read
  const core::Duration delay =
      h.delay > core::Millis(0) ? core::Duration(h.delay) : inst.latency.p95();
  if (delay <= core::Duration::zero()) return std::nullopt;  // no latency known yet
  // Time left after the delay must cover a typical answer (the instance's median).
  const core::Duration remaining = plan.deadline.remaining(now);
  if (remaining <= delay || !resilience::worth_retrying(remaining - delay, inst.latency.median()))
    return std::nullopt;
  return delay;
}

void Planner::finish_request(Service& svc, const Plan& plan, int status, bool client_gone,
                             core::SteadyTime start, core::SteadyTime now) {
  ServiceGuard& g = *svc.guard;
  // Nothing was sent, or the client's side ended the request: the service's breaker
  // learns nothing from it.
  if (!plan.sent || plan.client_failed || status == 499 || client_gone) {
    g.breaker.release(plan.service_permit);
    return;
  }
  // The outcome's time: when the last attempt's answer (head) came, or the answer was made.
  const auto at = plan.ended == core::SteadyTime{} ? now : plan.ended;
  g.report(g.breaker.record(at, plan.service_permit, plan.failed, at - start));
}

}  // namespace sb::gateway
