#ifndef WARREN_MANAGER_BACKUP_SERVICE_H_
#define WARREN_MANAGER_BACKUP_SERVICE_H_

#include <memory>
#include <string>

#include "security/authz.h"
#include "store/store.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

// warren.v1.ClusterAdmin: online backups of the store. Only the manager can read its store
// (SQLite runs in exclusive locking mode), so the copy is made here and streamed to the client.
class BackupService final : public v1::ClusterAdmin::Service {
 public:
  // Copies are staged in `data_dir` (private, on the store's file system) and removed as soon
  // as they are open; copies a crash left behind are removed here.
  BackupService(Store& store, std::string data_dir);

  // How calls are authorized (plaintext loopback until set). Set before serving.
  void SetAuthorizer(std::shared_ptr<const security::Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }

  grpc::Status Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
                      grpc::ServerWriter<v1::BackupChunk>* writer) override;

 private:
  Store& store_;
  const std::string data_dir_;
  std::shared_ptr<const security::Authorizer> authorizer_ =
      security::Authorizer::PlaintextLoopback();
};

}  // namespace warren

#endif  // WARREN_MANAGER_BACKUP_SERVICE_H_
