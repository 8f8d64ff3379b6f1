#ifndef WARREN_SECURITY_AUTHZ_H_
#define WARREN_SECURITY_AUTHZ_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>

#include <initializer_list>
#include <memory>
#include <optional>
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

// Who may call an RPC, by its full gRPC method name ("/warren.v1.Control/CreateService").
struct MethodRule {
  // No certificate needed (health, reflection, the CA bootstrap a joining node makes).
  bool open = false;
  std::vector<Role> roles;
};

// The authorization table of every RPC Warren serves. A method missing from it is denied.
// nullptr when `full_method` is not in the table.
const MethodRule* FindMethodRule(absl::string_view full_method);
// The services the table covers by name (e.g. "warren.v1.Control"), for completeness tests.
std::vector<std::string> AuthorizedServiceNames();

enum class AuthMode {
  // No TLS: every call is allowed. Only legal on loopback listeners (until mutual TLS is the
  // default everywhere).
  kPlaintextLoopback,
  // Every call is authenticated from the verified peer certificate and authorized by the table.
  kMutualTls,
};

// Decides each RPC from the peer certificate (kMutualTls), or allows it (kPlaintextLoopback).
// Thread-safe.
class Authorizer {
 public:
  // Allows everything; only for loopback listeners and in-process calls.
  static std::shared_ptr<const Authorizer> PlaintextLoopback();
  // InvalidArgument when `mode` is kPlaintextLoopback and `listen_addr` is not a loopback
  // address (127.0.0.0/8, [::1], localhost).
  static absl::StatusOr<std::shared_ptr<const Authorizer>> Create(
      AuthMode mode, absl::string_view listen_addr, std::string cluster_id,
      std::shared_ptr<const RevocationList> revoked);

  AuthMode mode() const { return mode_; }

  // The caller's identity when the call may proceed; nullopt when there is no identity to check
  // (plaintext mode, or an open method). UNAUTHENTICATED without a valid certificate of the
  // cluster (or a revoked one), PERMISSION_DENIED for a role the table does not allow or a
  // method missing from it. `auth` null: a call without an auth context (refused unless open).
  absl::StatusOr<std::optional<CertificateIdentity>> Authorize(const grpc::AuthContext* auth,
                                                               absl::string_view full_method) const;

  // The one rule every service applies to a call's context. gRPC hands every call it serves a
  // ServerContext, so a null `ctx` can only be the manager's own code (the dashboard, a secret
  // update rolling its services): it acts with the manager's authority and is allowed
  // (nullopt). Otherwise Authorize() on the call's auth context.
  absl::StatusOr<std::optional<CertificateIdentity>> AuthorizeCall(
      const grpc::ServerContextBase* ctx, absl::string_view full_method) const;

  // For a long-lived stream (a node's assignment or route watch): AuthorizeCall again when the
  // revocation list changed since `*checked` (then updated), so that the stream of a node
  // removed meanwhile ends at its next wake-up. Start with `*checked` =
  // revocation_generation() read before the stream's first authorization.
  absl::Status Reauthorize(const grpc::ServerContextBase* ctx, absl::string_view full_method,
                           uint64_t* checked) const;
  uint64_t revocation_generation() const { return revoked_ ? revoked_->generation() : 0; }

 private:
  Authorizer(AuthMode mode, std::string cluster_id, std::shared_ptr<const RevocationList> revoked)
      : mode_(mode), cluster_id_(std::move(cluster_id)), revoked_(std::move(revoked)) {}
  const AuthMode mode_;
  const std::string cluster_id_;
  const std::shared_ptr<const RevocationList> revoked_;
};

// True for 127.0.0.0/8, ::1 and localhost listen addresses ("HOST:PORT", "[::1]:PORT").
bool IsLoopbackListenAddr(absl::string_view addr);

}  // namespace warren::security

#endif  // WARREN_SECURITY_AUTHZ_H_
