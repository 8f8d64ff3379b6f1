#include "worker/secret_files.h"

#include <fcntl.h>
#include <sys/mount.h>

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status WriteFile(const fs::path& path, const SecretFile& file) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno(absl::StrCat("secret file ", path.string()));
  absl::string_view data = file.value.reveal();
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno(absl::StrCat("secret file ", path.string()));
      close(fd);
      return s;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  // Owner and mode are set after writing: a read-only file could not have been written.
  if ((file.uid != 0 || file.gid != 0) && fchown(fd, file.uid, file.gid) != 0) {
    absl::Status s =
        Errno(absl::StrCat("secret file ", path.string(), ": owner ", file.uid, ":", file.gid));
    close(fd);
    return s;
  }
  if (fchmod(fd, file.mode) != 0) {
    absl::Status s = Errno(absl::StrCat("secret file ", path.string()));
    close(fd);
    return s;
  }
  close(fd);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SecretFiles::Create(const std::string& task_id,
                                                const std::vector<SecretFile>& files) const {
  const fs::path dir = Dir(task_id);
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("secrets dir ", root_.string(), ": ", ec.message()));
  Remove(task_id);  // a half-made one from an earlier attempt
  if (mkdir(dir.c_str(), 0700) != 0) return Errno(absl::StrCat("secrets dir ", dir.string()));
  size_t total = 0;
  for (const SecretFile& f : files) total += f.value.size();
  // Room for the values plus a page per file; a tmpfs counts whole pages.
  const size_t size = total + (files.size() + 1) * 4096;
  // A file owned by another user needs a directory that user may enter (not list).
  const bool other_owner =
      std::any_of(files.begin(), files.end(), [](const SecretFile& f) { return f.uid || f.gid; });
  const std::string options = absl::StrCat("mode=", other_owner ? "0711" : "0700", ",size=", size);
  if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) !=
      0) {
    absl::Status s = Errno(absl::StrCat("mounting a tmpfs for secrets at ", dir.string(),
                                        " (the worker needs CAP_SYS_ADMIN)"));
    rmdir(dir.c_str());
    return s;
  }
  for (const SecretFile& f : files) {
    if (absl::Status s = WriteFile(dir / f.target, f); !s.ok()) {
      Remove(task_id);
      return s;
    }
  }
  return dir.string();
}

void SecretFiles::Remove(const std::string& task_id) const {
  const fs::path dir = Dir(task_id);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return;
  // MNT_DETACH: a process still holding a file open does not keep the directory around.
  if (umount2(dir.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    spdlog::warn("secrets of task {}: unmounting {}: {}", task_id, dir.string(),
                 std::strerror(errno));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) spdlog::warn("secrets of task {}: removing {}: {}", task_id, dir.string(), ec.message());
}

void SecretFiles::RemoveAllExcept(const std::set<std::string>& keep) const {
  std::error_code ec;
  std::vector<std::string> ids;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    ids.push_back(entry.path().filename().string());
  }
  for (const std::string& id : ids) {
    if (keep.count(id) > 0) continue;
    spdlog::info("removing the secrets of task {} (left by an earlier worker)", id);
    Remove(id);
  }
}

}  // namespace warren
