#ifndef WARREN_MANAGER_CLUSTER_IDENTITY_H_
#define WARREN_MANAGER_CLUSTER_IDENTITY_H_

#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/cluster_authority.h"
#include "store/store.h"

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

}  // namespace warren

#endif  // WARREN_MANAGER_CLUSTER_IDENTITY_H_
