#include "manager/cluster_identity.h"

#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "security/key_file.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<security::ClusterAuthority> Load(const StoredObject& stored,
                                                const fs::path& kek_path) {
  v1::ClusterSecurity proto;
  if (!proto.ParseFromString(stored.data)) {
    return absl::DataLossError("cluster security object in the store does not parse");
  }
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(kek_path, ec))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the store holds cluster ", proto.ca().cluster_id(), ", but its key file ",
        kek_path.string(),
        " is missing: the CA key, join tokens and secrets cannot be opened without it; restore "
        "the file from the data dir that created the cluster (or start a new cluster with a new "
        "store)"));
  }
  auto kek = security::ReadKeyFile(kek_path.string());
  if (!kek.ok()) return kek.status();
  auto authority = security::ClusterAuthority::Unseal(proto, *kek);
  if (!authority.ok()) {
    return absl::Status(
        authority.status().code(),
        absl::StrCat("key file ", kek_path.string(), " does not open cluster ",
                     proto.ca().cluster_id(), " in the store (", authority.status().message(),
                     "): it belongs to another cluster; use the key file of the data dir that "
                     "created this cluster"));
  }
  return authority;
}

}  // namespace

absl::StatusOr<security::ClusterAuthority> LoadOrCreateClusterAuthority(
    Store& store, const fs::path& data_dir, absl::Time now,
    const security::ClusterAuthorityOptions& options) {
  const fs::path kek_path = data_dir / kClusterKekFile;
  if (auto stored = store.Get(Kind::kClusterSecurity, kClusterSecurityId)) {
    return Load(*stored, kek_path);
  }
  // A key file without a cluster is one whose creation stopped before the commit: reused.
  auto kek = security::LoadOrCreateKeyFile(kek_path.string());
  if (!kek.ok()) return kek.status();
  auto authority = security::ClusterAuthority::Create(NewId(), now, options);
  if (!authority.ok()) return authority.status();
  auto sealed = authority->Seal(*kek);
  if (!sealed.ok()) return sealed.status();
  Mutation m;
  m.kind = Kind::kClusterSecurity;
  m.id = std::string(kClusterSecurityId);
  m.data = sealed->SerializeAsString();
  m.expected_version = Mutation::kMustNotExist;
  auto committed = store.Commit({m});
  if (committed.status().code() == absl::StatusCode::kAborted) {
    // Another manager of a shared store created it first.
    if (auto stored = store.Get(Kind::kClusterSecurity, kClusterSecurityId)) {
      return Load(*stored, kek_path);
    }
  }
  if (!committed.ok()) {
    return absl::Status(committed.status().code(),
                        absl::StrCat("storing the new cluster CA: ", committed.status().message()));
  }
  spdlog::info("cluster {} created: a new CA; its key is sealed under {}", authority->cluster_id(),
               kek_path.string());
  return authority;
}

absl::Status SaveClusterAuthority(Store& store, const fs::path& data_dir,
                                  const security::ClusterAuthority& authority) {
  auto stored = store.Get(Kind::kClusterSecurity, kClusterSecurityId);
  if (!stored) return absl::FailedPreconditionError("the store holds no cluster CA");
  auto kek = security::ReadKeyFile((data_dir / kClusterKekFile).string());
  if (!kek.ok()) return kek.status();
  auto sealed = authority.Seal(*kek);
  if (!sealed.ok()) return sealed.status();
  Mutation m;
  m.kind = Kind::kClusterSecurity;
  m.id = std::string(kClusterSecurityId);
  m.data = sealed->SerializeAsString();
  m.expected_version = stored->version;
  // The revocation list is not part of the authority: kept as stored.
  v1::ClusterSecurity old;
  if (old.ParseFromString(stored->data) && old.has_revoked()) {
    *sealed->mutable_revoked() = old.revoked();
    m.data = sealed->SerializeAsString();
  }
  return store.Commit({m}).status();
}

absl::StatusOr<v1::RevocationList> LoadRevocationList(const Store& store) {
  auto stored = store.Get(Kind::kClusterSecurity, kClusterSecurityId);
  if (!stored) return v1::RevocationList();
  v1::ClusterSecurity proto;
  if (!proto.ParseFromString(stored->data)) {
    return absl::DataLossError("cluster security object in the store does not parse");
  }
  return proto.revoked();
}

absl::StatusOr<std::optional<Mutation>> RevokeNodeMutation(const Store& store,
                                                           const std::string& node_id,
                                                           absl::Time now, absl::Time keep_until) {
  auto stored = store.Get(Kind::kClusterSecurity, kClusterSecurityId);
  if (!stored) return std::nullopt;
  v1::ClusterSecurity proto;
  if (!proto.ParseFromString(stored->data)) {
    return absl::DataLossError("cluster security object in the store does not parse");
  }
  security::RevocationList list;
  if (auto s = list.Replace(proto.revoked()); !s.ok()) return s;
  list.Prune(now);
  list.RevokeNode(node_id, now, keep_until);
  *proto.mutable_revoked() = list.ToProto();
  Mutation m;
  m.kind = Kind::kClusterSecurity;
  m.id = std::string(kClusterSecurityId);
  m.data = proto.SerializeAsString();
  m.expected_version = stored->version;
  return std::optional<Mutation>(std::move(m));
}

}  // namespace warren
