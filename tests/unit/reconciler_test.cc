#include "manager/reconciler.h"

#include <map>
#include <set>

#include "common/time_util.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

v1::Service MakeService(int replicas, const std::string& condition = "always",
                        int max_attempts = 0) {
  v1::Service s;
  s.set_id("svc");
  s.set_revision(1);
  s.mutable_spec()->set_name("web");
  s.mutable_spec()->set_replicas(replicas);
  s.mutable_spec()->set_mode("replicated");
  auto* t = s.mutable_spec()->mutable_template_();
  t->set_command("app");
  auto* rp = t->mutable_restart_policy();
  rp->set_condition(condition);
  rp->set_max_attempts(max_attempts);
  *rp->mutable_delay() = ToProtoDuration(absl::Milliseconds(100));
  *rp->mutable_max_delay() = ToProtoDuration(absl::Seconds(2));
  return s;
}

v1::Task Running(const v1::Service& s, int slot, int attempt = 0) {
  v1::Task t = Reconciler::NewTask(s, slot, "", attempt, kNow - absl::Minutes(1), kNow);
  t.set_node_id("n1");
  t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  *t.mutable_status()->mutable_started_at() = ToProtoTime(kNow - absl::Minutes(1));
  return t;
}

v1::Task Exited(v1::Task t, v1::TaskState state, int code, absl::Duration ran = absl::Seconds(1)) {
  t.mutable_status()->set_state(state);
  t.mutable_status()->set_has_exit_code(true);
  t.mutable_status()->set_exit_code(code);
  *t.mutable_status()->mutable_started_at() = ToProtoTime(kNow - ran);
  *t.mutable_status()->mutable_finished_at() = ToProtoTime(kNow);
  return t;
}

TEST(ReconcilerTest, CreatesOneTaskPerSlot) {
  auto s = MakeService(3);
  auto a = Reconciler::Reconcile(s, {}, {}, kNow);
  ASSERT_EQ(a.create.size(), 3u);
  std::map<int, int> slots;
  for (const auto& t : a.create) {
    slots[t.slot()]++;
    EXPECT_EQ(t.status().state(), v1::TASK_STATE_PENDING);
    EXPECT_EQ(t.desired_state(), v1::TASK_STATE_RUNNING);
    EXPECT_EQ(t.revision(), 1);
    EXPECT_EQ(t.service_name(), "web");
  }
  EXPECT_EQ(slots, (std::map<int, int>{{1, 1}, {2, 1}, {3, 1}}));
}

TEST(ReconcilerTest, SteadyStateDoesNothing) {
  auto s = MakeService(2);
  auto a = Reconciler::Reconcile(s, {Running(s, 1), Running(s, 2)}, {}, kNow);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.next_wakeup, absl::InfiniteFuture());
}

TEST(ReconcilerTest, ScaleDownShutsDownHighSlots) {
  auto s = MakeService(1);
  auto a = Reconciler::Reconcile(s, {Running(s, 1), Running(s, 2), Running(s, 3)}, {}, kNow);
  EXPECT_TRUE(a.create.empty());
  ASSERT_EQ(a.update.size(), 2u);
  for (const auto& t : a.update) {
    EXPECT_GT(t.slot(), 1);
    EXPECT_EQ(t.desired_state(), v1::TASK_STATE_SHUTDOWN);
  }
}

TEST(ReconcilerTest, RefillsAfterScaleUpWithoutBackoff) {
  auto s = MakeService(2);
  v1::Task old = Exited(Running(s, 2), v1::TASK_STATE_SHUTDOWN, 0);
  old.set_desired_state(v1::TASK_STATE_SHUTDOWN);
  auto a = Reconciler::Reconcile(s, {Running(s, 1), old}, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 2);
  EXPECT_FALSE(IsSet(a.create[0].not_before()));
}

struct RestartCase {
  std::string name;
  std::string condition;
  int max_attempts;
  v1::TaskState state;
  int exit_code;
  int attempt;
  bool restarted;
};

void PrintTo(const RestartCase& c, std::ostream* os) { *os << c.name; }

class RestartPolicyTest : public testing::TestWithParam<RestartCase> {};

TEST_P(RestartPolicyTest, FollowsPolicy) {
  const auto& c = GetParam();
  auto s = MakeService(1, c.condition, c.max_attempts);
  v1::Task t = Exited(Running(s, 1, c.attempt), c.state, c.exit_code);
  auto a = Reconciler::Reconcile(s, {t}, {}, kNow);
  ASSERT_EQ(a.update.size(), 1u);
  EXPECT_EQ(a.update[0].desired_state(), v1::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(a.create.size(), c.restarted ? 1u : 0u);
  if (c.restarted) {
    EXPECT_EQ(a.create[0].attempt(), c.attempt + 1);
    EXPECT_EQ(a.create[0].slot(), 1);
  } else {
    EXPECT_NE(a.update[0].status().message().find("not restarted"), std::string::npos);
  }
  ASSERT_FALSE(a.events.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Policies, RestartPolicyTest,
    testing::Values(
        RestartCase{"always_failed", "always", 0, v1::TASK_STATE_FAILED, 1, 0, true},
        RestartCase{"always_complete", "always", 0, v1::TASK_STATE_COMPLETE, 0, 0, true},
        RestartCase{"onfailure_failed", "on-failure", 0, v1::TASK_STATE_FAILED, 3, 0, true},
        RestartCase{"onfailure_complete", "on-failure", 0, v1::TASK_STATE_COMPLETE, 0, 0, false},
        RestartCase{"never_failed", "never", 0, v1::TASK_STATE_FAILED, 1, 0, false},
        RestartCase{"never_complete", "never", 0, v1::TASK_STATE_COMPLETE, 0, 0, false},
        RestartCase{"max_not_reached", "always", 3, v1::TASK_STATE_FAILED, 1, 2, true},
        RestartCase{"max_reached", "always", 3, v1::TASK_STATE_FAILED, 1, 3, false},
        RestartCase{"onfailure_max_reached", "on-failure", 1, v1::TASK_STATE_FAILED, 1, 1, false}),
    [](const auto& info) { return info.param.name; });

TEST(ReconcilerTest, RestartBackoffDoublesAndIsCapped) {
  v1::RestartPolicy p;
  *p.mutable_delay() = ToProtoDuration(absl::Milliseconds(100));
  *p.mutable_max_delay() = ToProtoDuration(absl::Seconds(1));
  EXPECT_EQ(Reconciler::Backoff(p, 1), absl::Milliseconds(100));
  EXPECT_EQ(Reconciler::Backoff(p, 2), absl::Milliseconds(200));
  EXPECT_EQ(Reconciler::Backoff(p, 3), absl::Milliseconds(400));
  EXPECT_EQ(Reconciler::Backoff(p, 4), absl::Milliseconds(800));
  EXPECT_EQ(Reconciler::Backoff(p, 5), absl::Seconds(1));
  EXPECT_EQ(Reconciler::Backoff(p, 50), absl::Seconds(1));
  v1::RestartPolicy defaults;
  EXPECT_EQ(Reconciler::Backoff(defaults, 1), absl::Milliseconds(100));
  EXPECT_EQ(Reconciler::Backoff(defaults, 30), absl::Seconds(30));
}

TEST(ReconcilerTest, CrashLoopBacksOffExponentially) {
  auto s = MakeService(1);
  std::vector<v1::Task> history;
  for (int i = 0; i < 3; ++i) {
    v1::Task t = Exited(Running(s, 1, i), v1::TASK_STATE_FAILED, 1);
    if (i < 2) t.set_desired_state(v1::TASK_STATE_SHUTDOWN);
    history.push_back(t);
  }
  auto a = Reconciler::Reconcile(s, history, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  // Third quick failure in a row: 100ms * 2^2.
  EXPECT_EQ(FromProtoTime(a.create[0].not_before()), kNow + absl::Milliseconds(400));
  EXPECT_EQ(a.next_wakeup, kNow + absl::Milliseconds(400));
  EXPECT_EQ(a.create[0].attempt(), 3);
}

TEST(ReconcilerTest, LongRunResetsBackoff) {
  auto s = MakeService(1);
  v1::Task older = Exited(Running(s, 1, 0), v1::TASK_STATE_FAILED, 1);
  older.set_desired_state(v1::TASK_STATE_SHUTDOWN);
  v1::Task latest = Exited(Running(s, 1, 1), v1::TASK_STATE_FAILED, 1, absl::Minutes(5));
  auto a = Reconciler::Reconcile(s, {older, latest}, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(FromProtoTime(a.create[0].not_before()), kNow + absl::Milliseconds(100));
}

TEST(ReconcilerTest, OrphanedTaskIsRescheduledAtOnce) {
  auto s = MakeService(1);
  v1::Task t = Running(s, 1);
  t.mutable_status()->set_state(v1::TASK_STATE_ORPHANED);
  auto a = Reconciler::Reconcile(s, {t}, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_FALSE(IsSet(a.create[0].not_before()));
  ASSERT_EQ(a.events.size(), 1u);
  EXPECT_EQ(a.events[0].action, "rescheduled");
}

TEST(ReconcilerTest, TemplateUpdateReplacesOneTaskAtATimeStartFirst) {
  auto s = MakeService(2);
  std::vector<v1::Task> tasks = {Running(s, 1), Running(s, 2)};
  s.set_revision(2);
  auto a = Reconciler::Reconcile(s, tasks, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_TRUE(a.update.empty());  // start-first: the old task keeps running
  EXPECT_EQ(a.create[0].revision(), 2);
  EXPECT_EQ(a.create[0].slot(), 1);

  // The new task is starting: wait.
  v1::Task fresh = a.create[0];
  tasks.push_back(fresh);
  a = Reconciler::Reconcile(s, tasks, {}, kNow);
  EXPECT_TRUE(a.empty());

  // It serves: the old one goes, the next slot starts.
  tasks.back().mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  tasks.back().set_node_id("n1");
  a = Reconciler::Reconcile(s, tasks, {}, kNow);
  ASSERT_EQ(a.update.size(), 1u);
  EXPECT_EQ(a.update[0].id(), tasks[0].id());
  EXPECT_EQ(a.update[0].desired_state(), v1::TASK_STATE_SHUTDOWN);
  EXPECT_TRUE(a.create.empty());  // slot 1 counts as in transition until its old task is gone

  // Old task of slot 1 shut down: slot 2 starts its replacement.
  tasks[0] = a.update[0];
  a = Reconciler::Reconcile(s, tasks, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].slot(), 2);
  EXPECT_EQ(a.create[0].revision(), 2);
}

// D3: a slot keeps its newest task and its N newest terminal tasks; the rest are removed with
// the version they were read at.
TEST(ReconcilerTest, KeepsTheNewestTerminalTasksPerSlot) {
  auto s = MakeService(1);
  std::vector<v1::Task> tasks;
  for (int i = 0; i <= 10; ++i) {
    v1::Task t = Exited(Running(s, 1, i), v1::TASK_STATE_FAILED, 1);
    if (i < 10) t.set_desired_state(v1::TASK_STATE_SHUTDOWN);  // the newest awaits its restart
    t.set_version(100 + i);
    *t.mutable_created_at() = ToProtoTime(kNow - absl::Minutes(10) + absl::Seconds(i));
    tasks.push_back(t);
  }
  for (int keep : {5, 0}) {
    auto a = Reconciler::Reconcile(s, tasks, {}, kNow, nullptr, nullptr, keep);
    std::map<std::string, uint64_t> removed;
    for (const auto& r : a.remove) removed[r.id] = r.version;
    std::map<std::string, uint64_t> want;
    for (int i = 0; i < 10 - keep; ++i) want[tasks[i].id()] = tasks[i].version();
    EXPECT_EQ(removed, want) << keep;
    EXPECT_EQ(a.create.size(), 1u) << keep;
  }
}

TEST(ReconcilerTest, HistoryOfZeroKeepsTheNewestTask) {
  auto s = MakeService(1, "never");
  v1::Task older = Exited(Running(s, 1, 0), v1::TASK_STATE_FAILED, 1);
  older.set_desired_state(v1::TASK_STATE_SHUTDOWN);
  v1::Task latest = Exited(Running(s, 1, 1), v1::TASK_STATE_FAILED, 1);
  latest.set_desired_state(v1::TASK_STATE_SHUTDOWN);  // not restarted: the policy is never
  auto a = Reconciler::Reconcile(s, {older, latest}, {}, kNow, nullptr, nullptr, 0);
  ASSERT_EQ(a.remove.size(), 1u);
  EXPECT_EQ(a.remove[0].id, older.id());
  EXPECT_TRUE(a.create.empty());
}

// The backoff exponent travels with the slot's newest task, so pruned history cannot reset it.
TEST(ReconcilerTest, BackoffUsesTheRecordedStreak) {
  auto s = MakeService(1);  // 100ms doubling, at most 2s
  v1::Task latest = Exited(Running(s, 1, 7), v1::TASK_STATE_FAILED, 1);
  latest.set_failure_streak(3);
  auto a = Reconciler::Reconcile(s, {latest}, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].failure_streak(), 4);
  EXPECT_EQ(FromProtoTime(a.create[0].not_before()), kNow + absl::Milliseconds(800));
  // A long run ends the streak.
  v1::Task long_run = Exited(Running(s, 1, 7), v1::TASK_STATE_FAILED, 1, absl::Minutes(5));
  long_run.set_failure_streak(3);
  a = Reconciler::Reconcile(s, {long_run}, {}, kNow);
  ASSERT_EQ(a.create.size(), 1u);
  EXPECT_EQ(a.create[0].failure_streak(), 0);
  EXPECT_EQ(FromProtoTime(a.create[0].not_before()), kNow + absl::Milliseconds(100));
}

TEST(ReconcilerTest, GlobalServiceRunsOnePerEligibleNode) {
  auto s = MakeService(0);
  s.mutable_spec()->set_mode("global");
  std::vector<v1::Node> nodes(3);
  for (int i = 0; i < 3; ++i) {
    nodes[i].set_id("n" + std::to_string(i));
    nodes[i].set_state(v1::NODE_STATE_READY);
  }
  nodes[2].set_state(v1::NODE_STATE_DOWN);
  auto a = Reconciler::Reconcile(s, {}, nodes, kNow);
  ASSERT_EQ(a.create.size(), 2u);
  std::set<std::string> on;
  for (const auto& t : a.create) on.insert(t.node_id());
  EXPECT_EQ(on, (std::set<std::string>{"n0", "n1"}));
}

}  // namespace
}  // namespace warren
