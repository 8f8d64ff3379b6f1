#ifndef WARREN_MANAGER_ROLLOUT_TRANSITIONS_H_
#define WARREN_MANAGER_ROLLOUT_TRANSITIONS_H_

// The named transitions of a deployment. Every change of phase goes through one of these,
// whoever asks for it (a strategy's pass, a user intent, a newer deployment): each one sets
// the phase and its fields, the revision outcomes, the service template when it goes back,
// the event, and what the metrics count, the same way for every strategy.

#include <string>

#include "manager/rollout/rollout.h"

namespace warren {

// The revision's outcome becomes `outcome` (recorded in the step when it changes).
void SetOutcome(const PassInput& in, int64_t revision, v1::RevisionOutcome outcome,
                RolloutStep* step);

// Pending -> Progressing. A rollback deployment marks the revision it leaves rolled-back and
// counts as a manual rollback.
void Start(const PassInput& in, RolloutStep* step);

// Progressing/Paused (or Succeeded while the previous revision is warm) -> RollingBack: the
// service's template goes back to the stable revision, the new revision's outcome becomes
// rolled-back, and the strategy resets its own fields (rolling: the slots move back under the
// rollback config; blue/green and canary: all traffic back to the stable revision at once).
// A deployment that is itself a rollback, or is already rolling back, fails instead: Warren
// never rolls back a rollback.
void BeginRollback(const PassInput& in, v1::RollbackReason reason, const std::string& why,
                   RolloutStep* step);

// RollingBack -> RolledBack.
void FinishRollback(const PassInput& in, const std::string& why, RolloutStep* step);

// -> Succeeded (the new revision's outcome succeeded, unless this is a rollback). The event
// says `event`, or `why` when empty.
void Succeed(const PassInput& in, const std::string& why, RolloutStep* step,
             const std::string& event = "");

// -> Failed.
void Fail(const PassInput& in, const std::string& why, RolloutStep* step);

// -> Paused, by a person or by the failure action.
void Pause(const PassInput& in, bool by_user, const std::string& why, RolloutStep* step);

// Paused -> Progressing (or RollingBack): the failures seen are forgiven and the progress
// deadline starts over.
void Resume(const PassInput& in, RolloutStep* step);

// -> Superseded by `newer`, or RolledBack (manual) when `newer` is a rollback.
void Supersede(const PassInput& in, const v1::Deployment& newer, RolloutStep* step);

// Starts a rolling rollback to `target` beside `step`'s deployment: the new deployment and the
// service's template going back (used when the previous revision no longer runs).
void StartColdRollback(const PassInput& in, int64_t target, const std::string& cause,
                       RolloutStep* step);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_TRANSITIONS_H_
