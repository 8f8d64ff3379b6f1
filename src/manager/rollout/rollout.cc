#include "manager/rollout/rollout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "manager/rollout/intents.h"
#include "manager/rollout/strategy.h"
#include "manager/rollout/transitions.h"

namespace warren {

bool IsActive(const v1::Deployment& d) {
  switch (d.phase()) {
    case v1::DEPLOYMENT_PHASE_PENDING:
    case v1::DEPLOYMENT_PHASE_PROGRESSING:
    case v1::DEPLOYMENT_PHASE_PAUSED:
    case v1::DEPLOYMENT_PHASE_ROLLING_BACK:
      return true;
    default:
      return false;
  }
}

bool IsProgressive(const v1::Deployment& d) { return StrategyFor(d).planned(); }

bool IsWarm(const v1::Deployment& d, absl::Time now) {
  return IsProgressive(d) && d.phase() == v1::DEPLOYMENT_PHASE_SUCCEEDED && IsSet(d.warm_until()) &&
         now < FromProtoTime(d.warm_until());
}

const v1::Deployment* GoverningDeployment(const std::vector<const v1::Deployment*>& of_service) {
  const v1::Deployment* newest = nullptr;
  const v1::Deployment* newest_active = nullptr;
  for (const v1::Deployment* d : of_service) {
    auto newer = [&](const v1::Deployment* than) {
      return than == nullptr || FromProtoTime(than->created_at()) < FromProtoTime(d->created_at());
    };
    if (newer(newest)) newest = d;
    if (IsActive(*d) && newer(newest_active)) newest_active = d;
  }
  if (newest_active != nullptr) return newest_active;
  if (newest != nullptr && IsProgressive(*newest) &&
      (newest->phase() == v1::DEPLOYMENT_PHASE_SUCCEEDED ||
       newest->phase() == v1::DEPLOYMENT_PHASE_ROLLED_BACK)) {
    return newest;
  }
  return nullptr;
}

std::vector<std::string> WantedSlots(const v1::Service& service,
                                     const std::vector<v1::Node>& nodes) {
  std::vector<std::string> out;
  if (service.spec().mode() == "global") {
    for (const auto& n : nodes) {
      if (n.state() != v1::NODE_STATE_READY) continue;
      bool ok = true;
      for (const auto& c : service.spec().template_().constraints()) {
        auto m = MatchConstraint(c, n);
        if (!m.ok() || !*m) ok = false;
      }
      if (ok) out.push_back(n.id());
    }
  } else {
    for (int i = 1; i <= service.spec().replicas(); ++i) out.push_back(std::to_string(i));
  }
  return out;
}

std::string SlotKey(const v1::Service& service, const v1::Task& task) {
  return service.spec().mode() == "global" ? task.node_id() : std::to_string(task.slot());
}

bool IsAvailable(const v1::Task& t, absl::Duration min_ready, absl::Time now,
                 absl::Time* ready_at) {
  if (!IsLive(t) || !IsServing(t)) return false;
  absl::Time since = t.spec().has_health_check()
                         ? FromProtoTime(t.status().health().healthy_since())
                         : FromProtoTime(t.status().started_at());
  if (since == absl::InfinitePast()) since = FromProtoTime(t.status().timestamp());
  absl::Time at = since + min_ready;
  if (at <= now) return true;
  if (ready_at) *ready_at = at;
  return false;
}

RolloutStep RolloutController::Advance(const PassInput& in, const v1::Deployment& d) {
  RolloutStep step;
  step.deployment = d;
  ApplyIntents(in, &step);
  // A rollback that starts a new deployment ended this one in the same step.
  if (step.started || !IsActive(step.deployment)) return step;
  if (step.deployment.phase() == v1::DEPLOYMENT_PHASE_PENDING) Start(in, &step);
  StrategyFor(step.deployment).Advance(in, &step);
  return step;
}

RolloutStep RolloutController::Supersede(const PassInput& in, const v1::Deployment& older,
                                         const v1::Deployment& newer) {
  RolloutStep step;
  step.deployment = older;
  warren::Supersede(in, newer, &step);
  return step;
}

v1::Deployment NewDeployment(const v1::Service& current, const v1::Service& next,
                             int64_t from_revision, const std::string& cause, bool rollback,
                             absl::Time now) {
  v1::Deployment d;
  d.set_id(NewId());
  d.set_service_id(current.id());
  d.set_service_name(current.spec().name());
  d.set_from_revision(from_revision);
  d.set_to_revision(next.revision());
  d.set_target_revision(next.revision());
  if (rollback) {
    // A rollback never replays canary steps or a blue/green switch: those that can switch
    // back do so on the deployment they undo; this one moves slots back as fast as the
    // rollback budgets allow.
    *d.mutable_config() = EffectiveRollbackConfig(next.spec());
    d.mutable_config()->set_strategy("rolling");
    d.set_rollback_reason(v1::ROLLBACK_REASON_MANUAL);
  } else {
    *d.mutable_config() = next.spec().update_config();
    ApplyUpdateConfigDefaults(d.mutable_config());
    // Decided here rather than stored in the spec: whether a service serves traffic can change
    // with any update, and the default follows it.
    if (!d.config().has_rolling_analysis()) {
      bool published = false;
      for (const auto& port : next.spec().template_().ports()) published |= port.published() != 0;
      d.mutable_config()->set_rolling_analysis(published);
    }
  }
  d.set_strategy(ParseStrategy(d.config().strategy()));
  d.set_phase(v1::DEPLOYMENT_PHASE_PENDING);
  d.set_rollback(rollback);
  d.set_change_cause(cause);
  d.set_total(next.spec().replicas());
  *d.mutable_created_at() = ToProtoTime(now);
  *d.mutable_phase_started_at() = ToProtoTime(now);
  *d.mutable_last_progress_at() = ToProtoTime(now);
  return d;
}

int64_t PreviousGoodRevision(const v1::Service& service, const RevisionMap& revisions) {
  for (auto it = revisions.rbegin(); it != revisions.rend(); ++it) {
    if (it->first >= service.revision()) continue;
    const auto outcome = it->second.outcome();
    if (outcome == v1::REVISION_OUTCOME_SUCCEEDED || outcome == v1::REVISION_OUTCOME_CREATED) {
      return it->first;
    }
  }
  return 0;
}

std::vector<PlannedTasks> TaskPlan(const v1::Service& service, const v1::Deployment& d,
                                   absl::Time now) {
  const Strategy& strategy = StrategyFor(d);
  if (!strategy.planned()) return {};
  const int n = service.spec().replicas();
  const int64_t from = d.from_revision(), to = d.to_revision();
  switch (d.phase()) {
    case v1::DEPLOYMENT_PHASE_ROLLING_BACK:
    case v1::DEPLOYMENT_PHASE_ROLLED_BACK:
      return {{from, n, true}, {to, 0, true}};
    case v1::DEPLOYMENT_PHASE_SUCCEEDED:
      return {{to, n, true}, {from, IsWarm(d, now) ? strategy.WarmCount(service, d) : 0, false}};
    default:
      return IsActive(d) ? strategy.ActivePlan(service, d) : std::vector<PlannedTasks>{};
  }
}

std::map<int64_t, PlannedRoute> PlannedWeights(const v1::Deployment& d) {
  const int64_t from = d.from_revision(), to = d.to_revision();
  switch (d.phase()) {
    case v1::DEPLOYMENT_PHASE_ROLLING_BACK:
    case v1::DEPLOYMENT_PHASE_ROLLED_BACK:
      return {{from, {100, false}}, {to, {0, false}}};
    case v1::DEPLOYMENT_PHASE_SUCCEEDED:
      return {{to, {100, false}}, {from, {0, false}}};
    default:
      return StrategyFor(d).ActiveWeights(d);
  }
}

}  // namespace warren
