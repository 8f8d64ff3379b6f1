#include "cli/cluster_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/output.h"
#include "common/data_dir.h"
#include "store/store_file.h"
#include "warren/v1/api.grpc.pb.h"
#include "warren/v1/security.grpc.pb.h"

namespace warren {
namespace {

namespace fs = std::filesystem;

// A file written under a temporary name beside its destination and renamed into place only
// when complete: a failed backup or restore never leaves a half-written file under the name.
class StagedFile {
 public:
  explicit StagedFile(const std::string& dest) : dest_(dest) {
    std::random_device rd;
    tmp_ = absl::StrCat(dest, ".partial-", rd());
  }
  ~StagedFile() {
    if (fd_ >= 0) close(fd_);
    if (!committed_) unlink(tmp_.c_str());
  }
  const std::string& tmp() const { return tmp_; }

  absl::Status Open() {
    // 0600 whatever the umask: the store holds task environments (credentials).
    fd_ = open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) return Errno("creating");
    return absl::OkStatus();
  }
  absl::Status Write(const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("writing");
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }
  // Flushes the data to disk and closes the file (before it is checked, then committed).
  absl::Status Finish() {
    if (fsync(fd_) != 0) return Errno("flushing");
    close(fd_);
    fd_ = -1;
    return absl::OkStatus();
  }
  absl::Status Commit() {
    if (rename(tmp_.c_str(), dest_.c_str()) != 0) return Errno("renaming into place");
    committed_ = true;
    // The rename itself must survive a crash.
    const std::string dir = fs::path(dest_).parent_path().string();
    int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Errno(const char* what) {
    return absl::InternalError(absl::StrCat(what, " ", tmp_, ": ", std::strerror(errno)));
  }
  std::string dest_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

std::string HumanSize(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1 << 20)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%.1f MiB", bytes / (1024.0 * 1024.0));
}

int Backup(const CommandEnv& env, const std::string& file) {
  StagedFile out(file);
  if (absl::Status s = out.Open(); !s.ok()) {
    *env.err << "error: " << s.message() << "\n";
    return 1;
  }
  auto stub = v1::ClusterAdmin::NewStub(env.Channel());
  grpc::ClientContext call;
  call.set_wait_for_ready(false);
  // A large store over a slow link takes a while; a dead manager is noticed by keepalive.
  call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(30)));
  auto reader = stub->Backup(&call, v1::BackupRequest());
  v1::BackupChunk chunk;
  uint64_t version = 0, size = 0, received = 0;
  bool first = true;
  absl::Status write_error;
  while (reader->Read(&chunk)) {
    if (first) {
      version = chunk.store_version();
      size = chunk.size();
      first = false;
    }
    received += chunk.data().size();
    if (write_error.ok()) write_error = out.Write(chunk.data().data(), chunk.data().size());
    if (!write_error.ok()) call.TryCancel();
  }
  grpc::Status s = reader->Finish();
  if (!write_error.ok()) {
    *env.err << "error: " << write_error.message() << "\n";
    return 1;
  }
  if (!s.ok()) return env.Fail(s);
  if (first || received != size) {
    *env.err << "error: the backup stream ended after " << received << " of " << size << " bytes\n";
    return 1;
  }
  if (absl::Status f = out.Finish(); !f.ok()) {
    *env.err << "error: " << f.message() << "\n";
    return 1;
  }
  absl::StatusOr<StoreFileInfo> info = InspectStoreFile(out.tmp());
  if (!info.ok()) {
    *env.err << "error: the copy received does not check out: " << info.status().message() << "\n";
    return 1;
  }
  if (absl::Status c = out.Commit(); !c.ok()) {
    *env.err << "error: " << c.message() << "\n";
    return 1;
  }
  *env.out << "backup of store version " << version << " (" << DescribeStoreObjects(*info) << "; "
           << HumanSize(info->size_bytes) << ") written to " << file << "\n";
  return 0;
}

int Restore(const CommandEnv& env, const std::string& file, const std::string& data_dir) {
  absl::StatusOr<StoreFileInfo> info = InspectStoreFile(file);
  if (!info.ok()) {
    *env.err << "error: " << info.status().message() << "\n";
    return 1;
  }
  // Held until the restore is done: a manager cannot start on the directory meanwhile, and a
  // running one makes the restore fail here.
  auto lock = DataDirLock::Acquire(data_dir, "restore");
  if (!lock.ok()) {
    *env.err << "error: " << lock.status().message() << "\n";
    return 1;
  }
  const fs::path store = fs::path(data_dir) / "store.db";
  StagedFile staged(store.string());
  absl::Status s = staged.Open();
  int in = s.ok() ? open(file.c_str(), O_RDONLY | O_CLOEXEC) : -1;
  if (s.ok() && in < 0) s = absl::NotFoundError(absl::StrCat(file, ": ", std::strerror(errno)));
  if (s.ok()) {
    char buf[1 << 16];
    ssize_t n;
    while (s.ok() && (n = read(in, buf, sizeof(buf))) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        s = absl::InternalError(absl::StrCat("reading ", file, ": ", std::strerror(errno)));
        break;
      }
      s = staged.Write(buf, static_cast<size_t>(n));
    }
  }
  if (in >= 0) close(in);
  if (s.ok()) s = staged.Finish();
  // The copy is checked again where it lies: a disk error must not put a damaged store in place.
  if (s.ok()) {
    absl::StatusOr<StoreFileInfo> copied = InspectStoreFile(staged.tmp());
    if (!copied.ok()) s = copied.status();
  }
  if (!s.ok()) {
    *env.err << "error: " << s.message() << "\n";
    return 1;
  }
  // The store in place is kept (with its WAL, which holds its latest commits) under another
  // name, never deleted.
  std::string kept;
  std::error_code ec;
  if (fs::exists(store, ec)) {
    kept = absl::StrCat(store.string(), ".before-restore-",
                        absl::FormatTime("%Y%m%dT%H%M%SZ", absl::Now(), absl::UTCTimeZone()));
    for (const char* suffix : {"", "-wal"}) {
      const fs::path from = store.string() + suffix;
      if (!fs::exists(from, ec)) continue;
      fs::rename(from, kept + suffix, ec);
      if (ec) {
        *env.err << "error: moving " << from.string() << " aside: " << ec.message() << "\n";
        return 1;
      }
    }
    fs::remove(store.string() + "-shm", ec);
  }
  if (absl::Status c = staged.Commit(); !c.ok()) {
    *env.err << "error: " << c.message() << "\n";
    return 1;
  }
  *env.out << "restored store version " << info->version << " (" << DescribeStoreObjects(*info)
           << ") from " << file << " into " << store.string() << "\n";
  if (!kept.empty()) *env.out << "the previous store is kept as " << kept << "\n";
  *env.out << "start the manager on " << data_dir << " to serve it\n";
  return 0;
}

int JoinToken(const CommandEnv& env, const std::string& role, bool rotate, bool quiet) {
  auto stub = v1::Ca::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::GetJoinTokenRequest req;
  req.set_role(role);
  req.set_rotate(rotate);
  v1::GetJoinTokenResponse resp;
  if (grpc::Status s = stub->GetJoinToken(&call, req, &resp); !s.ok()) return env.Fail(s);
  if (quiet) {
    *env.out << resp.token() << "\n";
    return 0;
  }
  if (rotate)
    *env.out << "The " << role << " join token was rotated: the old one admits no new node.\n";
  *env.out << "To add a " << role << " to this cluster, run on it:\n\n    warren " << role
           << " --manager " << *env.manager << " --token " << resp.token() << "\n";
  return 0;
}

int Status(const CommandEnv& env, const std::string& output) {
  auto format = ParseOutputFormat(output);
  if (!format.ok()) {
    *env.err << "error: " << format.status().message() << "\n";
    return 2;
  }
  auto stub = v1::ClusterAdmin::NewStub(env.Channel());
  grpc::ClientContext call;
  CommandEnv::Prepare(&call);
  v1::ClusterStatus resp;
  if (grpc::Status s = stub->Status(&call, {}, &resp); !s.ok()) return env.Fail(s);
  // An unhealthy etcd member is shown, not an error of the command: exit 0 (docs/cli.md).
  *env.out << RenderClusterStatus(resp, *format);
  return 0;
}

}  // namespace

void AddClusterAdminCommands(CLI::App* cluster, const CommandEnv& env,
                             std::function<int()>* action) {
  auto status_output = std::make_shared<std::string>("table");
  CLI::App* status = cluster->add_subcommand(
      "status", "The store (its file, or each etcd member's status and health) and the managers");
  status->add_option("-o,--output", *status_output, "table, json or yaml")->capture_default_str();
  status->callback([env, action, status_output] {
    *action = [env, status_output] { return Status(env, *status_output); };
  });

  auto backup_file = std::make_shared<std::string>();
  CLI::App* backup = cluster->add_subcommand(
      "backup", "Write a consistent copy of the manager's store to FILE (online)");
  backup->add_option("FILE", *backup_file, "Backup file to write (replaced if it exists)")
      ->required();
  backup->callback([env, action, backup_file] {
    *action = [env, backup_file] { return Backup(env, *backup_file); };
  });

  auto restore_file = std::make_shared<std::string>();
  auto restore_dir = std::make_shared<std::string>("./warren-data");
  CLI::App* restore = cluster->add_subcommand(
      "restore", "Put a backup in place as the store of a stopped manager's --data-dir");
  restore->add_option("FILE", *restore_file, "Backup file (from `warren cluster backup`)")
      ->required();
  restore->add_option("--data-dir", *restore_dir, "The manager's data dir")->capture_default_str();
  auto token_role = std::make_shared<std::string>();
  auto token_rotate = std::make_shared<bool>(false);
  auto token_quiet = std::make_shared<bool>(false);
  CLI::App* token = cluster->add_subcommand(
      "join-token", "Print the token that admits a new worker or manager (--rotate: a new one)");
  token->add_option("ROLE", *token_role, "worker or manager")
      ->required()
      ->check(CLI::IsMember({"worker", "manager"}));
  token->add_flag("--rotate", *token_rotate,
                  "Replace the token first: the old one admits no new node (nodes that joined "
                  "with it stay)");
  token->add_flag("-q,--quiet", *token_quiet, "Print only the token");
  token->callback([env, action, token_role, token_rotate, token_quiet] {
    *action = [env, token_role, token_rotate, token_quiet] {
      return JoinToken(env, *token_role, *token_rotate, *token_quiet);
    };
  });

  restore->callback([env, action, restore_file, restore_dir] {
    *action = [env, restore_file, restore_dir] {
      return Restore(env, *restore_file, *restore_dir);
    };
  });
}

}  // namespace warren
