#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/data_dir.h"
#include "spdlog/spdlog.h"
#include "store/store_common.h"

namespace warren {
namespace {

constexpr int kSchemaVersion = SqliteStore::kSchemaVersion;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS objects (
  kind INTEGER NOT NULL,
  id TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  version INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS objects_kind_name ON objects (kind, name) WHERE name <> '';
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY,
  version INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  id TEXT NOT NULL,
  deleted INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_version ON changes (version);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const void* p = sqlite3_column_blob(stmt, col);
  int n = sqlite3_column_bytes(stmt, col);
  if (p == nullptr || n <= 0) return std::string();
  return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

// Binds a string as a blob/text without copying; the statement is reset before the string dies.
void BindText(sqlite3_stmt* stmt, int idx, std::string_view s) {
  sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
}
void BindBlob(sqlite3_stmt* stmt, int idx, std::string_view s) {
  // A zero-length blob with a null pointer would bind NULL, which NOT NULL rejects.
  static const char kEmpty = 0;
  sqlite3_bind_blob(stmt, idx, s.empty() ? &kEmpty : s.data(), static_cast<int>(s.size()),
                    SQLITE_STATIC);
}

// A column Warren wrote as an integer: SQLite keeps whatever else was put there as text, and
// sqlite3_column_int64 would read that as 0.
std::optional<uint64_t> PositiveInt(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) != SQLITE_INTEGER) return std::nullopt;
  sqlite3_int64 v = sqlite3_column_int64(stmt, col);
  if (v <= 0) return std::nullopt;
  return static_cast<uint64_t>(v);
}

std::string ColumnForLog(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) return "NULL";
  std::string text = ColumnText(stmt, col);
  if (text.size() > 40) text = text.substr(0, 40) + "...";
  return absl::StrCat("\"", absl::CEscape(text), "\"");
}

// Creates the file 0600 (SQLite gives its -wal the mode of the database file) and takes group
// and other permissions from files an older version created 0644.
absl::Status PrepareFiles(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("creating ", path, ": ", strerror(errno)));
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && ((st.st_mode & 077) == 0 || fchmod(fd, 0600) == 0);
  int err = errno;
  close(fd);
  if (!ok) {
    return absl::InternalError(absl::StrCat("making ", path, " private: ", strerror(err)));
  }
  for (const char* suffix : {"-wal", "-shm", "-journal"}) {
    std::string p = path + suffix;
    if (lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
        chmod(p.c_str(), 0600) != 0) {
      return absl::InternalError(absl::StrCat("making ", p, " private: ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct SqliteStore::CommitRequest {
  const std::vector<Mutation>* mutations = nullptr;
  absl::StatusOr<uint64_t> result = absl::InternalError("commit not processed");
  uint64_t version = 0;
  bool done = false;
};

// The state a batch sees while it is validated: memory, plus the requests of the batch
// accepted so far, plus the request being validated. Nothing touches memory until the batch
// is on disk.
class SqliteStore::Overlay : public MutationView {
 public:
  Overlay(const std::map<Kind, KindState>& base, const std::map<CorruptKey, CorruptObject>& corrupt)
      : base_(base), corrupt_(corrupt) {}

  // The corrupt object at (kind, id) unless this batch already deleted it.
  const CorruptObject* FindCorrupt(Kind kind, const std::string& id) const override {
    if (corrupt_.empty() || Shadowed(Key{kind, id})) return nullptr;
    auto it = corrupt_.find(CorruptKey{kind, id});
    return it == corrupt_.end() ? nullptr : &it->second;
  }

  // The corrupt object holding `name` in its kind, unless this batch deleted it.
  const CorruptObject* FindCorruptName(Kind kind, const std::string& name) const override {
    for (const auto& [key, c] : corrupt_) {
      if (c.kind == kind && c.name == name && !Shadowed(Key{kind, c.id})) return &c;
    }
    return nullptr;
  }

  const StoredObject* Find(Kind kind, const std::string& id) const override {
    Key key{kind, id};
    for (const Layer* layer : {&request_, &batch_}) {
      auto it = layer->objects.find(key);
      if (it != layer->objects.end()) return it->second ? &*it->second : nullptr;
    }
    auto kit = base_.find(kind);
    if (kit == base_.end()) return nullptr;
    auto it = kit->second.by_id.find(id);
    return it == kit->second.by_id.end() ? nullptr : &it->second;
  }

  // The id holding `name`, or nullptr when the name is free.
  const std::string* FindName(Kind kind, const std::string& name) const override {
    Key key{kind, name};
    for (const Layer* layer : {&request_, &batch_}) {
      auto it = layer->names.find(key);
      if (it != layer->names.end()) return it->second ? &*it->second : nullptr;
    }
    auto kit = base_.find(kind);
    if (kit == base_.end()) return nullptr;
    auto it = kit->second.id_by_name.find(name);
    return it == kit->second.id_by_name.end() ? nullptr : &it->second;
  }

  void Put(StoredObject obj) override {
    Key key{obj.kind, obj.id};
    request_.objects[key] = std::move(obj);
  }
  void Erase(Kind kind, const std::string& id) override {
    request_.objects[Key{kind, id}] = std::nullopt;
  }
  void SetName(Kind kind, const std::string& name, std::optional<std::string> id) override {
    request_.names[Key{kind, name}] = std::move(id);
  }

  void Accept() {
    for (auto& [k, v] : request_.objects) batch_.objects[k] = std::move(v);
    for (auto& [k, v] : request_.names) batch_.names[k] = std::move(v);
    Reject();
  }
  void Reject() {
    request_.objects.clear();
    request_.names.clear();
  }

 private:
  using Key = std::pair<Kind, std::string>;
  struct Layer {
    absl::flat_hash_map<Key, std::optional<StoredObject>> objects;
    absl::flat_hash_map<Key, std::optional<std::string>> names;
  };
  bool Shadowed(const Key& key) const {
    return request_.objects.contains(key) || batch_.objects.contains(key);
  }
  const std::map<Kind, KindState>& base_;
  const std::map<CorruptKey, CorruptObject>& corrupt_;
  Layer batch_;
  Layer request_;
};

SqliteStore::SqliteStore(sqlite3* db, std::string path, SqliteStoreOptions opts)
    : db_(db), path_(std::move(path)), reserve_path_(path_ + ".reserve"), opts_(std::move(opts)) {}

SqliteStore::~SqliteStore() {
  for (sqlite3_stmt* s : {begin_stmt_, commit_stmt_, rollback_stmt_, upsert_stmt_, delete_stmt_,
                          insert_change_stmt_, compact_stmt_, set_meta_stmt_}) {
    sqlite3_finalize(s);
  }
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               SqliteStoreOptions opts) {
  if (path.empty()) return absl::InvalidArgumentError("store path is empty");
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    if (absl::Status s = MakePrivateDir(parent.string()); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("opening store ", path, ": ", s.message()));
    }
  }
  if (absl::Status s = PrepareFiles(path); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("opening store ", path, ": ", s.message()));
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("opening store ", path, ": ", msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path, std::move(opts)));
  if (absl::Status s = store->Init(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("opening store ", path, ": ", s.message()));
  }
  if (store->opts_.reserve_bytes > 0) {
    absl::MutexLock lock(&store->reserve_mu_);
    if (!store->TryRecreateReserve()) {
      store->disk_full_ = true;
      spdlog::error("store {}: no space for the {}-byte reserve: {}", path,
                    store->opts_.reserve_bytes, store->DiskFullMessage());
    }
  }
  return store;
}

absl::Status SqliteStore::SqlError(const char* what) const {
  if ((sqlite3_extended_errcode(db_) & 0xff) == SQLITE_FULL) {
    return absl::ResourceExhaustedError(
        absl::StrCat(DiskFullMessage(), " (", what, ": ", sqlite3_errmsg(db_), ")"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", sqlite3_errmsg(db_)));
}

std::string SqliteStore::DiskFullMessage() const {
  std::string dir = std::filesystem::path(path_).parent_path().string();
  return absl::StrCat("disk full: no space left for the store in ", dir.empty() ? "." : dir,
                      "; only changes that remove or shrink (service rm, scale down) are accepted "
                      "until space is freed there");
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return absl::InternalError(msg);
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::StepDone(sqlite3_stmt* stmt, const char* what) {
  int rc = sqlite3_step(stmt);
  absl::Status s = rc == SQLITE_DONE ? absl::OkStatus() : SqlError(what);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return s;
}

absl::Status SqliteStore::Init() {
  sqlite3_busy_timeout(db_, static_cast<int>(absl::ToInt64Milliseconds(opts_.busy_timeout)));
  // One process owns the store (the data dir lock). Exclusive locking before the first WAL
  // access keeps the WAL index in heap memory instead of a mmapped -shm file, and no mmap I/O:
  // a full or truncated file then fails a commit with an error instead of raising SIGBUS.
  if (absl::Status s = Exec("PRAGMA locking_mode=EXCLUSIVE"); !s.ok()) return s;
  if (absl::Status s = Exec("PRAGMA mmap_size=0"); !s.ok()) return s;
  {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &stmt, nullptr) != SQLITE_OK) {
      return SqlError("setting WAL mode");
    }
    std::string mode;
    if (sqlite3_step(stmt) == SQLITE_ROW) mode = ColumnText(stmt, 0);
    sqlite3_finalize(stmt);
    if (mode != "wal") {
      return absl::InternalError(absl::StrCat("cannot enable WAL mode (journal_mode is \"", mode,
                                              "\"): ", sqlite3_errmsg(db_)));
    }
  }
  // FULL fsyncs the WAL on every COMMIT: an acknowledged commit survives a crash.
  if (absl::Status s = Exec("PRAGMA synchronous=FULL"); !s.ok()) return s;

  int user_version = 0;
  {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) {
      return SqlError("reading schema version");
    }
    if (sqlite3_step(stmt) == SQLITE_ROW) user_version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
  }
  if (user_version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "schema version %d is newer than this binary supports (%d)", user_version, kSchemaVersion));
  }
  // Only a new (or older) file is written here: a store must open on a full disk.
  if (user_version < kSchemaVersion) {
    if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    absl::Status s = Exec(kSchema);
    if (s.ok()) s = Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str());
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return absl::InternalError(absl::StrCat("creating schema: ", s.message()));
    }
  }
  if (absl::Status s = PrepareStatements(); !s.ok()) return s;
  return Load();
}

absl::Status SqliteStore::PrepareStatements() {
  struct {
    sqlite3_stmt** stmt;
    const char* sql;
  } const stmts[] = {
      {&begin_stmt_, "BEGIN IMMEDIATE"},
      {&commit_stmt_, "COMMIT"},
      {&rollback_stmt_, "ROLLBACK"},
      {&upsert_stmt_,
       "INSERT INTO objects (kind, id, name, version, data) VALUES (?1, ?2, ?3, ?4, ?5) "
       "ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, version = excluded.version, "
       "data = excluded.data"},
      {&delete_stmt_, "DELETE FROM objects WHERE kind = ?1 AND id = ?2"},
      {&insert_change_stmt_,
       "INSERT INTO changes (version, kind, id, deleted, data) VALUES (?1, ?2, ?3, ?4, ?5)"},
      {&compact_stmt_, "DELETE FROM changes WHERE version <= ?1"},
      {&set_meta_stmt_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"},
  };
  for (const auto& s : stmts) {
    if (sqlite3_prepare_v3(db_, s.sql, -1, SQLITE_PREPARE_PERSISTENT, s.stmt, nullptr) !=
        SQLITE_OK) {
      return SqlError(absl::StrCat("preparing \"", s.sql, "\"").c_str());
    }
  }
  return absl::OkStatus();
}

// Rows SQLite can read but Warren cannot are reported, never hidden silently: a corrupt object
// is kept aside (see CorruptObject), a corrupt row of the watch feed cuts the feed (watchers
// relist from the objects), and the version counter never goes back below a version in use.
absl::Status SqliteStore::Load() {
  absl::MutexLock lock(&mu_);
  auto query = [this](const char* sql, auto&& row) -> absl::Status {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) return SqlError(sql);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : SqlError(sql);
  };
  // The highest version any row shows: the counter must not restart below it.
  uint64_t max_seen = 0;
  std::optional<uint64_t> meta_version;
  uint64_t meta_compacted = 0;
  std::string bad_meta;
  bool compacted_bad = false;
  absl::Status s = query("SELECT key, value FROM meta", [&](sqlite3_stmt* st) {
    std::string key = ColumnText(st, 0);
    if (key != "version" && key != "compacted_through") return;
    std::optional<uint64_t> value = PositiveInt(st, 1);
    if (!value &&
        !(sqlite3_column_type(st, 1) == SQLITE_INTEGER && sqlite3_column_int64(st, 1) == 0)) {
      absl::StrAppend(&bad_meta, bad_meta.empty() ? "" : ", ", key, " = ", ColumnForLog(st, 1));
      if (key == "compacted_through") compacted_bad = true;
      return;
    }
    if (key == "version") {
      meta_version = value.value_or(0);
    } else {
      meta_compacted = value.value_or(0);
    }
  });
  if (!s.ok()) return s;

  s = query("SELECT kind, id, name, version, data FROM objects", [&](sqlite3_stmt* st) {
    mu_.AssertHeld();
    StoredObject obj;
    obj.kind = static_cast<Kind>(sqlite3_column_int(st, 0));
    obj.id = ColumnText(st, 1);
    obj.name = ColumnText(st, 2);
    std::optional<uint64_t> version = PositiveInt(st, 3);
    obj.version = version.value_or(0);
    obj.data = ColumnText(st, 4);
    max_seen = std::max(max_seen, obj.version);
    std::string reason;
    if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || !IsKnownKind(obj.kind)) {
      reason = absl::StrCat("kind ", ColumnForLog(st, 0), " is not one this binary knows");
    } else if (obj.id.empty()) {
      reason = "the id is empty";
    } else if (!version) {
      reason = absl::StrCat("version ", ColumnForLog(st, 3), " is not a positive integer");
    } else if (opts_.parse) {
      absl::StatusOr<ObjectIdentity> identity = opts_.parse(obj.kind, obj.data);
      if (!identity.ok()) {
        reason = std::string(identity.status().message());
      } else if (identity->id != obj.id) {
        reason = absl::StrCat("its data is object \"", identity->id, "\", not \"", obj.id, "\"");
      } else if (identity->name != obj.name) {
        reason =
            absl::StrCat("its data names it \"", identity->name, "\", its row \"", obj.name, "\"");
      }
    }
    if (!reason.empty()) {
      CorruptObject c{obj.kind, obj.id, obj.name, obj.version, reason};
      spdlog::error(
          "store {}: {} is corrupt: {}; it is left out of reads and writes refuse it "
          "until it is removed",
          path_, DescribeCorrupt(c), reason);
      corrupt_.emplace(CorruptKey{obj.kind, obj.id}, std::move(c));
      return;
    }
    KindState& ks = kinds_[obj.kind];
    if (!obj.name.empty()) ks.id_by_name[obj.name] = obj.id;
    std::string id = obj.id;
    ks.by_id.emplace(std::move(id), std::move(obj));
  });
  if (!s.ok()) return s;

  // The version through which the feed is unusable (a corrupt row in it), if any.
  std::optional<uint64_t> cut_through;
  std::string first_bad_change;
  int bad_changes = 0;
  s = query(
      "SELECT seq, version, kind, id, deleted, data FROM changes ORDER BY seq",
      [&](sqlite3_stmt* st) {
        mu_.AssertHeld();
        Change c;
        std::optional<uint64_t> version = PositiveInt(st, 1);
        c.version = version.value_or(0);
        c.kind = static_cast<Kind>(sqlite3_column_int(st, 2));
        c.id = ColumnText(st, 3);
        c.deleted = sqlite3_column_int(st, 4) != 0;
        c.data = ColumnText(st, 5);
        max_seen = std::max(max_seen, c.version);
        std::string reason;
        if (!version) {
          reason = absl::StrCat("version ", ColumnForLog(st, 1), " is not a positive integer");
        } else if (sqlite3_column_type(st, 2) != SQLITE_INTEGER || !IsKnownKind(c.kind)) {
          reason = absl::StrCat("kind ", ColumnForLog(st, 2), " is unknown");
        } else if (c.id.empty()) {
          reason = "the id is empty";
        } else if (!changes_.empty() && c.version < changes_.back().version) {
          reason = "its version is older than the row before it";
        } else if (!c.deleted && opts_.parse) {
          absl::StatusOr<ObjectIdentity> identity = opts_.parse(c.kind, c.data);
          if (!identity.ok()) {
            reason = std::string(identity.status().message());
          } else if (identity->id != c.id) {
            reason = absl::StrCat("its data is object \"", identity->id, "\", not \"", c.id, "\"");
          }
        }
        if (reason.empty()) {
          changes_bytes_ += c.data.size();
          changes_.push_back(std::move(c));
          return;
        }
        if (bad_changes++ == 0) {
          first_bad_change = absl::StrCat("row ", sqlite3_column_int64(st, 0), ": ", reason);
        }
        // Without a readable version, nothing in the feed can be trusted to be complete.
        cut_through = std::max(cut_through.value_or(0),
                               version ? *version : std::numeric_limits<uint64_t>::max());
      });
  if (!s.ok()) return s;

  version_ = std::max(meta_version.value_or(0), max_seen);
  if (!bad_meta.empty() || meta_version.value_or(0) < max_seen) {
    spdlog::error(
        "store {}: the version counter is damaged ({}); continuing from version {}, the highest "
        "version in the store, so that no version is used twice",
        path_,
        bad_meta.empty() ? absl::StrCat("version ", meta_version.value_or(0), " is behind the data")
                         : bad_meta,
        version_);
  }
  compacted_through_ = std::min(meta_compacted, version_);
  // Without a trusted compaction mark the feed may start after a hole: watchers relist.
  if (compacted_bad) cut_through = version_;
  if (cut_through) {
    const uint64_t through = std::min(*cut_through, version_);
    if (bad_changes > 0) {
      spdlog::error(
          "store {}: {} corrupt row(s) in the watch feed (first: {}); the feed is cut through "
          "version {}: watchers relist from the objects",
          path_, bad_changes, first_bad_change, through);
    }
    while (!changes_.empty() && changes_.front().version <= through) {
      changes_bytes_ -= changes_.front().data.size();
      changes_.pop_front();
    }
    compacted_through_ = std::max(compacted_through_, through);
  }
  if (!corrupt_.empty()) {
    spdlog::error(
        "store {}: {} corrupt object(s); /readyz reports not ready until they are "
        "removed or the data dir is restored from a backup",
        path_, corrupt_.size());
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteStore::Commit(const std::vector<Mutation>& mutations) {
  // Checks that need no state run before queueing, so they never cost a transaction.
  if (absl::Status s = CheckMutationShape(mutations); !s.ok()) return s;

  CommitRequest req;
  req.mutations = &mutations;
  absl::MutexLock lock(&commit_mu_);
  pending_.push_back(&req);
  auto leader_free_or_done = [this, &req]() {
    commit_mu_.AssertHeld();
    return req.done || !leader_active_;
  };
  while (!req.done) {
    if (leader_active_) {
      commit_mu_.Await(absl::Condition(&leader_free_or_done));
      continue;
    }
    // Everyone queued while the previous leader was writing shares this transaction.
    leader_active_ = true;
    std::vector<CommitRequest*> batch;
    while (!pending_.empty() && batch.size() < std::max<size_t>(1, opts_.max_batch)) {
      batch.push_back(pending_.front());
      pending_.pop_front();
    }
    commit_mu_.Unlock();
    ProcessBatch(batch);
    commit_mu_.Lock();
    for (CommitRequest* r : batch) r->done = true;
    leader_active_ = false;
  }
  return req.result;
}

void SqliteStore::ProcessBatch(const std::vector<CommitRequest*>& batch) {
  if (disk_full_) {
    absl::MutexLock lock(&reserve_mu_);
    TryRecreateReserve();
  }
  absl::Status s = ApplyBatch(batch);
  if (s.code() != absl::StatusCode::kResourceExhausted || disk_full_) return;
  EnterDiskFull(s);
  // Once more on the released reserve: what adds objects is refused now, the rest goes through.
  ApplyBatch(batch).IgnoreError();  // each request has its own result
}

absl::Status SqliteStore::ApplyBatch(const std::vector<CommitRequest*>& batch) {
  std::vector<CommitRequest*> accepted;
  uint64_t compact_through = 0;
  {
    // Only the leader writes memory, so what it validates here is still current when it
    // applies the batch below.
    absl::ReaderMutexLock lock(&mu_);
    Overlay overlay(kinds_, corrupt_);
    uint64_t next_version = version_ + 1;
    size_t new_rows = 0;
    size_t new_bytes = 0;
    auto data_bytes = [](const CommitRequest& r) {
      size_t n = 0;
      for (const Mutation& m : *r.mutations) n += m.data ? m.data->size() : 0;
      return n;
    };
    const bool disk_full = disk_full_;
    for (CommitRequest* r : batch) {
      const std::string full_message = disk_full ? DiskFullMessage() : std::string();
      absl::Status s = ValidateMutations(*r->mutations, next_version,
                                         disk_full ? &full_message : nullptr, overlay);
      if (!s.ok()) {
        overlay.Reject();
        r->result = s;
        continue;
      }
      overlay.Accept();
      r->version = next_version++;
      new_rows += r->mutations->size();
      new_bytes += data_bytes(*r);
      accepted.push_back(r);
    }
    if (accepted.empty()) return absl::OkStatus();

    // Retention: drop whole commits, oldest first, but never the newest one, until both the
    // rows and the bytes fit.
    size_t rows = changes_.size() + new_rows;
    size_t bytes = changes_bytes_ + new_bytes;
    auto over = [&] { return rows > opts_.max_changes || bytes > opts_.max_change_bytes; };
    size_t i = 0;
    while (over() && i < changes_.size()) {
      uint64_t v = changes_[i].version;
      while (i < changes_.size() && changes_[i].version == v) {
        --rows;
        bytes -= changes_[i].data.size();
        ++i;
      }
      compact_through = v;
    }
    for (size_t a = 0; over() && a + 1 < accepted.size(); ++a) {
      rows -= accepted[a]->mutations->size();
      bytes -= data_bytes(*accepted[a]);
      compact_through = accepted[a]->version;
    }
  }

  absl::Status s = WriteBatch(accepted, accepted.back()->version, compact_through);
  if (!s.ok()) {
    for (CommitRequest* r : accepted) r->result = s;
    return s;
  }

  absl::MutexLock lock(&mu_);
  for (CommitRequest* r : accepted) {
    for (const Mutation& m : *r->mutations) {
      if (!m.data.has_value()) corrupt_.erase(CorruptKey{m.kind, m.id});
      KindState& ks = kinds_[m.kind];
      auto it = ks.by_id.find(m.id);
      if (it != ks.by_id.end() && !it->second.name.empty() &&
          (!m.data.has_value() || it->second.name != m.name)) {
        auto nit = ks.id_by_name.find(it->second.name);
        if (nit != ks.id_by_name.end() && nit->second == m.id) ks.id_by_name.erase(nit);
      }
      Change c{r->version, m.kind, m.id, !m.data.has_value(), m.data.value_or("")};
      if (m.data.has_value()) {
        if (!m.name.empty()) ks.id_by_name[m.name] = m.id;
        StoredObject obj{m.kind, m.id, m.name, r->version, *m.data};
        if (it != ks.by_id.end()) {
          it->second = std::move(obj);
        } else {
          ks.by_id.emplace(m.id, std::move(obj));
        }
      } else if (it != ks.by_id.end()) {
        ks.by_id.erase(it);
      }
      changes_bytes_ += c.data.size();
      changes_.push_back(std::move(c));
    }
    r->result = r->version;
  }
  version_ = accepted.back()->version;
  if (compact_through > compacted_through_) {
    while (!changes_.empty() && changes_.front().version <= compact_through) {
      changes_bytes_ -= changes_.front().data.size();
      changes_.pop_front();
    }
    compacted_through_ = compact_through;
  }
  return absl::OkStatus();
}

void SqliteStore::EnterDiskFull(const absl::Status& cause) {
  absl::MutexLock lock(&reserve_mu_);
  if (disk_full_) return;
  disk_full_ = true;
  if (opts_.reserve_bytes == 0) {
    spdlog::error("store {}: {}; no reserve is configured", path_, std::string(cause.message()));
    return;
  }
  // Freed blocks, not a smaller file, are what the commits below need.
  const bool released = unlink(reserve_path_.c_str()) == 0;
  spdlog::error("store {}: {}; {} the {}-byte reserve {}", path_, std::string(cause.message()),
                released ? "released" : "could not release", opts_.reserve_bytes, reserve_path_);
}

bool SqliteStore::TryRecreateReserve() {
  if (disk_full_) {
    // Taking back the space the reserve just freed is no recovery: leave the disk-full state
    // only with as much again free beyond the reserve.
    const uint64_t headroom = std::max<uint64_t>(opts_.reserve_bytes, 1 << 20);
    struct statvfs fs;
    std::string dir = std::filesystem::path(path_).parent_path().string();
    if (statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0 ||
        static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < opts_.reserve_bytes + headroom) {
      return false;
    }
  }
  if (opts_.reserve_bytes == 0) {
    disk_full_ = false;
    return true;
  }
  int fd = open(reserve_path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    // Allocated blocks, not a sparse file: a full disk must find the space really there.
    err = posix_fallocate(fd, 0, static_cast<off_t>(opts_.reserve_bytes));
    close(fd);
  }
  if (err != 0) {
    unlink(reserve_path_.c_str());
    return false;
  }
  if (disk_full_) {
    disk_full_ = false;
    spdlog::info(
        "store {}: space is back (the {}-byte reserve {} is recreated); every commit "
        "is accepted again",
        path_, opts_.reserve_bytes, reserve_path_);
  }
  return true;
}

absl::Status SqliteStore::CheckSpace() {
  if (!disk_full_) return absl::OkStatus();
  absl::MutexLock lock(&reserve_mu_);
  if (disk_full_ && !TryRecreateReserve()) return absl::ResourceExhaustedError(DiskFullMessage());
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteStore::Backup(const std::string& path) {
  // The connection is the commit leader's: take the leader's place, so no transaction is open
  // and none starts until the copy is done.
  absl::MutexLock lock(&commit_mu_);
  auto leader_free = [this]() {
    commit_mu_.AssertHeld();
    return !leader_active_;
  };
  commit_mu_.Await(absl::Condition(&leader_free));
  leader_active_ = true;
  commit_mu_.Unlock();
  uint64_t version = Version();
  sqlite3_stmt* stmt = nullptr;
  absl::Status s;
  if (sqlite3_prepare_v2(db_, "VACUUM INTO ?1", -1, &stmt, nullptr) != SQLITE_OK) {
    s = SqlError("preparing the backup");
  } else {
    BindText(stmt, 1, path);
    if (sqlite3_step(stmt) != SQLITE_DONE) s = SqlError(absl::StrCat("backup to ", path).c_str());
    sqlite3_finalize(stmt);
  }
  commit_mu_.Lock();
  leader_active_ = false;
  if (!s.ok()) return s;
  // The copy keeps the WAL flag of the original; a backup is one self-contained file that a
  // reader may open read-only.
  sqlite3* copy = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &copy, SQLITE_OPEN_READWRITE, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(copy, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr);
  }
  std::string error = rc == SQLITE_OK ? "" : (copy ? sqlite3_errmsg(copy) : sqlite3_errstr(rc));
  sqlite3_close(copy);
  if (!error.empty()) return absl::InternalError(absl::StrCat("backup ", path, ": ", error));
  return version;
}

std::vector<CorruptObject> SqliteStore::Corruption() const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexCorruption(corrupt_);
}

absl::Status SqliteStore::WriteBatch(const std::vector<CommitRequest*>& accepted,
                                     uint64_t last_version, uint64_t compact_through) {
  absl::Status s = StepDone(begin_stmt_, "beginning transaction");
  if (!s.ok()) return s;
  auto set_meta = [this](std::string_view key, uint64_t value) {
    BindText(set_meta_stmt_, 1, key);
    sqlite3_bind_int64(set_meta_stmt_, 2, static_cast<sqlite3_int64>(value));
    return StepDone(set_meta_stmt_, "writing meta");
  };
  for (const CommitRequest* r : accepted) {
    for (const Mutation& m : *r->mutations) {
      const int kind = static_cast<int>(m.kind);
      const auto version = static_cast<sqlite3_int64>(r->version);
      if (m.data.has_value()) {
        sqlite3_bind_int(upsert_stmt_, 1, kind);
        BindText(upsert_stmt_, 2, m.id);
        BindText(upsert_stmt_, 3, m.name);
        sqlite3_bind_int64(upsert_stmt_, 4, version);
        BindBlob(upsert_stmt_, 5, *m.data);
        s = StepDone(upsert_stmt_, "writing object");
      } else {
        sqlite3_bind_int(delete_stmt_, 1, kind);
        BindText(delete_stmt_, 2, m.id);
        s = StepDone(delete_stmt_, "deleting object");
      }
      if (!s.ok()) break;
      sqlite3_bind_int64(insert_change_stmt_, 1, version);
      sqlite3_bind_int(insert_change_stmt_, 2, kind);
      BindText(insert_change_stmt_, 3, m.id);
      sqlite3_bind_int(insert_change_stmt_, 4, m.data.has_value() ? 0 : 1);
      BindBlob(insert_change_stmt_, 5, m.data.has_value() ? std::string_view(*m.data) : "");
      s = StepDone(insert_change_stmt_, "writing change");
      if (!s.ok()) break;
    }
    if (!s.ok()) break;
  }
  if (s.ok()) s = set_meta("version", last_version);
  if (s.ok() && compact_through > 0) {
    sqlite3_bind_int64(compact_stmt_, 1, static_cast<sqlite3_int64>(compact_through));
    s = StepDone(compact_stmt_, "compacting changes");
    if (s.ok()) s = set_meta("compacted_through", compact_through);
  }
  if (s.ok()) s = StepDone(commit_stmt_, "committing");
  if (!s.ok()) {
    // After a failed COMMIT the transaction may still be open; a no-op otherwise.
    if (!sqlite3_get_autocommit(db_)) StepDone(rollback_stmt_, "rolling back").IgnoreError();
  }
  return s;
}

std::optional<StoredObject> SqliteStore::Get(Kind kind, std::string_view id) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexGet(kinds_, kind, id);
}

std::optional<StoredObject> SqliteStore::GetByName(Kind kind, std::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexGetByName(kinds_, kind, name);
}

std::vector<StoredObject> SqliteStore::List(Kind kind) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexList(kinds_, kind);
}

std::vector<ObjectVersion> SqliteStore::ListVersions(Kind kind) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexListVersions(kinds_, kind);
}

uint64_t SqliteStore::Version() const {
  absl::ReaderMutexLock lock(&mu_);
  return version_;
}

uint64_t SqliteStore::CompactedThrough() const {
  absl::ReaderMutexLock lock(&mu_);
  return compacted_through_;
}

absl::StatusOr<std::vector<Change>> SqliteStore::ChangesSince(uint64_t after, size_t limit) const {
  absl::ReaderMutexLock lock(&mu_);
  return FeedPage(changes_, compacted_through_, after, limit);
}

uint64_t SqliteStore::WaitForVersion(uint64_t after, absl::Duration timeout) const {
  return AwaitVersion(mu_, version_, after, timeout);
}

}  // namespace warren
