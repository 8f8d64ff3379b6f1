#ifndef WARREN_WORKER_LOG_FILES_H_
#define WARREN_WORKER_LOG_FILES_H_

// A task's output log as a set of files: `<base>` (written now), `<base>.1` (the one before),
// ..., `<base>.<N-1>` (the oldest kept). Shared by warren-shim (process runtime), the cri
// driver (containerd writes, the worker rotates) and the log service (reads them in order).
// Plain C++ and POSIX only: warren-shim is a small static binary without the rest of Warren.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace warren {

struct LogLimits {
  // A file is rotated before it would grow past this many bytes; 0: never rotated.
  int64_t max_size = 10 << 20;
  // Files kept, the one being written included (at least 1; 1: the file is truncated instead
  // of rotated).
  int max_files = 3;
};

// Shifts `<base>.K` to `<base>.K+1` and `<base>` to `<base>.1`, dropping what would be
// `<base>.<max_files>` or beyond. With max_files <= 1, truncates `<base>` instead. Returns 0 or
// an errno; files missing along the way are fine.
int RotateLogFiles(const std::string& base, int max_files);

// The existing files of the set, oldest first (`<base>.K` ... `<base>.1`, `<base>`).
std::vector<std::string> LogFileSet(const std::string& base);

// The files a reader of the whole set opens, in this order: `<base>.K` ... `<base>.1`, `<base>`,
// with K the highest index on disk and at least 1, whether or not each exists now. Files only
// move to higher indexes, so each file opened in this order is newer than the one before even
// while the writer rotates: a rotation can make the reader miss a file, never read one twice or
// out of order. `<base>.1` is in the list even when the listing fell inside a rotation, between
// the removal of the oldest file and the rename of the current one, when no numbered file exists.
std::vector<std::string> LogFilesToRead(const std::string& base);

// Appends to `<base>` and rotates so that no file grows past limits.max_size: at most
// max_files * max_size bytes on disk. Single-threaded.
class RotatingLogWriter {
 public:
  RotatingLogWriter(std::string base, LogLimits limits);
  ~RotatingLogWriter();
  RotatingLogWriter(const RotatingLogWriter&) = delete;
  RotatingLogWriter& operator=(const RotatingLogWriter&) = delete;

  // Opens (creates 0600) `<base>` for appending. 0 or an errno.
  int Open();
  // Writes all of `data`, rotating as needed. Bytes that cannot be written (disk full) are
  // dropped and counted, never retried: the writer must not stall the task.
  void Write(const char* data, size_t size);
  int64_t dropped_bytes() const { return dropped_; }

 private:
  void Rotate();

  const std::string base_;
  const LogLimits limits_;
  int fd_ = -1;
  int64_t size_ = 0;
  int64_t dropped_ = 0;
};

}  // namespace warren

#endif  // WARREN_WORKER_LOG_FILES_H_
