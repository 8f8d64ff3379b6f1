#ifndef WARREN_TESTS_UNIT_STORE_TEST_UTIL_H_
#define WARREN_TESTS_UNIT_STORE_TEST_UTIL_H_

// Helpers for the store and data-dir tests: mutations, a small filesystem to fill, log
// capture, raw SQL on a store file, file modes.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "roles.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "store/store.h"

namespace warren::testing_util {

inline Mutation Put(Kind kind, std::string id, std::string name, std::string data,
                    uint64_t expected_version = 0) {
  Mutation m;
  m.kind = kind;
  m.id = std::move(id);
  m.name = std::move(name);
  m.data = std::move(data);
  m.expected_version = expected_version;
  return m;
}

inline Mutation Del(Kind kind, std::string id, uint64_t expected_version = 0) {
  Mutation m;
  m.kind = kind;
  m.id = std::move(id);
  m.expected_version = expected_version;
  return m;
}

inline std::vector<std::string> Ids(const std::vector<StoredObject>& objs) {
  std::vector<std::string> ids;
  for (const auto& o : objs) ids.push_back(o.id);
  return ids;
}

// A tmpfs of a given size on a fresh directory, unmounted by the destructor. Needs root (CI
// runs as root); Mount's error is the reason to skip otherwise.
class SmallFs {
 public:
  static absl::StatusOr<std::unique_ptr<SmallFs>> Mount(size_t bytes) {
    if (geteuid() != 0) return absl::FailedPreconditionError("mounting a tmpfs needs root");
    std::random_device rd;
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("warren-smallfs-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    std::string opts = absl::StrCat("size=", bytes, ",mode=0755");
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      int err = errno;
      std::filesystem::remove(dir);
      return absl::FailedPreconditionError(absl::StrCat("mount tmpfs: ", strerror(err)));
    }
    return std::unique_ptr<SmallFs>(new SmallFs(dir));
  }
  ~SmallFs() {
    umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove(dir_, ec);
  }

  const std::filesystem::path& path() const { return dir_; }

  // Writes a filler file until the filesystem has no page left; returns the bytes written.
  size_t Fill() {
    int fd = open((dir_ / "filler").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    static const char kPage[4096] = {};
    size_t total = 0;
    // Bounded by the filesystem's size: every write either adds a page or fails.
    for (;;) {
      ssize_t n = write(fd, kPage, sizeof(kPage));
      if (n <= 0) break;
      total += static_cast<size_t>(n);
    }
    close(fd);
    return total;
  }
  void Unfill() { unlink((dir_ / "filler").c_str()); }

 private:
  explicit SmallFs(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

// Everything spdlog's default logger writes while this lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string Text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

// Runs SQL on a store file that no store has open (what an operator's sqlite3 would do).
inline std::string ExecSql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    std::string err = sqlite3_errmsg(db);
    sqlite3_close(db);
    return err;
  }
  char* err = nullptr;
  std::string out;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    out = err != nullptr ? err : "error";
    sqlite3_free(err);
  }
  sqlite3_close(db);
  return out;
}

// The permission bits of a file or directory (not following a last symlink); -1 if missing.
inline int Mode(const std::filesystem::path& p) {
  struct stat st;
  if (lstat(p.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// An in-process manager on loopback port 0 without DNS; metrics on a free port when asked.
// Plaintext (the suites using it call the API without a bundle); a test wanting the default
// mutual TLS sets tls and a tls_root of its own.
inline ManagerOptions TestManagerOptions(const std::string& data_dir, bool metrics = false) {
  ManagerOptions mo;
  mo.tls = false;
  mo.data_dir = data_dir;
  mo.api_addr = "127.0.0.1:0";
  mo.metrics_addr = metrics ? "127.0.0.1:0" : "";
  mo.dns.addr = "";
  return mo;
}

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_STORE_TEST_UTIL_H_
