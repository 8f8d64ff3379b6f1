#ifndef WARREN_SECURITY_AEAD_H_
#define WARREN_SECURITY_AEAD_H_

#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "security/secret_bytes.h"
#include "warren/v1/security.pb.h"

// AES-256-GCM, the one cipher Warren uses for data at rest (the CA key, the cluster key, join
// tokens, secret values and their data keys).
namespace warren::security {

inline constexpr size_t kAeadKeySize = 32;
inline constexpr size_t kAeadNonceSize = 12;
inline constexpr size_t kAeadTagSize = 16;

// A new random 32-byte key.
absl::StatusOr<SecretBytes> NewAeadKey();

// Encrypts `plaintext` under `key` with a fresh random nonce. `aad` is authenticated but not
// stored: Open() must be given the same bytes.
absl::StatusOr<v1::SealedBox> Seal(const SecretBytes& key, absl::string_view plaintext,
                                   absl::string_view aad);

// DataLoss when the box does not open: a wrong key, other associated data, or a changed nonce,
// ciphertext or tag (GCM cannot tell these apart, and must not).
absl::StatusOr<SecretBytes> Open(const SecretBytes& key, const v1::SealedBox& box,
                                 absl::string_view aad);

// Associated data from parts, each length-prefixed so ("ab", "c") and ("a", "bc") differ.
std::string AssociatedData(std::initializer_list<absl::string_view> parts);

}  // namespace warren::security

#endif  // WARREN_SECURITY_AEAD_H_
