#ifndef WARREN_SECURITY_CERTIFICATES_H_
#define WARREN_SECURITY_CERTIFICATES_H_

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/secret_bytes.h"

// Node certificates: what a node creates (key, CSR), what the CA puts in the subject, and how a
// peer's certificate is verified and read.
namespace warren::security {

// The role a certificate grants. It is the subject's OU, so it cannot change without a new
// certificate from the CA.
enum class Role {
  kManager,   // "manager": runs the control plane; also acts as a worker for its own node.
  kWorker,    // "worker": only the worker-facing RPCs, only for its own node id.
  kAdmin,     // "admin": a user (the CLI) allowed everything.
  kReadOnly,  // "read-only": a user allowed the read RPCs.
};
absl::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(absl::string_view name);

// Who a certificate speaks for: subject CN = node id, OU = role, O = cluster id.
struct CertificateIdentity {
  std::string node_id;
  Role role = Role::kWorker;
  std::string cluster_id;
};

// A parsed certificate. Parsing alone makes no trust decision: see VerifyCertificate.
struct CertificateInfo {
  CertificateIdentity identity;
  std::string serial;  // upper-case hex
  absl::Time not_before;
  absl::Time not_after;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

// Ids go into certificate subjects: 1..64 of [A-Za-z0-9._-]. `field` names the input in errors.
absl::Status ValidateId(absl::string_view id, absl::string_view field);

// A new ECDSA P-256 private key, PKCS#8 PEM.
absl::StatusOr<SecretBytes> GeneratePrivateKey();

// A certificate signing request for `key_pem` (PEM). Its subject is left empty: the CA takes
// only the public key from a CSR and writes the subject itself.
absl::StatusOr<std::string> CreateCsr(const SecretBytes& key_pem);

// Reads the first certificate of `cert_pem` (a leaf, or a leaf followed by its chain) and its
// Warren identity. InvalidArgument for a certificate that is not a Warren node certificate.
absl::StatusOr<CertificateInfo> ParseNodeCertificate(absl::string_view cert_pem);

// FailedPrecondition "not yet valid" / "expired" unless not_before <= now <= not_after.
absl::Status CheckValidAt(const CertificateInfo& info, absl::Time now);

// Verifies `cert_pem` (a leaf, optionally followed by intermediates) against the CA certificate
// `ca_pem` at time `now` (signature chain, validity, key usage for TLS client and server), then
// reads its identity. UNAUTHENTICATED with the reason when the chain does not verify.
absl::StatusOr<CertificateInfo> VerifyCertificate(absl::string_view ca_pem,
                                                  absl::string_view cert_pem, absl::Time now);

// True when the private key belongs to the certificate (first of `cert_pem`).
absl::StatusOr<bool> KeyMatchesCertificate(const SecretBytes& key_pem, absl::string_view cert_pem);

// When to renew: a uniformly random point between 50 % and 80 % of the certificate's life, so
// nodes issued together do not all come back to the CA at once.
absl::Time RenewalTime(const CertificateInfo& info, absl::BitGenRef gen);

}  // namespace warren::security

#endif  // WARREN_SECURITY_CERTIFICATES_H_
