#include "manager/manager_metrics.h"

namespace warren {

ManagerMetrics::ManagerMetrics(Registry& registry)
    : deployments_(registry.AddCounter("warren_deployments_total",
                                       "Finished deployments by strategy and outcome.",
                                       {"strategy", "status"})),
      duration_(registry.AddHistogram(
          "warren_deployment_duration_seconds", "Time from the start of a deployment to its end.",
          {"strategy"}, {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600})),
      rollbacks_(registry.AddCounter("warren_rollbacks_total", "Rollbacks by reason.", {"reason"})),
      canary_steps_(registry.AddCounter("warren_canary_promotion_steps_total",
                                        "Canary steps promoted (after the first).")) {
  // Export the documented label sets from the start, so dashboards see zeros, not gaps.
  for (const char* reason : {"health_check", "error_rate", "manual", "deadline"}) {
    rollbacks_.WithLabels({reason});
  }
}

void ManagerMetrics::CanaryStep() { canary_steps_.WithLabels({}).Inc(); }

void ManagerMetrics::DeploymentFinished(const std::string& strategy, const std::string& status,
                                        absl::Duration duration) {
  deployments_.WithLabels({strategy, status}).Inc();
  duration_.WithLabels({strategy}).Observe(absl::ToDoubleSeconds(duration));
}

void ManagerMetrics::Rollback(const std::string& reason) { rollbacks_.WithLabels({reason}).Inc(); }

}  // namespace warren
