#ifndef WARREN_STORE_STORE_H_
#define WARREN_STORE_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace warren {

// Object kinds held by the store. The numeric values are persisted; never renumber.
enum class Kind : int {
  kService = 1,
  kTask = 2,
  kNode = 3,
  kRevision = 4,
  kEvent = 5,
  kDeployment = 6,
};

std::string_view KindName(Kind kind);

struct StoredObject {
  Kind kind = Kind::kService;
  std::string id;
  // Unique within its kind when non-empty (service names, node names).
  std::string name;
  // Store version of the commit that last wrote the object.
  uint64_t version = 0;
  // Serialized protobuf message.
  std::string data;
};

struct Mutation {
  // expected_version value meaning "the object must not exist yet".
  static constexpr uint64_t kMustNotExist = UINT64_MAX;

  Kind kind = Kind::kService;
  std::string id;
  std::string name;
  // The new serialized object; std::nullopt deletes it.
  std::optional<std::string> data;
  // 0: no check. Otherwise the commit fails with ABORTED (a lost race: read again and retry,
  // see CommitWithRetry) unless the stored object has this version (or does not exist, for
  // kMustNotExist).
  uint64_t expected_version = 0;
};

// One entry of the watch feed.
struct Change {
  uint64_t version = 0;
  Kind kind = Kind::kService;
  std::string id;
  bool deleted = false;
  // The object after the change (empty when deleted).
  std::string data;
};

// The embedded store: objects with resource versions and a watch feed of every change.
// Reads are served from memory; a commit is durable (fsynced) when Commit returns OK.
// Thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Applies all mutations atomically, each object getting the new store version, which is
  // returned. Errors: ABORTED (version check), ALREADY_EXISTS (duplicate name
  // within a kind), NOT_FOUND (delete or check of a missing object), INTERNAL (disk).
  virtual absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) = 0;

  virtual std::optional<StoredObject> Get(Kind kind, std::string_view id) const = 0;
  virtual std::optional<StoredObject> GetByName(Kind kind, std::string_view name) const = 0;
  // Every object of a kind, ordered by id.
  virtual std::vector<StoredObject> List(Kind kind) const = 0;

  // Version of the last commit (0 for an empty store).
  virtual uint64_t Version() const = 0;

  // Changes with version > after, oldest first, at most `limit`. OUT_OF_RANGE when the feed
  // no longer reaches back that far (the caller relists).
  virtual absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const = 0;

  // Blocks until Version() > after or `timeout` (real time) passes; returns Version().
  virtual uint64_t WaitForVersion(uint64_t after, absl::Duration timeout) const = 0;
};

}  // namespace warren

#endif  // WARREN_STORE_STORE_H_
