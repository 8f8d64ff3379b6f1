#ifndef WARREN_MANAGER_MANAGER_METRICS_H_
#define WARREN_MANAGER_MANAGER_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "http/metrics.h"
#include "warren/v1/objects.pb.h"

namespace warren {

class Store;
class TrafficStats;

// The deployment metrics of the original plan, on the manager's registry.
class ManagerMetrics {
 public:
  explicit ManagerMetrics(Registry& registry);

  // A deployment ended in `phase` (succeeded, rolled back, failed, superseded).
  void DeploymentFinished(v1::DeploymentStrategy strategy, v1::DeploymentPhase phase,
                          absl::Duration duration);
  void Rollback(v1::RollbackReason reason);
  void CanaryStep();
  // One controller pass took `duration` (real time).
  void ControllerPass(absl::Duration duration);
  // The services a controller pass has to look at (dirty, due or in a deployment).
  void ControllerDirty(size_t services);

  // The canary gauges, computed at scrape time from the store (the weights of active canaries)
  // and the proxies' counters; both must outlive the registry's use of them.
  void AddCanaryGauges(const Store& store, const TrafficStats& traffic);

 private:
  Registry& registry_;
  Family<Counter>& deployments_;
  Family<Histogram>& duration_;
  Family<Counter>& rollbacks_;
  Family<Counter>& canary_steps_;
  Family<Histogram>& pass_duration_;
  Family<Gauge>& dirty_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_MANAGER_METRICS_H_
