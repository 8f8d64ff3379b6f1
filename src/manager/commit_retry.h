#ifndef WARREN_MANAGER_COMMIT_RETRY_H_
#define WARREN_MANAGER_COMMIT_RETRY_H_

#include <functional>
#include <initializer_list>
#include <vector>

#include "absl/status/statusor.h"
#include "store/store.h"

namespace warren {

// Attempts a read-modify-write against the store until it commits: `attempt` reads what it
// needs, decides and returns the mutations (or an error that ends the call, returned as is);
// when the commit loses a version race (ABORTED: another writer changed an object in between),
// it runs again on fresh reads, up to `max_attempts` times, then returns ABORTED ("too many
// concurrent updates; retry"). No mutations means nothing to write: the store's version is
// returned. `also_retry` adds codes that mean a lost race for this caller (NOT_FOUND: an object
// it deletes vanished in between; ALREADY_EXISTS: a concurrent create of the same name). Every
// API handler that writes goes through here; the controller does not retry (a lost race is
// decided again by its next pass).
inline constexpr int kDefaultCommitAttempts = 8;
absl::StatusOr<uint64_t> CommitWithRetry(
    Store& store, const std::function<absl::StatusOr<std::vector<Mutation>>()>& attempt,
    std::initializer_list<absl::StatusCode> also_retry = {},
    int max_attempts = kDefaultCommitAttempts);

}  // namespace warren

#endif  // WARREN_MANAGER_COMMIT_RETRY_H_
