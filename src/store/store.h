#ifndef WARREN_STORE_STORE_H_
#define WARREN_STORE_STORE_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
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
  // The cluster CA, join tokens and cluster key (sealed; one object, see cluster_identity.h).
  kClusterSecurity = 7,
  kSecret = 8,
  kIngress = 9,
  // The cluster CIDR (one object, see manager/node_subnets.h).
  kClusterNetwork = 10,
  // A node's /24 of the cluster CIDR, stored under the subnet so that no two nodes get one.
  kSubnetClaim = 11,
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

struct ObjectVersion {
  std::string id;
  uint64_t version = 0;
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

// A stored object that failed its checks when the store was opened (a row SQLite reads but
// Warren cannot: garbage data, a version that is not a number, a kind this binary does not
// know). It stays on disk untouched, is left out of reads, and commits refuse to change it; it
// can only be deleted.
struct CorruptObject {
  Kind kind = Kind::kService;
  std::string id;
  std::string name;
  // 0 when the stored version itself is unreadable.
  uint64_t version = 0;
  // What is wrong with it.
  std::string reason;
};

// `service "web" (id 1f3a, version 12)`, for logs and errors.
std::string DescribeCorrupt(const CorruptObject& c);

// DATA_LOSS naming the object, what is wrong and the way out.
absl::Status CorruptObjectError(const CorruptObject& c);

// The id and unique name (empty when the kind has none) a stored object's data declares.
struct ObjectIdentity {
  std::string id;
  std::string name;
};

// The embedded store: objects with resource versions and a watch feed of every change.
// Reads are served from memory; a commit is durable (fsynced) when Commit returns OK.
// Thread-safe.
class Store {
 public:
  virtual ~Store() = default;

  // Applies all mutations atomically, each object getting the new store version, which is
  // returned. Errors: ABORTED (version check), ALREADY_EXISTS (duplicate name
  // within a kind), NOT_FOUND (delete or check of a missing object), DATA_LOSS (a write to a
  // corrupt object, or of a name a corrupt object holds), RESOURCE_EXHAUSTED (the disk is full
  // and the commit would add objects), INTERNAL (disk).
  virtual absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) = 0;

  virtual std::optional<StoredObject> Get(Kind kind, std::string_view id) const = 0;
  virtual std::optional<StoredObject> GetByName(Kind kind, std::string_view name) const = 0;
  // Every object of a kind, ordered by id.
  virtual std::vector<StoredObject> List(Kind kind) const = 0;
  // Every object of a kind as its id and version, ordered by id, without the data: what a
  // resync compares with what it applied from the change feed.
  virtual std::vector<ObjectVersion> ListVersions(Kind kind) const {
    std::vector<ObjectVersion> out;
    for (StoredObject& o : List(kind)) out.push_back({std::move(o.id), o.version});
    return out;
  }

  // Version of the last commit (0 for an empty store).
  virtual uint64_t Version() const = 0;

  // Changes with version > after, oldest first, at most `limit`. OUT_OF_RANGE when the feed
  // no longer reaches back that far (the caller relists).
  virtual absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const = 0;

  // Blocks until Version() > after or `timeout` (real time) passes; returns Version().
  virtual uint64_t WaitForVersion(uint64_t after, absl::Duration timeout) const = 0;

  // Objects found corrupt at open and not deleted since, ordered by kind and id.
  virtual std::vector<CorruptObject> Corruption() const = 0;

  // OK, or RESOURCE_EXHAUSTED naming the data dir while the disk is too full for commits that
  // add objects (checked again on every call, so it clears as soon as space is freed).
  virtual absl::Status CheckSpace() = 0;

  // Writes a consistent copy of the whole store, as of one commit, to `path` (a new or empty
  // file) while the store keeps serving; returns the version the copy holds. Commits wait
  // meanwhile. UNIMPLEMENTED for stores that cannot.
  virtual absl::StatusOr<uint64_t> Backup(const std::string& path) {
    return absl::UnimplementedError("this store cannot make backups");
  }

  // The most mutations one commit is sure to take (each claiming or freeing at most one unique
  // name); a larger one may be refused with INVALID_ARGUMENT. A change that may be applied in
  // parts (independent task updates, say) is committed in parts of at most this size.
  virtual size_t MaxMutationsPerCommit() const { return std::numeric_limits<size_t>::max(); }
};

// The corrupt object of `kind` whose name or id is `name_or_id`, if any.
std::optional<CorruptObject> FindCorrupt(const Store& store, Kind kind,
                                         std::string_view name_or_id);

// DATA_LOSS naming the corrupt objects of `kind` (a listing of that kind would hide them), or
// OK when there are none.
absl::Status CorruptKindError(const Store& store, Kind kind);

}  // namespace warren

#endif  // WARREN_STORE_STORE_H_
