// Table-driven rollout scenarios on the fake clock: budgets, failures at every batch,
// pause/resume, supersede, manager restarts at every step, deadlines, manual rollback.
#include <set>

#include "absl/strings/str_cat.h"
#include "manager/scheduler.h"
#include "rollout_sim.h"

namespace warren::sim {
namespace {

struct BudgetCase {
  int replicas;
  std::string surge;
  std::string unavailable;
  std::string order;
  int parallelism;
};

std::string Name(const BudgetCase& c) {
  std::string s = absl::StrCat("r", c.replicas, "_s", c.surge, "_u", c.unavailable, "_",
                               c.order == "start-first" ? "start" : "stop", "_p", c.parallelism);
  for (char& ch : s) {
    if (ch == '%') ch = 'P';
  }
  return s;
}

void PrintTo(const BudgetCase& c, std::ostream* os) { *os << Name(c); }

std::vector<BudgetCase> BudgetCases() {
  std::vector<BudgetCase> out;
  for (int replicas : {1, 3, 10}) {
    for (const char* surge : {"0", "1", "25%", "100%"}) {
      for (const char* unavailable : {"0", "1", "50%"}) {
        if (std::string(surge) == "0" && std::string(unavailable) == "0") continue;
        for (const char* order : {"start-first", "stop-first"}) {
          for (int parallelism : {0, 1, 3}) {
            out.push_back({replicas, surge, unavailable, order, parallelism});
          }
        }
      }
    }
  }
  return out;
}

class RolloutBudgetTest : public testing::TestWithParam<BudgetCase> {};

// Every budget combination completes, never exceeds replicas + surge live tasks and never
// drops below replicas - unavailable available tasks.
TEST_P(RolloutBudgetTest, StaysWithinBudgets) {
  const BudgetCase& c = GetParam();
  Sim sim;
  v1::ServiceSpec spec = WebSpec(c.replicas);
  auto* uc = spec.mutable_update_config();
  uc->set_max_surge(c.surge);
  uc->set_max_unavailable(c.unavailable);
  uc->set_order(c.order);
  uc->set_parallelism(c.parallelism);
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == c.replicas; }));

  RolloutParams p = ResolveRolloutParams(*uc, c.replicas);
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  int min_available = c.replicas, max_live = 0;
  bool done = sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }, 400,
                           [&] {
                             min_available = std::min(min_available, sim.Available());
                             max_live = std::max(max_live, sim.Live());
                           });
  ASSERT_TRUE(done) << "phase " << v1::DeploymentPhase_Name(sim.Phase("web"));
  EXPECT_GE(min_available, c.replicas - p.max_unavailable);
  EXPECT_LE(max_live, c.replicas + p.max_surge);
  EXPECT_EQ(sim.Live(2), c.replicas);
  EXPECT_EQ(sim.Live(1), 0);
  EXPECT_EQ(sim.Service("web").revision(), 2);
}

INSTANTIATE_TEST_SUITE_P(Budgets, RolloutBudgetTest, testing::ValuesIn(BudgetCases()),
                         [](const auto& info) { return Name(info.param); });

// A version whose tasks fail at batch k (slots >= k crash) rolls back to revision 1 with
// every replica serving again.
class FailureAtBatchTest : public testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(FailureAtBatchTest, FailureActionApplies) {
  const auto& [failing_slot, action] = GetParam();
  Sim sim;
  v1::ServiceSpec spec = WebSpec(4);
  spec.mutable_update_config()->set_failure_action(action);
  *spec.mutable_update_config()->mutable_healthy_deadline() = ToProtoDuration(absl::Seconds(20));
  ASSERT_TRUE(sim.CreateServing(spec));
  const int slot_limit = failing_slot;
  sim.behavior = [slot_limit](const v1::Task& t) {
    Behavior b;
    if (Version(t) == "v2" && t.slot() >= slot_limit) b.healthy = false;
    return b;
  };
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  int min_available = 4;
  auto finished = [&] {
    auto ph = sim.Phase("web");
    return ph == v1::DEPLOYMENT_PHASE_ROLLED_BACK || ph == v1::DEPLOYMENT_PHASE_PAUSED ||
           ph == v1::DEPLOYMENT_PHASE_FAILED || ph == v1::DEPLOYMENT_PHASE_SUCCEEDED;
  };
  ASSERT_TRUE(sim.RunUntil(finished, 600,
                           [&] { min_available = std::min(min_available, sim.Available()); }));
  auto d = *sim.Rollout("web");
  if (action == "rollback") {
    EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_ROLLED_BACK) << d.reason();
    EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_HEALTH_CHECK);
    EXPECT_NE(d.reason().find("unhealthy"), std::string::npos) << d.reason();
    EXPECT_EQ(sim.Service("web").revision(), 1);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 4 && sim.Live(2) == 0; }));
    EXPECT_EQ(sim.Available(), 4);
  } else if (action == "pause") {
    EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_PAUSED);
    EXPECT_FALSE(d.paused_by_user());
    // Paused: nothing else moves.
    auto before = d.updated_slots_size();
    for (int i = 0; i < 20; ++i) sim.Step();
    EXPECT_EQ(sim.Rollout("web")->updated_slots_size(), before);
  }
  // max-unavailable 0: the failing tasks never took capacity away.
  EXPECT_GE(min_available, 4);
}

INSTANTIATE_TEST_SUITE_P(EveryBatch, FailureAtBatchTest,
                         testing::Combine(testing::Values(1, 2, 3, 4),
                                          testing::Values("rollback", "pause")),
                         [](const auto& info) {
                           return absl::StrCat("slot", std::get<0>(info.param), "_",
                                               std::get<1>(info.param));
                         });

TEST(RolloutTest, CrashLoopingVersionRollsBack) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(3);
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.behavior = [](const v1::Task& t) {
    Behavior b;
    if (Version(t) == "v2") b.crash_after = absl::Milliseconds(300);
    return b;
  };
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  EXPECT_NE(sim.Rollout("web")->reason().find("exit code 1"), std::string::npos);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 3 && sim.Live(2) == 0; }));
}

TEST(RolloutTest, HealthyDeadlineCountsAsFailure) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  *spec.mutable_update_config()->mutable_healthy_deadline() = ToProtoDuration(absl::Seconds(5));
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.behavior = [](const v1::Task& t) {
    Behavior b;
    b.hangs = Version(t) == "v2";
    return b;
  };
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  const absl::Time start = sim.clock().Now();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  EXPECT_GE(sim.clock().Now() - start, absl::Seconds(5));
  EXPECT_NE(sim.Rollout("web")->reason().find("healthy deadline"), std::string::npos);
}

TEST(RolloutTest, ProgressDeadlineRollsBackWithDeadlineReason) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  auto* uc = spec.mutable_update_config();
  *uc->mutable_progress_deadline() = ToProtoDuration(absl::Seconds(8));
  *uc->mutable_healthy_deadline() = ToProtoDuration(absl::Minutes(10));
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.behavior = [](const v1::Task& t) {
    Behavior b;
    b.hangs = Version(t) == "v2";
    return b;
  };
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_DEADLINE);
  EXPECT_NE(d.reason().find("progress deadline"), std::string::npos) << d.reason();
}

TEST(RolloutTest, PauseAndResume) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(5);
  ASSERT_TRUE(sim.CreateServing(spec));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->available() >= 2; }));
  v1::RolloutRequest req;
  req.set_name_or_id("web");
  v1::Deployment d;
  ASSERT_TRUE(sim.api().PauseRollout(nullptr, &req, &d).ok());
  EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_PAUSED);
  // Let the batch in flight settle, then nothing moves.
  for (int i = 0; i < 10; ++i) sim.Step();
  const int updated = sim.Rollout("web")->updated_slots_size();
  for (int i = 0; i < 30; ++i) sim.Step(absl::Seconds(10));  // well past the progress deadline
  EXPECT_EQ(sim.Rollout("web")->updated_slots_size(), updated);
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PAUSED);
  ASSERT_TRUE(sim.api().ResumeRollout(nullptr, &req, &d).ok());
  EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_PROGRESSING);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  EXPECT_EQ(sim.Live(2), 5);
}

TEST(RolloutTest, UpdateDuringRolloutSupersedesIt) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(4);
  ASSERT_TRUE(sim.CreateServing(spec));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(2) >= 2; }));
  const std::string first = sim.Rollout("web")->id();
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v3";
  ASSERT_TRUE(sim.Update(spec).ok());
  auto d = *sim.Rollout("web");
  EXPECT_NE(d.id(), first);
  EXPECT_EQ(d.from_revision(), 1) << "a superseding rollout keeps the stable revision";
  EXPECT_EQ(d.to_revision(), 3);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(3) == 4; }));
  EXPECT_EQ(sim.Live(1), 0);
  EXPECT_EQ(sim.Live(2), 0) << "the superseded target's tasks are cleaned up";
  v1::ListDeploymentsResponse all;
  v1::RolloutRequest req;
  req.set_name_or_id("web");
  ASSERT_TRUE(sim.api().ListDeployments(nullptr, &req, &all).ok());
  ASSERT_EQ(all.deployments_size(), 2);
  EXPECT_EQ(all.deployments(1).phase(), v1::DEPLOYMENT_PHASE_SUPERSEDED);
}

// A manager restart at every step of a rollout (and of its rollback) still finishes it.
class RestartAtStepTest : public testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(RestartAtStepTest, ContinuesFromTheStore) {
  const auto& [restart_at, bad_version] = GetParam();
  Sim sim;
  v1::ServiceSpec spec = WebSpec(3);
  *spec.mutable_update_config()->mutable_min_ready() = ToProtoDuration(absl::Seconds(1));
  ASSERT_TRUE(sim.CreateServing(spec));
  if (bad_version) {
    sim.behavior = [](const v1::Task& t) {
      Behavior b;
      b.healthy = Version(t) != "v2";
      return b;
    };
  }
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  for (int i = 0; i < restart_at; ++i) sim.Step();
  sim.Restart();
  const auto want = bad_version ? v1::DEPLOYMENT_PHASE_ROLLED_BACK : v1::DEPLOYMENT_PHASE_SUCCEEDED;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == want; }))
      << v1::DeploymentPhase_Name(sim.Phase("web"));
  const int64_t final_rev = bad_version ? 1 : 2;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(final_rev) == 3 && sim.Live() == 3; }));
  EXPECT_EQ(sim.Service("web").revision(), final_rev);
}

INSTANTIATE_TEST_SUITE_P(EveryStep, RestartAtStepTest,
                         testing::Combine(testing::Range(0, 16), testing::Bool()),
                         [](const auto& info) {
                           return absl::StrCat("step", std::get<0>(info.param),
                                               std::get<1>(info.param) ? "_bad" : "_good");
                         });

TEST(RolloutTest, ManualRollbackAfterSuccess) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(3);
  ASSERT_TRUE(sim.CreateServing(spec));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  v1::RollbackServiceRequest req;
  req.set_name_or_id("web");
  v1::Service out;
  ASSERT_TRUE(sim.api().RollbackService(nullptr, &req, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  auto d = *sim.Rollout("web");
  EXPECT_TRUE(d.rollback());
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_MANUAL);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 3 && sim.Live() == 3; }));
  EXPECT_NE(sim.registry().Render().find("warren_rollbacks_total{reason=\"manual\"} 1"),
            std::string::npos);

  // History: both revisions, with outcomes; a rollback to a revision that is not kept fails.
  v1::ListRevisionsRequest lr;
  lr.set_name_or_id("web");
  v1::ListRevisionsResponse revs;
  ASSERT_TRUE(sim.api().ListRevisions(nullptr, &lr, &revs).ok());
  ASSERT_EQ(revs.revisions_size(), 2);
  EXPECT_EQ(revs.revisions(0).outcome(), v1::REVISION_OUTCOME_CREATED);
  EXPECT_EQ(revs.revisions(1).outcome(), v1::REVISION_OUTCOME_ROLLED_BACK);
  req.set_to_revision(7);
  grpc::Status s = sim.api().RollbackService(nullptr, &req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("to-revision"), std::string::npos);
}

TEST(RolloutTest, ScalingMakesNoRevisionAndNoRollout) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  ASSERT_TRUE(sim.CreateServing(spec));
  spec.set_replicas(5);
  v1::Service out;
  ASSERT_TRUE(sim.Update(spec, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  EXPECT_FALSE(sim.Rollout("web").has_value());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 5; }));
}

TEST(RolloutTest, HistoryLimitKeepsNewestRevisions) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(1);
  spec.set_history_limit(3);
  sim.Create(spec);
  for (int v = 2; v <= 6; ++v) {
    (*spec.mutable_template_()->mutable_env())["VERSION"] = absl::StrCat("v", v);
    ASSERT_TRUE(sim.Update(spec).ok());
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  }
  v1::ListRevisionsRequest lr;
  lr.set_name_or_id("web");
  v1::ListRevisionsResponse revs;
  ASSERT_TRUE(sim.api().ListRevisions(nullptr, &lr, &revs).ok());
  std::vector<int64_t> numbers;
  for (const auto& r : revs.revisions()) numbers.push_back(r.number());
  EXPECT_EQ(numbers, (std::vector<int64_t>{4, 5, 6}));
}

TEST(RolloutTest, DeploymentMetricsCountOutcomes) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  ASSERT_TRUE(sim.CreateServing(spec));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  std::string text = sim.registry().Render();
  EXPECT_NE(text.find("warren_deployments_total{strategy=\"rolling\",status=\"success\","
                      "outcome=\"succeeded\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("warren_deployment_duration_seconds_count{strategy=\"rolling\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace warren::sim

namespace warren::sim {
namespace {

grpc::Status RollbackWeb(Sim& sim, v1::Service* out) {
  v1::RollbackServiceRequest req;
  req.set_name_or_id("web");
  return sim.api().RollbackService(nullptr, &req, out);
}

void UpdateTo(Sim& sim, v1::ServiceSpec* spec, const std::string& version) {
  (*spec->mutable_template_()->mutable_env())["VERSION"] = version;
  ASSERT_TRUE(sim.Update(*spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return !IsActive(*sim.Rollout("web")); }, 800));
}

// Behaviour 3: with nothing in progress, `service rollback` goes to the newest earlier revision
// whose rollout succeeded; rolled-back and failed revisions are skipped.
TEST(RollbackTargetTest, SkipsRolledBackRevisions) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  ASSERT_TRUE(sim.CreateServing(spec));
  UpdateTo(sim, &spec, "v2");
  UpdateTo(sim, &spec, "v3");
  v1::Service out;
  ASSERT_TRUE(RollbackWeb(sim, &out).ok());
  EXPECT_EQ(out.revision(), 2);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  // Revision 3 was rolled back from: the next rollback goes on to revision 1, not back to 3.
  ASSERT_TRUE(RollbackWeb(sim, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 2 && sim.Live() == 2; }));
}

TEST(RollbackTargetTest, PicksTheNewestEarlierSucceededRevision) {
  v1::Service svc;
  svc.set_revision(6);
  RevisionMap revs;
  const v1::RevisionOutcome outcomes[] = {
      v1::REVISION_OUTCOME_CREATED,     v1::REVISION_OUTCOME_SUCCEEDED,
      v1::REVISION_OUTCOME_FAILED,      v1::REVISION_OUTCOME_SUPERSEDED,
      v1::REVISION_OUTCOME_ROLLED_BACK, v1::REVISION_OUTCOME_IN_PROGRESS,
      v1::REVISION_OUTCOME_SUCCEEDED};
  for (int i = 0; i < 7; ++i) {
    revs[i + 1].set_number(i + 1);
    revs[i + 1].set_outcome(outcomes[i]);
  }
  EXPECT_EQ(PreviousGoodRevision(svc, revs), 2) << "3 failed, 4 superseded, 5 rolled back";
  svc.set_revision(2);
  EXPECT_EQ(PreviousGoodRevision(svc, revs), 1) << "revision 1 was created without a rollout";
  svc.set_revision(1);
  EXPECT_EQ(PreviousGoodRevision(svc, revs), 0);
}

TEST(RollbackTargetTest, ANamedRevisionIsTakenAsNamed) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  ASSERT_TRUE(sim.CreateServing(spec));
  UpdateTo(sim, &spec, "v2");
  UpdateTo(sim, &spec, "v3");
  v1::Service out;
  ASSERT_TRUE(RollbackWeb(sim, &out).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return !IsActive(*sim.Rollout("web")); }));
  // Revision 3 is rolled back, yet named it is what the service goes to.
  v1::RollbackServiceRequest req;
  req.set_name_or_id("web");
  req.set_to_revision(3);
  ASSERT_TRUE(sim.api().RollbackService(nullptr, &req, &out).ok());
  EXPECT_EQ(out.revision(), 3);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(3) == 2 && sim.Live() == 2; }));
}

}  // namespace
}  // namespace warren::sim

namespace warren::sim {
namespace {

// Behaviour 11: new tasks that no node can ever run fail the rollout within the placement
// grace (default 5 s), with the scheduler's reason, instead of after the healthy deadline.
struct UnplaceableCase {
  std::string name;
  std::string strategy;
  std::function<void(v1::TaskTemplate*)> change;
  std::string reason;
};

class UnplaceableTest : public testing::TestWithParam<UnplaceableCase> {};

TEST_P(UnplaceableTest, FailsFastWithTheReason) {
  const UnplaceableCase& c = GetParam();
  Sim sim;
  v1::ServiceSpec spec = WebSpec(2);
  spec.mutable_update_config()->set_strategy(c.strategy);
  ASSERT_TRUE(sim.CreateServing(spec));
  c.change(spec.mutable_template_());
  ASSERT_TRUE(sim.Update(spec).ok());
  const absl::Time start = sim.clock().Now();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  EXPECT_LT(sim.clock().Now() - start, absl::Seconds(10)) << "not the 5 minute healthy deadline";
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_UNSCHEDULABLE);
  EXPECT_NE(d.reason().find("cannot be placed: " + c.reason), std::string::npos) << d.reason();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 2 && sim.Live() == 2; }));
  EXPECT_NE(sim.registry().Render().find("warren_rollbacks_total{reason=\"unschedulable\"} 1"),
            std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Reasons, UnplaceableTest,
    testing::Values(
        UnplaceableCase{"image_on_process_nodes", "rolling",
                        [](v1::TaskTemplate* t) { t->set_image("registry/web:2"); },
                        "no ready node runs container images"},
        UnplaceableCase{"constraint", "canary",
                        [](v1::TaskTemplate* t) { t->add_constraints("node.labels.zone==mars"); },
                        "no ready node satisfies constraint node.labels.zone==mars"},
        UnplaceableCase{"resources", "blue-green",
                        [](v1::TaskTemplate* t) { t->mutable_resources()->set_cpus(100); },
                        "no ready node has 100 CPUs"}),
    [](const auto& info) { return info.param.name; });

// A rollout that superseded another one and cannot be placed rolls back to the stable revision
// in seconds: its pending task must not hold the surge budget the rollback needs (found in a
// demo: a canary superseded by such an update sat in rolling-back for the 10 minute progress
// deadline).
TEST(UnplaceableTest, ASupersedingRolloutRollsBackInSeconds) {
  Sim sim;
  v1::ServiceSpec spec = WebSpec(3);
  ASSERT_TRUE(sim.CreateServing(spec));
  // Revision 2 switches slot 1, then waits a minute before its next batch.
  *spec.mutable_update_config()->mutable_delay() = ToProtoDuration(absl::Minutes(1));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(2) == 1 && sim.Live() == 3; }));
  spec.mutable_update_config()->clear_delay();
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v3";
  spec.mutable_template_()->add_constraints("node.labels.zone==mars");
  ASSERT_TRUE(sim.Update(spec).ok());
  const absl::Time start = sim.clock().Now();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }))
      << v1::DeploymentPhase_Name(sim.Phase("web")) << ": " << sim.Rollout("web")->reason();
  EXPECT_LT(sim.clock().Now() - start, absl::Seconds(30));
  EXPECT_EQ(sim.Rollout("web")->rollback_reason(), v1::ROLLBACK_REASON_UNSCHEDULABLE);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 3 && sim.Live() == 3; }));
}

TEST(UnplaceableTest, WaitingForANodeOrForResourcesIsNoFailure) {
  v1::Task t;
  t.mutable_spec()->set_command("web");
  t.mutable_spec()->mutable_resources()->set_cpus(4);
  v1::Node n;
  n.set_state(v1::NODE_STATE_DOWN);
  n.set_runtime("process");
  n.mutable_capacity()->set_cpus(8);
  EXPECT_EQ(NeverPlaceableReason(t, {}), "") << "no node at all: wait for one";
  EXPECT_EQ(NeverPlaceableReason(t, {n}), "") << "the only node is down: wait for it";
  n.set_state(v1::NODE_STATE_READY);
  EXPECT_EQ(NeverPlaceableReason(t, {n}), "") << "fits once other tasks free their CPUs";
  t.mutable_spec()->mutable_resources()->set_cpus(9);
  EXPECT_NE(NeverPlaceableReason(t, {n}), "");
}

}  // namespace
}  // namespace warren::sim
