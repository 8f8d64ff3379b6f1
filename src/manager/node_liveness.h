#ifndef WARREN_MANAGER_NODE_LIVENESS_H_
#define WARREN_MANAGER_NODE_LIVENESS_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace warren {

// Last heartbeat per node, kept in memory: heartbeats are frequent and need no durability.
// After a manager restart every node starts with a full timeout of grace.
class NodeLiveness {
 public:
  explicit NodeLiveness(const Clock& clock) : clock_(clock), started_(clock.Now()) {}

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
  const absl::Time started_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> last_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_NODE_LIVENESS_H_
