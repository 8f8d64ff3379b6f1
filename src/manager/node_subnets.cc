#include "manager/node_subnets.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "store/typed_store.h"

namespace warren {

absl::StatusOr<ClusterCidr> StoredClusterCidr(const Store& store) {
  auto stored = GetObject<v1::ClusterNetwork>(store, kClusterNetworkId);
  if (!stored) return ClusterCidr::Parse("cluster_cidr", kDefaultClusterCidr);
  return ClusterCidr::Parse("the cluster's stored cluster_cidr", stored->cluster_cidr());
}

absl::StatusOr<ClusterCidr> LoadOrStoreClusterCidr(Store& store, const std::string& requested) {
  absl::StatusOr<ClusterCidr> wanted =
      ClusterCidr::Parse("--cluster-cidr", requested.empty() ? kDefaultClusterCidr : requested);
  if (!wanted.ok()) return wanted.status();
  // Two managers starting on one etcd at once: one creates it, the other reads it again.
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (auto stored = GetObject<v1::ClusterNetwork>(store, kClusterNetworkId)) {
      absl::StatusOr<ClusterCidr> have = StoredClusterCidr(store);
      if (!have.ok()) return have.status();
      if (!requested.empty() && have->ToString() != wanted->ToString()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--cluster-cidr: ", wanted->ToString(), " differs from the cluster's ",
                         have->ToString(),
                         " (stored when the cluster was created); a cluster is never "
                         "renumbered: start with --cluster-cidr ",
                         have->ToString(), " or without the flag"));
      }
      return *have;
    }
    v1::ClusterNetwork network;
    network.set_cluster_cidr(wanted->ToString());
    absl::StatusOr<uint64_t> v = store.Commit({PutMutation(network, Mutation::kMustNotExist)});
    if (v.ok()) return *wanted;
    if (v.status().code() != absl::StatusCode::kAborted) return v.status();
  }
  return absl::AbortedError("cluster CIDR: too many concurrent writes at start; retry");
}

absl::StatusOr<Mutation> ClaimNodeSubnet(const Store& store, const std::string& node_id,
                                         std::string* subnet) {
  absl::StatusOr<ClusterCidr> cidr = StoredClusterCidr(store);
  if (!cidr.ok()) return cidr.status();
  std::vector<bool> taken(cidr->SubnetCount());
  for (const v1::SubnetClaim& claim : ListObjects<v1::SubnetClaim>(store)) {
    if (auto i = cidr->IndexOf(claim.subnet())) taken[*i] = true;
  }
  for (int i = 0; i < cidr->SubnetCount(); ++i) {
    if (taken[i]) continue;
    v1::SubnetClaim claim;
    claim.set_subnet(cidr->Subnet(i));
    claim.set_node_id(node_id);
    *subnet = claim.subnet();
    return PutMutation(claim, Mutation::kMustNotExist);
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "--cluster-cidr ", cidr->ToString(), " is full: it holds ", cidr->SubnetCount(),
      " nodes (a /", kNodeSubnetPrefix,
      " each) and every subnet is taken; remove nodes that "
      "are gone (`warren node rm`), or create the cluster with a larger --cluster-cidr"));
}

std::optional<Mutation> ReleaseNodeSubnet(const Store& store, const v1::Node& node) {
  if (node.subnet().empty()) return std::nullopt;
  auto claim = GetObject<v1::SubnetClaim>(store, node.subnet());
  if (!claim || claim->node_id() != node.id()) return std::nullopt;
  return DeleteMutation(*claim, claim->version());
}

}  // namespace warren
