#ifndef WARREN_SECURITY_CLUSTER_AUTHORITY_H_
#define WARREN_SECURITY_CLUSTER_AUTHORITY_H_

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/certificates.h"
#include "security/join_token.h"
#include "security/revocation.h"
#include "security/root_ca.h"
#include "security/secret_bytes.h"
#include "warren/v1/security.pb.h"

namespace warren::security {

struct ClusterAuthorityOptions {
  absl::Duration ca_validity = kDefaultCaValidity;
  absl::Duration node_cert_validity = kDefaultNodeCertValidity;
};

// A node admitted by a join token or renewed by its current certificate.
struct IssuedCertificate {
  CertificateIdentity identity;
  std::string cert_pem;
};

// What a manager holds in memory for the cluster's identity: the root CA, the join tokens and
// the cluster key that wraps secrets' data keys. Stored as one v1::ClusterSecurity object, every
// key sealed under the manager's key-encryption key.
class ClusterAuthority {
 public:
  static absl::StatusOr<ClusterAuthority> Create(absl::string_view cluster_id, absl::Time now,
                                                 const ClusterAuthorityOptions& options = {});
  static absl::StatusOr<ClusterAuthority> Unseal(const v1::ClusterSecurity& stored,
                                                 const SecretBytes& kek);
  absl::StatusOr<v1::ClusterSecurity> Seal(const SecretBytes& kek) const;

  // A new node: the token says the role (UNAUTHENTICATED for a wrong or rotated token), the
  // caller picks the node id (never the requester), the CSR gives only the public key.
  absl::StatusOr<IssuedCertificate> Admit(absl::string_view token, absl::string_view csr_pem,
                                          absl::string_view new_node_id,
                                          const std::vector<std::string>& hosts,
                                          absl::Time now) const;
  // A new certificate for the same identity as `current` (a peer certificate the TLS layer
  // verified): no token needed; refused for a revoked node or certificate.
  absl::StatusOr<IssuedCertificate> Renew(const CertificateInfo& current, absl::string_view csr_pem,
                                          const std::vector<std::string>& hosts,
                                          const RevocationList& revoked, absl::Time now) const;
  // Until when a revocation of a node must be kept: its newest certificate's end.
  absl::Time RevocationHorizon(absl::Time now) const;

  const RootCa& ca() const { return ca_; }
  const std::string& cluster_id() const { return ca_.cluster_id(); }
  JoinTokens& tokens() { return tokens_; }
  const JoinTokens& tokens() const { return tokens_; }
  const SecretBytes& cluster_key() const { return cluster_key_; }
  absl::Duration node_cert_validity() const { return node_cert_validity_; }
  // The lifetime of certificates issued from now on (InvalidArgument outside 1 min..5 years).
  absl::Status set_node_cert_validity(absl::Duration validity);

 private:
  ClusterAuthority(RootCa ca, JoinTokens tokens, SecretBytes cluster_key, absl::Duration validity)
      : ca_(std::move(ca)),
        tokens_(std::move(tokens)),
        cluster_key_(std::move(cluster_key)),
        node_cert_validity_(validity) {}
  RootCa ca_;
  JoinTokens tokens_;
  SecretBytes cluster_key_;
  absl::Duration node_cert_validity_;
};

}  // namespace warren::security

#endif  // WARREN_SECURITY_CLUSTER_AUTHORITY_H_
