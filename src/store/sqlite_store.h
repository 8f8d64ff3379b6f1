#ifndef WARREN_STORE_SQLITE_STORE_H_
#define WARREN_STORE_SQLITE_STORE_H_

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
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/store.h"
#include "store/store_common.h"

struct sqlite3;
struct sqlite3_stmt;

namespace warren {

struct SqliteStoreOptions {
  // Number of change rows kept in the watch feed. Older commits are dropped whole, so the
  // feed may briefly hold more rows when the newest commit alone is larger.
  size_t max_changes = 100000;
  // Bytes of object data kept in the watch feed (each change holds the whole object): what
  // bounds the feed's memory and disk when large objects change often (issue 17 D3).
  size_t max_change_bytes = 64 << 20;
  // How long SQLite waits for a lock held by another connection before failing.
  absl::Duration busy_timeout = absl::Seconds(5);
  // Upper bound on the number of Commit calls that share one transaction (group commit).
  size_t max_batch = 256;
  // Checks an object's data at Open and returns the id and name it declares (which must match
  // its row); an error marks the object corrupt. Unset: data is not looked at.
  std::function<absl::StatusOr<ObjectIdentity>(Kind kind, std::string_view data)> parse;
  // Size of <path>.reserve, space kept aside so that removals still commit on a full disk
  // (released on the first commit that fails for lack of space, recreated once space is
  // back). 0: no reserve, and a full disk fails every commit.
  uint64_t reserve_bytes = 4 << 20;
};

// Store on one SQLite file (WAL, synchronous=FULL, exclusive locking: one process) with every
// object mirrored in memory. Reads never touch disk. Concurrent Commit calls are batched into
// one transaction and one fsync (group commit); each caller still gets its own version and its
// own error. Files are created mode 0600.
class SqliteStore : public Store {
 public:
  // Opens or creates the database at `path`, creating missing parent directories, and loads
  // all objects and the retained watch feed into memory.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           SqliteStoreOptions opts = {});

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override;
  std::optional<StoredObject> Get(Kind kind, std::string_view id) const override;
  std::optional<StoredObject> GetByName(Kind kind, std::string_view name) const override;
  std::vector<StoredObject> List(Kind kind) const override;
  std::vector<ObjectVersion> ListVersions(Kind kind) const override;
  uint64_t Version() const override;
  // Never splits one commit's changes: the returned list ends at a commit boundary, and a
  // single commit larger than `limit` is returned whole.
  absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const override;
  uint64_t WaitForVersion(uint64_t after, absl::Duration timeout) const override;
  std::vector<CorruptObject> Corruption() const override;
  absl::Status CheckSpace() override;
  // VACUUM INTO `path` between two commits: a compact copy in rollback-journal mode that
  // SQLite (and Open) reads as a store of this schema.
  absl::StatusOr<uint64_t> Backup(const std::string& path) override;

  // The schema this binary writes (PRAGMA user_version); older ones are upgraded at Open.
  static constexpr int kSchemaVersion = 1;

  // Changes with version <= this were dropped from the feed (0: nothing dropped yet).
  uint64_t CompactedThrough() const;

 private:
  using KindState = KindIndex;
  struct CommitRequest;
  class Overlay;

  using CorruptKey = CorruptIndex::key_type;

  SqliteStore(sqlite3* db, std::string path, SqliteStoreOptions opts);

  absl::Status Init();
  absl::Status PrepareStatements();
  absl::Status Load();

  // Runs by exactly one leader thread at a time; fills in each request's result.
  void ProcessBatch(const std::vector<CommitRequest*>& batch);
  // Validates, writes and applies the batch; returns the write error, if any (every accepted
  // request then has it as its result).
  absl::Status ApplyBatch(const std::vector<CommitRequest*>& batch);
  // Disk-full state: the reserve is released on entry and recreated to leave it.
  void EnterDiskFull(const absl::Status& cause);
  bool TryRecreateReserve() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reserve_mu_);
  std::string DiskFullMessage() const;
  absl::Status WriteBatch(const std::vector<CommitRequest*>& accepted, uint64_t last_version,
                          uint64_t compact_through);
  absl::Status Exec(const char* sql);
  absl::Status StepDone(sqlite3_stmt* stmt, const char* what);
  absl::Status SqlError(const char* what) const;

  sqlite3* const db_;
  const std::string path_;
  const std::string reserve_path_;
  const SqliteStoreOptions opts_;

  // Cached statements; used only by the leader (and during Open).
  sqlite3_stmt* begin_stmt_ = nullptr;
  sqlite3_stmt* commit_stmt_ = nullptr;
  sqlite3_stmt* rollback_stmt_ = nullptr;
  sqlite3_stmt* upsert_stmt_ = nullptr;
  sqlite3_stmt* delete_stmt_ = nullptr;
  sqlite3_stmt* insert_change_stmt_ = nullptr;
  sqlite3_stmt* compact_stmt_ = nullptr;
  sqlite3_stmt* set_meta_stmt_ = nullptr;

  // Group commit queue. A request is either in pending_ or in the leader's batch until done.
  absl::Mutex commit_mu_;
  std::deque<CommitRequest*> pending_ ABSL_GUARDED_BY(commit_mu_);
  bool leader_active_ ABSL_GUARDED_BY(commit_mu_) = false;

  // In-memory state; written only by the leader after the SQLite COMMIT succeeded.
  mutable absl::Mutex mu_;
  std::map<Kind, KindState> kinds_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // Mirror of the changes table, ordered by version.
  std::deque<Change> changes_ ABSL_GUARDED_BY(mu_);
  // Sum of changes_[i].data.size().
  size_t changes_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t compacted_through_ ABSL_GUARDED_BY(mu_) = 0;
  // Found at Open; an entry goes when its object is deleted.
  std::map<CorruptKey, CorruptObject> corrupt_ ABSL_GUARDED_BY(mu_);

  // Serializes reserve file changes (the leader, CheckSpace callers).
  absl::Mutex reserve_mu_;
  std::atomic<bool> disk_full_{false};
};

}  // namespace warren

#endif  // WARREN_STORE_SQLITE_STORE_H_
