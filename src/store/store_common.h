#ifndef WARREN_STORE_STORE_COMMON_H_
#define WARREN_STORE_STORE_COMMON_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/store.h"

// What every Store backend shares, so that SQLite and etcd accept and refuse exactly the same
// commits with the same errors and page their watch feeds alike.

namespace warren {

// True for the kinds this binary knows.
bool IsKnownKind(Kind kind);

// The checks that need no stored state: at least one mutation, known kinds, non-empty ids, and
// each object written at most once. INVALID_ARGUMENT naming the mutation.
absl::Status CheckMutationShape(const std::vector<Mutation>& mutations);

// The objects and names a commit is validated against. A backend answers from its own state;
// Put, Erase and SetName record the effects of the mutations validated so far, which later
// lookups of the same commit must see.
class MutationView {
 public:
  virtual ~MutationView() = default;
  // The corrupt object at (kind, id), unless deleted by this commit.
  virtual const CorruptObject* FindCorrupt(Kind kind, const std::string& id) const = 0;
  // The corrupt object holding `name` in its kind, unless deleted by this commit.
  virtual const CorruptObject* FindCorruptName(Kind kind, const std::string& name) const = 0;
  virtual const StoredObject* Find(Kind kind, const std::string& id) const = 0;
  // The id holding `name`, or nullptr when the name is free.
  virtual const std::string* FindName(Kind kind, const std::string& name) const = 0;
  virtual void Put(StoredObject obj) = 0;
  virtual void Erase(Kind kind, const std::string& id) = 0;
  virtual void SetName(Kind kind, const std::string& name, std::optional<std::string> id) = 0;
};

// Checks `mutations` in order against `view` and records their effects in it; each written
// object gets `version`. `disk_full_message` is set while the disk is full: then what adds an
// object (events aside) fails with RESOURCE_EXHAUSTED and that message. Errors are those of
// Store::Commit.
absl::Status ValidateMutations(const std::vector<Mutation>& mutations, uint64_t version,
                               const std::string* disk_full_message, MutationView& view);

// A kind's objects by id: ordered for listing (by id), hashed for lookup. A lookup in the
// ordered map alone walked ~15 nodes (a cache miss each) at 30,000 tasks, a visible share of the
// manager's time at 10,000 services (every Get, every controller visit). The map's nodes do not
// move, so the hash holds its iterators (and views of its keys).
class ObjectsById {
 public:
  using Map = std::map<std::string, StoredObject, std::less<>>;
  using iterator = Map::iterator;
  using const_iterator = Map::const_iterator;

  ObjectsById() = default;
  // A copy's hash would point into the original; moving keeps the nodes (and the iterators).
  ObjectsById(const ObjectsById&) = delete;
  ObjectsById& operator=(const ObjectsById&) = delete;
  ObjectsById(ObjectsById&&) = default;
  ObjectsById& operator=(ObjectsById&&) = default;

  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }
  size_t size() const { return map_.size(); }

  iterator find(std::string_view id) {
    auto h = hash_.find(absl::string_view(id.data(), id.size()));
    return h == hash_.end() ? map_.end() : h->second;
  }
  const_iterator find(std::string_view id) const {
    auto h = hash_.find(absl::string_view(id.data(), id.size()));
    return h == hash_.end() ? map_.end() : const_iterator(h->second);
  }
  // Adds `obj` under `id` unless the id is taken (then nothing changes).
  std::pair<iterator, bool> emplace(std::string id, StoredObject obj) {
    auto [it, added] = map_.emplace(std::move(id), std::move(obj));
    if (added) hash_.emplace(absl::string_view(it->first.data(), it->first.size()), it);
    return {it, added};
  }
  void insert_or_assign(const std::string& id, StoredObject obj) {
    if (auto it = find(id); it != end()) {
      it->second = std::move(obj);
    } else {
      emplace(id, std::move(obj));
    }
  }
  iterator erase(iterator it) {
    hash_.erase(absl::string_view(it->first.data(), it->first.size()));
    return map_.erase(it);
  }

 private:
  Map map_;
  absl::flat_hash_map<absl::string_view, iterator> hash_;
};

// Every object of a store in memory: per kind, by id and by unique name.
struct KindIndex {
  ObjectsById by_id;
  absl::flat_hash_map<std::string, std::string> id_by_name;
};
using ObjectIndex = std::map<Kind, KindIndex>;
// Objects found corrupt, by kind and id.
using CorruptIndex = std::map<std::pair<Kind, std::string>, CorruptObject>;

// Store::Get, GetByName, List and Corruption on an index.
std::optional<StoredObject> IndexGet(const ObjectIndex& index, Kind kind, std::string_view id);
std::optional<StoredObject> IndexGetByName(const ObjectIndex& index, Kind kind,
                                           std::string_view name);
std::vector<StoredObject> IndexList(const ObjectIndex& index, Kind kind);
std::vector<ObjectVersion> IndexListVersions(const ObjectIndex& index, Kind kind);
std::vector<CorruptObject> IndexCorruption(const CorruptIndex& corrupt);

// Store::WaitForVersion: takes `mu` shared and waits until `version` (guarded by it) is above
// `after` or `timeout` passes; returns `version`.
uint64_t AwaitVersion(absl::Mutex& mu, const uint64_t& version, uint64_t after,
                      absl::Duration timeout);

// A page of ChangesSince from an in-memory feed ordered by version, holding every change after
// `compacted_through`: OUT_OF_RANGE when `after` is older than that. Whole commits only (the
// caller resumes from the last version it saw); one commit larger than `limit` comes whole.
absl::StatusOr<std::vector<Change>> FeedPage(const std::deque<Change>& feed,
                                             uint64_t compacted_through, uint64_t after,
                                             size_t limit);

}  // namespace warren

#endif  // WARREN_STORE_STORE_COMMON_H_
