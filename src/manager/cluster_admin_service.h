#ifndef WARREN_MANAGER_CLUSTER_ADMIN_SERVICE_H_
#define WARREN_MANAGER_CLUSTER_ADMIN_SERVICE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/authz.h"
#include "store/etcd_client.h"
#include "store/store.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

// Where ClusterAdmin.Status looks.
struct ClusterStatusSource {
  // The etcd store's client and key prefix; null: the embedded SQLite store in the data dir.
  std::shared_ptr<EtcdClient> etcd;
  std::string etcd_prefix;
  // The managers (ManagerServer); unset: none listed.
  std::function<absl::StatusOr<std::vector<v1::ManagerInfo>>()> managers;
  // How long each etcd member is given to answer (asked all at once): one dead member delays
  // the answer by this much, never more.
  absl::Duration member_timeout = absl::Seconds(1);
};

// Each etcd member's own Maintenance.Status, asked of all of them at once, in endpoint order.
// Healthy: it answered within `timeout`, knows a Raft leader and reports no error (alarm).
std::vector<v1::EtcdMemberStatus> EtcdMembersStatus(EtcdClient& etcd, absl::Duration timeout);

// warren.v1.ClusterAdmin: the control plane's status, and online backups of the store. Only
// the manager can read its store (SQLite runs in exclusive locking mode), so the copy is made
// here and streamed to the client.
class ClusterAdminService final : public v1::ClusterAdmin::Service {
 public:
  // Copies are staged in `data_dir` (private, on the store's file system) and removed as soon
  // as they are open; copies a crash left behind are removed here.
  ClusterAdminService(Store& store, std::string data_dir, ClusterStatusSource status = {});

  // How calls are authorized (plaintext loopback until set). Set before serving.
  void SetAuthorizer(std::shared_ptr<const security::Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }

  grpc::Status Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
                      grpc::ServerWriter<v1::BackupChunk>* writer) override;
  // A read: the roles that read the cluster may call it (docs/security.md).
  grpc::Status Status(grpc::ServerContext* ctx, const v1::ClusterStatusRequest* req,
                      v1::ClusterStatus* resp) override;

 private:
  Store& store_;
  const std::string data_dir_;
  const ClusterStatusSource status_;
  std::shared_ptr<const security::Authorizer> authorizer_ =
      security::Authorizer::PlaintextLoopback();
};

}  // namespace warren

#endif  // WARREN_MANAGER_CLUSTER_ADMIN_SERVICE_H_
