#include "store/store_common.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"

namespace warren {

bool IsKnownKind(Kind kind) {
  int k = static_cast<int>(kind);
  return k >= static_cast<int>(Kind::kService) && k <= static_cast<int>(Kind::kSubnetClaim);
}

absl::Status CheckMutationShape(const std::vector<Mutation>& mutations) {
  if (mutations.empty()) return absl::InvalidArgumentError("commit has no mutations");
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
  return absl::OkStatus();
}

absl::Status ValidateMutations(const std::vector<Mutation>& mutations, uint64_t version,
                               const std::string* disk_full_message, MutationView& view) {
  for (const Mutation& m : mutations) {
    std::string_view kind = KindName(m.kind);
    if (const CorruptObject* bad = view.FindCorrupt(m.kind, m.id); bad != nullptr) {
      // Deleting is the one way out for a corrupt object; its version, when readable, can
      // still be checked.
      if (m.data.has_value() || (m.expected_version != 0 && m.expected_version != bad->version)) {
        return CorruptObjectError(*bad);
      }
      view.Erase(m.kind, m.id);
      continue;
    }
    const StoredObject* cur = view.Find(m.kind, m.id);
    if (m.data.has_value() && !m.name.empty()) {
      const CorruptObject* holder = view.FindCorruptName(m.kind, m.name);
      if (holder != nullptr) return CorruptObjectError(*holder);
    }
    // On a full disk, what adds an object waits for space; removals, updates in place and the
    // events recording them go through on the released reserve.
    if (disk_full_message != nullptr && m.data.has_value() && cur == nullptr &&
        m.kind != Kind::kEvent) {
      return absl::ResourceExhaustedError(*disk_full_message);
    }
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
      if (!old_name.empty()) view.SetName(m.kind, old_name, std::nullopt);
      view.Erase(m.kind, m.id);
      continue;
    }
    if (!m.name.empty()) {
      const std::string* holder = view.FindName(m.kind, m.name);
      if (holder != nullptr && *holder != m.id) {
        return absl::AlreadyExistsError(
            absl::StrFormat("%s name \"%s\" already exists (id \"%s\")", kind, m.name, *holder));
      }
    }
    if (!old_name.empty() && old_name != m.name) view.SetName(m.kind, old_name, std::nullopt);
    if (!m.name.empty()) view.SetName(m.kind, m.name, m.id);
    view.Put(StoredObject{m.kind, m.id, m.name, version, *m.data});
  }
  return absl::OkStatus();
}

std::optional<StoredObject> IndexGet(const ObjectIndex& index, Kind kind, std::string_view id) {
  auto kit = index.find(kind);
  if (kit == index.end()) return std::nullopt;
  auto it = kit->second.by_id.find(id);
  if (it == kit->second.by_id.end()) return std::nullopt;
  return it->second;
}

std::optional<StoredObject> IndexGetByName(const ObjectIndex& index, Kind kind,
                                           std::string_view name) {
  if (name.empty()) return std::nullopt;
  auto kit = index.find(kind);
  if (kit == index.end()) return std::nullopt;
  // This Abseil build has its own string_view type, which flat_hash_map looks up without a copy.
  auto nit = kit->second.id_by_name.find(absl::string_view(name.data(), name.size()));
  if (nit == kit->second.id_by_name.end()) return std::nullopt;
  auto it = kit->second.by_id.find(nit->second);
  if (it == kit->second.by_id.end()) return std::nullopt;
  return it->second;
}

std::vector<StoredObject> IndexList(const ObjectIndex& index, Kind kind) {
  std::vector<StoredObject> out;
  auto kit = index.find(kind);
  if (kit == index.end()) return out;
  out.reserve(kit->second.by_id.size());
  for (const auto& [id, obj] : kit->second.by_id) out.push_back(obj);
  return out;
}

std::vector<ObjectVersion> IndexListVersions(const ObjectIndex& index, Kind kind) {
  std::vector<ObjectVersion> out;
  auto kit = index.find(kind);
  if (kit == index.end()) return out;
  out.reserve(kit->second.by_id.size());
  for (const auto& [id, obj] : kit->second.by_id) out.push_back({id, obj.version});
  return out;
}

std::vector<CorruptObject> IndexCorruption(const CorruptIndex& corrupt) {
  std::vector<CorruptObject> out;
  out.reserve(corrupt.size());
  for (const auto& [key, c] : corrupt) out.push_back(c);
  return out;
}

uint64_t AwaitVersion(absl::Mutex& mu, const uint64_t& version, uint64_t after,
                      absl::Duration timeout) {
  absl::ReaderMutexLock lock(&mu);
  auto newer = [&mu, &version, after]() {
    mu.AssertReaderHeld();
    return version > after;
  };
  mu.AwaitWithTimeout(absl::Condition(&newer), timeout);
  return version;
}

absl::StatusOr<std::vector<Change>> FeedPage(const std::deque<Change>& feed,
                                             uint64_t compacted_through, uint64_t after,
                                             size_t limit) {
  if (after < compacted_through) {
    return absl::OutOfRangeError(
        absl::StrFormat("changes after version %d are no longer retained (feed starts after "
                        "version %d); relist",
                        after, compacted_through));
  }
  auto it = std::partition_point(feed.begin(), feed.end(),
                                 [after](const Change& c) { return c.version <= after; });
  std::vector<Change> out;
  if (limit == 0) return out;
  while (it != feed.end()) {
    auto end = it;
    while (end != feed.end() && end->version == it->version) ++end;
    if (!out.empty() && out.size() + static_cast<size_t>(end - it) > limit) break;
    out.insert(out.end(), it, end);
    if (out.size() >= limit) break;
    it = end;
  }
  return out;
}

}  // namespace warren
