#include "manager/scheduler.h"

#include <map>
#include <set>

#include "gtest/gtest.h"

namespace warren {
namespace {

v1::Node MakeNode(const std::string& id, const std::string& range, double cpus = 0, int64_t mem = 0,
                  std::map<std::string, std::string> labels = {}) {
  v1::Node n;
  n.set_id(id);
  n.set_name("node-" + id);
  n.set_state(v1::NODE_STATE_READY);
  n.set_address_range(range);
  n.mutable_capacity()->set_cpus(cpus);
  n.mutable_capacity()->set_memory_bytes(mem);
  for (const auto& [k, v] : labels) (*n.mutable_labels())[k] = v;
  return n;
}

v1::Task MakeTask(const std::string& id, const std::string& service, double cpus = 0) {
  v1::Task t;
  t.set_id(id);
  t.set_service_id(service);
  t.set_revision(1);
  t.mutable_spec()->mutable_resources()->set_cpus(cpus);
  t.mutable_status()->set_state(v1::TASK_STATE_PENDING);
  return t;
}

std::map<std::string, int> CountByNode(const Scheduler::Result& r) {
  std::map<std::string, int> out;
  for (const auto& t : r.assigned) out[t.node_id()]++;
  return out;
}

TEST(SchedulerTest, ImagesGoToCriNodesAndCommandsToProcessNodes) {
  v1::Node proc = MakeNode("p", "127.1.0.0/16");
  proc.set_runtime("process");
  v1::Node cri = MakeNode("c", "");
  cri.set_runtime("cri");
  v1::Task image = MakeTask("img", "web");
  image.mutable_spec()->set_image("127.0.0.1:5000/web:1");
  v1::Task command = MakeTask("cmd", "worker");
  command.mutable_spec()->set_command("/bin/true");
  auto r = Scheduler::Schedule({proc, cri}, {}, {image, command});
  ASSERT_EQ(r.assigned.size(), 2u);
  for (const auto& t : r.assigned) {
    if (t.id() == "img") {
      EXPECT_EQ(t.node_id(), "c");
      EXPECT_EQ(t.address(), "") << "the runtime gives container tasks their address";
    } else {
      EXPECT_EQ(t.node_id(), "p");
      EXPECT_EQ(t.address().rfind("127.1.", 0), 0u);
    }
  }
  // No node of the right kind: pending with the reason.
  r = Scheduler::Schedule({proc}, {}, {image});
  ASSERT_EQ(r.unplaced.size(), 1u);
  EXPECT_NE(r.unplaced[0].second.find("--runtime cri"), std::string::npos) << r.unplaced[0].second;
  r = Scheduler::Schedule({cri}, {}, {command});
  ASSERT_EQ(r.unplaced.size(), 1u);
  EXPECT_NE(r.unplaced[0].second.find("runs commands"), std::string::npos);
  // The fake runtime runs anything.
  v1::Node fake = MakeNode("f", "127.3.0.0/16");
  fake.set_runtime("fake");
  EXPECT_EQ(Scheduler::Schedule({fake}, {}, {image, command}).assigned.size(), 2u);
}

TEST(SchedulerTest, SpreadsReplicasWithinOnePass) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16"), MakeNode("b", "127.2.0.0/16")};
  std::vector<v1::Task> pending;
  for (int i = 0; i < 10; ++i) pending.push_back(MakeTask("t" + std::to_string(i), "web"));
  auto r = Scheduler::Schedule(nodes, {}, pending);
  ASSERT_EQ(r.assigned.size(), 10u);
  EXPECT_TRUE(r.unplaced.empty());
  auto counts = CountByNode(r);
  EXPECT_EQ(counts["a"], 5);
  EXPECT_EQ(counts["b"], 5);
}

TEST(SchedulerTest, CountsExistingTasksOfTheServiceFirst) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16"), MakeNode("b", "127.2.0.0/16")};
  v1::Task existing = MakeTask("old", "web");
  existing.set_node_id("a");
  existing.set_address("127.1.0.1");
  existing.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  // Another service's tasks weigh less than the same service's tasks.
  std::vector<v1::Task> active = {existing};
  for (int i = 0; i < 3; ++i) {
    v1::Task other = MakeTask("o" + std::to_string(i), "db");
    other.set_node_id("b");
    other.set_address("127.2.0." + std::to_string(i + 1));
    active.push_back(other);
  }
  auto r = Scheduler::Schedule(nodes, active, {MakeTask("new", "web")});
  ASSERT_EQ(r.assigned.size(), 1u);
  EXPECT_EQ(r.assigned[0].node_id(), "b");
  EXPECT_EQ(r.assigned[0].status().state(), v1::TASK_STATE_ASSIGNED);
  EXPECT_EQ(r.assigned[0].address(), "127.2.0.4");
}

TEST(SchedulerTest, SkipsNodesThatAreNotReady) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16"), MakeNode("b", "127.2.0.0/16")};
  nodes[0].set_state(v1::NODE_STATE_DOWN);
  auto r = Scheduler::Schedule(nodes, {}, {MakeTask("t1", "web"), MakeTask("t2", "web")});
  ASSERT_EQ(r.assigned.size(), 2u);
  for (const auto& t : r.assigned) EXPECT_EQ(t.node_id(), "b");
}

TEST(SchedulerTest, NoReadyNodeLeavesTasksUnplacedWithReason) {
  auto r = Scheduler::Schedule({}, {}, {MakeTask("t1", "web")});
  EXPECT_TRUE(r.assigned.empty());
  ASSERT_EQ(r.unplaced.size(), 1u);
  EXPECT_EQ(r.unplaced[0].first, "t1");
  EXPECT_NE(r.unplaced[0].second.find("no ready node"), std::string::npos);
}

TEST(SchedulerTest, HonoursLabelConstraints) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16", 0, 0, {{"zone", "east"}}),
                                 MakeNode("b", "127.2.0.0/16", 0, 0, {{"zone", "west"}})};
  std::vector<v1::Task> pending;
  for (int i = 0; i < 4; ++i) {
    v1::Task t = MakeTask("t" + std::to_string(i), "web");
    t.mutable_spec()->add_constraints("node.labels.zone==west");
    pending.push_back(t);
  }
  auto r = Scheduler::Schedule(nodes, {}, pending);
  ASSERT_EQ(r.assigned.size(), 4u);
  for (const auto& t : r.assigned) EXPECT_EQ(t.node_id(), "b");

  v1::Task nowhere = MakeTask("x", "web");
  nowhere.mutable_spec()->add_constraints("node.labels.zone==north");
  auto r2 = Scheduler::Schedule(nodes, {}, {nowhere});
  ASSERT_EQ(r2.unplaced.size(), 1u);
  EXPECT_NE(r2.unplaced[0].second.find("node.labels.zone==north"), std::string::npos);
}

TEST(SchedulerTest, HonoursCpuAndMemoryReservations) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16", 1.0, 1 << 30),
                                 MakeNode("b", "127.2.0.0/16", 1.0, 1 << 30)};
  std::vector<v1::Task> pending;
  for (int i = 0; i < 3; ++i) pending.push_back(MakeTask("t" + std::to_string(i), "web", 0.6));
  auto r = Scheduler::Schedule(nodes, {}, pending);
  EXPECT_EQ(r.assigned.size(), 2u);
  ASSERT_EQ(r.unplaced.size(), 1u);
  EXPECT_NE(r.unplaced[0].second.find("CPUs"), std::string::npos);
  auto counts = CountByNode(r);
  EXPECT_EQ(counts["a"], 1);
  EXPECT_EQ(counts["b"], 1);

  v1::Task big = MakeTask("m", "db");
  big.mutable_spec()->mutable_resources()->set_memory_bytes(int64_t{2} << 30);
  auto r2 = Scheduler::Schedule(nodes, {}, {big});
  EXPECT_EQ(r2.unplaced.size(), 1u);
}

TEST(SchedulerTest, AddressesAreUniqueAndInRange) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.5.0.0/24")};
  std::vector<v1::Task> active;
  v1::Task existing = MakeTask("e", "web");
  existing.set_node_id("a");
  existing.set_address("127.5.0.2");
  existing.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  active.push_back(existing);
  std::vector<v1::Task> pending;
  for (int i = 0; i < 200; ++i) pending.push_back(MakeTask("t" + std::to_string(i), "web"));
  auto r = Scheduler::Schedule(nodes, active, pending);
  std::set<std::string> seen = {"127.5.0.2"};
  for (const auto& t : r.assigned) {
    EXPECT_EQ(t.address().rfind("127.5.0.", 0), 0u) << t.address();
    EXPECT_TRUE(seen.insert(t.address()).second) << "duplicate " << t.address();
  }
  EXPECT_EQ(r.assigned.size(), 200u);
  // A /24 has 254 usable offsets; one is taken.
  std::vector<v1::Task> more;
  for (int i = 0; i < 60; ++i) more.push_back(MakeTask("m" + std::to_string(i), "web"));
  std::vector<v1::Task> all_active = active;
  for (auto t : r.assigned) all_active.push_back(t);
  auto r2 = Scheduler::Schedule(nodes, all_active, more);
  EXPECT_EQ(r2.assigned.size(), 53u);
  EXPECT_EQ(r2.unplaced.size(), 7u);
}

TEST(SchedulerTest, PresetNodeIsRespected) {
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16"), MakeNode("b", "127.2.0.0/16")};
  v1::Task t = MakeTask("g", "agent");
  t.set_node_id("b");
  auto r = Scheduler::Schedule(nodes, {}, {t});
  ASSERT_EQ(r.assigned.size(), 1u);
  EXPECT_EQ(r.assigned[0].node_id(), "b");
  nodes[1].set_state(v1::NODE_STATE_DOWN);
  auto r2 = Scheduler::Schedule(nodes, {}, {t});
  EXPECT_EQ(r2.unplaced.size(), 1u);
}

TEST(SchedulerTest, ARoundWithOnePendingTaskDoesNotCountThePlacedTasks) {
  // 10,000 placed tasks of 1,000 services on two nodes, kept as per-node loads (as the
  // controller's index keeps them), and one pending task.
  std::vector<v1::Node> nodes = {MakeNode("a", "127.1.0.0/16"), MakeNode("b", "127.2.0.0/16")};
  std::vector<v1::Task> placed;
  for (int i = 0; i < 10'000; ++i) {
    v1::Task t = MakeTask("p" + std::to_string(i), "s" + std::to_string(i % 1000));
    const bool on_a = i % 2 == 0;
    t.set_node_id(on_a ? "a" : "b");
    t.set_address(FormatIpv4((on_a ? 0x7f010000u : 0x7f020000u) + 1 + i / 2));
    t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
    placed.push_back(std::move(t));
  }
  // s7's tasks (i = 7, 1007, ...) are all on b: the new one goes to a.
  const NodeLoads loads = CountNodeLoads(placed);
  auto r = Scheduler::ScheduleOnLoads(nodes, loads, {MakeTask("new", "s7")});
  ASSERT_EQ(r.assigned.size(), 1u);
  EXPECT_EQ(r.assigned[0].node_id(), "a");
  // The highest address in use on a is 127.1.19.136 (offset 5,000): the next one is free.
  EXPECT_EQ(r.assigned[0].address(), "127.1.19.137");
  // Two nodes, one pending task, two candidates, one address tried: nothing per placed task.
  EXPECT_LE(r.work, 10u);
  // The same round counted from the placed tasks gives the same placement.
  auto again = Scheduler::Schedule(nodes, placed, {MakeTask("new", "s7")});
  ASSERT_EQ(again.assigned.size(), 1u);
  EXPECT_EQ(again.assigned[0].node_id(), "a");
  EXPECT_EQ(again.assigned[0].address(), r.assigned[0].address());
}

TEST(SchedulerTest, LoadsOnlyCountTasksThatHoldAPlace) {
  v1::Task running = MakeTask("r", "web", 0.5);
  running.set_node_id("a");
  running.set_address("127.1.0.9");
  running.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  v1::Task pending = MakeTask("p", "web", 1);
  pending.set_node_id("a");  // a global task names its node before it is placed
  v1::Task failed = running;
  failed.set_id("f");
  failed.set_address("127.1.0.10");
  failed.mutable_status()->set_state(v1::TASK_STATE_FAILED);
  NodeLoads loads = CountNodeLoads({running, pending, failed});
  ASSERT_EQ(loads.size(), 1u);
  const NodeLoad& a = loads.at("a");
  EXPECT_EQ(a.tasks, 1);
  EXPECT_DOUBLE_EQ(a.cpus, 0.5);
  EXPECT_EQ(a.TasksOf("web"), 1);
  EXPECT_EQ(a.addresses.size(), 1u);
  EXPECT_TRUE(a.addresses.contains(ParseIpv4("127.1.0.9")));
  loads.at("a").Remove("web", 0.5, 0, ParseIpv4("127.1.0.9"));
  EXPECT_EQ(loads.at("a").tasks, 0);
  EXPECT_TRUE(loads.at("a").per_service.empty());
  EXPECT_TRUE(loads.at("a").addresses.empty());
}

TEST(SchedulerTest, ParsesLoopbackRanges) {
  uint32_t base = 0, size = 0;
  EXPECT_TRUE(ParseLoopbackRange("127.1.0.0/16", &base, &size));
  EXPECT_EQ(FormatIpv4(base), "127.1.0.0");
  EXPECT_EQ(size, 65536u);
  EXPECT_TRUE(ParseLoopbackRange("127.9.3.7/24", &base, &size));
  EXPECT_EQ(FormatIpv4(base), "127.9.3.0");
  EXPECT_FALSE(ParseLoopbackRange("10.0.0.0/8", &base, &size));
  EXPECT_FALSE(ParseLoopbackRange("127.0.0.0", &base, &size));
  EXPECT_FALSE(ParseLoopbackRange("127.0.0.0/31", &base, &size));
  EXPECT_FALSE(ParseLoopbackRange("garbage/16", &base, &size));
}

}  // namespace
}  // namespace warren
