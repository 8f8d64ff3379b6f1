#include "manager/rollout/intents.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/time_util.h"
#include "manager/rollout/strategy.h"
#include "manager/rollout/transitions.h"

namespace warren {
namespace {

absl::Status NothingInProgress(const PassInput& in, const std::string& what) {
  return absl::FailedPreconditionError(
      absl::StrCat("service \"", in.service.spec().name(), "\" has no rollout in progress", what));
}

bool RollingBackNow(const v1::Deployment& d) {
  return d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK ||
         (d.target_revision() != 0 && d.target_revision() != d.to_revision());
}

absl::StatusOr<std::string> ApplyRollback(const PassInput& in, const v1::DeploymentIntent& intent,
                                          RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  const std::string cause = intent.cause().empty()
                                ? absl::StrCat("rollback to revision ", intent.to_revision())
                                : intent.cause();
  if (IsActive(d)) {
    if (d.rollback() || RollingBackNow(d)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "service \"", in.service.spec().name(), "\" is already rolling back to revision ",
          d.target_revision() != 0 ? d.target_revision() : d.to_revision()));
    }
    const int64_t to = intent.to_revision() != 0 ? intent.to_revision() : d.from_revision();
    if (to == d.from_revision()) {
      BeginRollback(in, v1::ROLLBACK_REASON_MANUAL, "rolled back by hand", step);
      return absl::StrCat("rolling back to revision ", to);
    }
    if (!in.revisions.count(to)) {
      return absl::NotFoundError(absl::StrCat("to-revision: revision ", to, " is not kept"));
    }
    StartColdRollback(in, to, cause, step);
    Supersede(in, *step->started, step);
    return absl::StrCat("rolling back to revision ", to);
  }
  const int64_t to = intent.to_revision() != 0 ? intent.to_revision()
                                               : PreviousGoodRevision(in.service, in.revisions);
  if (to == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "service \"", in.service.spec().name(),
        "\" has no earlier revision whose rollout succeeded; name one with --to-revision"));
  }
  if (!in.revisions.count(to)) {
    std::vector<int64_t> kept;
    for (const auto& [number, r] : in.revisions) kept.push_back(number);
    return absl::NotFoundError(
        absl::StrCat("to-revision: revision ", to, " of service \"", in.service.spec().name(),
                     "\" is not kept (kept: ", absl::StrJoin(kept, ", "), ")"));
  }
  if (to == in.service.revision()) {
    return absl::FailedPreconditionError(
        absl::StrCat("service \"", in.service.spec().name(), "\" already runs revision ", to));
  }
  // A blue/green or canary that finished moments ago still runs the revision it replaced:
  // switch the traffic back to it at once, never replaying steps or windows.
  if (IsWarm(d, in.now) && to == d.from_revision() && d.to_revision() == in.service.revision()) {
    int warm = 0;
    for (const auto& t : in.tasks) {
      if (t.revision() == to && IsAvailable(t, absl::ZeroDuration(), in.now)) warm++;
    }
    if (warm > 0) {
      BeginRollback(in, v1::ROLLBACK_REASON_MANUAL, "rolled back by hand", step);
      return absl::StrCat("traffic switched back to revision ", to, " (", warm,
                          " of its tasks still run)");
    }
  }
  StartColdRollback(in, to, cause, step);
  return absl::StrCat("rolling back to revision ", to, " (rolling: its tasks start again)");
}

absl::StatusOr<std::string> Apply(const PassInput& in, const v1::DeploymentIntent& intent,
                                  RolloutStep* step) {
  v1::Deployment& d = step->deployment;
  switch (intent.action()) {
    case v1::DEPLOYMENT_ACTION_PAUSE:
      if (!IsActive(d)) return NothingInProgress(in, "");
      if (d.phase() == v1::DEPLOYMENT_PHASE_PAUSED) return std::string("already paused");
      Pause(in, /*by_user=*/true, "paused by hand", step);
      return std::string("paused");
    case v1::DEPLOYMENT_ACTION_RESUME:
      if (!IsActive(d)) return NothingInProgress(in, "");
      if (d.phase() != v1::DEPLOYMENT_PHASE_PAUSED) return std::string("not paused");
      Resume(in, step);
      return std::string("resumed");
    case v1::DEPLOYMENT_ACTION_PROMOTE: {
      if (!IsActive(d) || !IsProgressive(d) || RollingBackNow(d)) {
        return absl::FailedPreconditionError(
            absl::StrCat("service \"", in.service.spec().name(),
                         "\" has no blue/green or canary rollout to promote"));
      }
      const size_t events_before = step->events.size();
      absl::StatusOr<std::string> what = StrategyFor(d).Promote(in, intent.full(), step);
      if (!what.ok()) return what;
      step->events.insert(
          step->events.begin() + events_before,
          {"deployment", d.id(), in.service.spec().name(), "promoted", "by hand: " + *what});
      if (d.phase() == v1::DEPLOYMENT_PHASE_PAUSED) Resume(in, step);
      return what;
    }
    case v1::DEPLOYMENT_ACTION_ABORT:
      if (!IsActive(d) || RollingBackNow(d) || d.rollback()) {
        return NothingInProgress(in, " to abort");
      }
      BeginRollback(in, v1::ROLLBACK_REASON_MANUAL, "aborted by hand", step);
      return absl::StrCat("aborted; traffic back on revision ", d.from_revision());
    case v1::DEPLOYMENT_ACTION_ROLLBACK:
      return ApplyRollback(in, intent, step);
    default:
      return absl::InvalidArgumentError("unknown action");
  }
}

}  // namespace

uint64_t AddIntent(v1::Deployment* d, v1::DeploymentIntent intent) {
  d->set_intent_sequence(d->intent_sequence() + 1);
  intent.set_sequence(d->intent_sequence());
  intent.set_applied(false);
  *d->add_intents() = std::move(intent);
  return d->intent_sequence();
}

const v1::DeploymentIntent* FindIntent(const v1::Deployment& d, uint64_t sequence) {
  for (const auto& i : d.intents()) {
    if (i.sequence() == sequence) return &i;
  }
  return nullptr;
}

void ApplyIntents(const PassInput& in, RolloutStep* step) {
  bool any = false;
  for (int i = 0; i < step->deployment.intents_size(); ++i) {
    if (step->deployment.intents(i).applied()) continue;
    // A copy: the transitions below may change the list (a superseded deployment's intents).
    const v1::DeploymentIntent intent = step->deployment.intents(i);
    absl::StatusOr<std::string> result = Apply(in, intent, step);
    v1::DeploymentIntent* stored = step->deployment.mutable_intents(i);
    stored->set_applied(true);
    if (result.ok()) {
      stored->set_result(*result);
      stored->clear_error();
      stored->clear_error_code();
    } else {
      stored->set_error(std::string(result.status().message()));
      stored->set_error_code(static_cast<int>(result.status().code()));
    }
    any = true;
  }
  if (!any) return;
  step->changed = true;
  // Keep the newest applied intents only.
  auto* intents = step->deployment.mutable_intents();
  int applied = 0;
  for (const auto& i : *intents) applied += i.applied() ? 1 : 0;
  while (applied > kKeptIntents) {
    for (int i = 0; i < intents->size(); ++i) {
      if (!intents->Get(i).applied()) continue;
      intents->erase(intents->begin() + i);
      --applied;
      break;
    }
  }
}

}  // namespace warren
