#include "manager/cluster_admin_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

constexpr char kStagingPrefix[] = "store.db.backup-";
constexpr size_t kChunkBytes = 1 << 20;

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

std::vector<v1::EtcdMemberStatus> EtcdMembersStatus(EtcdClient& etcd, absl::Duration timeout) {
  const std::vector<std::string>& endpoints = etcd.options().endpoints;
  std::vector<v1::EtcdMemberStatus> out(endpoints.size());
  std::vector<std::thread> askers;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    // Each thread writes its own element only.
    askers.emplace_back([&etcd, &out, &endpoints, i, timeout] {
      v1::EtcdMemberStatus& m = out[i];
      m.set_endpoint(endpoints[i]);
      auto st = etcd.MemberStatus(i, timeout);
      if (!st.ok()) {
        m.set_error(std::string(st.status().message()));
        return;
      }
      m.set_member_id(st->header().member_id());
      m.set_leader_id(st->leader());
      m.set_is_leader(st->leader() != 0 && st->leader() == st->header().member_id());
      m.set_version(st->version());
      m.set_db_size_bytes(st->dbsize());
      m.set_raft_term(st->raftterm());
      m.set_raft_index(st->raftindex());
      std::vector<std::string> problems;
      if (st->leader() == 0) problems.push_back("the member knows no Raft leader (no quorum?)");
      for (const std::string& e : st->errors()) problems.push_back(e);
      m.set_healthy(problems.empty());
      m.set_error(absl::StrJoin(problems, "; "));
    });
  }
  for (std::thread& t : askers) t.join();
  return out;
}

ClusterAdminService::ClusterAdminService(Store& store, std::string data_dir,
                                         ClusterStatusSource status)
    : store_(store), data_dir_(std::move(data_dir)), status_(std::move(status)) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, kStagingPrefix) && absl::EndsWith(name, ".tmp")) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

grpc::Status ClusterAdminService::Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
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

grpc::Status ClusterAdminService::Status(grpc::ServerContext* ctx, const v1::ClusterStatusRequest*,
                                         v1::ClusterStatus* resp) {
  if (auto peer = authorizer_->AuthorizeCall(ctx, "/warren.v1.ClusterAdmin/Status"); !peer.ok()) {
    return ToGrpc(peer.status());
  }
  // Listed meanwhile: on etcd both wait for the members, and neither should add to the other.
  std::future<absl::StatusOr<std::vector<v1::ManagerInfo>>> managers;
  if (status_.managers) managers = std::async(std::launch::async, status_.managers);
  if (status_.etcd) {
    resp->set_store("etcd");
    resp->set_etcd_prefix(status_.etcd_prefix);
    for (auto& m : EtcdMembersStatus(*status_.etcd, status_.member_timeout)) {
      *resp->add_etcd_members() = std::move(m);
    }
  } else {
    resp->set_store("sqlite");
    const std::filesystem::path db = std::filesystem::path(data_dir_) / "store.db";
    resp->mutable_sqlite()->set_path(std::filesystem::absolute(db).string());
    // The database file and its write-ahead log (not yet checkpointed into it).
    int64_t size = 0;
    for (const std::string suffix : {"", "-wal"}) {
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(db.string() + suffix, ec);
      if (!ec) size += static_cast<int64_t>(bytes);
    }
    resp->mutable_sqlite()->set_size_bytes(size);
  }
  if (managers.valid()) {
    auto listed = managers.get();
    if (listed.ok()) {
      for (auto& m : *listed) *resp->add_managers() = std::move(m);
    } else {
      resp->set_managers_error(std::string(listed.status().message()));
    }
  }
  return grpc::Status::OK;
}

}  // namespace warren
