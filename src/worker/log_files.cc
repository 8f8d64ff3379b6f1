#include "worker/log_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace warren {
namespace {

std::string Numbered(const std::string& base, int k) {
  return k == 0 ? base : base + "." + std::to_string(k);
}

// "7" -> 7; anything but a plain positive number -> 0.
int ParseIndex(const char* s) {
  if (*s == '\0' || *s == '0' || strlen(s) > 6) return 0;
  int n = 0;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return 0;
    n = n * 10 + (*s - '0');
  }
  return n;
}

// Indexes K of the existing `<base>.K` files.
std::vector<int> RotatedIndexes(const std::string& base) {
  std::vector<int> out;
  const size_t slash = base.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : base.substr(0, slash);
  const std::string prefix = (slash == std::string::npos ? base : base.substr(slash + 1)) + ".";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (strncmp(e->d_name, prefix.c_str(), prefix.size()) != 0) continue;
    if (int k = ParseIndex(e->d_name + prefix.size()); k > 0) out.push_back(k);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int RotateLogFiles(const std::string& base, int max_files) {
  if (max_files <= 1) {
    if (truncate(base.c_str(), 0) != 0 && errno != ENOENT) return errno;
    return 0;
  }
  // Older files beyond the set (a smaller max_files than before) go first.
  std::vector<int> existing = RotatedIndexes(base);
  for (int k : existing) {
    if (k >= max_files - 1) unlink(Numbered(base, k).c_str());
  }
  for (int k = max_files - 2; k >= 0; --k) {
    if (rename(Numbered(base, k).c_str(), Numbered(base, k + 1).c_str()) != 0 && errno != ENOENT) {
      return errno;
    }
  }
  return 0;
}

std::vector<std::string> LogFileSet(const std::string& base) {
  std::vector<std::string> out;
  std::vector<int> existing = RotatedIndexes(base);
  for (auto it = existing.rbegin(); it != existing.rend(); ++it) out.push_back(Numbered(base, *it));
  struct stat st;
  if (stat(base.c_str(), &st) == 0) out.push_back(base);
  return out;
}

std::vector<std::string> LogFilesToRead(const std::string& base) {
  std::vector<int> existing = RotatedIndexes(base);
  const int oldest = existing.empty() ? 1 : std::max(existing.back(), 1);
  std::vector<std::string> out;
  for (int k = oldest; k >= 0; --k) out.push_back(Numbered(base, k));
  return out;
}

RotatingLogWriter::RotatingLogWriter(std::string base, LogLimits limits)
    : base_(std::move(base)), limits_(limits) {}

RotatingLogWriter::~RotatingLogWriter() {
  if (fd_ >= 0) close(fd_);
}

int RotatingLogWriter::Open() {
  if (fd_ >= 0) close(fd_);
  fd_ = open(base_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) return errno;
  struct stat st;
  size_ = fstat(fd_, &st) == 0 ? st.st_size : 0;
  return 0;
}

void RotatingLogWriter::Rotate() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  RotateLogFiles(base_, limits_.max_files);
  Open();
}

void RotatingLogWriter::Write(const char* data, size_t size) {
  while (size > 0) {
    if (fd_ < 0 && Open() != 0) {
      dropped_ += static_cast<int64_t>(size);
      return;
    }
    size_t chunk = size;
    if (limits_.max_size > 0) {
      if (size_ >= limits_.max_size) {
        Rotate();
        continue;
      }
      chunk = std::min<size_t>(size, static_cast<size_t>(limits_.max_size - size_));
    }
    ssize_t n = write(fd_, data, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // Disk full or the file went away: drop this output rather than block the task.
      dropped_ += static_cast<int64_t>(size);
      if (n < 0 && errno != ENOSPC) Open();
      return;
    }
    size_ += n;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace warren
