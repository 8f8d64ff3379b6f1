#ifndef WARREN_MANAGER_CLUSTER_IDENTITY_H_
#define WARREN_MANAGER_CLUSTER_IDENTITY_H_

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/cluster_authority.h"
#include "store/store.h"
#include "warren/v1/security.pb.h"

namespace warren {

// The key-encryption key's file in the manager's data dir.
inline constexpr char kClusterKekFile[] = "cluster.kek";

// The cluster's identity (CA, join tokens, cluster key) as a manager starts with it: created
// the first time (a new KEK file in `data_dir` and one sealed ClusterSecurity object in the
// store), loaded and unsealed with that KEK after. `options` apply only when the cluster is
// created. Refused with an error naming the file and the way out: a store that holds a cluster
// while the KEK file is missing, a KEK that does not open it (another data dir's), a KEK file
// with wrong permissions.
absl::StatusOr<security::ClusterAuthority> LoadOrCreateClusterAuthority(
    Store& store, const std::filesystem::path& data_dir, absl::Time now,
    const security::ClusterAuthorityOptions& options = {});

// Writes `authority` (e.g. after a join token rotation) over the stored object, sealed under
// the key file in `data_dir`.
absl::Status SaveClusterAuthority(Store& store, const std::filesystem::path& data_dir,
                                  const security::ClusterAuthority& authority);

// The revocation list stored with the cluster (empty when the store holds no cluster yet).
absl::StatusOr<v1::RevocationList> LoadRevocationList(const Store& store);

// The write that adds node `node_id` to the stored revocation list (kept until `keep_until`) and
// drops the entries that expired by `now`, to commit together with the node's removal. nullopt
// when the store holds no cluster (nothing to revoke against). Conditional on the stored
// object's version, so a concurrent change makes the commit retry.
absl::StatusOr<std::optional<Mutation>> RevokeNodeMutation(const Store& store,
                                                           const std::string& node_id,
                                                           absl::Time now, absl::Time keep_until);

}  // namespace warren

#endif  // WARREN_MANAGER_CLUSTER_IDENTITY_H_
