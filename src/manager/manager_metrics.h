#ifndef WARREN_MANAGER_MANAGER_METRICS_H_
#define WARREN_MANAGER_MANAGER_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "http/metrics.h"

namespace warren {

// The deployment metrics of the original plan, on the manager's registry.
class ManagerMetrics {
 public:
  explicit ManagerMetrics(Registry& registry);

  // status: succeeded | rolled_back | failed | superseded.
  void DeploymentFinished(const std::string& strategy, const std::string& status,
                          absl::Duration duration);
  // reason: health_check | error_rate | manual | deadline.
  void Rollback(const std::string& reason);
  void CanaryStep();

 private:
  Family<Counter>& deployments_;
  Family<Histogram>& duration_;
  Family<Counter>& rollbacks_;
  Family<Counter>& canary_steps_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_MANAGER_METRICS_H_
