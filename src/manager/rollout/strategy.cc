#include "manager/rollout/strategy.h"

#include "absl/strings/str_cat.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "manager/rollout/transitions.h"
#include "manager/scheduler.h"

namespace warren {

const Strategy& StrategyFor(const v1::Deployment& d) {
  switch (d.strategy()) {
    case v1::DEPLOYMENT_STRATEGY_BLUE_GREEN:
      return BlueGreenStrategy();
    case v1::DEPLOYMENT_STRATEGY_CANARY:
      return CanaryStrategy();
    default:
      return RollingStrategy();
  }
}

namespace {

std::string FailureReason(const v1::Task& t) {
  const auto& st = t.status();
  std::string s =
      absl::StrCat("task ", t.id(), " (slot ", t.slot(), ") ", TaskStateName(st.state()));
  if (st.has_exit_code()) absl::StrAppend(&s, " with exit code ", st.exit_code());
  if (!st.error().empty()) absl::StrAppend(&s, ": ", st.error());
  return s;
}

}  // namespace

std::string NewTaskFailure(const v1::Task& t, const std::vector<v1::Node>& nodes,
                           const RolloutParams& p, absl::Time now, absl::Time* wake_at,
                           v1::RollbackReason* reason) {
  if (reason) *reason = v1::ROLLBACK_REASON_HEALTH_CHECK;
  const auto state = t.status().state();
  if (state == v1::TASK_STATE_FAILED || state == v1::TASK_STATE_COMPLETE ||
      state == v1::TASK_STATE_REJECTED) {
    return FailureReason(t);
  }
  if (!IsLive(t)) return "";
  if (t.status().health().state() == v1::HEALTH_STATE_UNHEALTHY) {
    return absl::StrCat("task ", t.id(), " (slot ", t.slot(),
                        ") is unhealthy: ", t.status().health().last_probe().output());
  }
  if (state == v1::TASK_STATE_PENDING && t.node_id().empty()) {
    // Waiting for a node is normal; no node that could ever take it is not: say so within
    // the placement grace instead of after the healthy deadline.
    if (std::string never = NeverPlaceableReason(t, nodes); !never.empty()) {
      const absl::Time at = FromProtoTime(t.created_at()) + p.placement_grace;
      if (now >= at) {
        if (reason) *reason = v1::ROLLBACK_REASON_UNSCHEDULABLE;
        return absl::StrCat("task ", t.id(), " (slot ", t.slot(), ") cannot be placed: ", never);
      }
      *wake_at = std::min(*wake_at, at);
    }
  }
  if (!IsAvailable(t, p.min_ready, now)) {
    absl::Time deadline = FromProtoTime(t.created_at()) + p.healthy_deadline;
    if (now >= deadline) {
      return absl::StrCat("task ", t.id(), " (slot ", t.slot(), ") not healthy within ",
                          warren::FormatDuration(p.healthy_deadline), " (healthy deadline)");
    }
    *wake_at = std::min(*wake_at, deadline);
  }
  return "";
}

bool ProgressivePrelude(const PassInput& in, RolloutStep* step, ProgressiveCounts* c) {
  v1::Deployment& d = step->deployment;
  const absl::Time now = in.now;
  c->n = in.service.spec().replicas();
  c->p = ResolveRolloutParams(d.config(), c->n);
  const int64_t from = d.from_revision(), to = d.to_revision();
  for (const auto& t : in.tasks) {
    if (t.revision() != to || !IsLive(t)) continue;
    c->live_to++;
    absl::Time ready_at = absl::InfiniteFuture();
    if (IsAvailable(t, c->p.min_ready, now, &ready_at)) {
      c->available_to++;
    } else {
      WakeAt(ready_at, now, step);
    }
  }
  if (d.updated() != c->live_to || d.available() != c->available_to || d.total() != c->n) {
    d.set_updated(c->live_to);
    d.set_available(c->available_to);
    d.set_total(c->n);
    step->changed = true;
  }
  if (d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
    if (c->live_to == 0) {
      FinishRollback(
          in,
          absl::StrCat("traffic on revision ", from, "; revision ", to, " removed: ", d.reason()),
          step);
    }
    return false;
  }
  if (d.phase() == v1::DEPLOYMENT_PHASE_PAUSED) return false;
  c->phase_start = FromProtoTime(d.phase_started_at());
  if (c->phase_start == absl::InfinitePast()) c->phase_start = FromProtoTime(d.created_at());
  for (const auto& t : in.tasks) {
    if (t.revision() != to || FromProtoTime(t.created_at()) < c->phase_start) continue;
    absl::Time wake_at = absl::InfiniteFuture();
    v1::RollbackReason kind;
    std::string failure = NewTaskFailure(t, in.nodes, c->p, now, &wake_at, &kind);
    if (!failure.empty()) {
      BeginRollback(in, kind, failure, step);
      return false;
    }
    WakeAt(wake_at, now, step);
  }
  c->last_progress = FromProtoTime(d.last_progress_at());
  if (c->last_progress == absl::InfinitePast()) c->last_progress = c->phase_start;
  return true;
}

void RecordAnalysis(const std::vector<v1::AnalysisResult>& results, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  bool changed = static_cast<int>(results.size()) != d.analysis_size();
  for (int i = 0; !changed && i < d.analysis_size(); ++i) {
    changed =
        results[i].passed() != d.analysis(i).passed() ||
        results[i].check() != d.analysis(i).check() ||
        FromProtoTime(results[i].time()) - FromProtoTime(d.analysis(i).time()) >= absl::Seconds(1);
  }
  if (!changed) return;
  d.clear_analysis();
  for (const auto& r : results) *d.add_analysis() = r;
  step->changed = true;
}

void WakeAt(absl::Time t, absl::Time now, RolloutStep* step) {
  if (t > now) step->next_wakeup = std::min(step->next_wakeup, t);
}

}  // namespace warren
