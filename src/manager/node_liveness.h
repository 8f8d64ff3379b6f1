#ifndef WARREN_MANAGER_NODE_LIVENESS_H_
#define WARREN_MANAGER_NODE_LIVENESS_H_

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace warren {

// Last heartbeat per node, kept in memory: heartbeats are frequent and need no durability.
// After a manager restart every node starts with a full timeout of grace, and so after a
// manager gains the controllers' leadership on etcd (StartGrace): the heartbeats went to the
// previous leader meanwhile.
class NodeLiveness {
 public:
  explicit NodeLiveness(const Clock& clock) : clock_(clock), started_(clock.Now()) {}

  // Every node counts as heard from now: a manager that starts to lead gives each node one
  // node timeout before it may mark it down.
  void StartGrace() {
    absl::MutexLock lock(&mu_);
    started_ = clock_.Now();
  }

  // From when a node's timeout runs: its last heartbeat, or the grace's start when later.
  absl::Time AliveSince(const std::string& node_id) const {
    absl::MutexLock lock(&mu_);
    auto it = last_.find(node_id);
    return it == last_.end() ? started_ : std::max(it->second, started_);
  }

  void Beat(const std::string& node_id) {
    absl::MutexLock lock(&mu_);
    last_[node_id] = clock_.Now();
  }

  absl::Time LastSeen(const std::string& node_id) const {
    absl::MutexLock lock(&mu_);
    auto it = last_.find(node_id);
    return it == last_.end() ? started_ : it->second;
  }

  // Heard from since the manager started (as opposed to the start-up grace).
  bool Heard(const std::string& node_id) const {
    absl::MutexLock lock(&mu_);
    return last_.contains(node_id);
  }

 private:
  const Clock& clock_;
  absl::Time started_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> last_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_NODE_LIVENESS_H_
