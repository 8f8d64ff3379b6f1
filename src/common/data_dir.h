#ifndef WARREN_COMMON_DATA_DIR_H_
#define WARREN_COMMON_DATA_DIR_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace warren {

// Name of the lock file every data dir holds.
inline constexpr char kDataDirLockFile[] = "warren.lock";

// Sets the process umask to 077, so that everything a manager or worker creates is private
// (files 0600, directories 0700: task environments can hold credentials), and remembers the
// previous umask for task processes. Call once at start, before any thread exists.
void RestrictUmask();

// In a forked child before exec: gives the task the umask the process had before
// RestrictUmask, so tasks create files as they would without Warren. Async-signal-safe; a
// no-op when RestrictUmask was never called.
void RestoreTaskUmask();

// Creates `dir` and missing parents; the directory itself ends up mode 0700 whether it existed
// or not.
absl::Status MakePrivateDir(const std::string& dir);

// Removes the group and other permission bits from `root` and everything below it (data dirs
// written by versions that created them 0755/0644). Symbolic links are neither followed nor
// changed.
absl::Status TightenPermissions(const std::string& root);

// One process per data dir: an exclusive flock on <dir>/warren.lock, held until this object is
// destroyed (or the process dies, whatever the way). Two managers on one store acknowledge
// writes that the other one then overwrites.
class DataDirLock {
 public:
  // Creates the directory (0700), tightens what is in it and takes the lock without waiting.
  // FAILED_PRECONDITION naming the dir (and the holder's pid and role when it wrote them) when
  // another process holds it; `role` ("manager", "worker") is recorded for that message.
  static absl::StatusOr<std::unique_ptr<DataDirLock>> Acquire(const std::string& dir,
                                                              std::string_view role);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

  const std::string& dir() const { return dir_; }

 private:
  DataDirLock(std::string dir, int fd) : dir_(std::move(dir)), fd_(fd) {}

  const std::string dir_;
  const int fd_;
};

}  // namespace warren

#endif  // WARREN_COMMON_DATA_DIR_H_
