#include "manager/ca_service.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "manager/api_shared.h"
#include "manager/cluster_identity.h"
#include "security/authz.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

std::vector<std::string> Hosts(const google::protobuf::RepeatedPtrField<std::string>& hosts) {
  return {hosts.begin(), hosts.end()};
}

void Fill(const security::IssuedCertificate& issued, const security::ClusterAuthority& authority,
          v1::NodeCertificate* resp) {
  resp->set_node_id(issued.identity.node_id);
  resp->set_role(std::string(security::RoleName(issued.identity.role)));
  resp->set_cert_pem(issued.cert_pem);
  resp->set_ca_cert_pem(authority.ca().cert_pem());
}

std::string PeerAddress(const grpc::ServerContext* ctx) {
  return ctx != nullptr ? ctx->peer() : "the manager itself";
}

}  // namespace

CaService::CaService(security::ClusterAuthority& authority, Store& store,
                     std::filesystem::path data_dir,
                     std::shared_ptr<const security::RevocationList> revoked, const Clock& clock,
                     std::shared_ptr<const security::Authorizer> authorizer)
    : authority_(authority),
      store_(store),
      data_dir_(std::move(data_dir)),
      revoked_(revoked ? std::move(revoked) : std::make_shared<security::RevocationList>()),
      clock_(clock),
      authorizer_(std::move(authorizer)) {}

absl::StatusOr<security::CertificateInfo> CaService::Peer(grpc::ServerContext* ctx) const {
  if (ctx == nullptr) {
    return absl::FailedPreconditionError("an in-process call has no certificate to renew");
  }
  auto auth = ctx->auth_context();
  if (auth == nullptr) return absl::UnauthenticatedError("the call carries no certificate");
  return security::AuthenticatePeer(*auth, authority_.cluster_id(), *revoked_);
}

absl::Status CaService::Authorize(grpc::ServerContext* ctx, absl::string_view full_method) const {
  return authorizer_->AuthorizeCall(ctx, full_method).status();
}

grpc::Status CaService::GetCaCertificate(grpc::ServerContext* ctx,
                                         const v1::GetCaCertificateRequest*,
                                         v1::GetCaCertificateResponse* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Ca/GetCaCertificate"); !s.ok()) return ToGrpc(s);
  absl::MutexLock lock(&mu_);
  resp->set_cluster_id(authority_.cluster_id());
  resp->set_ca_cert_pem(authority_.ca().cert_pem());
  return grpc::Status::OK;
}

grpc::Status CaService::JoinCluster(grpc::ServerContext* ctx, const v1::JoinClusterRequest* req,
                                    v1::NodeCertificate* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Ca/JoinCluster"); !s.ok()) return ToGrpc(s);
  absl::MutexLock lock(&mu_);
  // The CA names the node: a joining node cannot take over another node's identity.
  auto issued =
      authority_.Admit(req->token(), req->csr_pem(), NewId(), Hosts(req->hosts()), clock_.Now());
  if (!issued.ok()) {
    spdlog::warn("ca: join from {} refused: {}", PeerAddress(ctx),
                 std::string(issued.status().message()));
    return ToGrpc(issued.status());
  }
  spdlog::info("ca: node {} joined as {} from {}", issued->identity.node_id,
               std::string(security::RoleName(issued->identity.role)), PeerAddress(ctx));
  Fill(*issued, authority_, resp);
  return grpc::Status::OK;
}

grpc::Status CaService::Renew(grpc::ServerContext* ctx, const v1::RenewCertificateRequest* req,
                              v1::NodeCertificate* resp) {
  absl::Status allowed = Authorize(ctx, "/warren.v1.Ca/Renew");
  // Also in the plaintext mode: a renewal keeps the caller's certificate identity.
  absl::StatusOr<security::CertificateInfo> peer =
      allowed.ok() ? Peer(ctx) : absl::StatusOr<security::CertificateInfo>(allowed);
  if (!peer.ok()) {
    return ToGrpc(absl::Status(
        peer.status().code(),
        absl::StrCat("renewal needs the node's current certificate: ", peer.status().message())));
  }
  absl::MutexLock lock(&mu_);
  auto issued =
      authority_.Renew(*peer, req->csr_pem(), Hosts(req->hosts()), *revoked_, clock_.Now());
  if (!issued.ok()) return ToGrpc(issued.status());
  Fill(*issued, authority_, resp);
  return grpc::Status::OK;
}

grpc::Status CaService::GetJoinToken(grpc::ServerContext* ctx, const v1::GetJoinTokenRequest* req,
                                     v1::GetJoinTokenResponse* resp) {
  if (auto s = Authorize(ctx, "/warren.v1.Ca/GetJoinToken"); !s.ok()) return ToGrpc(s);
  auto role = security::ParseRole(req->role());
  if (!role.ok() || (*role != security::Role::kWorker && *role != security::Role::kManager)) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("role \"", req->role(), "\": must be worker or manager")));
  }
  absl::MutexLock lock(&mu_);
  if (req->rotate()) {
    const v1::JoinTokens before = authority_.tokens().ToProto();
    absl::Status s = authority_.tokens().Rotate(*role, authority_.ca().cert_pem());
    if (s.ok()) s = SaveClusterAuthority(store_, data_dir_, authority_);
    if (!s.ok()) {
      // Not stored: the old token stays the one in force, here as after a restart.
      auto restored = security::JoinTokens::FromProto(before);
      if (restored.ok()) authority_.tokens() = std::move(*restored);
      return ToGrpc(absl::Status(s.code(), absl::StrCat("rotating the join token: ", s.message())));
    }
    spdlog::info("ca: {} join token rotated", std::string(security::RoleName(*role)));
  }
  auto token = authority_.tokens().Get(*role);
  if (!token.ok()) return ToGrpc(token.status());
  resp->set_token(std::string(token->reveal()));
  return grpc::Status::OK;
}

}  // namespace warren
