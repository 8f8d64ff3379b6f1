#ifndef WARREN_MANAGER_TRAFFIC_H_
#define WARREN_MANAGER_TRAFFIC_H_

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/analysis/window.h"
#include "manager/cluster_index.h"
#include "store/store.h"
#include "warren/v1/api.pb.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The routing table of a cluster state: per service, the endpoints of each revision (tasks
// that are live, running, healthy and past the rollout's min-ready) and a weight per
// revision. Pure.
//
// Weights: one revision gets 100. Several revisions (a rolling update in flight) share the
// traffic in proportion to their endpoints, so every endpoint gets an equal share.
// `next_change` (optional) gets the time a serving task will pass its min-ready.
v1::RoutingTable ComputeRoutingTable(const std::vector<v1::Service>& services,
                                     const std::vector<v1::Task>& tasks,
                                     const std::vector<v1::Deployment>& deployments, absl::Time now,
                                     absl::Time* next_change = nullptr);

// The nodes whose subnets the others route to (RoutingTable.peers), by subnet: ready nodes of a
// routed network (host-gw, vxlan, wireguard) with a subnet and an advertise address. A node that
// goes down or is removed leaves. A drained one leaves once none of its tasks runs any more
// (`holding`: ids of the nodes with placed, non-terminal tasks): its tasks leave the routes as
// they begin to stop and drain their connections meanwhile, which a route gone before them
// would cut.
std::vector<v1::NodePeer> RoutedPeers(const std::vector<v1::Node>& nodes,
                                      const std::set<std::string>& holding);

// Splits 100 in proportion to `counts` (largest remainder); all zero gives all zero.
std::vector<int> ProportionalWeights(const std::vector<int>& counts);

// The current routing table, recomputed when the store changed. Its version only moves when
// its content does, so data planes can skip identical tables. Only the services whose objects
// changed (the store's change feed says which) or whose tasks pass their min-ready are
// computed again (issue 18).
class RoutingTableCache {
 public:
  RoutingTableCache(const Store& store, const Clock& clock)
      : store_(store), clock_(clock), index_(store, /*node_loads=*/true) {}

  // The whole current table. Shared and never changed once returned: the streams of every node
  // read one copy. It is built only when asked for and kept until the routes change, so a
  // change to one service costs that service's route, not a copy of the cluster's (issue 18).
  std::shared_ptr<const v1::RoutingTable> Get();

  // What a stream that holds the table of version `since` needs next. `version` is the current
  // table's. When the stream already holds it, neither `table` nor `delta` is set. Else `delta`
  // (when this cache still knows what changed after `since`) holds only the routes that changed
  // since then and the ids of the services no longer routed, so a change to one service sends
  // one route (issue 18); without it, `table` is the whole current table.
  struct Update {
    uint64_t version = 0;
    std::shared_ptr<const v1::RoutingTable> table;
    std::optional<v1::RoutingTable> delta;
  };
  Update Since(uint64_t since);

  // The current route of one service (nullopt when it is not routed) and the version of the
  // table it belongs to, without building the whole table.
  std::pair<uint64_t, std::optional<v1::ServiceRoute>> Route(const std::string& service_id);

  // Whole tables built since the start (each a copy of every route).
  uint64_t tables_built() const {
    absl::MutexLock lock(&mu_);
    return tables_built_;
  }

  // Services computed again, summed over all Get calls (the cache's work).
  uint64_t services_computed() const {
    absl::MutexLock lock(&mu_);
    return services_computed_;
  }

 private:
  struct Entry {
    std::string name;
    v1::ServiceRoute route;
    std::string content;
    absl::Time next_change = absl::InfiniteFuture();
  };
  // One published table's difference from the one before it.
  struct Step {
    uint64_t from = 0;
    uint64_t to = 0;
    std::vector<std::string> services;  // changed, added or removed
  };
  // Enough for a stream that fell a few commits behind; an older one gets the whole table.
  static constexpr size_t kMaxSteps = 256;

  // Computes the service's route again; true when it changed.
  bool Recompute(const std::string& service_id, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings entries_ and version_ up to the store; builds no table.
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every entry's route in table order (no version).
  v1::RoutingTable BuildLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The whole table of version_, built from entries_ when table_ is older.
  std::shared_ptr<const v1::RoutingTable> TableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Store& store_;
  const Clock& clock_;
  mutable absl::Mutex mu_;
  ClusterIndex index_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  // The ingress rules of the current table, in table order.
  std::vector<v1::IngressRoute> ingresses_ ABSL_GUARDED_BY(mu_);
  // The drained nodes that still hold tasks, when the peers were computed.
  std::set<std::string> drained_holding_ ABSL_GUARDED_BY(mu_);
  // The routed nodes of the current table (RoutedPeers).
  std::vector<v1::NodePeer> peers_ ABSL_GUARDED_BY(mu_);
  // Services whose route changes with time alone (min-ready), by when.
  std::set<std::pair<absl::Time, std::string>> timers_ ABSL_GUARDED_BY(mu_);
  uint64_t computed_at_ ABSL_GUARDED_BY(mu_) = UINT64_MAX;
  uint64_t services_computed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tables_built_ ABSL_GUARDED_BY(mu_) = 0;
  // The published version: it moves only when the routes' content does.
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // The last whole table built; current while its version is version_.
  std::shared_ptr<const v1::RoutingTable> table_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<v1::RoutingTable>();
  // The differences between consecutive published tables, oldest first (empty after a
  // rebuild from scratch: those streams get the whole table).
  std::deque<Step> steps_ ABSL_GUARDED_BY(mu_);
};

// The workers' proxy counters, kept in memory: each node's latest report, the cluster-wide
// totals per service revision (summed over nodes as reports arrive, corrected for counters
// that started again), and a thinned history of those totals for windowed rates
// (`service endpoints`, sliding windows). Latency is kept as histograms, so windows and nodes
// merge exactly and a window's p99 is the p99 of the requests in it.
class TrafficStats {
 public:
  explicit TrafficStats(const Clock& clock) : clock_(clock) {}

  void Report(const v1::TrafficStatsReport& report);

  // Forgets every node's counters: a manager that starts to lead on etcd hears the reports
  // from then on (they went to the previous leader meanwhile), so the totals start again.
  void Reset() {
    absl::MutexLock lock(&mu_);
    nodes_.clear();
    services_.clear();
  }

  // Totals over every node since this manager started hearing from them (including what
  // each proxy had counted before).
  std::map<int64_t, v1::RevisionTraffic> Totals(const std::string& service_id) const;
  // Growth of the totals over the last `window` (from the newest sample at or before its
  // start). What a node had counted before this manager first heard from it is in no window.
  std::map<int64_t, v1::RevisionTraffic> Recent(const std::string& service_id,
                                                absl::Duration window) const;
  // Every node's counters of the service: analysis windows that outlive this manager are
  // computed from them (see analysis/window.h).
  analysis::TrafficSnapshot Snapshot(const std::string& service_id) const;

 private:
  struct Node {
    uint64_t instance = 0;
    // service id -> counters
    std::map<std::string, analysis::NodeCounters> services;
  };
  struct Service {
    analysis::RevisionCounters totals;
    std::deque<analysis::Sample> history;
  };

  const Clock& clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Service> services_ ABSL_GUARDED_BY(mu_);
};

// Percent of requests that failed (5xx or connect errors).
double ErrorRate(const v1::RevisionTraffic& t);

}  // namespace warren

#endif  // WARREN_MANAGER_TRAFFIC_H_
