#ifndef WARREN_SECURITY_AUTHZ_H_
#define WARREN_SECURITY_AUTHZ_H_

#include <grpcpp/security/auth_context.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "security/certificates.h"
#include "security/revocation.h"

// Authentication and authorization decisions from a peer's certificate. The TLS handshake has
// already verified the chain against the cluster CA; these read who the peer is and decide what
// it may do. UNAUTHENTICATED: no usable identity. PERMISSION_DENIED: an identity not allowed.
namespace warren::security {

// Whom a connection's other end must be.
struct PeerPolicy {
  // Required: a certificate of another cluster (same CA key reused, or a test CA) is refused.
  std::string cluster_id;
  // Empty: any role.
  std::vector<Role> roles;
  // Empty: any node; else exactly this node (a manager calling one worker's log service).
  std::string node_id;
  // Optional; shared because gRPC keeps verifiers alive as long as it likes.
  std::shared_ptr<const RevocationList> revoked;
};

// OK when `peer` satisfies `policy`; UNAUTHENTICATED for another cluster or a revoked
// certificate, PERMISSION_DENIED for a role or node not allowed.
absl::Status CheckPeer(const CertificateInfo& peer, const PeerPolicy& policy);

// The certificate gRPC's TLS handshake verified for this call's peer ("x509_pem_cert" of the
// auth context). UNAUTHENTICATED when the call is not over TLS or the peer sent no certificate.
absl::StatusOr<CertificateInfo> PeerCertificate(const grpc::AuthContext& context);

// PeerCertificate + cluster + revocation: the identity every authorized RPC starts from.
absl::StatusOr<CertificateInfo> AuthenticatePeer(const grpc::AuthContext& context,
                                                 absl::string_view cluster_id,
                                                 const RevocationList& revoked);

// PERMISSION_DENIED unless the peer's role is one of `allowed`; `method` names the RPC.
absl::Status AuthorizeRole(const CertificateIdentity& peer, std::initializer_list<Role> allowed,
                           absl::string_view method);

// For RPCs a node makes about itself (registration, heartbeats, status reports, assignment and
// route watches): PERMISSION_DENIED when a worker or manager certificate acts for another node.
// Admins may act for any node (e.g. draining it).
absl::Status AuthorizeNode(const CertificateIdentity& peer, absl::string_view node_id,
                           absl::string_view method);

}  // namespace warren::security

#endif  // WARREN_SECURITY_AUTHZ_H_
