#ifndef WARREN_WORKER_TASK_LOGS_H_
#define WARREN_WORKER_TASK_LOGS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/cri_log.h"

namespace warren {

// Reads a task's output as lines: the rotated files of its log set oldest first, then the
// current file (log_files.h), and follows the current file across rotations. With `cri`, each
// line of the files is a CRI record (cri_log.h) decoded to the line it carries.
class TaskLogReader {
 public:
  TaskLogReader(std::string path, bool cri);
  ~TaskLogReader();
  TaskLogReader(const TaskLogReader&) = delete;
  TaskLogReader& operator=(const TaskLogReader&) = delete;

  // Every complete line now in the set (the last `tail` of them when tail > 0). NOT_FOUND when
  // the task has no log at all. Later Poll calls continue from here.
  absl::StatusOr<std::vector<std::string>> ReadLines(int tail);
  // The text after the last newline (a line still being written), or the pieces of a CRI line
  // without their final record; consumes it.
  std::optional<std::string> TakePartial();
  // Complete lines appended since the last call. When the file was rotated meanwhile, the rest
  // of the old file comes first, then the new one from its start.
  std::vector<std::string> Poll();

  // Tests: called with each file's path just before ReadLines opens it, to rotate the set at
  // exactly that moment.
  void SetBeforeOpenForTest(std::function<void(const std::string&)> hook) {
    before_open_ = std::move(hook);
  }

 private:
  // Splits `data` (appended to what is pending) into complete lines.
  void Consume(const std::string& data, std::vector<std::string>* lines);
  // Reads the open file from offset_ to its end.
  std::string ReadRest();

  const std::string path_;
  const bool cri_;
  CriLogDecoder decoder_;
  std::string pending_;
  int fd_ = -1;
  ino_t inode_ = 0;
  off_t offset_ = 0;
  std::function<void(const std::string&)> before_open_;
};

}  // namespace warren

#endif  // WARREN_WORKER_TASK_LOGS_H_
