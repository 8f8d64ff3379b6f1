#ifndef WARREN_MANAGER_NODE_SUBNETS_H_
#define WARREN_MANAGER_NODE_SUBNETS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/cluster_cidr.h"
#include "store/store.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The cluster's address plan (docs/networking.md): the cluster CIDR (common/cluster_cidr.h) is
// stored once at the cluster's first start, and each node gets a /24 of it at registration.

// At a manager's start: the cluster CIDR the cluster keeps. The first start stores `requested`
// (kDefaultClusterCidr when empty); a later one returns the stored value, and refuses a
// non-empty `requested` that differs from it with FAILED_PRECONDITION naming both (a cluster
// is never renumbered).
absl::StatusOr<ClusterCidr> LoadOrStoreClusterCidr(Store& store, const std::string& requested);

// The stored cluster CIDR; kDefaultClusterCidr while none is stored.
absl::StatusOr<ClusterCidr> StoredClusterCidr(const Store& store);

// The write that gives node `node_id` the lowest free /24 of the stored cluster CIDR (its
// subnet in `*subnet`), to commit with the node. It creates the subnet's claim object, so a
// concurrent registration that picked the same subnet loses the commit (ABORTED) and retries.
// RESOURCE_EXHAUSTED naming --cluster-cidr when every subnet is taken.
absl::StatusOr<Mutation> ClaimNodeSubnet(const Store& store, const std::string& node_id,
                                         std::string* subnet);

// The write that frees `node`'s subnet, to commit with its removal; nullopt when it holds none.
std::optional<Mutation> ReleaseNodeSubnet(const Store& store, const v1::Node& node);

}  // namespace warren

#endif  // WARREN_MANAGER_NODE_SUBNETS_H_
