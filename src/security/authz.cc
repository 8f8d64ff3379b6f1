#include "security/authz.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace warren::security {

absl::Status CheckPeer(const CertificateInfo& peer, const PeerPolicy& policy) {
  if (peer.identity.cluster_id != policy.cluster_id) {
    return absl::UnauthenticatedError(absl::StrCat(
        "certificate of cluster ", peer.identity.cluster_id, ", expected ", policy.cluster_id));
  }
  if (policy.revoked != nullptr) {
    if (auto s = policy.revoked->Check(peer); !s.ok()) return s;
  }
  if (!policy.roles.empty() && std::find(policy.roles.begin(), policy.roles.end(),
                                         peer.identity.role) == policy.roles.end()) {
    std::vector<absl::string_view> names;
    for (Role r : policy.roles) names.push_back(RoleName(r));
    return absl::PermissionDeniedError(absl::StrCat("peer ", peer.identity.node_id, " has role ",
                                                    RoleName(peer.identity.role), ", expected ",
                                                    absl::StrJoin(names, " or ")));
  }
  if (!policy.node_id.empty() && peer.identity.node_id != policy.node_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("peer is node ", peer.identity.node_id, ", expected node ", policy.node_id));
  }
  return absl::OkStatus();
}

absl::StatusOr<CertificateInfo> PeerCertificate(const grpc::AuthContext& context) {
  const auto certs = context.FindPropertyValues("x509_pem_cert");
  if (certs.empty()) {
    return absl::UnauthenticatedError(
        "no client certificate: this call needs a certificate of the cluster CA");
  }
  auto info = ParseNodeCertificate(absl::string_view(certs.front().data(), certs.front().size()));
  if (!info.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate: ", info.status().message()));
  }
  return info;
}

absl::StatusOr<CertificateInfo> AuthenticatePeer(const grpc::AuthContext& context,
                                                 absl::string_view cluster_id,
                                                 const RevocationList& revoked) {
  auto peer = PeerCertificate(context);
  if (!peer.ok()) return peer.status();
  if (peer->identity.cluster_id != cluster_id) {
    return absl::UnauthenticatedError(absl::StrCat(
        "certificate of cluster ", peer->identity.cluster_id, ", expected ", cluster_id));
  }
  if (auto s = revoked.Check(*peer); !s.ok()) return s;
  return peer;
}

absl::Status AuthorizeRole(const CertificateIdentity& peer, std::initializer_list<Role> allowed,
                           absl::string_view method) {
  if (std::find(allowed.begin(), allowed.end(), peer.role) != allowed.end()) {
    return absl::OkStatus();
  }
  std::vector<absl::string_view> names;
  for (Role r : allowed) names.push_back(RoleName(r));
  return absl::PermissionDeniedError(absl::StrCat(method, ": not allowed for role ",
                                                  RoleName(peer.role), " (node ", peer.node_id,
                                                  "); allowed: ", absl::StrJoin(names, ", ")));
}

absl::Status AuthorizeNode(const CertificateIdentity& peer, absl::string_view node_id,
                           absl::string_view method) {
  if (peer.role == Role::kAdmin || peer.node_id == node_id) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(method, ": node ", peer.node_id, " may not act for node ", node_id));
}

}  // namespace warren::security
