#ifndef WARREN_MANAGER_ROLLOUT_STRATEGY_H_
#define WARREN_MANAGER_ROLLOUT_STRATEGY_H_

// The interface one strategy implements (one file each: rolling.cc, blue_green.cc, canary.cc)
// and the table that maps a deployment to its strategy. A new strategy is a new file with a
// class like these, and one line in StrategyFor.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "manager/rollout/rollout.h"

namespace warren {

class Strategy {
 public:
  virtual ~Strategy() = default;

  // One pass over an active deployment (never pending: Start ran first).
  virtual void Advance(const PassInput& in, RolloutStep* step) const = 0;

  // The strategy's own fields, reset when a rollback begins.
  virtual void PrepareRollback(const PassInput& in, v1::Deployment* d) const = 0;

  // `service promote` / `canary promote`: what it did, for people, or why not.
  virtual absl::StatusOr<std::string> Promote(const PassInput& in, bool full,
                                              RolloutStep* step) const = 0;

  // The event text when the deployment starts.
  virtual std::string StartMessage(const v1::Deployment& d) const = 0;

  // Slot-based (rolling) or planned per revision (blue/green, canary).
  virtual bool planned() const = 0;
  // For planned strategies: tasks per revision while the deployment is active, and the
  // traffic split.
  virtual std::vector<PlannedTasks> ActivePlan(const v1::Service& service,
                                               const v1::Deployment& d) const {
    return {};
  }
  virtual std::map<int64_t, PlannedRoute> ActiveWeights(const v1::Deployment& d) const {
    return {};
  }
  // For planned strategies: how many of the previous revision's tasks stay warm once the new
  // revision has all traffic.
  virtual int WarmCount(const v1::Service& service, const v1::Deployment& d) const { return 0; }
};

// The strategy of a deployment (rolling for an unknown value).
const Strategy& StrategyFor(const v1::Deployment& d);

const Strategy& RollingStrategy();
const Strategy& BlueGreenStrategy();
const Strategy& CanaryStrategy();

// Helpers the strategies share.

// Why a new task counts as failed (crashed, unhealthy, not available within the healthy
// deadline, or never placeable on the current nodes for the placement grace), or "" (then
// *wake_at gets the next time its verdict can change).
std::string NewTaskFailure(const v1::Task& t, const std::vector<v1::Node>& nodes,
                           const RolloutParams& p, absl::Time now, absl::Time* wake_at,
                           v1::RollbackReason* reason = nullptr);

// Blue/green and canary: the first half of a pass, shared. Counts the new revision's tasks,
// ends a rollback once they are gone, holds a paused deployment, and rolls back when a new
// task failed. False when the pass is over; else `counts` is filled.
struct ProgressiveCounts {
  RolloutParams p;
  int n = 0;
  int live_to = 0;
  int available_to = 0;
  absl::Time phase_start;
  absl::Time last_progress;
};
bool ProgressivePrelude(const PassInput& in, RolloutStep* step, ProgressiveCounts* counts);

// Writes the latest analysis results into the deployment, at most once a second unless a
// verdict changed (values move with every request).
void RecordAnalysis(const std::vector<v1::AnalysisResult>& results, RolloutStep* step);

// Moves the step's wake-up earlier to `t`, when `t` is still ahead.
void WakeAt(absl::Time t, absl::Time now, RolloutStep* step);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_STRATEGY_H_
