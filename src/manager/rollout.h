#ifndef WARREN_MANAGER_ROLLOUT_H_
#define WARREN_MANAGER_ROLLOUT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "manager/reconciler.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The effective rollout parameters of a deployment, defaults filled in.
struct RolloutParams {
  int replicas = 0;
  int parallelism = 1;  // 0: unlimited
  int max_surge = 1;
  int max_unavailable = 0;
  bool start_first = true;
  absl::Duration delay = absl::ZeroDuration();
  absl::Duration min_ready = absl::ZeroDuration();
  absl::Duration healthy_deadline = absl::Minutes(5);
  absl::Duration progress_deadline = absl::Minutes(10);
  std::string failure_action = "rollback";
  double max_failure_ratio = 0;
};

RolloutParams ResolveRolloutParams(const v1::UpdateConfig& config, int replicas);

// A deployment that still moves tasks (pending, progressing, paused, rolling back).
bool IsActive(const v1::Deployment& d);

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

// One step of a rollout.
struct RolloutStep {
  bool changed = false;
  v1::Deployment deployment;
  // Set when the service's template goes back to an older revision (rollback).
  std::optional<v1::Service> service;
  // Revisions whose outcome changed.
  std::vector<v1::Revision> revisions;
  std::vector<EventSpec> events;
  absl::Time next_wakeup = absl::InfiniteFuture();
  // When the deployment ended in this step: "succeeded", "rolled_back" or "failed".
  std::string finished_status;
  // When a rollback started in this step: health_check | deadline.
  std::string rollback_reason;
};

// The rolling-update state machine. Level-triggered and pure: it compares the deployment
// with the tasks and returns the next state; the caller commits it. The reconciler then
// makes the tasks follow the deployment's slot decisions.
//
// Each pass: count slots that are done (only a live task of the target revision, available
// past min-ready), find failed new tasks (crashed, unhealthy, or not available within the
// healthy deadline), apply the failure action when the failures exceed max-failure-ratio or
// the progress deadline passes, and when the current batch is done (and `delay` has passed)
// switch the next batch of slots to the target within the surge/unavailable budgets.
class RolloutController {
 public:
  static RolloutStep Advance(const v1::Service& service, const v1::Deployment& deployment,
                             const std::vector<v1::Task>& tasks, const std::vector<v1::Node>& nodes,
                             const std::map<int64_t, v1::Revision>& revisions, absl::Time now);
};

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_H_
