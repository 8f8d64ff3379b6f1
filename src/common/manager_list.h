#ifndef WARREN_COMMON_MANAGER_LIST_H_
#define WARREN_COMMON_MANAGER_LIST_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Several managers on etcd (docs/high-availability.md): the workers and the CLI take their
// addresses as one comma-separated list (`--manager a:8080,b:8080,c:8080`) and fail over
// between them. Only the leading manager serves the worker-facing Dispatcher; the others refuse
// with UNAVAILABLE and a message naming the leader (FormatNotLeader), which the workers follow.

namespace warren {

// "a:1,b:2" -> {"a:1", "b:2"}. Each entry must be HOST:PORT (a bracketed IPv6 literal as
// host); the error names `flag`, the entry and what is allowed. Duplicates are refused.
absl::StatusOr<std::vector<std::string>> ParseManagerList(absl::string_view flag,
                                                          absl::string_view list);

// The Dispatcher's refusal on a manager that does not lead: names this manager and the
// leader's API address (empty: none leads at the moment, an election is under way).
std::string FormatNotLeader(absl::string_view self, absl::string_view leader);
// The leader's address named by FormatNotLeader's message, if any.
std::optional<std::string> ParseLeaderHint(absl::string_view message);

// Which address a client tries after a call to managers[current] failed with `status`: the
// leader the refusal names when it is in the list, else the next one (wrapping around). Only
// UNAVAILABLE and DEADLINE_EXCEEDED (a manager down, unreachable or not leading) move on;
// any other error returns `current`.
size_t NextManager(const std::vector<std::string>& managers, size_t current,
                   const absl::Status& status);

}  // namespace warren

#endif  // WARREN_COMMON_MANAGER_LIST_H_
