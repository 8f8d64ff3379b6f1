#ifndef WARREN_MANAGER_RECONCILER_H_
#define WARREN_MANAGER_RECONCILER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/limits.h"
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
  // Terminal tasks no longer worth keeping, deleted with a check of the version read.
  struct Removal {
    std::string id;
    uint64_t version = 0;
  };
  std::vector<Removal> remove;
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
// never, with max attempts). Each slot has a desired revision: the active deployment's
// target for the slots it switched, else the revision the slot runs. A slot moving to a new
// revision is replaced start-first (the new task starts beside the old one, which is shut
// down once the new one is available) or stop-first, as the deployment's budgets allow.
// Without a deployment, stale slots are replaced one at a time, start-first.
//
// A task on a draining node (availability drain) moves: its slot gets a new task, which the
// scheduler places elsewhere, and the old one stops once the new one is available
// (start-first) or before it starts (stop-first), at most update_config.parallelism slots at a
// time. A global service has no slot on a draining node. Tasks of a blue/green or canary
// deployment's plan move once the deployment ends.
//
// History: besides its newest task, a slot keeps its `task_history` newest terminal tasks (for
// `service ps`); older ones are removed, whatever the restart rate. The restart backoff does
// not need them: each replacement carries the slot's failure streak (Task.failure_streak).
class Reconciler {
 public:
  // `rollout`: the deployment the service's tasks follow (its active one, or a finished
  // blue/green or canary one while the previous revision is kept warm), or null. `templates`:
  // kept revisions' templates by number, for tasks of a revision other than the service's current
  // one.
  static ReconcileActions Reconcile(const v1::Service& service, const std::vector<v1::Task>& tasks,
                                    const std::vector<v1::Node>& nodes, absl::Time now,
                                    const v1::Deployment* rollout = nullptr,
                                    const std::map<int64_t, v1::TaskTemplate>* templates = nullptr,
                                    int task_history = limits::kDefaultTaskHistory);

  // The nodes that may hold a slot of a global service: all but the draining ones.
  static std::vector<v1::Node> SlotNodes(const std::vector<v1::Node>& nodes);

  // Restart delay before attempt `consecutive_failures` (1 for the first restart).
  static absl::Duration Backoff(const v1::RestartPolicy& policy, int consecutive_failures);

  // Whether a terminal task's slot gets a replacement, and why not.
  static bool ShouldReplace(const v1::Task& task, std::string* why_not);

  // A new task for a slot (state PENDING, no node unless global) of the service's current
  // revision, or of `revision` with `tmpl`.
  static v1::Task NewTask(const v1::Service& service, int slot, const std::string& node_id,
                          int attempt, absl::Time now, absl::Time not_before);
  static v1::Task NewTask(const v1::Service& service, int64_t revision,
                          const v1::TaskTemplate& tmpl, int slot, const std::string& node_id,
                          int attempt, absl::Time now, absl::Time not_before);
};

}  // namespace warren

#endif  // WARREN_MANAGER_RECONCILER_H_
