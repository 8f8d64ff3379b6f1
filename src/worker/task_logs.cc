#include "worker/task_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "worker/log_files.h"

namespace warren {

TaskLogReader::TaskLogReader(std::string path, bool cri) : path_(std::move(path)), cri_(cri) {}

TaskLogReader::~TaskLogReader() {
  if (fd_ >= 0) close(fd_);
}

void TaskLogReader::Consume(const std::string& data, std::vector<std::string>* lines) {
  pending_ += data;
  size_t start = 0;
  for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string record = pending_.substr(start, nl - start);
    if (!cri_) {
      lines->push_back(std::move(record));
    } else if (std::optional<std::string> line = decoder_.Feed(record)) {
      lines->push_back(std::move(*line));
    }
  }
  pending_.erase(0, start);
}

namespace {

// Appends what `fd` holds from *offset to its end, advancing *offset.
void ReadFrom(int fd, off_t* offset, std::string* out) {
  char buf[1 << 16];
  while (true) {
    ssize_t n = pread(fd, buf, sizeof(buf), *offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
    *offset += n;
  }
}

std::string ReadAll(int fd) {
  std::string out;
  off_t offset = 0;
  ReadFrom(fd, &offset, &out);
  return out;
}

}  // namespace

std::string TaskLogReader::ReadRest() {
  std::string out;
  if (fd_ < 0) return out;
  struct stat st;
  if (fstat(fd_, &st) == 0 && st.st_size < offset_) offset_ = 0;  // truncated in place
  ReadFrom(fd_, &offset_, &out);
  return out;
}

absl::StatusOr<std::vector<std::string>> TaskLogReader::ReadLines(int tail) {
  std::vector<std::string> lines;
  // Each file is opened once and read through its descriptor, so a rotation after the open
  // cannot change what is read. A rotation during the reads can still make the reader miss a
  // file (log_files.h: LogFilesToRead); read the set again then. Bounded: a task that rotates
  // under every read gets what the last read saw, which is still in order.
  constexpr int kRereads = 5;
  // Both opens of a read can straddle one rotation (`.1` opened before the rename, the current
  // file after it and before the writer's reopen). A task that writes without pause rotates in a
  // steady rhythm that a reader retrying at once can meet again and again (CI saw a live task
  // with "no log"); a short pause before the next try breaks the rhythm.
  constexpr int kNotFoundRetries = 50;
  constexpr absl::Duration kNotFoundPause = absl::Milliseconds(1);
  int rereads = 0;
  int not_found = 0;
  while (true) {
    struct stat st;
    const ino_t current_before = stat(path_.c_str(), &st) == 0 ? st.st_ino : 0;
    const std::vector<std::string> files = LogFilesToRead(path_);
    lines.clear();
    pending_.clear();
    decoder_ = CriLogDecoder();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    bool found = false;
    int open_errno = 0;
    for (const std::string& file : files) {
      if (before_open_) before_open_(file);
      const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        if (file == path_) open_errno = errno;
        continue;
      }
      found = true;
      if (file == path_) {
        // The current file stays open to follow it.
        fd_ = fd;
        inode_ = fstat(fd_, &st) == 0 ? st.st_ino : 0;
        offset_ = 0;
        Consume(ReadRest(), &lines);
      } else {
        Consume(ReadAll(fd), &lines);
        close(fd);
      }
    }
    // No file at all: either the task has no log, or each open fell inside a rotation.
    if (!found) {
      // Only a rotation in progress is worth another try: not another error, and not a missing
      // directory (a task without a log; no rotation brings it back).
      const std::string dir = std::filesystem::path(path_).parent_path().string();
      struct stat dir_st;
      const bool rotating =
          open_errno == ENOENT && (dir.empty() || stat(dir.c_str(), &dir_st) == 0);
      if (!rotating || ++not_found > kNotFoundRetries) {
        return absl::NotFoundError(absl::StrCat("no log file ", path_, ": ", strerror(open_errno)));
      }
      if (not_found > 1) absl::SleepFor(kNotFoundPause);
      continue;
    }
    // Every rotation renames the current file, so one since the listing shows as another inode
    // (or none yet: the writer has not reopened).
    if (current_before == (fd_ >= 0 ? inode_ : 0) || ++rereads >= kRereads) break;
  }
  if (tail > 0 && lines.size() > static_cast<size_t>(tail)) {
    lines.erase(lines.begin(), lines.end() - tail);
  }
  return lines;
}

std::optional<std::string> TaskLogReader::TakePartial() {
  std::optional<std::string> rest;
  if (cri_) {
    if (!pending_.empty()) decoder_.Feed(pending_);
    rest = decoder_.Flush();
  } else if (!pending_.empty()) {
    rest = pending_;
  }
  pending_.clear();
  return rest;
}

std::vector<std::string> TaskLogReader::Poll() {
  std::vector<std::string> lines;
  Consume(ReadRest(), &lines);
  struct stat st;
  if (stat(path_.c_str(), &st) != 0 || (fd_ >= 0 && st.st_ino == inode_)) return lines;
  // Rotated (or created): the old file was read to its end above; the new one starts at 0.
  int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lines;
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  inode_ = fstat(fd_, &st) == 0 ? st.st_ino : 0;
  offset_ = 0;
  Consume(ReadRest(), &lines);
  return lines;
}

}  // namespace warren
