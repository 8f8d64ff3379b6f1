// Node availability: the scheduler places nothing on paused or drained nodes, and the
// reconciler moves a drained node's tasks as a rolling update would.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "gtest/gtest.h"
#include "manager/reconciler.h"
#include "manager/scheduler.h"

namespace warren {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

v1::Node MakeNode(const std::string& id, v1::NodeAvailability availability,
                  const std::string& range = "") {
  v1::Node n;
  n.set_id(id);
  n.set_name("node-" + id);
  n.set_state(v1::NODE_STATE_READY);
  n.set_availability(availability);
  n.set_runtime("fake");
  n.set_address_range(range);
  return n;
}

v1::Service MakeService(int replicas) {
  v1::Service s;
  s.set_id("svc");
  s.set_revision(1);
  s.mutable_spec()->set_name("web");
  s.mutable_spec()->set_replicas(replicas);
  s.mutable_spec()->set_mode("replicated");
  s.mutable_spec()->mutable_template_()->set_command("app");
  return s;
}

v1::Task RunningOn(const v1::Service& s, int slot, const std::string& node) {
  v1::Task t = Reconciler::NewTask(s, slot, "", 0, kNow - absl::Minutes(1), kNow);
  t.set_node_id(node);
  t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  *t.mutable_status()->mutable_started_at() = ToProtoTime(kNow - absl::Minutes(1));
  return t;
}

// Applies the reconciler's actions to `tasks`, as the controller commits them.
void Apply(const ReconcileActions& a, std::vector<v1::Task>* tasks) {
  for (const auto& u : a.update) {
    for (auto& t : *tasks) {
      if (t.id() == u.id()) t = u;
    }
  }
  for (const auto& c : a.create) tasks->push_back(c);
}

v1::Task* Find(std::vector<v1::Task>* tasks, const std::string& id) {
  for (auto& t : *tasks) {
    if (t.id() == id) return &t;
  }
  return nullptr;
}

void StartOn(v1::Task* t, const std::string& node) {
  t->set_node_id(node);
  t->mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  *t->mutable_status()->mutable_started_at() = ToProtoTime(kNow);
}

TEST(NodeAvailabilityTest, SchedulerPlacesNothingOnPausedOrDrainedNodes) {
  const v1::Node paused = MakeNode("p", v1::NODE_AVAILABILITY_PAUSE, "127.1.0.0/16");
  const v1::Node drained = MakeNode("d", v1::NODE_AVAILABILITY_DRAIN, "127.2.0.0/16");
  const v1::Node active = MakeNode("a", v1::NODE_AVAILABILITY_ACTIVE, "127.3.0.0/16");
  // Stored before availability existed: active.
  const v1::Node old = MakeNode("o", v1::NODE_AVAILABILITY_UNSPECIFIED, "127.4.0.0/16");
  v1::Task task;
  task.set_id("t1");
  task.set_service_id("svc");
  task.mutable_spec()->set_command("app");
  std::vector<v1::Task> pending;
  for (int i = 0; i < 6; ++i) {
    pending.push_back(task);
    pending.back().set_id("t" + std::to_string(i));
  }
  auto r = Scheduler::Schedule({paused, drained, active, old}, {}, pending);
  ASSERT_EQ(r.assigned.size(), 6u);
  for (const auto& t : r.assigned) EXPECT_TRUE(t.node_id() == "a" || t.node_id() == "o");

  r = Scheduler::Schedule({paused, drained}, {}, {task});
  EXPECT_TRUE(r.assigned.empty());
  ASSERT_EQ(r.unplaced.size(), 1u);
  EXPECT_EQ(r.unplaced[0].second, "no node takes new tasks: node-p (pause), node-d (drain)");

  // A global task bound to a paused node says why it waits.
  v1::Task bound = task;
  bound.set_node_id("p");
  r = Scheduler::Schedule({paused, active}, {}, {bound});
  ASSERT_EQ(r.unplaced.size(), 1u);
  EXPECT_EQ(r.unplaced[0].second, "its node node-p takes no new tasks (availability pause)");
}

TEST(NodeAvailabilityTest, DrainMovesOneSlotAtATimeStartFirstAndHealthGated) {
  v1::Service s = MakeService(3);
  s.mutable_spec()->mutable_template_()->mutable_health_check()->mutable_http()->set_path("/");
  const std::vector<v1::Node> nodes = {MakeNode("n1", v1::NODE_AVAILABILITY_DRAIN),
                                       MakeNode("n2", v1::NODE_AVAILABILITY_ACTIVE)};
  std::vector<v1::Task> tasks = {RunningOn(s, 1, "n1"), RunningOn(s, 2, "n1"),
                                 RunningOn(s, 3, "n2")};
  for (auto& t : tasks) t.mutable_status()->mutable_health()->set_state(v1::HEALTH_STATE_HEALTHY);
  const std::string old1 = tasks[0].id(), old2 = tasks[1].id();

  auto a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  ASSERT_EQ(a.create.size(), 1u);  // parallelism 1
  EXPECT_EQ(a.create[0].slot(), 1);
  EXPECT_EQ(a.create[0].node_id(), "");  // the scheduler places it (not on n1)
  EXPECT_TRUE(a.update.empty());         // start-first: the old task keeps serving
  const std::string new1 = a.create[0].id();
  Apply(a, &tasks);

  // Placed and running, but not healthy yet: nothing moves.
  StartOn(Find(&tasks, new1), "n2");
  Find(&tasks, new1)->mutable_status()->mutable_health()->set_state(v1::HEALTH_STATE_STARTING);
  a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  EXPECT_TRUE(a.empty());

  // Healthy: the old task of slot 1 stops, and slot 2 starts moving.
  Find(&tasks, new1)->mutable_status()->mutable_health()->set_state(v1::HEALTH_STATE_HEALTHY);
  a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  ASSERT_EQ(a.update.size(), 1u);
  EXPECT_EQ(a.update[0].id(), old1);
  EXPECT_EQ(a.update[0].desired_state(), v1::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 2);
  Apply(a, &tasks);
  StartOn(Find(&tasks, a.create[0].id()), "n2");
  Find(&tasks, a.create[0].id())
      ->mutable_status()
      ->mutable_health()
      ->set_state(v1::HEALTH_STATE_HEALTHY);
  a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  ASSERT_EQ(a.update.size(), 1u);
  EXPECT_EQ(a.update[0].id(), old2);
  EXPECT_TRUE(a.create.empty());
  Apply(a, &tasks);
  // Nothing is left to move.
  EXPECT_TRUE(Reconciler::Reconcile(s, tasks, nodes, kNow).empty());
}

TEST(NodeAvailabilityTest, DrainHonoursMinReadyParallelismAndStopFirst) {
  v1::Service s = MakeService(3);
  auto* u = s.mutable_spec()->mutable_update_config();
  u->set_parallelism(2);
  *u->mutable_min_ready() = ToProtoDuration(absl::Seconds(10));
  const std::vector<v1::Node> nodes = {MakeNode("n1", v1::NODE_AVAILABILITY_DRAIN),
                                       MakeNode("n2", v1::NODE_AVAILABILITY_ACTIVE)};
  std::vector<v1::Task> tasks = {RunningOn(s, 1, "n1"), RunningOn(s, 2, "n1"),
                                 RunningOn(s, 3, "n1")};
  auto a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  ASSERT_EQ(a.create.size(), 2u);  // two slots at a time
  Apply(a, &tasks);
  for (const auto& c : a.create) StartOn(Find(&tasks, c.id()), "n2");
  // Running for less than min-ready: the old ones stay, the wakeup is set.
  a = Reconciler::Reconcile(s, tasks, nodes, kNow + absl::Seconds(5));
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.next_wakeup, kNow + absl::Seconds(10));
  a = Reconciler::Reconcile(s, tasks, nodes, kNow + absl::Seconds(10));
  EXPECT_EQ(a.update.size(), 2u);
  EXPECT_EQ(a.create.size(), 1u);  // the third slot

  // Stop-first: the old task stops before its replacement starts.
  v1::Service sf = MakeService(2);
  // Stop-first needs room to be unavailable, as in a rolling update (maxUnavailable 0 forces
  // start-first).
  sf.mutable_spec()->mutable_update_config()->set_order("stop-first");
  sf.mutable_spec()->mutable_update_config()->set_max_unavailable("1");
  std::vector<v1::Task> ts = {RunningOn(sf, 1, "n1"), RunningOn(sf, 2, "n1")};
  a = Reconciler::Reconcile(sf, ts, nodes, kNow);
  EXPECT_TRUE(a.create.empty());
  ASSERT_EQ(a.update.size(), 1u);  // parallelism 1
  EXPECT_EQ(a.update[0].slot(), 1);
  EXPECT_EQ(a.update[0].desired_state(), v1::TASK_STATE_SHUTDOWN);
  Apply(a, &ts);
  // Still stopping: nothing else moves.
  EXPECT_TRUE(Reconciler::Reconcile(sf, ts, nodes, kNow).empty());
  ts[0].mutable_status()->set_state(v1::TASK_STATE_SHUTDOWN);
  a = Reconciler::Reconcile(sf, ts, nodes, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 1);
  EXPECT_EQ(a.create[0].not_before().seconds(), 0);  // a move, not a crash: no backoff
}

TEST(NodeAvailabilityTest, CrashingReplacementBacksOffInsteadOfLooping) {
  v1::Service s = MakeService(1);
  const std::vector<v1::Node> nodes = {MakeNode("n1", v1::NODE_AVAILABILITY_DRAIN),
                                       MakeNode("n2", v1::NODE_AVAILABILITY_ACTIVE)};
  std::vector<v1::Task> tasks = {RunningOn(s, 1, "n1")};
  auto a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  Apply(a, &tasks);
  v1::Task* fresh = Find(&tasks, a.create[0].id());
  fresh->set_node_id("n2");
  fresh->mutable_status()->set_state(v1::TASK_STATE_FAILED);
  *fresh->mutable_status()->mutable_started_at() = ToProtoTime(kNow);
  *fresh->mutable_status()->mutable_finished_at() = ToProtoTime(kNow);
  a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_GT(FromProtoTime(a.create[0].not_before()), kNow);
  // The old task keeps serving meanwhile.
  for (const auto& t : a.update) EXPECT_NE(t.node_id(), "n1");
}

TEST(NodeAvailabilityTest, GlobalServiceLeavesADrainedNodeAndPausedNodesKeepTheirTasks) {
  v1::Service s = MakeService(0);
  s.mutable_spec()->set_mode("global");
  const std::vector<v1::Node> nodes = {MakeNode("n1", v1::NODE_AVAILABILITY_DRAIN),
                                       MakeNode("n2", v1::NODE_AVAILABILITY_PAUSE),
                                       MakeNode("n3", v1::NODE_AVAILABILITY_ACTIVE)};
  std::vector<v1::Task> tasks;
  for (const char* n : {"n1", "n2", "n3"}) {
    v1::Task t = Reconciler::NewTask(s, 0, n, 0, kNow - absl::Minutes(1), kNow);
    t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
    tasks.push_back(t);
  }
  auto a = Reconciler::Reconcile(s, tasks, nodes, kNow);
  EXPECT_TRUE(a.create.empty());
  ASSERT_EQ(a.update.size(), 1u);
  EXPECT_EQ(a.update[0].node_id(), "n1");
  EXPECT_EQ(a.update[0].desired_state(), v1::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(a.update[0].status().message(), "node draining");
  EXPECT_EQ(Reconciler::SlotNodes(nodes).size(), 2u);
}

}  // namespace
}  // namespace warren
