#include "worker/task_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/processes.h"
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

std::string TaskLogReader::ReadRest() {
  std::string out;
  if (fd_ < 0) return out;
  struct stat st;
  if (fstat(fd_, &st) == 0 && st.st_size < offset_) offset_ = 0;  // truncated in place
  char buf[1 << 16];
  while (true) {
    ssize_t n = pread(fd_, buf, sizeof(buf), offset_);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    offset_ += n;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> TaskLogReader::ReadLines(int tail) {
  std::vector<std::string> lines;
  // A rotation between listing the files and reading them (the oldest file removed, the current
  // one renamed, the new one not created yet) can hide every line: read the set again. Bounded:
  // a task that writes fast enough to rotate under every read gets what the last read saw.
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::vector<std::string> files = LogFileSet(path_);
    if (files.empty()) return absl::NotFoundError(absl::StrCat("no log file ", path_));
    lines.clear();
    pending_.clear();
    decoder_ = CriLogDecoder();
    bool raced = false;
    for (const std::string& file : files) {
      if (file == path_) break;
      absl::StatusOr<std::string> content = ReadWholeFile(file, size_t{1} << 31);
      if (content.ok()) {
        Consume(*content, &lines);
      } else {
        raced = true;  // another rotation took it meanwhile
      }
    }
    // The current file stays open to follow it; it may be missing for a moment (a rotation).
    if (fd_ >= 0) close(fd_);
    fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    inode_ = fd_ >= 0 && fstat(fd_, &st) == 0 ? st.st_ino : 0;
    offset_ = 0;
    if (fd_ < 0 && files.back() == path_) raced = true;
    Consume(ReadRest(), &lines);
    if (!raced) break;
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
