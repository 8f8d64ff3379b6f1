#ifndef WARREN_MANAGER_ROLLOUT_PARAMS_H_
#define WARREN_MANAGER_ROLLOUT_PARAMS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The effective parameters of a rollout: its config with every default filled in. The
// defaults themselves live in one function, ApplyUpdateConfigDefaults (common/spec.h), which
// the API also applies before storing a spec; the engine reads only these resolved values.
struct RolloutParams {
  v1::DeploymentStrategy strategy = v1::DEPLOYMENT_STRATEGY_ROLLING;
  int replicas = 0;
  int parallelism = 1;  // 0: unlimited
  int max_surge = 1;
  int max_unavailable = 0;
  bool start_first = true;
  absl::Duration delay;
  absl::Duration min_ready;
  absl::Duration healthy_deadline;
  absl::Duration progress_deadline;
  std::string failure_action;
  double max_failure_ratio = 0;
  absl::Duration placement_grace;
  // Blue/green and canary.
  bool auto_promote = true;
  absl::Duration scale_down_delay;
  absl::Duration canary_window;
  std::vector<int> canary_steps;
  bool canary_keep_stable = false;
  // Rolling: judge the new revision's traffic over a sliding window while the update runs.
  bool rolling_analysis = false;
  absl::Duration rolling_window;
};

RolloutParams ResolveRolloutParams(const v1::UpdateConfig& config, int replicas);

// "rolling" (also for ""), "blue-green", "canary"; UNSPECIFIED for anything else.
v1::DeploymentStrategy ParseStrategy(const std::string& name);

// Canary steps with the default (10, 25, 50, 100) filled in.
std::vector<int> CanarySteps(const v1::UpdateConfig& config);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_PARAMS_H_
