#include "common/processes.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace warren {
namespace {

absl::Status ErrnoStatus(int err, const std::string& what) {
  std::string msg = absl::StrCat(what, ": ", ErrnoText(err));
  switch (err) {
    case ENOENT:
    case ESRCH:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

}  // namespace

std::string ErrnoText(int err) {
  const char* desc = strerrordesc_np(err);
  return desc != nullptr ? desc : absl::StrCat("errno ", err);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t limit) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    ssize_t n = read(fd, buf, std::min(sizeof(buf), limit - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return ErrnoStatus(err, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::StatusOr<ProcStat> ReadProcStat(int pid) {
  if (pid <= 0) return absl::NotFoundError(absl::StrCat("pid ", pid, ": no such process"));
  const std::string path = absl::StrCat("/proc/", pid, "/stat");
  absl::StatusOr<std::string> content = ReadWholeFile(path, 4096);
  if (!content.ok()) {
    // /proc/<pid> of another user's process is still readable; a denial is not an answer.
    if (absl::IsPermissionDenied(content.status())) {
      return absl::UnavailableError(content.status().message());
    }
    return content.status();
  }
  // The command name (field 2) is in parentheses and may contain spaces or ')'.
  size_t close_paren = content->rfind(')');
  std::vector<absl::string_view> fields;
  if (close_paren != std::string::npos) {
    fields =
        absl::StrSplit(absl::string_view(*content).substr(close_paren + 1), ' ', absl::SkipEmpty());
  }
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  ProcStat stat;
  if (fields.size() < 20 || fields[0].empty() || !absl::SimpleAtoi(fields[19], &stat.start_ticks)) {
    return absl::UnavailableError(absl::StrCat(path, ": unexpected content"));
  }
  stat.state = fields[0][0];
  return stat;
}

absl::Status ForEachProcessEnvironment(
    const std::function<void(int pid, std::string_view environ)>& fn) {
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return ErrnoStatus(errno, "open /proc");
  std::vector<int> pids;
  while (true) {
    errno = 0;
    dirent* entry = readdir(dir);
    if (entry == nullptr) break;
    int pid = 0;
    if (absl::SimpleAtoi(entry->d_name, &pid) && pid > 1 && pid != getpid()) pids.push_back(pid);
  }
  const int list_errno = errno;
  closedir(dir);
  if (list_errno != 0) return ErrnoStatus(list_errno, "list /proc");
  int unreadable = 0;
  std::string first_error;
  for (int pid : pids) {
    absl::StatusOr<std::string> env = ReadWholeFile(absl::StrCat("/proc/", pid, "/environ"));
    if (env.ok()) {
      fn(pid, *env);
      continue;
    }
    // Gone meanwhile, or another user's process: nothing of ours either way.
    if (absl::IsNotFound(env.status()) || absl::IsPermissionDenied(env.status())) continue;
    if (unreadable++ == 0) first_error = std::string(env.status().message());
  }
  if (unreadable > 0) {
    return absl::UnavailableError(absl::StrCat("the environment of ", unreadable,
                                               " processes could not be read (", first_error, ")"));
  }
  return absl::OkStatus();
}

int KillProcessesWithEnv(const std::string& marker) {
  int killed = 0;
  // An incomplete scan kills what it saw; the callers (tests, benchmarks) clean up once more.
  (void)ForEachProcessEnvironment([&](int pid, std::string_view env) {
    if (env.find(marker) != std::string_view::npos && kill(pid, SIGKILL) == 0) killed++;
  });
  return killed;
}

}  // namespace warren
