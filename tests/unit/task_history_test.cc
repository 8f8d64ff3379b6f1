// D3: terminal tasks of a crash loop are pruned to the manager's task history limit in the
// controller's normal pass, and the restart backoff keeps growing with the history pruned.
// A whole manager on the fake clock (rollout_sim.h): no threads, no sleeping.
#include <map>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "rollout_sim.h"

namespace warren {
namespace {

v1::ServiceSpec CrashLoopSpec() {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.set_replicas(1);
  spec.mutable_template_()->set_command("crash");
  auto* rp = spec.mutable_template_()->mutable_restart_policy();
  *rp->mutable_delay() = ToProtoDuration(absl::Milliseconds(100));
  *rp->mutable_max_delay() = ToProtoDuration(absl::Minutes(10));
  return spec;
}

TEST(TaskHistoryTest, CrashLoopIsPrunedAndBackoffKeepsGrowing) {
  sim::Sim sim;
  sim.SetTaskHistory(2);
  sim.behavior = [](const v1::Task&) {
    sim::Behavior b;
    b.crash_after = absl::Seconds(1);
    return b;
  };
  sim.Create(CrashLoopSpec());
  // Every task the controller made, by id: the backoff it was given.
  std::map<std::string, v1::Task> seen;
  size_t most_stored = 0;
  auto failures = [&] {
    int n = 0;
    for (const auto& [id, t] : seen) n += t.status().state() == v1::TASK_STATE_FAILED;
    return n;
  };
  ASSERT_TRUE(sim.RunUntil([&] { return failures() >= 10; }, 2000,
                           [&] {
                             std::vector<v1::Task> tasks = sim.Tasks();
                             most_stored = std::max(most_stored, tasks.size());
                             for (const auto& t : tasks) seen[t.id()] = t;
                           }));
  // Stored: the newest task and at most 2 terminal ones (plus one replacement in flight).
  EXPECT_LE(most_stored, 4u);
  EXPECT_GE(seen.size(), 10u);

  // The k-th restart waits 100ms * 2^(k-1) after the failure before it, whatever was pruned.
  std::vector<const v1::Task*> by_attempt(seen.size(), nullptr);
  for (const auto& [id, t] : seen) {
    if (t.attempt() < static_cast<int>(by_attempt.size())) by_attempt[t.attempt()] = &t;
  }
  for (int k = 1; k < 10; ++k) {
    ASSERT_NE(by_attempt[k], nullptr) << k;
    ASSERT_NE(by_attempt[k - 1], nullptr) << k;
    EXPECT_EQ(by_attempt[k]->failure_streak(), k) << k;
    absl::Duration waited = FromProtoTime(by_attempt[k]->not_before()) -
                            FromProtoTime(by_attempt[k - 1]->status().finished_at());
    EXPECT_EQ(waited, absl::Milliseconds(100) * (1 << (k - 1))) << "restart " << k;
  }

  // `service ps` still shows the recent history: the newest task and the last two failures.
  v1::ListTasksRequest req;
  req.set_service("web");
  v1::ListTasksResponse resp;
  ASSERT_TRUE(sim.api().ListTasks(nullptr, &req, &resp).ok());
  int failed = 0;
  for (const auto& t : resp.tasks()) failed += t.status().state() == v1::TASK_STATE_FAILED;
  EXPECT_GE(failed, 2);
  EXPECT_LE(resp.tasks_size(), 4);
}

// The default keeps five, and a manager restart changes nothing about what is kept.
TEST(TaskHistoryTest, DefaultKeepsFivePerSlotAcrossRestarts) {
  sim::Sim sim;
  sim.behavior = [](const v1::Task&) {
    sim::Behavior b;
    b.crash_after = absl::Milliseconds(500);
    return b;
  };
  v1::ServiceSpec spec = CrashLoopSpec();
  spec.set_replicas(2);
  *spec.mutable_template_()->mutable_restart_policy()->mutable_max_delay() =
      ToProtoDuration(absl::Milliseconds(200));
  sim.Create(spec);
  std::set<std::string> ids;
  size_t most_stored = 0;
  int steps = 0;
  ASSERT_TRUE(sim.RunUntil([&] { return ids.size() >= 30; }, 1000,
                           [&] {
                             if (++steps % 25 == 0) sim.Restart();
                             std::vector<v1::Task> tasks = sim.Tasks();
                             most_stored = std::max(most_stored, tasks.size());
                             for (const auto& t : tasks) ids.insert(t.id());
                           }));
  // Per slot: the newest task, five terminal ones, one replacement in flight.
  EXPECT_LE(most_stored, 2u * 7);
  EXPECT_GE(most_stored, 2u * 5);
}

}  // namespace
}  // namespace warren
