#include "common/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

namespace fs = std::filesystem;

// -1 until RestrictUmask ran; read in forked children, so a plain integer.
int saved_umask = -1;

constexpr fs::perms kGroupOther = fs::perms::group_all | fs::perms::others_all;

// What a directory Warren wrote before holds; a non-empty directory with none of these is
// someone else's, and making it private could lock its owners out. "cluster.kek" alone is a
// new manager's data dir prepared with the cluster's key file (a shared etcd store); "tls" alone
// a node's data dir that got its certificate before its first start (a hybrid node's worker).
constexpr const char* kWarrenEntries[] = {kDataDirLockFile, "store.db", "tasks", "cluster.kek",
                                          "tls"};

// "pid 1234 manager" as the holder wrote it, or "" when it did not (yet).
std::string ReadHolder(int fd) {
  char buf[128];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  absl::string_view text(buf, static_cast<size_t>(n));
  text = absl::StripAsciiWhitespace(text.substr(0, text.find('\n')));
  std::vector<absl::string_view> parts = absl::StrSplit(text, ' ', absl::SkipEmpty());
  int pid = 0;
  if (parts.size() < 2 || parts[0] != "pid" || !absl::SimpleAtoi(parts[1], &pid) || pid <= 0) {
    return "";
  }
  return std::string(text);
}

absl::Status CheckOwnDirectory(const fs::path& dir) {
  std::error_code ec;
  // A data dir may be a link to the real directory: what counts is the directory.
  auto st = fs::status(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("data-dir ", dir.string(), ": ", ec.message()));
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data-dir ", dir.string(), ": exists and is not a directory"));
  }
  if ((st.permissions() & fs::perms::sticky_bit) != fs::perms::none) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data-dir ", dir.string(),
        ": is a shared directory (sticky bit, like /tmp); give Warren a directory of its own"));
  }
  fs::directory_iterator it(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("data-dir ", dir.string(), ": ", ec.message()));
  if (it == fs::directory_iterator()) return absl::OkStatus();
  for (const char* name : kWarrenEntries) {
    if (fs::exists(fs::symlink_status(dir / name, ec))) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "data-dir ", dir.string(), ": holds files that are not Warren's (for example \"",
      it->path().filename().string(),
      "\"); Warren makes its data dir private (mode 0700), so give it a directory of its own"));
}

}  // namespace

void RestrictUmask() {
  mode_t old = umask(077);
  if (saved_umask < 0) saved_umask = static_cast<int>(old);
}

void RestoreTaskUmask() {
  if (saved_umask >= 0) umask(static_cast<mode_t>(saved_umask));
}

absl::Status MakePrivateDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("creating directory ", dir, ": ", ec.message()));
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(
        absl::StrCat("making directory ", dir, " private (mode 0700): ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status TightenPermissions(const std::string& root) {
  absl::Status first_error;
  auto tighten = [&](const fs::path& p) {
    std::error_code ec;
    fs::file_status st = fs::symlink_status(p, ec);
    if (ec || fs::is_symlink(st)) return;
    if ((st.permissions() & kGroupOther) == fs::perms::none) return;
    fs::permissions(p, kGroupOther, fs::perm_options::remove, ec);
    if (ec && first_error.ok()) {
      first_error = absl::InternalError(
          absl::StrCat("removing group/other permissions of ", p.string(), ": ", ec.message()));
    }
  };
  tighten(root);
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) return absl::InternalError(absl::StrCat("reading ", root, ": ", ec.message()));
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    tighten(it->path());
  }
  if (ec && first_error.ok()) {
    first_error = absl::InternalError(absl::StrCat("reading ", root, ": ", ec.message()));
  }
  return first_error;
}

absl::StatusOr<std::unique_ptr<DataDirLock>> DataDirLock::Acquire(const std::string& dir,
                                                                  std::string_view role) {
  if (dir.empty()) return absl::InvalidArgumentError("data-dir: must not be empty");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (absl::Status s = CheckOwnDirectory(dir); !s.ok()) return s;
  }
  if (absl::Status s = MakePrivateDir(dir); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("data-dir ", dir, ": ", s.message()));
  }
  const std::string path = (fs::path(dir) / kDataDirLockFile).string();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("data-dir ", dir, ": opening ", path, ": ", strerror(errno)));
  }
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    std::string holder = err == EWOULDBLOCK ? ReadHolder(fd) : "";
    close(fd);
    if (err != EWOULDBLOCK) {
      return absl::InternalError(
          absl::StrCat("data-dir ", dir, ": locking ", path, ": ", strerror(err)));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "data-dir ", dir, " is in use by another Warren process (",
        holder.empty() ? "pid unknown" : holder,
        "); two processes on one data dir lose data: stop the other one or give each its own "
        "--data-dir"));
  }
  fchmod(fd, 0600);
  const std::string me = absl::StrCat("pid ", getpid(), " ", std::string(role), "\n");
  // Without the note the lock still holds; a second process just cannot name the holder.
  bool noted = ftruncate(fd, 0) == 0 &&
               pwrite(fd, me.data(), me.size(), 0) == static_cast<ssize_t>(me.size());
  (void)noted;
  std::unique_ptr<DataDirLock> lock(new DataDirLock(dir, fd));
  // The lock is held: whatever an older version left behind is this process's to tighten. A
  // file this user may not change (one a container runtime wrote as root) does not stop it.
  if (absl::Status s = TightenPermissions(dir); !s.ok()) {
    spdlog::warn("data-dir {}: {}", dir, std::string(s.message()));
  }
  return lock;
}

DataDirLock::~DataDirLock() { close(fd_); }

}  // namespace warren
