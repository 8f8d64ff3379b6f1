#include "security/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "security/aead.h"
#include "security/openssl_util.h"

namespace warren::security {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path, int err) {
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  return err == ENOENT ? absl::NotFoundError(msg) : absl::FailedPreconditionError(msg);
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectoryOf(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) parent = std::filesystem::current_path();
  const std::string dir = parent.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync", dir, err);
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, mode_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");
  const int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Errno("create", tmp, errno);
  absl::Status status = ::fchmod(fd, mode) == 0 ? absl::OkStatus() : Errno("chmod", tmp, errno);
  if (status.ok()) status = WriteAll(fd, contents, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = Errno("fsync", tmp, errno);
  ::close(fd);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) status = Errno("rename", tmp, errno);
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return SyncDirectoryOf(path);
}

absl::StatusOr<SecretBytes> CreateKeyFile(const std::string& path) {
  auto key = NewAeadKey();
  if (!key.ok()) return key.status();
  // O_EXCL: two processes racing to create the KEK must not each believe their key is the one.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("key file ", path, ": exists; refusing to replace a key-encryption key"));
    }
    return Errno("create key file", path, errno);
  }
  absl::Status status = ::fchmod(fd, 0600) == 0 ? absl::OkStatus() : Errno("chmod", path, errno);
  if (status.ok()) status = WriteAll(fd, key->reveal(), path);
  if (status.ok() && ::fsync(fd) != 0) status = Errno("fsync", path, errno);
  ::close(fd);
  if (status.ok()) status = SyncDirectoryOf(path);
  if (!status.ok()) {
    ::unlink(path.c_str());
    return status;
  }
  return key;
}

absl::StatusOr<SecretBytes> ReadKeyFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat("key file ", path, ": is a symlink; a key file must be a regular file"));
    }
    return Errno("open key file", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno("stat key file", path, err);
  }
  absl::Status status;
  if (!S_ISREG(st.st_mode)) {
    status = absl::FailedPreconditionError(absl::StrCat("key file ", path, ": not a regular file"));
  } else if (st.st_uid != ::geteuid()) {
    status = absl::FailedPreconditionError(absl::StrCat(
        "key file ", path, ": owned by uid ", st.st_uid, ", must be owned by uid ", ::geteuid()));
  } else if ((st.st_mode & 077) != 0) {
    status = absl::FailedPreconditionError(
        absl::StrFormat("key file %s: mode %04o gives group/other access; must be 0600 "
                        "(chmod 600 %s)",
                        path, st.st_mode & 07777, path));
  } else if (st.st_size != static_cast<off_t>(kAeadKeySize)) {
    status = absl::FailedPreconditionError(absl::StrCat("key file ", path, ": ", st.st_size,
                                                        " bytes, must be exactly ", kAeadKeySize));
  }
  if (!status.ok()) {
    ::close(fd);
    return status;
  }
  std::string buf(kAeadKeySize, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  SecretBytes key(std::move(buf));
  if (got != kAeadKeySize) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, ": short read (", got, " of ", kAeadKeySize, " bytes)"));
  }
  return key;
}

absl::StatusOr<SecretBytes> LoadOrCreateKeyFile(const std::string& path) {
  auto key = ReadKeyFile(path);
  if (key.ok() || !absl::IsNotFound(key.status())) return key;
  auto created = CreateKeyFile(path);
  // Lost a creation race with another process: its key is the one on disk.
  if (absl::IsAlreadyExists(created.status())) return ReadKeyFile(path);
  return created;
}

}  // namespace warren::security
