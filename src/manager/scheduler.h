#ifndef WARREN_MANAGER_SCHEDULER_H_
#define WARREN_MANAGER_SCHEDULER_H_

#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "warren/v1/objects.pb.h"

namespace warren {

// Places pending tasks on nodes. Pure: the caller persists the result.
//
// A node is eligible when it is ready and active (not paused or drained), satisfies the task's
// constraints and has room for its CPU and memory reservations. Among eligible nodes the one with
// the fewest tasks of the same service wins, then the one with the fewest tasks overall, so
// replicas spread. Counts and free resources are updated after every placement, so one pass never
// piles onto a node.
class Scheduler {
 public:
  struct Result {
    // Tasks with node_id and address set, state ASSIGNED.
    std::vector<v1::Task> assigned;
    // Task id and why it could not be placed.
    std::vector<std::pair<std::string, std::string>> unplaced;
  };

  // What a non-terminal task already placed holds on its node (views into the caller's data).
  struct Placed {
    absl::string_view service_id;
    absl::string_view node_id;
    double cpus = 0;
    int64_t memory = 0;
    absl::string_view address;
  };

  // `active`: non-terminal tasks already placed (they hold resources and addresses).
  // `pending`: tasks to place, in order; a task with node_id set may only go to that node.
  static Result Schedule(const std::vector<v1::Node>& nodes, const std::vector<v1::Task>& active,
                         const std::vector<v1::Task>& pending);
  // The same with the placed tasks' footprints only (the controller keeps them between
  // passes, so scheduling parses no placed task).
  static Result SchedulePlaced(const std::vector<v1::Node>& nodes,
                               const std::vector<Placed>& active,
                               const std::vector<v1::Task>& pending);
};

// Why no ready node could ever run `task`, even with nothing else on it: none runs its kind of
// task (image or command), none satisfies its constraints, or none has the CPUs and memory it
// reserves. Empty when one could (it may be waiting for resources to free up) or when no node
// is ready at all (it waits for a node).
std::string NeverPlaceableReason(const v1::Task& task, const std::vector<v1::Node>& nodes);

// Parses "127.1.0.0/16" into a base address (host order) and host count.
bool ParseLoopbackRange(const std::string& cidr, uint32_t* base, uint32_t* size);
std::string FormatIpv4(uint32_t addr);

}  // namespace warren

#endif  // WARREN_MANAGER_SCHEDULER_H_
