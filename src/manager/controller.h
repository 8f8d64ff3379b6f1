#ifndef WARREN_MANAGER_CONTROLLER_H_
#define WARREN_MANAGER_CONTROLLER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/limits.h"
#include "manager/analysis/query_runner.h"
#include "manager/cluster_index.h"
#include "manager/events.h"
#include "manager/manager_metrics.h"
#include "manager/node_liveness.h"
#include "manager/rollout/rollout.h"
#include "manager/traffic.h"
#include "store/store.h"

namespace warren {

struct ControllerStats {
  uint64_t passes = 0;
  uint64_t commits = 0;
  uint64_t conflicts = 0;
  // Passes that looked at every service (the first, a resync, a node change).
  uint64_t full_passes = 0;
  // Services looked at, summed over all passes: the controller's work.
  uint64_t services_visited = 0;
  // Services the last pass looked at (dirty, due or in a deployment).
  uint64_t last_visited = 0;
  // Entries the last scheduling round looked at: pending tasks, nodes, candidates and
  // addresses tried (Scheduler::Result::work), not the placed tasks.
  uint64_t last_schedule_work = 0;
  // Passes since this controller last started to lead (on etcd; with SQLite it always leads).
  uint64_t term_passes = 0;
  bool leading = false;
  // Resyncs run, and the objects they found the change feed had not told (applied again).
  uint64_t resyncs = 0;
  uint64_t repaired = 0;
};

// The manager's control loop: node liveness, the reconciler for every service, and the
// scheduler, all level-triggered from the store. Tests call RunPass() on a fake clock; the
// server calls Start(), which runs passes on every store change and at the next deadline.
//
// Passes are incremental (issue 18): the store's change feed marks the services whose objects
// changed, and a pass looks only at those, at the ones whose own deadline (restart backoff,
// deployment step) is due, and at the ones in a deployment. Every `resync interval` a pass
// compares the version of every object in the store with its index (ClusterIndex::Verify), applies
// again what the feed did not say and looks at the services that touches: the safety net, at
// the cost of reading ids and versions. On a node change, or when the feed no longer reaches
// back, a pass rebuilds its index from full listings and looks at everything.
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

  // On etcd several managers run; only the one that leads may run passes. Unset: always
  // leads. Set before Start.
  void SetLeadership(std::function<bool()> leading) { leading_ = std::move(leading); }
  // Follows the leadership (the loop calls it before each pass; tests call it on a fake clock):
  // on gaining it the controller forgets what it knew (index, timers, deployments in flight)
  // and rebuilds from the store, every node gets one node timeout of grace from now (their
  // heartbeats went to the previous leader), and the traffic counters start again. Returns
  // whether this controller leads.
  bool UpdateLeadership();

  ControllerStats stats() const;

  // Proxy traffic for canary and blue/green analysis (owned by the server).
  void SetTraffic(TrafficStats* traffic) { traffic_ = traffic; }
  // Terminal tasks kept per slot (the manager's --task-history-limit).
  void SetTaskHistory(int n) { task_history_ = n; }
  // Where `analysisQuery` checks run (empty: they fail with a clear reason). The queries run
  // on their own threads; a pass never waits for Prometheus.
  // `timeout` bounds each query.
  void SetPrometheusUrl(std::string url, absl::Duration timeout = absl::Seconds(2));
  // How often a pass looks at everything regardless of the change feed.
  void SetResyncInterval(absl::Duration d) { resync_interval_ = d; }

  static constexpr absl::Duration kDefaultResyncInterval = absl::Seconds(30);

 private:
  void Loop();
  // Gaining the leadership: start from the store as a new manager would.
  void BeginTerm();
  bool CommitOrCount(const std::vector<Mutation>& mutations);
  // Mutations that stand on their own (each task's update), committed in parts the store
  // takes (Store::MaxMutationsPerCommit: etcd's transaction limit); true when every part was.
  // A part that fails is decided again on the next pass.
  bool CommitInParts(const std::vector<Mutation>& mutations);
  // A service's reconcile actions, committed with other services' by FlushReconciles: one
  // commit (one fsync) for many services instead of one each, which bounded how fast a pass
  // could create the tasks of thousands of new services (issue 18).
  void DeferReconcile(std::vector<Mutation> mutations);
  // Commits what DeferReconcile queued; when that fails on a conflict, each service's actions
  // are committed on their own, so one conflict costs only its service a pass.
  void FlushReconciles();
  // Commits one step of the deployment engine (with a version check on `stored` and on the
  // service when the step changes it) and counts it in the metrics.
  bool CommitStep(const RolloutStep& step, const v1::Deployment& stored,
                  const v1::Service& service);
  // Moves the string fields of objects written by an older version into their enums; true
  // when it committed something.
  bool UpgradeLegacyObjects(const std::vector<v1::Deployment>& deployments,
                            const std::vector<v1::Revision>& revisions);
  // Node liveness; true when it committed (the pass starts again).
  bool MarkSilentNodesDown(absl::Time now, absl::Time* next);
  // Tasks of deleted services: stop them, then forget them; and their revisions and
  // deployments (a removal too large for one commit leaves them to this).
  void StopTasksOfDeleted(const std::vector<std::string>& service_ids);
  // Advances the service's deployment, then reconciles its tasks; returns when it needs
  // another look even if nothing changes.
  absl::Time VisitService(const std::string& service_id, absl::Time now);
  // Places pending tasks; returns when a deferred one becomes placeable.
  absl::Time SchedulePending(absl::Time now);
  void SetTimer(const std::string& service_id, absl::Time at);

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
  std::function<bool()> leading_;
  std::atomic<bool> led_{false};
  std::atomic<uint64_t> term_passes_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Deletes the events beyond EventLog::kMaxEvents every kEventPruneInterval while leading, on
  // its own thread: at the cap that is a commit of a few hundred deletes every time, which a
  // reaction waiting behind it in the pass would wait for too.
  void PruneLoop();
  // A pass at least this long is logged (warning) with what it looked at.
  static constexpr absl::Duration kSlowPass = absl::Milliseconds(100);
  absl::Time last_slow_log_ = absl::InfinitePast();  // wall time; the pass thread only
  uint64_t slow_passes_ = 0;
  static constexpr absl::Duration kEventPruneInterval = absl::Seconds(10);
  absl::Mutex prune_mu_;
  bool prune_stop_ ABSL_GUARDED_BY(prune_mu_) = false;
  std::thread pruner_;
  std::atomic<uint64_t> passes_{0}, commits_{0}, conflicts_{0};
  std::vector<std::vector<Mutation>> deferred_;
  size_t deferred_mutations_ = 0;
  std::atomic<uint64_t> full_passes_{0}, services_visited_{0}, last_visited_{0};
  std::atomic<uint64_t> resyncs_{0}, repaired_{0};
  std::atomic<uint64_t> last_schedule_work_{0};

  // Touched by the pass thread only.
  ClusterIndex index_{store_, /*node_loads=*/true};
  absl::Duration resync_interval_ = kDefaultResyncInterval;
  absl::Time next_resync_ = absl::InfinitePast();
  // Services dirtied by changes read after a pass's first sync, for the next pass.
  std::set<std::string> carried_dirty_;
  // Per-service deadlines: the timer queue.
  std::map<std::string, absl::Time> wake_at_;
  std::set<std::pair<absl::Time, std::string>> timers_;
  // Services in a deployment (or keeping a warm revision): looked at on every pass, since
  // their analysis reads traffic that is not in the store.
  std::set<std::string> in_deployment_;
  // When the scheduler must run again although nothing changed (a deferred pending task).
  absl::Time schedule_at_ = absl::InfiniteFuture();
};

}  // namespace warren

#endif  // WARREN_MANAGER_CONTROLLER_H_
