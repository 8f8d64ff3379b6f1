#include "manager/rollout/transitions.h"

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "manager/rollout/strategy.h"

namespace warren {
namespace {

void Event(const PassInput& in, RolloutStep* step, const std::string& action,
           const std::string& message) {
  step->events.push_back(
      {"deployment", step->deployment.id(), in.service.spec().name(), action, message});
}

// Whether the deployment is moving back to its stable revision (paused during a rollback
// counts).
bool RollingBack(const v1::Deployment& d) {
  return d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK ||
         (d.target_revision() != 0 && d.target_revision() != d.to_revision());
}

// Ends the deployment in `phase`; the metrics count each deployment's first end only.
void End(const PassInput& in, v1::DeploymentPhase phase, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  d.set_phase(phase);
  *d.mutable_finished_at() = ToProtoTime(in.now);
  if (!d.reopened()) step->finished = phase;
  step->changed = true;
}

}  // namespace

void SetOutcome(const PassInput& in, int64_t number, v1::RevisionOutcome outcome,
                RolloutStep* step) {
  auto it = in.revisions.find(number);
  if (it == in.revisions.end()) return;
  // A revision may already be in the step (two transitions in one pass): change that copy.
  for (auto& r : step->revisions) {
    if (r.number() == number) {
      r.set_outcome(outcome);
      return;
    }
  }
  if (it->second.outcome() == outcome) return;
  v1::Revision r = it->second;
  r.set_outcome(outcome);
  step->revisions.push_back(std::move(r));
}

void Start(const PassInput& in, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  d.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  if (d.target_revision() == 0) d.set_target_revision(d.to_revision());
  *d.mutable_phase_started_at() = ToProtoTime(in.now);
  *d.mutable_last_progress_at() = ToProtoTime(in.now);
  step->changed = true;
  Event(in, step, "started", StrategyFor(d).StartMessage(d));
  if (d.rollback()) {
    SetOutcome(in, d.from_revision(), v1::REVISION_OUTCOME_ROLLED_BACK, step);
    step->rollback_started = v1::ROLLBACK_REASON_MANUAL;
  }
}

void BeginRollback(const PassInput& in, v1::RollbackReason reason, const std::string& why,
                   RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  if (d.rollback() || RollingBack(d)) {
    Fail(in, absl::StrCat("rollback failed: ", why), step);
    return;
  }
  auto stable = in.revisions.find(d.from_revision());
  if (stable == in.revisions.end()) {
    Fail(in,
         absl::StrCat(why, " (revision ", d.from_revision(),
                      " is no longer kept: nothing to roll back to)"),
         step);
    return;
  }
  step->changed = true;
  if (d.phase() == v1::DEPLOYMENT_PHASE_SUCCEEDED) {
    d.set_reopened(true);
    d.clear_finished_at();
  }
  d.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
  d.set_target_revision(d.from_revision());
  d.set_reason(why);
  d.set_rollback_reason(reason);
  d.set_paused_by_user(false);
  *d.mutable_phase_started_at() = ToProtoTime(in.now);
  *d.mutable_last_progress_at() = ToProtoTime(in.now);
  const Strategy& strategy = StrategyFor(d);
  strategy.PrepareRollback(in, &d);
  v1::Service reverted = step->service ? *step->service : in.service;
  *reverted.mutable_spec()->mutable_template_() = stable->second.template_();
  reverted.set_revision(d.from_revision());
  *reverted.mutable_updated_at() = ToProtoTime(in.now);
  step->service = std::move(reverted);
  SetOutcome(in, d.to_revision(), v1::REVISION_OUTCOME_ROLLED_BACK, step);
  step->rollback_started = reason;
  Event(in, step, "rolling-back",
        absl::StrCat(strategy.planned() ? "traffic back to revision " : "rolling back to revision ",
                     d.from_revision(), ": ", why));
  step->next_wakeup = in.now;
}

void FinishRollback(const PassInput& in, const std::string& why, RolloutStep* step) {
  End(in, v1::DEPLOYMENT_PHASE_ROLLED_BACK, step);
  Event(in, step, "rolled-back", why);
}

void Succeed(const PassInput& in, const std::string& why, RolloutStep* step,
             const std::string& event) {
  v1::Deployment& d = step->deployment;
  d.set_reason(why);
  End(in, v1::DEPLOYMENT_PHASE_SUCCEEDED, step);
  if (!d.rollback()) SetOutcome(in, d.to_revision(), v1::REVISION_OUTCOME_SUCCEEDED, step);
  Event(in, step, "succeeded", event.empty() ? why : event);
}

void Fail(const PassInput& in, const std::string& why, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  const bool rolling_back = RollingBack(d);
  d.set_reason(why);
  End(in, v1::DEPLOYMENT_PHASE_FAILED, step);
  // A revision a rollback went back from keeps its rolled-back outcome.
  if (!d.rollback() && !rolling_back) {
    SetOutcome(in, d.to_revision(), v1::REVISION_OUTCOME_FAILED, step);
  }
  Event(in, step, "failed", why);
}

void Pause(const PassInput& in, bool by_user, const std::string& why, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  const bool rolling_back = RollingBack(d);
  d.set_phase(v1::DEPLOYMENT_PHASE_PAUSED);
  d.set_paused_by_user(by_user);
  d.set_reason(why);
  step->changed = true;
  if (!d.rollback() && !rolling_back) {
    SetOutcome(in, d.to_revision(), v1::REVISION_OUTCOME_PAUSED, step);
  }
  Event(in, step, "paused", why);
}

void Resume(const PassInput& in, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  const bool rolling_back = RollingBack(d);
  d.set_phase(rolling_back ? v1::DEPLOYMENT_PHASE_ROLLING_BACK : v1::DEPLOYMENT_PHASE_PROGRESSING);
  d.set_paused_by_user(false);
  d.set_reason("");
  // The failures that paused it were seen by a person; the deadline starts over.
  d.clear_failed_task_ids();
  *d.mutable_last_progress_at() = ToProtoTime(in.now);
  step->changed = true;
  if (!d.rollback() && !rolling_back) {
    SetOutcome(in, d.to_revision(), v1::REVISION_OUTCOME_IN_PROGRESS, step);
  }
  Event(in, step, "resumed", "resumed by hand");
  step->next_wakeup = in.now;
}

void Supersede(const PassInput& in, const v1::Deployment& newer, RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  const bool rolling_back = RollingBack(d);
  const bool by_rollback = newer.rollback();
  d.set_reason(by_rollback ? absl::StrCat("rolled back by hand to revision ", newer.to_revision())
                           : absl::StrCat("superseded by revision ", newer.to_revision()));
  if (by_rollback && !rolling_back) d.set_rollback_reason(v1::ROLLBACK_REASON_MANUAL);
  End(in, by_rollback ? v1::DEPLOYMENT_PHASE_ROLLED_BACK : v1::DEPLOYMENT_PHASE_SUPERSEDED, step);
  if (!d.rollback() && !rolling_back) {
    SetOutcome(in, d.to_revision(),
               by_rollback ? v1::REVISION_OUTCOME_ROLLED_BACK : v1::REVISION_OUTCOME_SUPERSEDED,
               step);
  }
  for (auto& intent : *d.mutable_intents()) {
    if (intent.applied()) continue;
    intent.set_applied(true);
    intent.set_error(absl::StrCat("the rollout was replaced by deployment ", newer.id(),
                                  " before this could be applied"));
    intent.set_error_code(static_cast<int>(absl::StatusCode::kAborted));
  }
  Event(in, step, by_rollback ? "rolled-back" : "superseded", d.reason());
}

void StartColdRollback(const PassInput& in, int64_t target, const std::string& cause,
                       RolloutStep* step) {
  auto it = in.revisions.find(target);
  if (it == in.revisions.end()) return;
  v1::Service next = in.service;
  *next.mutable_spec()->mutable_template_() = it->second.template_();
  next.set_revision(target);
  *next.mutable_updated_at() = ToProtoTime(in.now);
  v1::Deployment rollback =
      NewDeployment(in.service, next, in.service.revision(), cause, /*rollback=*/true, in.now);
  step->events.push_back({"deployment", rollback.id(), in.service.spec().name(), "rollback",
                          absl::StrCat("rollback from revision ", in.service.revision(), " to ",
                                       target, " (rolling): ", cause)});
  step->started = std::move(rollback);
  step->service = std::move(next);
  step->changed = true;
  step->next_wakeup = in.now;
}

}  // namespace warren
