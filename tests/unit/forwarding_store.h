#ifndef WARREN_TESTS_UNIT_FORWARDING_STORE_H_
#define WARREN_TESTS_UNIT_FORWARDING_STORE_H_

// A Store that passes every call to another: tests override the calls they tamper with.

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace warren::testing_util {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store& inner) : inner_(inner) {}

  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override {
    return inner_.Commit(mutations);
  }
  std::optional<StoredObject> Get(Kind k, std::string_view id) const override {
    return inner_.Get(k, id);
  }
  std::optional<StoredObject> GetByName(Kind k, std::string_view n) const override {
    return inner_.GetByName(k, n);
  }
  std::vector<StoredObject> List(Kind k) const override { return inner_.List(k); }
  std::vector<ObjectVersion> ListVersions(Kind k) const override { return inner_.ListVersions(k); }
  uint64_t Version() const override { return inner_.Version(); }
  absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const override {
    return inner_.ChangesSince(after, limit);
  }
  uint64_t WaitForVersion(uint64_t after, absl::Duration timeout) const override {
    return inner_.WaitForVersion(after, timeout);
  }
  std::vector<CorruptObject> Corruption() const override { return inner_.Corruption(); }
  absl::Status CheckSpace() override { return inner_.CheckSpace(); }
  size_t MaxMutationsPerCommit() const override { return inner_.MaxMutationsPerCommit(); }

 protected:
  Store& inner_;
};

// A store whose change feed leaves out the changes `drop` picks: a lost event.
class LossyFeedStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::function<bool(const Change&)> drop = [](const Change&) { return false; };

  absl::StatusOr<std::vector<Change>> ChangesSince(uint64_t after, size_t limit) const override {
    auto changes = inner_.ChangesSince(after, limit);
    if (!changes.ok()) return changes;
    // A lost change still moves the version on: it reads as an event, which says nothing.
    for (auto& c : *changes) {
      if (drop(c)) c.kind = Kind::kEvent;
    }
    return changes;
  }
};

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_FORWARDING_STORE_H_
