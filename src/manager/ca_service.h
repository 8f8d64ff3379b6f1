#ifndef WARREN_MANAGER_CA_SERVICE_H_
#define WARREN_MANAGER_CA_SERVICE_H_

#include <filesystem>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "security/authz.h"
#include "security/cluster_authority.h"
#include "security/revocation.h"
#include "store/store.h"
#include "warren/v1/security.grpc.pb.h"

namespace warren {

// warren.v1.Ca: the cluster CA's calls on the manager's API address. The authority's join
// tokens change only here (rotation), under this service's lock.
class CaService final : public v1::Ca::Service {
 public:
  CaService(security::ClusterAuthority& authority, Store& store, std::filesystem::path data_dir,
            std::shared_ptr<const security::RevocationList> revoked, const Clock& clock,
            std::shared_ptr<const security::Authorizer> authorizer);

  grpc::Status GetCaCertificate(grpc::ServerContext* ctx, const v1::GetCaCertificateRequest* req,
                                v1::GetCaCertificateResponse* resp) override;
  grpc::Status JoinCluster(grpc::ServerContext* ctx, const v1::JoinClusterRequest* req,
                           v1::NodeCertificate* resp) override;
  grpc::Status Renew(grpc::ServerContext* ctx, const v1::RenewCertificateRequest* req,
                     v1::NodeCertificate* resp) override;
  grpc::Status GetJoinToken(grpc::ServerContext* ctx, const v1::GetJoinTokenRequest* req,
                            v1::GetJoinTokenResponse* resp) override;

 private:
  // The verified peer certificate of this call (UNAUTHENTICATED without one, or revoked).
  absl::StatusOr<security::CertificateInfo> Peer(grpc::ServerContext* ctx) const;
  // The authorization table's decision for `full_method` (docs/security.md).
  absl::Status Authorize(grpc::ServerContext* ctx, absl::string_view full_method) const;

  absl::Mutex mu_;
  security::ClusterAuthority& authority_ ABSL_GUARDED_BY(mu_);
  Store& store_;
  const std::filesystem::path data_dir_;
  const std::shared_ptr<const security::RevocationList> revoked_;
  const Clock& clock_;
  const std::shared_ptr<const security::Authorizer> authorizer_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_CA_SERVICE_H_
