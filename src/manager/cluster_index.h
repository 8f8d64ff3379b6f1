#ifndef WARREN_MANAGER_CLUSTER_INDEX_H_
#define WARREN_MANAGER_CLUSTER_INDEX_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "manager/scheduler.h"
#include "store/store.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// What the controller keeps of a task between passes: enough to find a service's tasks, the
// pending ones and what placed tasks hold on their nodes, without parsing every task again.
struct TaskEntry {
  std::string service_id;
  std::string node_id;
  v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
  v1::TaskState desired = v1::TASK_STATE_UNSPECIFIED;
  absl::Time not_before = absl::InfinitePast();
  double cpus = 0;
  int64_t memory = 0;
  // IPv4, host order; 0 when none.
  uint32_t address = 0;
  // Store version of the task as applied (the resync compares it with the store's).
  uint64_t version = 0;
};

// The controller's index of the store, kept current from the store's change feed. Each Sync
// names the services whose objects (service, tasks, deployments, revisions) changed since the
// previous one, so a pass visits only those. When the feed no longer reaches back (it is
// bounded) or at the first Sync, the index is rebuilt from full listings and the caller is
// told to visit everything.
class ClusterIndex {
 public:
  struct Dirty {
    // Every service must be looked at (first sync, or the feed was compacted past us).
    bool all = false;
    // A node was added, changed or removed.
    bool nodes = false;
    // Some task changed (the scheduler's inputs may differ).
    bool tasks = false;
    // An ingress was added, changed or removed (the routing table carries them).
    bool ingresses = false;
    // Service ids (existing or deleted) whose objects changed.
    std::set<std::string> services;
  };

  // `node_loads`: also keep what placed tasks hold per node (node_loads()), for the scheduler.
  explicit ClusterIndex(const Store& store, bool node_loads = false)
      : store_(store), track_loads_(node_loads) {}

  // Applies the store's changes since the last Sync; returns what they touched.
  Dirty Sync();
  // Forgets everything: the next Sync rebuilds from full listings.
  void Invalidate() { loaded_ = false; }
  // The resync, after a Sync: compares the version of every service, task, deployment,
  // revision and node in the store with the one this index applied, and applies again, from the
  // store, each object that differs, is missing or is gone (a change the feed lost). Objects
  // committed after the last Sync are left to the next one. It reads ids and versions, not
  // data, and parses only what differs, so it costs a fraction of a rebuild (issue 18: a
  // rebuild at 10,000 services held the controller for 0.4 s). Returns what it repaired.
  Dirty Verify();
  // Objects the resyncs applied again since the start.
  uint64_t repaired() const { return repaired_; }

  const std::vector<v1::Node>& nodes() const { return nodes_; }
  const std::set<std::string>& service_ids() const { return services_; }
  const absl::flat_hash_map<std::string, TaskEntry>& tasks() const { return tasks_; }
  // Task ids of a service (also of a deleted one whose tasks remain).
  const std::set<std::string>& TasksOf(const std::string& service_id) const;
  const std::set<std::string>& DeploymentsOf(const std::string& service_id) const;
  const std::set<std::string>& RevisionsOf(const std::string& service_id) const;
  // Service ids that have tasks.
  std::vector<std::string> ServicesWithTasks() const;
  const std::set<std::string>& pending() const { return pending_; }
  // What the placed, non-terminal tasks hold on each node, kept as tasks change (empty unless
  // constructed with `node_loads`).
  const NodeLoads& node_loads() const { return loads_; }
  uint64_t version() const { return version_; }

 private:
  void Reload(Dirty* dirty);
  void Apply(const Change& c, Dirty* dirty);
  void PutTask(const std::string& id, const v1::Task& t, uint64_t version, Dirty* dirty);
  // The version applied of an object of `kind` (nullopt: the index does not hold it), and the
  // ids it holds of that kind.
  std::optional<uint64_t> AppliedVersion(Kind kind, const std::string& id) const;
  std::vector<std::string> HeldIds(Kind kind) const;
  size_t HeldCount(Kind kind) const;
  // Versions applied of the kinds kept as owner maps or sets (tasks and nodes keep their own).
  const absl::flat_hash_map<std::string, uint64_t>& VersionsOf(Kind kind) const;
  void EraseTask(const std::string& id, Dirty* dirty);
  // Adds (+1) or removes (-1) what the task holds on its node, when it holds a place there.
  void CountLoad(const TaskEntry& e, int sign);
  void PutOwned(std::map<std::string, std::set<std::string>>& by_service,
                std::map<std::string, std::string>& owner, const std::string& id,
                const std::string& service_id, Dirty* dirty);
  void EraseOwned(std::map<std::string, std::set<std::string>>& by_service,
                  std::map<std::string, std::string>& owner, const std::string& id, Dirty* dirty);

  const Store& store_;
  const bool track_loads_;
  bool loaded_ = false;
  uint64_t version_ = 0;
  std::vector<v1::Node> nodes_;
  std::set<std::string> services_;
  absl::flat_hash_map<std::string, TaskEntry> tasks_;
  std::map<std::string, std::set<std::string>> tasks_by_service_;
  std::map<std::string, std::set<std::string>> deployments_by_service_;
  std::map<std::string, std::string> deployment_owner_;
  std::map<std::string, std::set<std::string>> revisions_by_service_;
  std::map<std::string, std::string> revision_owner_;
  std::set<std::string> pending_;
  NodeLoads loads_;
  absl::flat_hash_map<std::string, uint64_t> service_versions_, deployment_versions_,
      revision_versions_;
  uint64_t repaired_ = 0;
};

}  // namespace warren

#endif  // WARREN_MANAGER_CLUSTER_INDEX_H_
