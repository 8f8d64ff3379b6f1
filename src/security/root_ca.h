#ifndef WARREN_SECURITY_ROOT_CA_H_
#define WARREN_SECURITY_ROOT_CA_H_

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/certificates.h"
#include "security/openssl_util.h"
#include "security/secret_bytes.h"
#include "warren/v1/security.pb.h"

namespace warren::security {

inline constexpr absl::Duration kDefaultCaValidity = absl::Hours(24 * 365 * 20);
inline constexpr absl::Duration kDefaultNodeCertValidity = absl::Hours(24 * 90);
inline constexpr absl::Duration kMinNodeCertValidity = absl::Minutes(1);
inline constexpr absl::Duration kMaxNodeCertValidity = absl::Hours(24 * 365 * 5);
// Node certificates start this far in the past (at most 1/10 of their life) so that a peer
// whose clock is a little behind the CA's accepts them at once.
inline constexpr absl::Duration kMaxCertBackdate = absl::Minutes(5);

struct IssueOptions {
  absl::Duration validity = kDefaultNodeCertValidity;
  // Subject alternative names: each an IPv4/IPv6 address or a DNS name.
  std::vector<std::string> hosts;
};

// A certificate and the private key it was issued for (both PEM).
struct KeyAndCertificate {
  SecretBytes key_pem;
  std::string cert_pem;
};

// The cluster's root certificate authority: a self-signed ECDSA P-256 CA certificate and its key.
// Issues node and client certificates. Move-only.
class RootCa {
 public:
  // A new CA for `cluster_id`, valid from `now` for `validity`.
  static absl::StatusOr<RootCa> Create(absl::string_view cluster_id, absl::Time now,
                                       absl::Duration validity = kDefaultCaValidity);
  // An existing CA from its certificate and key; checks they belong together and that the
  // certificate is a CA certificate of `cluster_id`.
  static absl::StatusOr<RootCa> FromPem(absl::string_view cluster_id, absl::string_view cert_pem,
                                        const SecretBytes& key_pem);
  // The stored form: the key sealed under `kek`, bound to the cluster id and the certificate.
  absl::StatusOr<v1::ClusterCA> Seal(const SecretBytes& kek) const;
  static absl::StatusOr<RootCa> Unseal(const v1::ClusterCA& stored, const SecretBytes& kek);

  // Signs `csr_pem` into a certificate for `subject`. Only the public key is taken from the CSR
  // (after checking the CSR's own signature, which proves the requester holds the key); the
  // subject, names, usages and validity all come from the arguments.
  absl::StatusOr<std::string> Issue(absl::string_view csr_pem, const CertificateIdentity& subject,
                                    const IssueOptions& options, absl::Time now) const;
  // A new key and its certificate, for identities the CA's host makes for itself (the
  // manager's own certificate, the CLI's admin bundle).
  absl::StatusOr<KeyAndCertificate> IssueKeyAndCertificate(const CertificateIdentity& subject,
                                                           const IssueOptions& options,
                                                           absl::Time now) const;

  const std::string& cluster_id() const { return cluster_id_; }
  const std::string& cert_pem() const { return cert_pem_; }
  absl::Time not_after() const { return not_after_; }

 private:
  RootCa() = default;
  std::string cluster_id_;
  std::string cert_pem_;
  absl::Time not_after_;
  X509Ptr cert_;
  EvpPkeyPtr key_;
};

}  // namespace warren::security

#endif  // WARREN_SECURITY_ROOT_CA_H_
