#ifndef WARREN_STORE_ETCD_STORE_H_
#define WARREN_STORE_ETCD_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/etcd_client.h"
#include "store/store.h"
#include "store/store_common.h"

namespace warren {

// A leader's proof of office: its leader key and the revision that created it. A commit
// fenced with it applies only while that key still exists from that creation, so a deposed
// leader's late write fails (see etcd_election.h).
struct EtcdFence {
  std::string key;
  int64_t create_revision = 0;
};

struct EtcdStoreOptions {
  // Every key of the store starts with this: objects under <prefix>o/<kind>/<id>, unique
  // names under <prefix>n/<kind>/<name>. Several clusters may share one etcd under different
  // prefixes.
  std::string prefix = "/warren/";
  // Changes kept in memory for ChangesSince, and the bytes of object data they may hold (each
  // change holds the whole object); whole revisions are dropped, oldest first.
  size_t max_changes = 100000;
  size_t max_change_bytes = 64 << 20;
  // etcd's limits (its --max-txn-ops and --max-request-bytes defaults): a commit that needs
  // more fails with INVALID_ARGUMENT before anything is sent.
  size_t max_txn_ops = 128;
  size_t max_request_bytes = 1536 * 1024;
  // A commit retries this many times when etcd's state moved under it (another manager's
  // write) before it gives up with ABORTED.
  int max_commit_attempts = 16;
  // How long Commit waits for the watch to deliver its own revision to the mirror, so that the
  // caller reads its write; after that it returns anyway (the commit is in etcd).
  absl::Duration read_your_writes_timeout = absl::Seconds(10);
  // Keys read per Range call when the store loads.
  int64_t page_size = 500;
  // As SqliteStoreOptions::parse: checks an object's data, an error marks it corrupt.
  std::function<absl::StatusOr<ObjectIdentity>(Kind kind, std::string_view data)> parse;
};

// Store on etcd: every manager may open one on the same etcd cluster and prefix.
//
// The store keeps a mirror of all objects in memory, loaded at Open and kept current by an etcd
// watch, so reads are served from memory as with SQLite. A commit is one etcd transaction that
// compares the mod_revision of every object and name key its checks read (create_revision 0
// for one that must not exist) and applies all writes only when none changed; when another
// manager moved one, the commit rechecks on the fresh values etcd returns and tries again.
// Versions are etcd revisions: they increase with every commit but are not consecutive (other
// keys share the counter). Commit returns once the mirror has seen its revision, so a caller
// reads its own writes. ChangesSince reaches back to the revision the store opened at (or was
// reloaded at after its watch fell behind etcd's compaction): earlier is OUT_OF_RANGE.
class EtcdStore : public Store {
 public:
  // Loads every object of `options.prefix` and starts the watch. UNAVAILABLE when etcd cannot
  // be reached.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(std::shared_ptr<EtcdClient> client,
                                                         EtcdStoreOptions options = {});

  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  // Errors as Store::Commit, and UNAVAILABLE when etcd cannot be reached (the commit may then
  // have applied or not), RESOURCE_EXHAUSTED when etcd's database is full, INVALID_ARGUMENT
  // beyond etcd's limits, ABORTED after max_commit_attempts lost races.
  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override;
  // As Commit, and ABORTED unless `fence`'s leader key still exists from its creation revision.
  absl::StatusOr<uint64_t> CommitFenced(const std::vector<Mutation>& mutations,
                                        const EtcdFence& fence);

  std::optional<StoredObject> Get(Kind kind, std::string_view id) const override;
  std::optional<StoredObject> GetByName(Kind kind, std::string_view name) const override;
  std::vector<StoredObject> List(Kind kind) const override;
  std::vector<ObjectVersion> ListVersions(Kind kind) const override;
  uint64_t Version() const override;
  // Never splits one revision's changes, like SqliteStore.
  absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const override;
  uint64_t WaitForVersion(uint64_t after, absl::Duration timeout) const override;
  std::vector<CorruptObject> Corruption() const override;
  // etcd reports a full database on the commit itself (RESOURCE_EXHAUSTED).
  absl::Status CheckSpace() override { return absl::OkStatus(); }
  // Half of etcd's operations per transaction, less the leader fence: a mutation takes an
  // operation for its object and one for a unique name it claims or frees.
  size_t MaxMutationsPerCommit() const override { return (opts_.max_txn_ops - 1) / 2; }
  // etcd is backed up by etcd itself (a snapshot of the whole keyspace).
  absl::StatusOr<uint64_t> Backup(const std::string& path) override {
    return absl::UnimplementedError(
        "the store is etcd: back it up with `etcdctl snapshot save FILE` (see "
        "docs/high-availability.md)");
  }

  // Discards etcd's history before `revision` (etcd keeps every revision until compacted; the
  // leader does this). The feed here drops those changes too.
  absl::Status Compact(uint64_t revision);

  // Changes with version <= this are not in the feed.
  uint64_t CompactedThrough() const;

  // Tests: stops the watch (as a lost connection would) until resumed; the mirror then falls
  // behind, and resumes from where it stopped or, when etcd compacted that away, reloads.
  void PauseWatchForTest(bool paused);

 private:
  // What a key held when a commit looked at it; the commit compares exactly this.
  struct Observed {
    bool exists = false;
    // 0 when only the value is known (a name key seen through the mirror).
    int64_t mod_revision = 0;
    std::string value;
  };
  class CommitView;
  using CorruptKey = CorruptIndex::key_type;
  // One decoded object key: the object, or why it is corrupt.
  struct Decoded {
    Kind kind = Kind::kService;
    std::string id;
    std::optional<StoredObject> object;
    std::optional<CorruptObject> corrupt;
  };

  EtcdStore(std::shared_ptr<EtcdClient> client, EtcdStoreOptions options);

  std::string ObjectKey(Kind kind, std::string_view id) const;
  std::string NameKey(Kind kind, std::string_view name) const;
  // (kind, id) of an object key; nullopt for a key outside the object range.
  std::optional<std::pair<int, std::string>> ParseObjectKey(std::string_view key) const;
  Decoded Decode(std::string_view key, std::string_view value, int64_t mod_revision) const;

  // Reads every object at one revision and replaces the mirror with it.
  absl::Status Load();
  void WatchLoop();
  // Applies the events of one watch response (whole revisions).
  void ApplyEvents(const etcdserverpb::WatchResponse& resp);
  void Trim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the changes with version <= `through` from the feed.
  void DropThrough(uint64_t through) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutLocked(Decoded d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(Kind kind, const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<uint64_t> CommitImpl(const std::vector<Mutation>& mutations,
                                      const EtcdFence* fence);
  absl::Status CheckLimits(const etcdserverpb::TxnRequest& txn, size_t mutations) const;

  const std::shared_ptr<EtcdClient> client_;
  const EtcdStoreOptions opts_;

  mutable absl::Mutex mu_;
  ObjectIndex kinds_ ABSL_GUARDED_BY(mu_);
  CorruptIndex corrupt_ ABSL_GUARDED_BY(mu_);
  // The revision the mirror reflects.
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Change> changes_ ABSL_GUARDED_BY(mu_);
  // Sum of changes_[i].data.size().
  size_t changes_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t compacted_through_ ABSL_GUARDED_BY(mu_) = 0;

  // The watch thread's stream, cancelled to stop it.
  absl::Mutex watch_mu_;
  grpc::ClientContext* watch_context_ ABSL_GUARDED_BY(watch_mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(watch_mu_) = false;
  bool paused_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread watch_thread_;
};

// The Store a leader's controllers write through: reads from `store`, every commit fenced with
// the fence `current_fence` returns (ABORTED when it returns none: not leading).
class EtcdFencedStore : public Store {
 public:
  EtcdFencedStore(EtcdStore& store, std::function<std::optional<EtcdFence>()> current_fence)
      : store_(store), current_fence_(std::move(current_fence)) {}

  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override;
  std::optional<StoredObject> Get(Kind kind, std::string_view id) const override {
    return store_.Get(kind, id);
  }
  std::optional<StoredObject> GetByName(Kind kind, std::string_view name) const override {
    return store_.GetByName(kind, name);
  }
  std::vector<StoredObject> List(Kind kind) const override { return store_.List(kind); }
  std::vector<ObjectVersion> ListVersions(Kind kind) const override {
    return store_.ListVersions(kind);
  }
  uint64_t Version() const override { return store_.Version(); }
  absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const override {
    return store_.ChangesSince(after, limit);
  }
  uint64_t WaitForVersion(uint64_t after, absl::Duration timeout) const override {
    return store_.WaitForVersion(after, timeout);
  }
  std::vector<CorruptObject> Corruption() const override { return store_.Corruption(); }
  absl::Status CheckSpace() override { return store_.CheckSpace(); }
  size_t MaxMutationsPerCommit() const override { return store_.MaxMutationsPerCommit(); }

 private:
  EtcdStore& store_;
  std::function<std::optional<EtcdFence>()> current_fence_;
};

}  // namespace warren

#endif  // WARREN_STORE_ETCD_STORE_H_
