#include "manager/scheduler.h"

#include <arpa/inet.h>

#include <map>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/spec.h"
#include "common/task_state.h"

namespace warren {
namespace {

struct NodeSlot {
  const v1::Node* node = nullptr;
  // What placed tasks hold on the node (null: nothing).
  const NodeLoad* load = nullptr;
  double free_cpus = 0;
  int64_t free_memory = 0;
  bool unlimited_cpus = false;
  bool unlimited_memory = false;
  int total_tasks = 0;
  // Tasks per service of the pending tasks, indexed by the round's service index (no string
  // hashing in the loop over candidates); -1 until read from `load`.
  std::vector<int> per_service;
  // Address allocation within the node's range.
  uint32_t base = 0;
  uint32_t size = 0;
  uint32_t cursor = 0;
  // Addresses given out by this round, on top of `load`.
  absl::flat_hash_set<uint32_t> taken;
  // The node's runtime gives tasks their addresses (cri: the pod sandbox IP).
  bool runtime_addresses = false;

  int& TasksOf(int svc, const std::string& service_id) {
    int& n = per_service[svc];
    if (n < 0) n = load ? load->TasksOf(service_id) : 0;
    return n;
  }

  bool Used(uint32_t addr) const {
    return taken.contains(addr) || (load != nullptr && load->addresses.contains(addr));
  }

  std::optional<uint32_t> AllocateAddress(uint64_t* work) {
    // Host offsets 1..size-2: skip the network and broadcast-looking ends of the range.
    if (size < 3) return std::nullopt;
    uint32_t span = size - 2;
    for (uint32_t i = 0; i < span; ++i) {
      uint32_t offset = 1 + (cursor + i) % span;
      uint32_t addr = base + offset;
      ++*work;
      if (!Used(addr)) {
        cursor = offset;  // next search starts after this one: recently freed addresses rest
        taken.insert(addr);
        return addr;
      }
    }
    return std::nullopt;
  }
};

// Why `node` can never run tasks of `tmpl` (its kind of runtime, its constraints), or "".
std::string IneligibleReason(const v1::Node& node, const v1::TaskTemplate& tmpl) {
  // Images run on container nodes, commands on process nodes (fake runs anything).
  const std::string& runtime = node.runtime();
  const bool containers = runtime == "cri";
  if (runtime != "fake" && containers == tmpl.image().empty()) {
    return tmpl.image().empty()
               ? "no ready node runs commands (only cri nodes, which need an image)"
               : "no ready node runs container images (start a worker with --runtime cri)";
  }
  for (const auto& c : tmpl.constraints()) {
    auto m = MatchConstraint(c, node);
    if (!m.ok() || !*m) return absl::StrCat("no ready node satisfies constraint ", c);
  }
  return "";
}

}  // namespace

uint32_t ParseIpv4(const std::string& s) {
  if (s.empty()) return 0;
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return 0;
  return ntohl(a.s_addr);
}

void NodeLoad::Add(const std::string& service_id, double task_cpus, int64_t task_memory,
                   uint32_t address) {
  cpus += task_cpus;
  memory += task_memory;
  tasks++;
  per_service[service_id]++;
  if (address != 0) addresses[address]++;
}

void NodeLoad::Remove(const std::string& service_id, double task_cpus, int64_t task_memory,
                      uint32_t address) {
  cpus -= task_cpus;
  memory -= task_memory;
  tasks--;
  if (auto it = per_service.find(service_id); it != per_service.end() && --it->second <= 0) {
    per_service.erase(it);
  }
  if (address == 0) return;
  if (auto it = addresses.find(address); it != addresses.end() && --it->second <= 0) {
    addresses.erase(it);
  }
}

int NodeLoad::TasksOf(const std::string& service_id) const {
  auto it = per_service.find(service_id);
  return it == per_service.end() ? 0 : it->second;
}

bool HoldsPlace(v1::TaskState state, const std::string& node_id) {
  return !node_id.empty() && state != v1::TASK_STATE_PENDING && !IsTerminal(state);
}

NodeLoads CountNodeLoads(const std::vector<v1::Task>& tasks) {
  NodeLoads loads;
  for (const auto& t : tasks) {
    if (!HoldsPlace(t.status().state(), t.node_id())) continue;
    loads[t.node_id()].Add(t.service_id(), t.spec().resources().cpus(),
                           t.spec().resources().memory_bytes(), ParseIpv4(t.address()));
  }
  return loads;
}

std::string NeverPlaceableReason(const v1::Task& task, const std::vector<v1::Node>& nodes) {
  std::string reason;
  bool any_ready = false;
  const double cpus = task.spec().resources().cpus();
  const int64_t memory = task.spec().resources().memory_bytes();
  for (const auto& n : nodes) {
    if (n.state() != v1::NODE_STATE_READY) continue;
    any_ready = true;
    std::string why = IneligibleReason(n, task.spec());
    if (why.empty()) {
      const bool fits = (n.capacity().cpus() <= 0 || n.capacity().cpus() + 1e-9 >= cpus) &&
                        (n.capacity().memory_bytes() <= 0 || n.capacity().memory_bytes() >= memory);
      if (fits) return "";
      why = absl::StrCat("no ready node has ", cpus, " CPUs and ", memory,
                         " bytes of memory in all (even with nothing else on it)");
    }
    if (reason.empty()) reason = std::move(why);
  }
  // No ready node at all: one may come back (a restarting worker); the task waits for it.
  return any_ready ? reason : "";
}

bool ParseLoopbackRange(const std::string& cidr, uint32_t* base, uint32_t* size) {
  uint32_t b = 0, n = 0;
  if (!ParseTaskRange(cidr, &b, &n) || (b >> 24) != 127) return false;
  *base = b;
  *size = n;
  return true;
}

bool ParseTaskRange(const std::string& cidr, uint32_t* base, uint32_t* size) {
  std::vector<std::string> parts = absl::StrSplit(cidr, '/');
  if (parts.size() != 2) return false;
  int prefix = 0;
  if (!absl::SimpleAtoi(parts[1], &prefix) || prefix < 8 || prefix > 30) return false;
  uint32_t addr = ParseIpv4(parts[0]);
  if (addr == 0) return false;
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  *base = addr & mask;
  *size = uint32_t{1} << (32 - prefix);
  return true;
}

std::string FormatIpv4(uint32_t addr) {
  return absl::StrCat(addr >> 24, ".", (addr >> 16) & 0xff, ".", (addr >> 8) & 0xff, ".",
                      addr & 0xff);
}

Scheduler::Result Scheduler::Schedule(const std::vector<v1::Node>& nodes,
                                      const std::vector<v1::Task>& active,
                                      const std::vector<v1::Task>& pending) {
  NodeLoads loads;
  for (const auto& t : active) {
    if (t.node_id().empty()) continue;
    loads[t.node_id()].Add(t.service_id(), t.spec().resources().cpus(),
                           t.spec().resources().memory_bytes(), ParseIpv4(t.address()));
  }
  return ScheduleOnLoads(nodes, loads, pending);
}

Scheduler::Result Scheduler::ScheduleOnLoads(const std::vector<v1::Node>& nodes,
                                             const NodeLoads& loads,
                                             const std::vector<v1::Task>& pending) {
  Result result;
  // The services of the pending tasks, numbered for this round.
  absl::flat_hash_map<std::string, int> service_index;
  for (const auto& t : pending) {
    service_index.emplace(t.service_id(), static_cast<int>(service_index.size()));
  }
  std::vector<NodeSlot> slots;
  // Ready nodes that take no new tasks (availability pause or drain), for the reasons given.
  absl::flat_hash_map<std::string, const v1::Node*> held;
  std::vector<std::string> held_names;
  for (const auto& n : nodes) {
    result.work++;
    if (n.state() == v1::NODE_STATE_READY && !TakesNewTasks(n)) {
      held[n.id()] = &n;
      held_names.push_back(
          absl::StrCat(n.name(), " (", NodeAvailabilityName(n.availability()), ")"));
    }
    if (!TakesNewTasks(n)) continue;
    NodeSlot s;
    s.node = &n;
    s.free_cpus = n.capacity().cpus();
    s.free_memory = n.capacity().memory_bytes();
    s.unlimited_cpus = n.capacity().cpus() <= 0;
    s.unlimited_memory = n.capacity().memory_bytes() <= 0;
    // A loopback range, or the node's subnet on a routed network.
    ParseTaskRange(n.address_range(), &s.base, &s.size);
    // The cri runtime's CNI network gives the addresses, also on a routed network (where the
    // node's address range is its subnet, the pods' bridge).
    s.runtime_addresses = n.runtime() == "cri";
    s.per_service.assign(service_index.size(), -1);
    if (auto it = loads.find(n.id()); it != loads.end()) {
      const NodeLoad& load = it->second;
      s.load = &load;
      s.free_cpus -= load.cpus;
      s.free_memory -= load.memory;
      s.total_tasks = load.tasks;
      // The search for a free address starts after the highest one in use in the range.
      auto a = load.addresses.lower_bound(s.base + s.size);
      if (s.size > 0 && a != load.addresses.begin()) {
        --a;
        if (a->first >= s.base) s.cursor = a->first - s.base;
      }
    }
    slots.push_back(std::move(s));
  }

  // Constraint evaluation is cached per (service, revision): every task of one revision has
  // the same constraints.
  std::map<std::pair<std::string, int64_t>, std::vector<size_t>> eligible_cache;
  std::map<std::pair<std::string, int64_t>, std::string> ineligible_reason;

  for (const auto& task : pending) {
    result.work++;
    auto key = std::make_pair(task.service_id(), task.revision());
    auto cached = eligible_cache.find(key);
    if (cached == eligible_cache.end()) {
      std::vector<size_t> ok;
      std::string reason;
      if (slots.empty()) {
        reason = held_names.empty()
                     ? "no ready node"
                     : absl::StrCat("no node takes new tasks: ", absl::StrJoin(held_names, ", "));
      }
      for (size_t i = 0; i < slots.size(); ++i) {
        std::string why = IneligibleReason(*slots[i].node, task.spec());
        if (why.empty()) {
          ok.push_back(i);
        } else if (reason.empty()) {
          reason = std::move(why);
        }
      }
      cached = eligible_cache.emplace(key, std::move(ok)).first;
      ineligible_reason[key] = reason;
    }

    const double cpus = task.spec().resources().cpus();
    const int64_t memory = task.spec().resources().memory_bytes();
    const std::string& service_id = task.service_id();
    const int svc = service_index.at(service_id);
    NodeSlot* best = nullptr;
    bool resource_short = false;
    for (size_t i : cached->second) {
      NodeSlot& s = slots[i];
      result.work++;
      if (!task.node_id().empty() && s.node->id() != task.node_id()) continue;
      if ((!s.unlimited_cpus && s.free_cpus + 1e-9 < cpus) ||
          (!s.unlimited_memory && s.free_memory < memory)) {
        resource_short = true;
        continue;
      }
      if (best == nullptr) {
        best = &s;
        continue;
      }
      int sc = s.TasksOf(svc, service_id);
      int bc = best->TasksOf(svc, service_id);
      if (sc < bc || (sc == bc && s.total_tasks < best->total_tasks)) best = &s;
    }
    if (best == nullptr) {
      std::string reason;
      if (resource_short) {
        reason = absl::StrCat("no node has ", cpus, " CPUs and ", memory, " bytes of memory free");
      } else if (auto h = held.find(task.node_id()); h != held.end()) {
        reason = absl::StrCat("its node ", h->second->name(), " takes no new tasks (availability ",
                              NodeAvailabilityName(h->second->availability()), ")");
      } else if (!task.node_id().empty()) {
        reason = "its node is not ready or does not satisfy the constraints";
      } else {
        reason = ineligible_reason[key];
        if (reason.empty()) reason = "no ready node";
      }
      result.unplaced.emplace_back(task.id(), reason);
      continue;
    }
    std::optional<uint32_t> addr;
    if (!best->runtime_addresses) addr = best->AllocateAddress(&result.work);
    if (!best->runtime_addresses && !addr) {
      result.unplaced.emplace_back(
          task.id(), absl::StrCat("node ", best->node->name(), " has no free task address"));
      continue;
    }
    best->free_cpus -= cpus;
    best->free_memory -= memory;
    best->total_tasks++;
    best->TasksOf(svc, service_id)++;
    v1::Task placed = task;
    placed.set_node_id(best->node->id());
    if (addr) placed.set_address(FormatIpv4(*addr));
    placed.mutable_status()->set_state(v1::TASK_STATE_ASSIGNED);
    placed.mutable_status()->set_message(absl::StrCat("assigned to ", best->node->name()));
    result.assigned.push_back(std::move(placed));
  }
  return result;
}

}  // namespace warren
