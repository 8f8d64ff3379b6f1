#ifndef WARREN_WORKER_TASK_DIRS_H_
#define WARREN_WORKER_TASK_DIRS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"

namespace warren {

// How long the directory of a task that is gone (its logs, its exit record) is kept.
struct TaskDirRetention {
  // Removed this long after the task was forgotten by the worker.
  absl::Duration keep_for = absl::Hours(1);
  // At most this many directories of gone tasks; beyond, the oldest go first.
  int max_kept = 20;
};

// Removes the task directories under `root` (<worker data>/tasks) of tasks that are gone.
// A directory counts as gone from the first Sweep that does not find its task among the live
// ones (after a worker restart: from the first sweep then). Not thread-safe.
class TaskDirJanitor {
 public:
  TaskDirJanitor(std::string root, TaskDirRetention retention, const Clock& clock);

  // `live()` returns the ids of every task the worker still knows; it is called after the
  // directory listing, so that a directory created meanwhile belongs to a listed task. Returns
  // the ids whose directories were removed.
  template <typename LiveFn>
  std::vector<std::string> Sweep(LiveFn live) {
    std::vector<std::string> dirs = ListDirs();
    return Decide(dirs, live());
  }

 private:
  std::vector<std::string> ListDirs() const;
  std::vector<std::string> Decide(const std::vector<std::string>& dirs,
                                  const std::set<std::string>& live);

  const std::string root_;
  const TaskDirRetention retention_;
  const Clock& clock_;
  std::map<std::string, absl::Time> gone_since_;
};

}  // namespace warren

#endif  // WARREN_WORKER_TASK_DIRS_H_
