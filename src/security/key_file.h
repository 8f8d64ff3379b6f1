#ifndef WARREN_SECURITY_KEY_FILE_H_
#define WARREN_SECURITY_KEY_FILE_H_

#include <sys/types.h>

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "security/secret_bytes.h"

// The key-encryption key (KEK): 32 random bytes in a file of the manager's data dir, readable by
// its owner only. It seals the CA key, the cluster key and the join tokens in the store, so a
// copy of the store alone reveals none of them.
namespace warren::security {

// Creates a new KEK file (mode 0600); refuses to replace an existing file.
absl::StatusOr<SecretBytes> CreateKeyFile(const std::string& path);

// Reads a KEK file. Refused: a symlink, not a regular file, another owner than this process's
// user, any group/other permission bit, a size other than 32 bytes.
absl::StatusOr<SecretBytes> ReadKeyFile(const std::string& path);

// ReadKeyFile, or CreateKeyFile when `path` does not exist.
absl::StatusOr<SecretBytes> LoadOrCreateKeyFile(const std::string& path);

// Writes `contents` to `path` through a temporary file in the same directory (written with
// `mode` from the start, fsynced, renamed over `path`, directory fsynced): a reader sees the old
// or the new file, never a part, and a crash leaves one of the two.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, mode_t mode);

}  // namespace warren::security

#endif  // WARREN_SECURITY_KEY_FILE_H_
