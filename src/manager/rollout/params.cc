#include "manager/rollout/params.h"

#include <algorithm>

#include "common/enum_names.h"
#include "common/spec.h"
#include "common/time_util.h"

namespace warren {

v1::DeploymentStrategy ParseStrategy(const std::string& name) {
  if (name.empty()) return v1::DEPLOYMENT_STRATEGY_ROLLING;
  return ParseDisplayName<v1::DeploymentStrategy>(name).value_or(
      v1::DEPLOYMENT_STRATEGY_UNSPECIFIED);
}

std::vector<int> CanarySteps(const v1::UpdateConfig& c) {
  if (c.canary_steps_size() > 0) return {c.canary_steps().begin(), c.canary_steps().end()};
  return {std::begin(kDefaultCanarySteps), std::end(kDefaultCanarySteps)};
}

RolloutParams ResolveRolloutParams(const v1::UpdateConfig& config, int replicas) {
  v1::UpdateConfig c = config;
  ApplyUpdateConfigDefaults(&c);
  RolloutParams p;
  p.strategy = ParseStrategy(c.strategy());
  p.replicas = replicas;
  p.parallelism = std::max(0, c.parallelism());
  auto budget = ResolveRollingBudget(c, replicas);
  // Stored configs were validated; a budget that no longer parses keeps the safe defaults.
  p.max_surge = budget.ok() ? budget->max_surge : 1;
  p.max_unavailable = budget.ok() ? budget->max_unavailable : 0;
  p.start_first = c.order() != "stop-first";
  if (p.max_surge == 0) p.start_first = false;
  if (p.max_unavailable == 0) p.start_first = true;
  p.delay = FromProtoDuration(c.delay());
  p.min_ready = FromProtoDuration(c.min_ready());
  p.healthy_deadline = FromProtoDuration(c.healthy_deadline());
  p.progress_deadline = FromProtoDuration(c.progress_deadline());
  p.failure_action = c.failure_action();
  p.max_failure_ratio = c.max_failure_ratio();
  p.placement_grace = FromProtoDuration(c.placement_grace());
  p.auto_promote = c.auto_promote();
  p.scale_down_delay = FromProtoDuration(c.scale_down_delay());
  p.canary_window = FromProtoDuration(c.canary_window());
  p.canary_steps = CanarySteps(c);
  p.canary_keep_stable = c.canary_keep_stable();
  p.rolling_analysis = p.strategy == v1::DEPLOYMENT_STRATEGY_ROLLING && c.rolling_analysis();
  p.rolling_window = FromProtoDuration(c.rolling_window());
  return p;
}

}  // namespace warren
