#ifndef WARREN_MANAGER_ROLLOUT_H_
#define WARREN_MANAGER_ROLLOUT_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "manager/reconciler.h"
#include "warren/v1/api.pb.h"
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
  // When a rollback started in this step: health_check | error_rate | deadline.
  std::string rollback_reason;
  // A canary moved to its next step.
  bool promoted_step = false;
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
// Proxy traffic of a service's revisions over the last `window`.
using TrafficWindow = std::function<std::map<int64_t, v1::RevisionTraffic>(
    const std::string& service_id, absl::Duration window)>;

// Runs an analysis query (Prometheus) and returns its value.
using QueryFunction = std::function<absl::StatusOr<double>(const std::string& query)>;

class RolloutController {
 public:
  // `traffic` feeds canary and blue/green analysis; without it only health is judged.
  // `query` runs `analysisQuery` checks; without it a configured query fails its check.
  static RolloutStep Advance(const v1::Service& service, const v1::Deployment& deployment,
                             const std::vector<v1::Task>& tasks, const std::vector<v1::Node>& nodes,
                             const std::map<int64_t, v1::Revision>& revisions, absl::Time now,
                             const TrafficWindow* traffic = nullptr,
                             const QueryFunction* query = nullptr);
};

// Blue/green and canary run both revisions side by side with their own task counts and
// traffic weights, instead of moving slots one by one.
bool IsProgressive(const v1::Deployment& d);

// Tasks each revision should have now (revision, count), for a progressive deployment.
std::vector<std::pair<int64_t, int>> TaskPlan(const v1::Service& service, const v1::Deployment& d);

struct PlannedRoute {
  int weight = 0;
  bool preview = false;
};
// Traffic weights per revision of a progressive deployment.
std::map<int64_t, PlannedRoute> PlannedWeights(const v1::Deployment& d);

// Canary steps with the default (10, 25, 50, 100) filled in.
std::vector<int> CanarySteps(const v1::UpdateConfig& c);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_H_
