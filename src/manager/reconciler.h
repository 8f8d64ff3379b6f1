#ifndef WARREN_MANAGER_RECONCILER_H_
#define WARREN_MANAGER_RECONCILER_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "warren/v1/objects.pb.h"

namespace warren {

struct EventSpec {
  std::string kind;
  std::string object_id;
  std::string object_name;
  std::string action;
  std::string message;
};

// What one service needs so that its tasks match its spec.
struct ReconcileActions {
  std::vector<v1::Task> create;
  // Existing tasks with a changed desired state or status (written with a version check).
  std::vector<v1::Task> update;
  // Terminal tasks no longer worth keeping.
  std::vector<std::string> remove;
  std::vector<EventSpec> events;
  // When the service needs another look even if nothing changes (restart backoff).
  absl::Time next_wakeup = absl::InfiniteFuture();

  bool empty() const { return create.empty() && update.empty() && remove.empty(); }
};

// Level-triggered: compares a service's tasks with its spec and returns the next actions.
//
// Replicated services have slots 1..replicas, global services one slot per eligible node.
// A slot without a live task gets a new one: at once for a first task or a refill after
// scale-up, after a capped exponential backoff for a restart (policy always | on-failure |
// never, with max attempts). Tasks of an older revision are replaced one at a time,
// start-first: the new task starts beside the old one, which is shut down once the new one
// serves.
class Reconciler {
 public:
  // Terminal tasks kept per slot for `service ps` history.
  static constexpr int kHistoryPerSlot = 3;

  static ReconcileActions Reconcile(const v1::Service& service, const std::vector<v1::Task>& tasks,
                                    const std::vector<v1::Node>& nodes, absl::Time now);

  // Restart delay before attempt `consecutive_failures` (1 for the first restart).
  static absl::Duration Backoff(const v1::RestartPolicy& policy, int consecutive_failures);

  // Whether a terminal task's slot gets a replacement, and why not.
  static bool ShouldReplace(const v1::Task& task, std::string* why_not);

  // A new task for a slot (state PENDING, no node unless global).
  static v1::Task NewTask(const v1::Service& service, int slot, const std::string& node_id,
                          int attempt, absl::Time now, absl::Time not_before);
};

}  // namespace warren

#endif  // WARREN_MANAGER_RECONCILER_H_
