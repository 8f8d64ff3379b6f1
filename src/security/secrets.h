#ifndef WARREN_SECURITY_SECRETS_H_
#define WARREN_SECURITY_SECRETS_H_

#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "security/secret_bytes.h"
#include "warren/v1/security.pb.h"

// Envelope encryption of secret values: each value is sealed under a data key of its own, and
// the data key under the cluster key. Both seals bind the secret's id and name, so an envelope
// copied onto another secret (in the store, by anyone who can write it) does not open.
namespace warren::security {

// Docker's limit; a secret is a credential or a small file, not a data set.
inline constexpr size_t kMaxSecretSize = 500 * 1024;

absl::StatusOr<v1::SecretEnvelope> EncryptSecret(const SecretBytes& cluster_key,
                                                 absl::string_view secret_id,
                                                 absl::string_view name, const SecretBytes& value);

// DataLoss for an envelope that does not open with this key, id and name.
absl::StatusOr<SecretBytes> DecryptSecret(const SecretBytes& cluster_key,
                                          absl::string_view secret_id, absl::string_view name,
                                          const v1::SecretEnvelope& envelope);

}  // namespace warren::security

#endif  // WARREN_SECURITY_SECRETS_H_
