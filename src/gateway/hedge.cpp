#include "gateway/hedge.hpp"

#include "gateway/answers.hpp"

namespace sb::gateway {
namespace {

/// A hedge's waits are bounded by its race's timer, which closes the connection.
class HedgeWatch final : public AttemptWatch {
 public:
  explicit HedgeWatch(const HedgeRace& race) : race_(race) {}
  void arm(http::Socket&, core::SteadyTime) override {}
  void disarm() override {}
  bool fired() const override { return race_.timed_out; }

 private:
  const HedgeRace& race_;
};

void close(http::UpstreamConnection* conn) {
  http::error_code ignored;
  if (conn != nullptr) conn->socket().close(ignored);
}

}  // namespace

http::Task<void> settle(HedgeRace& race, bool primary_ok) {
  race.primary_done = true;
  race.primary_ok = primary_ok && !race.won;
  if (!race.started) {
    race.timer.cancel();
  } else if (race.primary_ok && race.hedge != nullptr) {
    race.hedge_cut = true;
    close(race.hedge);
  }
  while (!race.ended) {
    race.wake.expires_at(core::SteadyTime::max());
    co_await race.wake.async_wait(http::kUse);
  }
}

http::Task<void> run_hedge(HedgeContext c, http::Exchange& ex, const RouteMatch& m,
                           std::shared_ptr<Service> svcp, const Plan& plan,
                           std::shared_ptr<HedgeRace> race, core::Duration delay,
                           const Instance* primary) {
  race->timer.expires_after(delay);
  co_await race->timer.async_wait(http::kUse);
  const auto now = c.clock.steady_now();
  Plan& p = race->attempt;
  p = plan;  // the primary's exclusions, plus the primary itself
  if (p.n_tried < p.tried.size()) p.tried[p.n_tried++] = primary;
  // The balancer may have a newer order than the view the request started with.
  race->view = c.view.current(svcp);
  Service& svc = *race->view;
  Instance* inst = nullptr;
  if (!race->primary_done && svc.guard->budget.try_acquire(now))
    inst = c.planner.choose(svc, p, now);
  if (inst != nullptr && (inst == primary || race->primary_done)) {  // nowhere else to go
    c.planner.abandon_attempt(p, /*started=*/false);
    inst = nullptr;
  }
  if (inst == nullptr) {
    race->ended = true;
    race->wake.cancel();
    co_return;
  }
  race->started = true;
  race->inst = svc.instances[p.index];
  prepare_upstream_head(ex, m, svc, *inst, plan.deadline, now, race->head);
  c.planner.start_attempt(p, now);
  // The deadline: the request's. Closing the socket ends whatever the hedge awaits. The
  // handler holds the race: it may run after the hedge has ended.
  race->timer.expires_at(plan.deadline.at());
  race->timer.async_wait([race](http::error_code ec) {
    if (ec || race->hedge == nullptr) return;
    race->timed_out = true;
    close(race->hedge);
  });
  Try& t = race->result;
  t.conn = inst->pool->take_idle();
  if (!t.conn) {
    auto lease = co_await inst->pool->connect(nullptr, &race->hedge);
    if (!lease.conn) {
      t.kind = AttemptKind::kConnectFailed;
      t.acquire = lease.error;
      t.detail = std::move(lease.detail);
    }
    t.conn = std::move(lease.conn);
  }
  if (t.conn) {
    race->hedge = t.conn.get();
    HedgeWatch watch(*race);
    RequestOutcome unused;  // a hedge sends no body: nothing to answer for the client
    const ExchangeRequest req{race->head, /*with_body=*/false, now, plan.deadline.at() - now,
                              plan.deadline.at()};
    t.kind = co_await exchange(ex, unused, *t.conn, req, watch, c.clock, t.why, t.info);
    race->hedge = nullptr;
  }
  race->timer.cancel();
  if (!race->hedge_cut)  // cut because the first attempt answered: it says nothing
    inst->metrics.attempt(ex.info().method, t.kind, t.status(), AttemptRole::kHedge,
                          c.clock.steady_now() - now);
  if (t.kind == AttemptKind::kResponse && !race->primary_ok) {
    race->won = true;
    if (race->primary != nullptr) {
      race->primary_cut = true;
      close(race->primary);
    }
  } else {
    if (race->hedge_cut || t.kind == AttemptKind::kResponse)
      c.planner.abandon_attempt(p);
    else
      c.planner.record_only(p, t.end(), c.clock.steady_now());
    if (t.conn) inst->pool->discard(std::move(t.conn));
  }
  race->ended = true;
  race->wake.cancel();
}

}  // namespace sb::gateway
