#ifndef WARREN_MANAGER_ROLLOUT_ROLLOUT_H_
#define WARREN_MANAGER_ROLLOUT_ROLLOUT_H_

// The deployment engine: what the controller, the reconciler, the traffic controller and the
// API need from it. Layout (src/manager/rollout/):
//   params       every default of a rollout, resolved from its config in one place
//   transitions  the named state changes (start, begin rollback, succeed, fail, pause, ...)
//   intents      user requests recorded by the API, applied by the controller
//   rolling / blue_green / canary   one file per strategy (strategy.h is their interface)
//   analysis_bridge   the one door to the analysis of traffic and queries

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "manager/reconciler.h"
#include "manager/rollout/analysis_bridge.h"
#include "manager/rollout/params.h"
#include "warren/v1/objects.pb.h"

namespace warren {

using RevisionMap = std::map<int64_t, v1::Revision>;

// A deployment that still moves tasks (pending, progressing, paused, rolling back).
bool IsActive(const v1::Deployment& d);

// Blue/green and canary run both revisions side by side with their own task counts and
// traffic weights, instead of moving slots one by one.
bool IsProgressive(const v1::Deployment& d);

// A finished blue/green or canary deployment whose previous revision is still kept running
// (inside the scale-down delay after the new revision got all traffic): a rollback now is a
// switch back.
bool IsWarm(const v1::Deployment& d, absl::Time now);

// The deployment whose plan a service's tasks and traffic follow: its newest deployment when
// that one is active, or is a blue/green or canary one that succeeded (its traffic stays on the
// new revision while the old one is warm) or rolled back. Null: the tasks follow the service's
// spec alone. `of_service` may be in any order.
const v1::Deployment* GoverningDeployment(const std::vector<const v1::Deployment*>& of_service);

// The slot keys a service should have: "1".."N" (replicated) or ready eligible node ids
// (global).
std::vector<std::string> WantedSlots(const v1::Service& service,
                                     const std::vector<v1::Node>& nodes);

// The slot key of a task.
std::string SlotKey(const v1::Service& service, const v1::Task& task);

// A task that serves and has done so for min_ready. When it serves but not yet long enough,
// *ready_at says when it will count.
bool IsAvailable(const v1::Task& task, absl::Duration min_ready, absl::Time now,
                 absl::Time* ready_at = nullptr);

// What one pass of the controller decided for one deployment; the controller commits it in
// one transaction.
struct RolloutStep {
  bool changed = false;
  v1::Deployment deployment;
  // Set when the service's template goes back to an older revision (rollback).
  std::optional<v1::Service> service;
  // Revisions whose outcome changed.
  std::vector<v1::Revision> revisions;
  std::vector<EventSpec> events;
  absl::Time next_wakeup = absl::InfiniteFuture();
  // A deployment started by this step (a rollback that cannot switch back).
  std::optional<v1::Deployment> started;
  // For the metrics: the phase the deployment ended in, when it ended in this step for the
  // first time; the reason of a rollback that began in this step; a canary step promoted.
  v1::DeploymentPhase finished = v1::DEPLOYMENT_PHASE_UNSPECIFIED;
  v1::RollbackReason rollback_started = v1::ROLLBACK_REASON_UNSPECIFIED;
  bool promoted_step = false;
};

// Everything one pass of the engine reads. Pure data: the engine never touches the store.
struct PassInput {
  const v1::Service& service;
  const std::vector<v1::Task>& tasks;
  const std::vector<v1::Node>& nodes;
  const RevisionMap& revisions;
  absl::Time now;
  AnalysisSources analysis;
};

// The deployment state machine. Level-triggered and pure: it compares a deployment with the
// tasks and returns the next state; the caller commits it, and the reconciler then makes the
// tasks follow it. Pending user intents are applied first, then the strategy advances.
class RolloutController {
 public:
  static RolloutStep Advance(const PassInput& in, const v1::Deployment& deployment);

  // An older deployment that a newer one replaced before it finished: superseded, or rolled
  // back by hand when the newer one is a rollback.
  static RolloutStep Supersede(const PassInput& in, const v1::Deployment& older,
                               const v1::Deployment& newer);
};

// A new deployment from `current` to `next` (the service as it will be stored): pending, with
// the config snapshot the strategy runs under. `from_revision` is the stable revision a
// failure goes back to. A rollback always runs as a rolling update under the rollback config:
// it never replays canary steps or a blue/green switch.
v1::Deployment NewDeployment(const v1::Service& current, const v1::Service& next,
                             int64_t from_revision, const std::string& cause, bool rollback,
                             absl::Time now);

// The revision `service rollback` goes back to when none is named: the newest revision older
// than the current one whose rollout succeeded (or revision 1, created without one); rolled
// back, failed and superseded revisions are skipped. 0 when there is none.
int64_t PreviousGoodRevision(const v1::Service& service, const RevisionMap& revisions);

// Tasks each revision should have now, for a deployment that governs by plan (progressive,
// or warm after one). `refill`: replace tasks that end; a warm revision only keeps the tasks
// it has.
struct PlannedTasks {
  int64_t revision = 0;
  int count = 0;
  bool refill = true;
};
std::vector<PlannedTasks> TaskPlan(const v1::Service& service, const v1::Deployment& d,
                                   absl::Time now);

struct PlannedRoute {
  int weight = 0;
  bool preview = false;
};
// Traffic weights per revision of a governing progressive deployment.
std::map<int64_t, PlannedRoute> PlannedWeights(const v1::Deployment& d);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_ROLLOUT_H_
