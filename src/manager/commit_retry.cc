#include "manager/commit_retry.h"

#include <algorithm>

namespace warren {

absl::StatusOr<uint64_t> CommitWithRetry(
    Store& store, const std::function<absl::StatusOr<std::vector<Mutation>>()>& attempt,
    std::initializer_list<absl::StatusCode> also_retry, int max_attempts) {
  for (int i = 0; i < max_attempts; ++i) {
    absl::StatusOr<std::vector<Mutation>> m = attempt();
    if (!m.ok()) return m.status();
    if (m->empty()) return store.Version();
    absl::StatusOr<uint64_t> v = store.Commit(*m);
    if (v.ok()) return v;
    const absl::StatusCode code = v.status().code();
    if (code != absl::StatusCode::kAborted &&
        std::find(also_retry.begin(), also_retry.end(), code) == also_retry.end()) {
      return v;
    }
  }
  return absl::AbortedError("too many concurrent updates; retry");
}

}  // namespace warren
