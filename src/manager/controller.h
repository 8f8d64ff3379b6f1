#ifndef WARREN_MANAGER_CONTROLLER_H_
#define WARREN_MANAGER_CONTROLLER_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/limits.h"
#include "manager/analysis/query_runner.h"
#include "manager/events.h"
#include "manager/manager_metrics.h"
#include "manager/node_liveness.h"
#include "manager/traffic.h"
#include "store/store.h"

namespace warren {

struct ControllerStats {
  uint64_t passes = 0;
  uint64_t commits = 0;
  uint64_t conflicts = 0;
};

// The manager's control loop: node liveness, the reconciler for every service, and the
// scheduler, all level-triggered from the store. Tests call RunPass() on a fake clock; the
// server calls Start(), which runs passes on every store change and at the next deadline.
class Controller {
 public:
  // `metrics` may be null (tests).
  Controller(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
             absl::Duration node_timeout, ManagerMetrics* metrics = nullptr);
  ~Controller();

  // One pass; returns when the loop should look again even if nothing changes.
  absl::Time RunPass();

  void Start();
  void Stop();

  ControllerStats stats() const;

  // Proxy traffic for canary and blue/green analysis (owned by the server).
  void SetTraffic(TrafficStats* traffic) { traffic_ = traffic; }
  // Terminal tasks kept per slot (the manager's --task-history-limit).
  void SetTaskHistory(int n) { task_history_ = n; }
  // Where `analysisQuery` checks run (empty: they fail with a clear reason). The queries run
  // on their own threads; a pass never waits for Prometheus.
  // `timeout` bounds each query.
  void SetPrometheusUrl(std::string url, absl::Duration timeout = absl::Seconds(2));

 private:
  void Loop();
  bool CommitOrCount(const std::vector<Mutation>& mutations);

  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  NodeLiveness& liveness_;
  const absl::Duration node_timeout_;
  ManagerMetrics* metrics_;
  TrafficStats* traffic_ = nullptr;
  std::string prometheus_url_;
  int task_history_ = limits::kDefaultTaskHistory;
  std::unique_ptr<analysis::QueryRunner> queries_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::atomic<uint64_t> passes_{0}, commits_{0}, conflicts_{0};
  absl::Time last_prune_ = absl::InfinitePast();
};

}  // namespace warren

#endif  // WARREN_MANAGER_CONTROLLER_H_
