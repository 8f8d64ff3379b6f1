#ifndef WARREN_STORE_STORE_FILE_H_
#define WARREN_STORE_STORE_FILE_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "store/store.h"

namespace warren {

// What a store file (a backup, or a data dir's store.db) holds.
struct StoreFileInfo {
  int schema_version = 0;
  // The version of its last commit.
  uint64_t version = 0;
  std::map<Kind, int64_t> objects;
  int64_t size_bytes = 0;
};

// Opens `path` read-only and checks that it is a Warren store this binary can open: an SQLite
// database that passes SQLite's quick_check, with Warren's tables and a schema version from 1
// to SqliteStore::kSchemaVersion. INVALID_ARGUMENT saying what is wrong otherwise; NOT_FOUND
// when the file does not exist.
absl::StatusOr<StoreFileInfo> InspectStoreFile(const std::string& path);

// "3 services, 9 tasks, 1 node, 5 revisions, 2 deployments, 40 events".
std::string DescribeStoreObjects(const StoreFileInfo& info);

}  // namespace warren

#endif  // WARREN_STORE_STORE_FILE_H_
