#ifndef WARREN_MANAGER_MANAGER_STORE_H_
#define WARREN_MANAGER_MANAGER_STORE_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "roles.h"
#include "store/etcd_election.h"
#include "store/store.h"
#include "warren/v1/api.pb.h"

namespace warren {

// The store a manager opens from its options: the embedded SQLite store in the data dir, or
// etcd, which several managers share (one of them leads the controllers).
struct ManagerStore {
  // What the API reads and writes.
  std::unique_ptr<Store> store;
  // etcd only: the client, the leadership (StartManagerElection), and the store the
  // controllers write through (every commit fenced with the leader key).
  std::shared_ptr<EtcdClient> etcd;
  EtcdStore* etcd_store = nullptr;  // == store
  std::string etcd_prefix;
  // The fenced store reads the election through this slot: it exists before the election.
  std::shared_ptr<std::atomic<EtcdElection*>> election_slot;
  std::unique_ptr<Store> controller_store;
  std::unique_ptr<EtcdElection> election;

  Store& controllers() { return controller_store ? *controller_store : *store; }
};

// UNAVAILABLE when etcd cannot be reached.
absl::StatusOr<ManagerStore> OpenManagerStore(const ManagerOptions& options);

// A manager as registered on etcd (`<prefix>managers/<id>`, under its lease).
struct ManagerRecord {
  std::string id;
  std::string name;
  // Where its API serves (the address workers and the CLI dial).
  std::string api_addr;
};
// This manager: `id`, the host's name, and the API address it listens on (a wildcard host
// replaced by the host's name).
ManagerRecord ThisManager(const std::string& id, const std::string& bound_api_addr);
std::string FormatManagerRecord(const ManagerRecord& m);
absl::StatusOr<ManagerRecord> ParseManagerRecord(const std::string& json);

// etcd only (a no-op on SQLite): registers this manager and campaigns for the controllers'
// leadership, the leader key's value being `me.api_addr`. Call once the API listens.
absl::Status StartManagerElection(ManagerStore& ms, const ManagerOptions& options,
                                  const ManagerRecord& me);

// The managers registered on etcd (sorted by name, then id) and the one that leads, read at
// one revision. A registry entry lives on its manager's lease, so a manager that is gone is
// not listed.
struct ManagerRoster {
  std::vector<ManagerRecord> managers;
  // The leader key's value (the leader's API address) and the id of the registered manager
  // whose lease holds it; empty: none leads now.
  std::string leader_addr;
  std::string leader_id;
};
absl::StatusOr<ManagerRoster> ListManagers(EtcdClient& etcd, const std::string& prefix);

// The roster as the API shows it (ListNodes, ClusterAdmin.Status): `self_id` is the manager
// that answers.
std::vector<v1::ManagerInfo> ManagerInfos(const ManagerRoster& roster, const std::string& self_id);

}  // namespace warren

#endif  // WARREN_MANAGER_MANAGER_STORE_H_
