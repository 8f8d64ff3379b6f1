#ifndef WARREN_MANAGER_SCHEDULER_H_
#define WARREN_MANAGER_SCHEDULER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

#include "warren/v1/objects.pb.h"

namespace warren {

// What the non-terminal tasks placed on one node hold there. The controller keeps one per node
// from the store's change feed (ClusterIndex), so a scheduling round reads it instead of
// counting every placed task of the cluster again (issue 18).
struct NodeLoad {
  double cpus = 0;
  int64_t memory = 0;
  int tasks = 0;
  // Tasks per service id; only services with tasks on the node.
  absl::flat_hash_map<std::string, int> per_service;
  // Task addresses (IPv4, host order) and how many tasks hold each.
  absl::btree_map<uint32_t, int> addresses;

  // `address` 0: the task has none.
  void Add(const std::string& service_id, double task_cpus, int64_t task_memory, uint32_t address);
  void Remove(const std::string& service_id, double task_cpus, int64_t task_memory,
              uint32_t address);
  // Tasks of the service on the node.
  int TasksOf(const std::string& service_id) const;
};

// Node id -> its load (nodes without placed tasks may be absent).
using NodeLoads = absl::flat_hash_map<std::string, NodeLoad>;

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
    // Entries the round looked at: nodes, pending tasks, candidate nodes weighed and addresses
    // tried. With the loads kept between rounds it does not grow with the placed tasks.
    uint64_t work = 0;
  };

  // `active`: non-terminal tasks already placed (they hold resources and addresses).
  // `pending`: tasks to place, in order; a task with node_id set may only go to that node.
  static Result Schedule(const std::vector<v1::Node>& nodes, const std::vector<v1::Task>& active,
                         const std::vector<v1::Task>& pending);
  // The same with what placed tasks hold given per node (`loads`, by node id), so a round
  // neither parses nor counts placed tasks. `loads` is not changed.
  static Result ScheduleOnLoads(const std::vector<v1::Node>& nodes, const NodeLoads& loads,
                                const std::vector<v1::Task>& pending);
};

// Whether a task in `state` on `node_id` holds resources and an address there: it is placed
// (has a node, is past pending) and not terminal.
bool HoldsPlace(v1::TaskState state, const std::string& node_id);

// What each node's placed tasks hold, counted from scratch (the tasks that HoldsPlace).
NodeLoads CountNodeLoads(const std::vector<v1::Task>& tasks);

// Why no ready node could ever run `task`, even with nothing else on it: none runs its kind of
// task (image or command), none satisfies its constraints, or none has the CPUs and memory it
// reserves. Empty when one could (it may be waiting for resources to free up) or when no node
// is ready at all (it waits for a node).
std::string NeverPlaceableReason(const v1::Task& task, const std::vector<v1::Node>& nodes);

// Parses "127.1.0.0/16" into a base address (host order) and host count.
bool ParseLoopbackRange(const std::string& cidr, uint32_t* base, uint32_t* size);
// Any IPv4 "A.B.C.D/N" with N in 8..30: a node's task range, loopback or (a routed network)
// its subnet of the cluster CIDR.
bool ParseTaskRange(const std::string& cidr, uint32_t* base, uint32_t* size);
std::string FormatIpv4(uint32_t addr);
// "127.1.2.3" in host order; 0 for anything else (an empty address, IPv6).
uint32_t ParseIpv4(const std::string& s);

}  // namespace warren

#endif  // WARREN_MANAGER_SCHEDULER_H_
