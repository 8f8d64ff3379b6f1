#ifndef WARREN_SECURITY_JOIN_TOKEN_H_
#define WARREN_SECURITY_JOIN_TOKEN_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "security/certificates.h"
#include "security/secret_bytes.h"
#include "warren/v1/security.pb.h"

// Join tokens, in Docker Swarm's format:
//
//   SWMTKN-1-<digest>-<secret>
//
//   digest: SHA-256 of the cluster CA certificate's DER encoding, as a base-36 number
//           (digits 0-9 then a-z), left-padded with '0' to 50 characters.
//   secret: 16 random bytes (128 bits) as a base-36 number, left-padded to 25 characters.
//
// The digest pins the CA: a joining node fetches the CA certificate over an unauthenticated
// call and refuses a manager whose CA does not hash to it, before it sends the secret. The
// secret says which role the node may join as; the CA compares it in constant time.
namespace warren::security {

inline constexpr size_t kJoinTokenDigestLength = 50;
inline constexpr size_t kJoinTokenSecretLength = 25;

struct ParsedJoinToken {
  std::string ca_digest;  // 50 base-36 characters
  std::string secret;     // 25 base-36 characters
};

// The digest part of a token for this CA certificate (PEM).
absl::StatusOr<std::string> CaCertificateDigest(absl::string_view ca_cert_pem);

// A new token for the CA certificate `ca_cert_pem`.
absl::StatusOr<std::string> NewJoinToken(absl::string_view ca_cert_pem);

// Checks the format; InvalidArgument naming what is wrong. Never echoes the secret.
absl::StatusOr<ParsedJoinToken> ParseJoinToken(absl::string_view token);

// FailedPrecondition when `ca_cert_pem` (as served by a manager) is not the CA the token pins.
absl::Status CheckJoinTokenCa(const ParsedJoinToken& token, absl::string_view ca_cert_pem);

// The CA's current worker and manager tokens.
class JoinTokens {
 public:
  static absl::StatusOr<JoinTokens> Create(absl::string_view ca_cert_pem);
  static absl::StatusOr<JoinTokens> FromProto(const v1::JoinTokens& proto);
  v1::JoinTokens ToProto() const;

  // Token for `role` (worker or manager); InvalidArgument for other roles.
  absl::StatusOr<SecretBytes> Get(Role role) const;
  // A new secret for `role`: the old token no longer admits new nodes (nodes that joined with it
  // keep their certificates).
  absl::Status Rotate(Role role, absl::string_view ca_cert_pem);

  // The role a presented token admits: UNAUTHENTICATED for a malformed, unknown or rotated
  // token. The secret is compared in constant time with both tokens.
  absl::StatusOr<Role> Authenticate(absl::string_view presented) const;

 private:
  JoinTokens() = default;
  SecretBytes worker_;
  SecretBytes manager_;
};

}  // namespace warren::security

#endif  // WARREN_SECURITY_JOIN_TOKEN_H_
