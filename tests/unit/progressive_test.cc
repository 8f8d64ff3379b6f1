// Blue/green and canary state machines on the fake clock: switch, promote, rollback inside the
// window, canary steps with exact weights and task counts, analysis failures, abort, restarts
// at every step.
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "rollout_sim.h"

namespace warren::sim {
namespace {

// Healthy traffic: 20 requests a step shared by weight, no errors.
std::pair<int, int> Healthy(int64_t, int weight) { return {weight / 5, 0}; }

TEST(BlueGreenTest, SwitchesWhenGreenIsReadyAndRemovesBlueAfterTheDelay) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(3, "blue-green");
  ASSERT_TRUE(sim.CreateServing(spec));
  // One green task is slower, so green is partly ready (the preview set) for a while.
  sim.behavior = [](const v1::Task& t) {
    Behavior b;
    if (Version(t) == "v2" && t.slot() == 3) b.ready_after = absl::Seconds(3);
    return b;
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  bool saw_preview = false;
  ASSERT_TRUE(sim.RunUntil(
      [&] { return sim.Rollout("web")->switched(); }, 400,
      [&] {
        bool preview = false;
        if (!sim.Rollout("web")->switched() && sim.Weight(2, &preview) == 0 && preview) {
          saw_preview = true;
          EXPECT_EQ(sim.Weight(1), 100) << "production stays on blue before the switch";
        }
      }));
  EXPECT_TRUE(saw_preview) << "green was reachable as the preview set before the switch";
  // One routing table version: all traffic on green, blue kept running.
  EXPECT_EQ(sim.Weight(2), 100);
  EXPECT_EQ(sim.Weight(1), 0) << "blue gets no production traffic";
  EXPECT_EQ(sim.Live(1), 3);
  EXPECT_EQ(sim.Live(2), 3);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 0; }));
  EXPECT_EQ(sim.Live(2), 3);
}

TEST(BlueGreenTest, WaitsForPromoteWithoutAutoPromote) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(2, "blue-green");
  spec.mutable_update_config()->set_auto_promote(false);
  ASSERT_TRUE(sim.CreateServing(spec));
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(2) == 2 && sim.Serving(2) == 2; }));
  for (int i = 0; i < 20; ++i) sim.Step();
  EXPECT_FALSE(sim.Rollout("web")->switched());
  EXPECT_NE(sim.Rollout("web")->reason().find("promote"), std::string::npos);
  v1::PromoteRequest req;
  req.set_name_or_id("web");
  v1::Deployment d;
  ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &req, &d).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->switched(); }));
  EXPECT_EQ(sim.Weight(2), 100);
}

TEST(BlueGreenTest, RollbackInsideTheWindowFlipsBackWithoutStartingATask) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(3, "blue-green");
  ASSERT_TRUE(sim.CreateServing(spec));
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->switched(); }));
  const size_t tasks_before = sim.Tasks().size();
  v1::RollbackServiceRequest req;
  req.set_name_or_id("web");
  v1::Service out;
  ASSERT_TRUE(sim.api().RollbackService(nullptr, &req, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  // The very next routing table sends everything to blue again.
  EXPECT_EQ(sim.Weight(1), 100);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  EXPECT_EQ(sim.Tasks().size(), tasks_before) << "no task was started to roll back";
  EXPECT_EQ(sim.Live(1), 3);
  EXPECT_EQ(sim.Live(2), 0);
  EXPECT_EQ(sim.Rollout("web")->rollback_reason(), v1::ROLLBACK_REASON_MANUAL);
}

TEST(BlueGreenTest, PostSwitchAnalysisFailureFlipsBack) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(2, "blue-green");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = [](int64_t revision, int weight) -> std::pair<int, int> {
    int n = weight / 5;
    return {n, revision == 2 ? n / 2 : 0};  // green fails half its requests
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_ERROR_RATE);
  EXPECT_NE(d.reason().find("error_rate"), std::string::npos) << d.reason();
  EXPECT_EQ(sim.Service("web").revision(), 1);
  EXPECT_EQ(sim.Live(1), 2);
}

TEST(CanaryTest, WalksThroughTheStepsWithExactWeightsAndCounts) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(10, "canary");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  std::vector<int> seen;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }, 600,
                           [&] {
                             auto d = sim.Rollout("web");
                             if (!d || d->phase() != v1::DEPLOYMENT_PHASE_PROGRESSING ||
                                 d->weight() == 0)
                               return;
                             if (seen.empty() || seen.back() != d->weight()) {
                               seen.push_back(d->weight());
                               // Canary replicas = ceil(replicas x weight / 100); stable scaled
                               // down.
                               const int canary = (10 * d->weight() + 99) / 100;
                               EXPECT_GE(sim.Live(2), canary) << "weight " << d->weight();
                               if (d->weight() < 100) {
                                 EXPECT_EQ(sim.Weight(2), d->weight());
                               }
                             }
                           }));
  EXPECT_EQ(seen, (std::vector<int>{10, 25, 50, 100}));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 0 && sim.Live(2) == 10; }));
  EXPECT_NE(sim.registry().Render().find("warren_canary_promotion_steps_total 3"),
            std::string::npos);
}

TEST(CanaryTest, BadCanaryRollsBackWithinOnePass) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(4, "canary");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = [](int64_t revision, int weight) -> std::pair<int, int> {
    int n = std::max(1, weight / 2);
    return {n, revision == 2 ? n * 3 / 10 : 0};  // ERROR_RATE=0.3 on the canary
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") != v1::DEPLOYMENT_PHASE_PROGRESSING; }));
  // The failing check put the weight to 0 in the same pass that saw it.
  EXPECT_EQ(sim.Rollout("web")->weight(), 0);
  EXPECT_EQ(sim.Weight(1), 100);
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_ERROR_RATE);
  EXPECT_NE(d.reason().find("error_rate"), std::string::npos);
  EXPECT_NE(d.reason().find("exceeds 10"), std::string::npos) << d.reason();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 4 && sim.Live(2) == 0; }));
  EXPECT_NE(sim.registry().Render().find("warren_rollbacks_total{reason=\"error_rate\"} 1"),
            std::string::npos);
}

TEST(CanaryTest, AbortAndPromoteFull) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(4, "canary");
  *spec.mutable_update_config()->mutable_canary_window() = ToProtoDuration(absl::Hours(1));
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));
  v1::PromoteRequest promote;
  promote.set_name_or_id("web");
  v1::Deployment d;
  ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &promote, &d).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 25; }));
  v1::RolloutRequest abort;
  abort.set_name_or_id("web");
  ASSERT_TRUE(sim.api().AbortRollout(nullptr, &abort, &d).ok());
  EXPECT_EQ(d.weight(), 0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 4 && sim.Live(2) == 0; }));

  // Again, promoted straight to 100 %: it ends there, without the hour-long windows.
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v3";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));
  promote.set_full(true);
  ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &promote, &d).ok());
  EXPECT_EQ(d.intents(d.intents_size() - 1).result(),
            "promoted to step 4/4: 100% of traffic on revision 3 once its tasks are ready, and "
            "the rollout ends then");
  const absl::Time start = sim.clock().Now();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  EXPECT_LT(sim.clock().Now() - start, absl::Minutes(1));
  EXPECT_EQ(sim.Weight(3), 100);
}

// Behaviour 4: `canary promote` at the last step ends the deployment at once.
TEST(CanaryTest, PromoteAtTheLastStepEndsTheRollout) {
  for (bool full : {false, true}) {
    Sim sim;
    v1::ServiceSpec spec = Progressive(4, "canary");
    *spec.mutable_update_config()->mutable_canary_window() = ToProtoDuration(absl::Hours(1));
    spec.mutable_update_config()->add_canary_steps(50);
    spec.mutable_update_config()->add_canary_steps(100);
    ASSERT_TRUE(sim.CreateServing(spec));
    sim.traffic_gen = Healthy;
    ToV2(&spec);
    ASSERT_TRUE(sim.Update(spec).ok());
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 50; }));
    v1::PromoteRequest promote;
    promote.set_name_or_id("web");
    v1::Deployment d;
    ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &promote, &d).ok());
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 100; }));
    EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PROGRESSING) << "the last window runs";
    promote.set_full(full);
    ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &promote, &d).ok()) << full;
    EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_SUCCEEDED) << full;
    EXPECT_EQ(d.intents(d.intents_size() - 1).result(),
              "promoted: 100% of traffic on revision 2; the rollout ended");
    EXPECT_EQ(sim.Weight(2), 100);
  }
}

TEST(BlueGreenTest, PromoteAfterTheSwitchEndsThePostSwitchWindow) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(2, "blue-green");
  *spec.mutable_update_config()->mutable_canary_window() = ToProtoDuration(absl::Hours(1));
  *spec.mutable_update_config()->mutable_scale_down_delay() = ToProtoDuration(absl::Hours(1));
  ASSERT_TRUE(sim.CreateServing(spec));
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->switched(); }));
  v1::PromoteRequest promote;
  promote.set_name_or_id("web");
  v1::Deployment d;
  ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &promote, &d).ok());
  EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_SUCCEEDED);
  EXPECT_EQ(sim.Live(1), 2) << "blue stays warm for the scale-down delay";
}

TEST(CanaryTest, ThinTrafficPolicies) {
  for (const std::string policy : {"pass", "fail"}) {
    Sim sim;
    v1::ServiceSpec spec = Progressive(2, "canary");
    spec.mutable_update_config()->set_thin_traffic(policy);
    ASSERT_TRUE(sim.CreateServing(spec));
    sim.traffic_gen = [](int64_t, int) -> std::pair<int, int> { return {0, 0}; };
    ToV2(&spec);
    ASSERT_TRUE(sim.Update(spec).ok());
    auto want =
        policy == "pass" ? v1::DEPLOYMENT_PHASE_SUCCEEDED : v1::DEPLOYMENT_PHASE_ROLLED_BACK;
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == want; }, 800)) << policy;
  }
}

// A manager restart at every step of a canary and of a blue/green rollout.
class ProgressiveRestartTest : public testing::TestWithParam<std::tuple<std::string, int, bool>> {};

TEST_P(ProgressiveRestartTest, ContinuesFromTheStore) {
  const auto& [strategy, restart_at, bad] = GetParam();
  Sim sim;
  v1::ServiceSpec spec = Progressive(3, strategy);
  *spec.mutable_update_config()->mutable_scale_down_delay() = ToProtoDuration(absl::Seconds(5));
  *spec.mutable_update_config()->mutable_canary_window() = ToProtoDuration(absl::Seconds(3));
  ASSERT_TRUE(sim.CreateServing(spec));
  const bool failing = bad;
  sim.traffic_gen = [failing](int64_t revision, int weight) -> std::pair<int, int> {
    int n = weight / 2 + 1;
    return {n, failing && revision == 2 ? n / 2 : 0};
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  for (int i = 0; i < restart_at; ++i) sim.Step();
  sim.Restart();
  const auto want = bad ? v1::DEPLOYMENT_PHASE_ROLLED_BACK : v1::DEPLOYMENT_PHASE_SUCCEEDED;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == want; }, 800))
      << v1::DeploymentPhase_Name(sim.Phase("web"));
  const int64_t final_rev = bad ? 1 : 2;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(final_rev) == 3 && sim.Live() == 3; }));
}

INSTANTIATE_TEST_SUITE_P(EveryStep, ProgressiveRestartTest,
                         testing::Combine(testing::Values("canary", "blue-green"),
                                          testing::Range(0, 30, 3), testing::Bool()),
                         [](const auto& info) {
                           std::string s =
                               std::get<0>(info.param) == "canary" ? "canary" : "bluegreen";
                           return absl::StrCat(s, "_step", std::get<1>(info.param),
                                               std::get<2>(info.param) ? "_bad" : "_good");
                         });

}  // namespace
}  // namespace warren::sim

namespace warren::sim {
namespace {

TEST(CanaryTest, PauseHoldsTheStepAndResumeContinues) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(4, "canary");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));
  v1::RolloutRequest req;
  req.set_name_or_id("web");
  v1::Deployment d;
  ASSERT_TRUE(sim.api().PauseRollout(nullptr, &req, &d).ok());
  for (int i = 0; i < 60; ++i) sim.Step();  // 30 s, three windows
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PAUSED);
  EXPECT_EQ(sim.Rollout("web")->weight(), 10);
  EXPECT_EQ(sim.Weight(2), 10) << "the paused step keeps its exact weight";
  ASSERT_TRUE(sim.api().ResumeRollout(nullptr, &req, &d).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  // Every passed step left an analysis event.
  int analysis_events = 0;
  for (const auto& e : ListObjects<v1::Event>(sim.store())) {
    if (e.action() == "analysis") analysis_events++;
  }
  EXPECT_EQ(analysis_events, 4);
}

}  // namespace
}  // namespace warren::sim

namespace warren::sim {
namespace {

v1::Revision RevisionOf(Sim& sim, int64_t number) {
  for (const auto& r : ListObjects<v1::Revision>(sim.store())) {
    if (r.number() == number) return r;
  }
  return v1::Revision();
}

grpc::Status Rollback(Sim& sim, v1::Service* out, int64_t to = 0) {
  v1::RollbackServiceRequest req;
  req.set_name_or_id("web");
  req.set_to_revision(to);
  return sim.api().RollbackService(nullptr, &req, out);
}

// Behaviour 1: a rollback right after a blue/green succeeded (blue still inside its
// scale-down delay) switches the traffic back at once and starts nothing.
TEST(WarmRollbackTest, AfterAFinishedBlueGreenSwitchesBackToTheWarmBlue) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(10, "blue-green");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  const v1::Deployment done = *sim.Rollout("web");
  // The post-switch window (10 s) ended; blue stays for the rest of the delay (30 s).
  EXPECT_EQ(sim.Live(1), 10);
  EXPECT_EQ(sim.Weight(1), 0);
  const size_t tasks_before = sim.Tasks().size();
  v1::Service out;
  ASSERT_TRUE(Rollback(sim, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  // The very next routing table has all traffic on blue: no step, no window.
  EXPECT_EQ(sim.Weight(1), 100);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.id(), done.id()) << "switched back on the finished deployment";
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_MANUAL);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(2) == 0; }));
  EXPECT_EQ(sim.Live(1), 10);
  EXPECT_EQ(sim.Tasks().size(), tasks_before) << "no task was started to roll back";
  EXPECT_EQ(RevisionOf(sim, 2).outcome(), v1::REVISION_OUTCOME_ROLLED_BACK);
}

// Behaviour 2: once a canary has all traffic, the stable tasks that served the step before
// stay running for the scale-down delay (also after the deployment succeeded), then go.
TEST(WarmRollbackTest, CanaryKeepsTheStableTasksForTheScaleDownDelay) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(10, "canary");
  spec.mutable_update_config()->add_canary_steps(10);
  spec.mutable_update_config()->add_canary_steps(50);
  spec.mutable_update_config()->add_canary_steps(100);
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 100; }));
  const absl::Time full = sim.clock().Now();
  EXPECT_EQ(sim.Weight(2), 100);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  // Until 30 s after the canary got all traffic: the 5 stable tasks of the 50 % step.
  while (sim.clock().Now() < full + absl::Seconds(29)) {
    ASSERT_EQ(sim.Live(1), 5) << "at " << sim.clock().Now() - full;
    EXPECT_EQ(sim.Weight(1), 0);
    sim.Step();
  }
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 0; }, 10));
  EXPECT_EQ(sim.Live(2), 10);
}

TEST(WarmRollbackTest, AfterAFinishedCanarySwitchesBackToTheWarmStableSet) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(10, "canary");
  spec.mutable_update_config()->add_canary_steps(10);
  spec.mutable_update_config()->add_canary_steps(50);
  spec.mutable_update_config()->add_canary_steps(100);
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  ASSERT_EQ(sim.Live(1), 5);
  v1::Service out;
  ASSERT_TRUE(Rollback(sim, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  EXPECT_EQ(sim.Weight(1), 100) << "all traffic back on the warm stable tasks at once";
  int max_canary_weight = 0;
  ASSERT_TRUE(
      sim.RunUntil([&] { return sim.Live(1) == 10 && sim.Live(2) == 0; }, 400,
                   [&] { max_canary_weight = std::max(max_canary_weight, sim.Weight(2)); }));
  EXPECT_EQ(max_canary_weight, 0) << "the rollback replayed no step";
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  EXPECT_EQ(RevisionOf(sim, 2).outcome(), v1::REVISION_OUTCOME_ROLLED_BACK);
  EXPECT_EQ(RevisionOf(sim, 1).outcome(), v1::REVISION_OUTCOME_CREATED);
}

// Behaviour 1, cold: once the warm set is gone, the rollback is a rolling update under the
// rollback settings, not a new canary.
TEST(WarmRollbackTest, AfterTheScaleDownDelayTheRollbackIsRolling) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(10, "canary");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(
      sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }, 800));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 0; }));
  const std::string canary_id = sim.Rollout("web")->id();
  v1::Service out;
  ASSERT_TRUE(Rollback(sim, &out).ok());
  EXPECT_EQ(out.revision(), 1);
  auto d = *sim.Rollout("web");
  EXPECT_NE(d.id(), canary_id);
  EXPECT_TRUE(d.rollback());
  EXPECT_EQ(d.strategy(), v1::DEPLOYMENT_STRATEGY_ROLLING);
  const absl::Time start = sim.clock().Now();
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  // One slot at a time, a second each: far from a canary's steps and windows.
  EXPECT_LT(sim.clock().Now() - start, absl::Seconds(30));
  EXPECT_EQ(sim.Rollout("web")->weight(), 0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 10 && sim.Live() == 10; }));
  EXPECT_EQ(RevisionOf(sim, 2).outcome(), v1::REVISION_OUTCOME_ROLLED_BACK);
}

// Behaviour 12: whatever the strategy and however it happens, the revision a rollback went
// back from ends with the outcome rolled-back, and the one it went back to keeps its own.
enum class How { kAutomatic, kByHandDuring, kByHandAfterWarm, kByHandAfterCold };

class RollbackHistoryTest : public testing::TestWithParam<std::tuple<std::string, How>> {};

TEST_P(RollbackHistoryTest, TheRevisionRolledBackFromIsRolledBack) {
  const auto& [strategy, how] = GetParam();
  if (strategy == "rolling" && how == How::kByHandAfterWarm) GTEST_SKIP() << "nothing warm";
  Sim sim;
  v1::ServiceSpec spec = Progressive(3, strategy);
  *spec.mutable_update_config()->mutable_canary_window() = ToProtoDuration(absl::Seconds(4));
  *spec.mutable_update_config()->mutable_scale_down_delay() = ToProtoDuration(absl::Seconds(20));
  ASSERT_TRUE(sim.CreateServing(spec));
  const bool bad = how == How::kAutomatic;
  sim.traffic_gen = [bad](int64_t revision, int weight) -> std::pair<int, int> {
    int n = weight / 2 + 1;
    return {n, bad && revision == 2 ? n / 2 : 0};
  };
  if (bad) {
    sim.behavior = [](const v1::Task& t) {
      Behavior b;
      b.healthy = Version(t) != "v2";
      return b;
    };
  }
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  if (how == How::kByHandDuring) {
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(2) >= 1; }));
  } else if (!bad) {
    ASSERT_TRUE(
        sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }, 800));
    if (how == How::kByHandAfterCold) {
      for (int i = 0; i < 60; ++i) sim.Step();  // past the scale-down delay
    }
  }
  if (!bad) {
    v1::Service out;
    ASSERT_TRUE(Rollback(sim, &out).ok());
  }
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 3 && sim.Live() == 3; }, 800));
  ASSERT_TRUE(sim.RunUntil([&] { return !IsActive(*sim.Rollout("web")); }));
  EXPECT_EQ(sim.Service("web").revision(), 1);
  EXPECT_EQ(RevisionOf(sim, 2).outcome(), v1::REVISION_OUTCOME_ROLLED_BACK);
  EXPECT_EQ(RevisionOf(sim, 1).outcome(), v1::REVISION_OUTCOME_CREATED);
}

std::string HistoryCaseName(const testing::TestParamInfo<std::tuple<std::string, How>>& info) {
  static const char* const kHow[] = {"automatic", "during", "after_warm", "after_cold"};
  const std::string& strategy = std::get<0>(info.param);
  return absl::StrCat(strategy == "blue-green" ? "bluegreen" : strategy, "_",
                      kHow[static_cast<int>(std::get<1>(info.param))]);
}

INSTANTIATE_TEST_SUITE_P(EveryStrategy, RollbackHistoryTest,
                         testing::Combine(testing::Values("rolling", "blue-green", "canary"),
                                          testing::Values(How::kAutomatic, How::kByHandDuring,
                                                          How::kByHandAfterWarm,
                                                          How::kByHandAfterCold)),
                         HistoryCaseName);

}  // namespace
}  // namespace warren::sim

namespace warren::sim {
namespace {

// Behaviour 13: the metrics as the plan names them.
TEST(DeploymentMetricsTest, NamesAndLabelsOfThePlan) {
  Sim sim;
  Registry gauges;
  ManagerMetrics metrics(gauges);
  metrics.AddCanaryGauges(sim.store(), sim.traffic());
  v1::ServiceSpec spec = Progressive(4, "canary");
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = [](int64_t revision, int weight) -> std::pair<int, int> {
    int n = std::max(1, weight / 2);
    return {n, revision == 2 ? n * 3 / 10 : 0};
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));
  std::string text = gauges.Render();
  EXPECT_THAT(text,
              testing::HasSubstr("warren_canary_traffic_weight{service=\"web\",version=\"2\"} 10"));
  EXPECT_THAT(text,
              testing::HasSubstr("warren_canary_traffic_weight{service=\"web\",version=\"1\"} 90"));
  EXPECT_THAT(text, testing::HasSubstr("warren_canary_error_rate{service=\"web\",version=\"2\"}"));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  text = sim.registry().Render();
  EXPECT_THAT(text, testing::HasSubstr("warren_deployments_total{strategy=\"canary\",status="
                                       "\"failed\",outcome=\"rolled_back\"} 1"));
  EXPECT_THAT(text, testing::HasSubstr("warren_rollbacks_total{reason=\"error_rate\"} 1"));
  for (const char* reason : {"health_check", "manual", "latency", "deadline", "unschedulable"}) {
    EXPECT_THAT(text, testing::HasSubstr(
                          absl::StrCat("warren_rollbacks_total{reason=\"", reason, "\"} 0")));
  }

  spec.mutable_update_config()->set_strategy("blue-green");
  sim.traffic_gen = Healthy;
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v3";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_SUCCEEDED; }));
  EXPECT_THAT(sim.registry().Render(),
              testing::HasSubstr("warren_deployments_total{strategy=\"blue-green\",status="
                                 "\"success\",outcome=\"succeeded\"} 1"));
}

}  // namespace
}  // namespace warren::sim
