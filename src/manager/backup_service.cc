#include "manager/backup_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

constexpr char kStagingPrefix[] = "store.db.backup-";
constexpr size_t kChunkBytes = 1 << 20;

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

BackupService::BackupService(Store& store, std::string data_dir)
    : store_(store), data_dir_(std::move(data_dir)) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, kStagingPrefix) && absl::EndsWith(name, ".tmp")) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

grpc::Status BackupService::Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
                                   grpc::ServerWriter<v1::BackupChunk>* writer) {
  if (auto peer = authorizer_->AuthorizeCall(ctx, "/warren.v1.ClusterAdmin/Backup"); !peer.ok()) {
    return grpc::Status(static_cast<grpc::StatusCode>(peer.status().code()),
                        std::string(peer.status().message()));
  }
  std::random_device rd;
  const std::string path =
      (std::filesystem::path(data_dir_) / absl::StrCat(kStagingPrefix, rd(), rd(), ".tmp"))
          .string();
  // Created here, empty and private, so SQLite's VACUUM INTO writes into a 0600 file whatever
  // the umask.
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("backup: creating ", path, ": ", std::strerror(errno)));
  }
  close(fd);
  absl::StatusOr<uint64_t> version = store_.Backup(path);
  fd = version.ok() ? open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1;
  const int open_errno = errno;
  // Open (or failed): the name is not needed any more.
  unlink(path.c_str());
  if (!version.ok()) return ToGrpc(version.status());
  if (fd < 0) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("backup: reopening the copy: ", std::strerror(open_errno)));
  }
  struct stat st {};
  fstat(fd, &st);
  spdlog::info("backup of store version {} ({} bytes) to {}", *version, st.st_size, ctx->peer());
  std::string buf(kChunkBytes, '\0');
  bool first = true;
  grpc::Status result = grpc::Status::OK;
  while (true) {
    if (ctx->IsCancelled()) {
      result = grpc::Status(grpc::StatusCode::CANCELLED, "backup: the client went away");
      break;
    }
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      result = grpc::Status(grpc::StatusCode::INTERNAL,
                            absl::StrCat("backup: reading the copy: ", std::strerror(errno)));
      break;
    }
    if (n == 0 && !first) break;
    v1::BackupChunk chunk;
    chunk.set_data(buf.data(), static_cast<size_t>(n));
    if (first) {
      chunk.set_store_version(*version);
      chunk.set_size(static_cast<uint64_t>(st.st_size));
      first = false;
    }
    if (!writer->Write(chunk)) {
      result = grpc::Status(grpc::StatusCode::CANCELLED, "backup: the client went away");
      break;
    }
    if (n == 0) break;
  }
  close(fd);
  return result;
}

}  // namespace warren
