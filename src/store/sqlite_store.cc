#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace warren {
namespace {

constexpr int kSchemaVersion = 1;

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

bool IsKnownKind(Kind kind) {
  int k = static_cast<int>(kind);
  return k >= static_cast<int>(Kind::kService) && k <= static_cast<int>(Kind::kDeployment);
}

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
class SqliteStore::Overlay {
 public:
  explicit Overlay(const std::map<Kind, KindState>& base) : base_(base) {}

  const StoredObject* Find(Kind kind, const std::string& id) const {
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
  const std::string* FindName(Kind kind, const std::string& name) const {
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

  void Put(StoredObject obj) {
    Key key{obj.kind, obj.id};
    request_.objects[key] = std::move(obj);
  }
  void Erase(Kind kind, const std::string& id) { request_.objects[Key{kind, id}] = std::nullopt; }
  void SetName(Kind kind, const std::string& name, std::optional<std::string> id) {
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
  const std::map<Kind, KindState>& base_;
  Layer batch_;
  Layer request_;
};

SqliteStore::SqliteStore(sqlite3* db, SqliteStoreOptions opts) : db_(db), opts_(opts) {}

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
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("creating store directory ", parent.string(), ": ", ec.message()));
    }
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::InternalError(absl::StrCat("opening store ", path, ": ", msg));
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, opts));
  if (absl::Status s = store->Init(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("opening store ", path, ": ", s.message()));
  }
  return store;
}

absl::Status SqliteStore::SqlError(const char* what) const {
  return absl::InternalError(absl::StrCat(what, ": ", sqlite3_errmsg(db_)));
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
  if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  absl::Status s = Exec(kSchema);
  if (s.ok()) s = Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str());
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return absl::InternalError(absl::StrCat("creating schema: ", s.message()));
  }
  if (s = PrepareStatements(); !s.ok()) return s;
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
  absl::Status s = query("SELECT key, value FROM meta", [this](sqlite3_stmt* st) {
    std::string key = ColumnText(st, 0);
    uint64_t value = static_cast<uint64_t>(sqlite3_column_int64(st, 1));
    mu_.AssertHeld();
    if (key == "version") version_ = value;
    if (key == "compacted_through") compacted_through_ = value;
  });
  if (!s.ok()) return s;
  s = query("SELECT kind, id, name, version, data FROM objects", [this](sqlite3_stmt* st) {
    mu_.AssertHeld();
    StoredObject obj;
    obj.kind = static_cast<Kind>(sqlite3_column_int(st, 0));
    obj.id = ColumnText(st, 1);
    obj.name = ColumnText(st, 2);
    obj.version = static_cast<uint64_t>(sqlite3_column_int64(st, 3));
    obj.data = ColumnText(st, 4);
    KindState& ks = kinds_[obj.kind];
    if (!obj.name.empty()) ks.id_by_name[obj.name] = obj.id;
    std::string id = obj.id;
    ks.by_id.emplace(std::move(id), std::move(obj));
  });
  if (!s.ok()) return s;
  return query("SELECT version, kind, id, deleted, data FROM changes ORDER BY seq",
               [this](sqlite3_stmt* st) {
                 mu_.AssertHeld();
                 Change c;
                 c.version = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
                 c.kind = static_cast<Kind>(sqlite3_column_int(st, 1));
                 c.id = ColumnText(st, 2);
                 c.deleted = sqlite3_column_int(st, 3) != 0;
                 c.data = ColumnText(st, 4);
                 changes_.push_back(std::move(c));
               });
}

absl::StatusOr<uint64_t> SqliteStore::Commit(const std::vector<Mutation>& mutations) {
  if (mutations.empty()) return absl::InvalidArgumentError("commit has no mutations");
  // Checks that need no state run before queueing, so they never cost a transaction.
  absl::flat_hash_map<std::pair<Kind, std::string_view>, size_t> seen;
  for (size_t i = 0; i < mutations.size(); ++i) {
    const Mutation& m = mutations[i];
    if (!IsKnownKind(m.kind)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mutation %d: unknown kind %d", i, static_cast<int>(m.kind)));
    }
    if (m.id.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mutation %d: %s id is empty", i, KindName(m.kind)));
    }
    auto [it, inserted] = seen.try_emplace(std::pair<Kind, std::string_view>(m.kind, m.id), i);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrFormat("mutations %d and %d both write %s \"%s\"; one commit may write an "
                          "object only once",
                          it->second, i, KindName(m.kind), m.id));
    }
  }

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

absl::Status SqliteStore::Validate(const std::vector<Mutation>& mutations, uint64_t version,
                                   Overlay& overlay) const {
  for (const Mutation& m : mutations) {
    std::string_view kind = KindName(m.kind);
    const StoredObject* cur = overlay.Find(m.kind, m.id);
    if (!m.data.has_value() && cur == nullptr) {
      return absl::NotFoundError(absl::StrFormat("%s \"%s\" not found", kind, m.id));
    }
    if (m.expected_version == Mutation::kMustNotExist) {
      if (cur != nullptr) {
        return absl::AbortedError(
            absl::StrFormat("%s \"%s\" already exists (at version %d)", kind, m.id, cur->version));
      }
    } else if (m.expected_version != 0) {
      if (cur == nullptr) {
        return absl::AbortedError(absl::StrFormat("%s \"%s\" does not exist (expected version %d)",
                                                  kind, m.id, m.expected_version));
      }
      if (cur->version != m.expected_version) {
        return absl::AbortedError(absl::StrFormat("%s \"%s\" is at version %d, expected version %d",
                                                  kind, m.id, cur->version, m.expected_version));
      }
    }
    std::string old_name = cur != nullptr ? cur->name : std::string();
    if (!m.data.has_value()) {
      if (!old_name.empty()) overlay.SetName(m.kind, old_name, std::nullopt);
      overlay.Erase(m.kind, m.id);
      continue;
    }
    if (!m.name.empty()) {
      const std::string* holder = overlay.FindName(m.kind, m.name);
      if (holder != nullptr && *holder != m.id) {
        return absl::AlreadyExistsError(
            absl::StrFormat("%s name \"%s\" already exists (id \"%s\")", kind, m.name, *holder));
      }
    }
    if (!old_name.empty() && old_name != m.name) overlay.SetName(m.kind, old_name, std::nullopt);
    if (!m.name.empty()) overlay.SetName(m.kind, m.name, m.id);
    overlay.Put(StoredObject{m.kind, m.id, m.name, version, *m.data});
  }
  return absl::OkStatus();
}

void SqliteStore::ProcessBatch(const std::vector<CommitRequest*>& batch) {
  std::vector<CommitRequest*> accepted;
  uint64_t compact_through = 0;
  {
    // Only the leader writes memory, so what it validates here is still current when it
    // applies the batch below.
    absl::ReaderMutexLock lock(&mu_);
    Overlay overlay(kinds_);
    uint64_t next_version = version_ + 1;
    size_t new_rows = 0;
    for (CommitRequest* r : batch) {
      absl::Status s = Validate(*r->mutations, next_version, overlay);
      if (!s.ok()) {
        overlay.Reject();
        r->result = s;
        continue;
      }
      overlay.Accept();
      r->version = next_version++;
      new_rows += r->mutations->size();
      accepted.push_back(r);
    }
    if (accepted.empty()) return;

    // Retention: drop whole commits, oldest first, but never the newest one.
    size_t total = changes_.size() + new_rows;
    if (total > opts_.max_changes) {
      size_t to_drop = total - opts_.max_changes;
      size_t dropped = 0;
      size_t i = 0;
      while (dropped < to_drop && i < changes_.size()) {
        uint64_t v = changes_[i].version;
        while (i < changes_.size() && changes_[i].version == v) {
          ++i;
          ++dropped;
        }
        compact_through = v;
      }
      for (size_t a = 0; dropped < to_drop && a + 1 < accepted.size(); ++a) {
        dropped += accepted[a]->mutations->size();
        compact_through = accepted[a]->version;
      }
    }
  }

  absl::Status s = WriteBatch(accepted, accepted.back()->version, compact_through);
  if (!s.ok()) {
    for (CommitRequest* r : accepted) r->result = s;
    return;
  }

  absl::MutexLock lock(&mu_);
  for (CommitRequest* r : accepted) {
    for (const Mutation& m : *r->mutations) {
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
      changes_.push_back(std::move(c));
    }
    r->result = r->version;
  }
  version_ = accepted.back()->version;
  if (compact_through > compacted_through_) {
    while (!changes_.empty() && changes_.front().version <= compact_through) changes_.pop_front();
    compacted_through_ = compact_through;
  }
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

const SqliteStore::KindState* SqliteStore::FindKind(Kind kind) const {
  auto it = kinds_.find(kind);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::optional<StoredObject> SqliteStore::Get(Kind kind, std::string_view id) const {
  absl::ReaderMutexLock lock(&mu_);
  const KindState* ks = FindKind(kind);
  if (ks == nullptr) return std::nullopt;
  auto it = ks->by_id.find(id);
  if (it == ks->by_id.end()) return std::nullopt;
  return it->second;
}

std::optional<StoredObject> SqliteStore::GetByName(Kind kind, std::string_view name) const {
  if (name.empty()) return std::nullopt;
  absl::ReaderMutexLock lock(&mu_);
  const KindState* ks = FindKind(kind);
  if (ks == nullptr) return std::nullopt;
  // This Abseil build has its own string_view type, which flat_hash_map looks up without a copy.
  auto nit = ks->id_by_name.find(absl::string_view(name.data(), name.size()));
  if (nit == ks->id_by_name.end()) return std::nullopt;
  auto it = ks->by_id.find(nit->second);
  if (it == ks->by_id.end()) return std::nullopt;
  return it->second;
}

std::vector<StoredObject> SqliteStore::List(Kind kind) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<StoredObject> out;
  const KindState* ks = FindKind(kind);
  if (ks == nullptr) return out;
  out.reserve(ks->by_id.size());
  for (const auto& [id, obj] : ks->by_id) out.push_back(obj);
  return out;
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
  if (after < compacted_through_) {
    return absl::OutOfRangeError(
        absl::StrFormat("changes after version %d are no longer retained (feed starts after "
                        "version %d); relist",
                        after, compacted_through_));
  }
  auto it = std::partition_point(changes_.begin(), changes_.end(),
                                 [after](const Change& c) { return c.version <= after; });
  std::vector<Change> out;
  if (limit == 0) return out;
  // Whole commits only, so that the caller can resume from the last version it saw.
  while (it != changes_.end()) {
    auto end = it;
    while (end != changes_.end() && end->version == it->version) ++end;
    if (!out.empty() && out.size() + static_cast<size_t>(end - it) > limit) break;
    out.insert(out.end(), it, end);
    if (out.size() >= limit) break;
    it = end;
  }
  return out;
}

uint64_t SqliteStore::WaitForVersion(uint64_t after, absl::Duration timeout) const {
  absl::ReaderMutexLock lock(&mu_);
  auto newer = [this, after]() {
    mu_.AssertReaderHeld();
    return version_ > after;
  };
  mu_.AwaitWithTimeout(absl::Condition(&newer), timeout);
  return version_;
}

}  // namespace warren
