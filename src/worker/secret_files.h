#ifndef WARREN_WORKER_SECRET_FILES_H_
#define WARREN_WORKER_SECRET_FILES_H_

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "security/secret_bytes.h"

namespace warren {

// One secret as a file in a task's secrets directory.
struct SecretFile {
  std::string target;  // file name, no '/'
  uint32_t mode = 0400;
  security::SecretBytes value;
  uint32_t uid = 0;  // the file's owner
  uint32_t gid = 0;
};

// Per-task secrets directories under `root` (<worker data dir>/secrets/<task id>), each its
// own tmpfs (mode 0700) so that a value never reaches a disk. Removed (unmounted) when the
// task stops; a worker started after a crash removes those of tasks it did not take over.
class SecretFiles {
 public:
  explicit SecretFiles(std::filesystem::path root) : root_(std::move(root)) {}

  // Mounts the task's tmpfs and writes `files`. Returns the directory. On error nothing is
  // left behind.
  absl::StatusOr<std::string> Create(const std::string& task_id,
                                     const std::vector<SecretFile>& files) const;
  // Unmounts and removes the task's directory; nothing to do when it has none.
  void Remove(const std::string& task_id) const;
  // Removes every task directory except those of `keep` (the tasks still running).
  void RemoveAllExcept(const std::set<std::string>& keep) const;

  std::filesystem::path Dir(const std::string& task_id) const { return root_ / task_id; }

 private:
  std::filesystem::path root_;
};

}  // namespace warren

#endif  // WARREN_WORKER_SECRET_FILES_H_
