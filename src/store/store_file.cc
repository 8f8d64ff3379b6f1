#include "store/store_file.h"

#include <sqlite3.h>

#include <filesystem>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "store/sqlite_store.h"

namespace warren {
namespace {

class ReadOnlyDb {
 public:
  ~ReadOnlyDb() { sqlite3_close(db_); }
  absl::Status Open(const std::string& path) {
    // immutable=1: nothing is written or locked, not even a journal or -shm file.
    const std::string uri = absl::StrCat("file:", path, "?immutable=1");
    if (sqlite3_open_v2(uri.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) !=
        SQLITE_OK) {
      return Error("cannot open it");
    }
    return absl::OkStatus();
  }
  // Runs `sql` and calls `row` for each result row.
  template <typename F>
  absl::Status Query(const char* sql, F&& row) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) return Error(sql);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(sql);
  }

 private:
  absl::Status Error(const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3* db_ = nullptr;
};

std::string Text(sqlite3_stmt* stmt, int col) {
  const unsigned char* p = sqlite3_column_text(stmt, col);
  return p == nullptr ? "" : reinterpret_cast<const char*>(p);
}

}  // namespace

absl::StatusOr<StoreFileInfo> InspectStoreFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  auto fail = [&path](const absl::Status& s) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a Warren store this binary can use: ", s.message()));
  };
  StoreFileInfo info;
  info.size_bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  ReadOnlyDb db;
  if (absl::Status s = db.Open(path); !s.ok()) return fail(s);
  std::string check;
  if (absl::Status s = db.Query("PRAGMA quick_check",
                                [&](sqlite3_stmt* st) {
                                  if (!check.empty()) check += "; ";
                                  check += Text(st, 0);
                                });
      !s.ok()) {
    return fail(s);
  }
  if (check != "ok") {
    return fail(absl::InvalidArgumentError(absl::StrCat("SQLite's quick_check: ", check)));
  }
  if (absl::Status s =
          db.Query("PRAGMA user_version",
                   [&](sqlite3_stmt* st) { info.schema_version = sqlite3_column_int(st, 0); });
      !s.ok()) {
    return fail(s);
  }
  std::set<std::string> tables;
  if (absl::Status s = db.Query("SELECT name FROM sqlite_schema WHERE type = 'table'",
                                [&](sqlite3_stmt* st) { tables.insert(Text(st, 0)); });
      !s.ok()) {
    return fail(s);
  }
  std::vector<std::string> missing;
  for (const char* t : {"objects", "changes", "meta"}) {
    if (tables.count(t) == 0) missing.push_back(t);
  }
  if (info.schema_version < 1 || !missing.empty()) {
    return fail(absl::InvalidArgumentError(
        missing.empty() ? "it has no Warren schema version"
                        : absl::StrCat("it lacks the table(s) ", absl::StrJoin(missing, ", "))));
  }
  if (info.schema_version > SqliteStore::kSchemaVersion) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "its schema version ", info.schema_version, " is newer than this binary supports (",
        SqliteStore::kSchemaVersion, "); use the Warren version that made it")));
  }
  if (absl::Status s = db.Query("SELECT kind, count(*), max(version) FROM objects GROUP BY kind",
                                [&](sqlite3_stmt* st) {
                                  info.objects[static_cast<Kind>(sqlite3_column_int(st, 0))] =
                                      sqlite3_column_int64(st, 1);
                                  info.version = std::max<uint64_t>(
                                      info.version,
                                      static_cast<uint64_t>(sqlite3_column_int64(st, 2)));
                                });
      !s.ok()) {
    return fail(s);
  }
  if (absl::Status s = db.Query("SELECT value FROM meta WHERE key = 'version'",
                                [&](sqlite3_stmt* st) {
                                  info.version = std::max<uint64_t>(
                                      info.version,
                                      static_cast<uint64_t>(sqlite3_column_int64(st, 0)));
                                });
      !s.ok()) {
    return fail(s);
  }
  return info;
}

std::string DescribeStoreObjects(const StoreFileInfo& info) {
  auto count = [&info](Kind kind, const char* one, const char* many) {
    auto it = info.objects.find(kind);
    const int64_t n = it == info.objects.end() ? 0 : it->second;
    return absl::StrCat(n, " ", n == 1 ? one : many);
  };
  return absl::StrJoin(
      {count(Kind::kService, "service", "services"), count(Kind::kTask, "task", "tasks"),
       count(Kind::kNode, "node", "nodes"), count(Kind::kRevision, "revision", "revisions"),
       count(Kind::kDeployment, "deployment", "deployments"),
       count(Kind::kSecret, "secret", "secrets"), count(Kind::kIngress, "ingress", "ingresses"),
       count(Kind::kEvent, "event", "events")},
      ", ");
}

}  // namespace warren
