#ifndef WARREN_MANAGER_MANAGER_STORE_H_
#define WARREN_MANAGER_MANAGER_STORE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "roles.h"
#include "store/etcd_election.h"
#include "store/store.h"

namespace warren {

// The store a manager opens from its options: the embedded SQLite store in the data dir, or
// etcd with this manager as the controllers' leader.
struct ManagerStore {
  // What the API reads and writes.
  std::unique_ptr<Store> store;
  // etcd only: the leadership, and the store the controllers write through (every commit
  // fenced with the leader key).
  std::unique_ptr<EtcdElection> election;
  std::unique_ptr<Store> controller_store;

  Store& controllers() { return controller_store ? *controller_store : *store; }
};

// With etcd, the manager must win the leader lease: until several managers share one etcd
// (issue 14, phase 2), a second manager on the same etcd and prefix is refused with
// FAILED_PRECONDITION naming the one that leads. UNAVAILABLE when etcd cannot be reached.
absl::StatusOr<ManagerStore> OpenManagerStore(const ManagerOptions& options);

}  // namespace warren

#endif  // WARREN_MANAGER_MANAGER_STORE_H_
