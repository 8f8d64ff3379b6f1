// Blue/green and canary state machines on the fake clock: switch, promote, rollback inside the
// window, canary steps with exact weights and task counts, analysis failures, abort, restarts
// at every step.
#include "absl/strings/str_cat.h"
#include "rollout_sim.h"

namespace warren::sim {
namespace {

// Healthy traffic: 20 requests a step shared by weight, no errors.
std::pair<int, int> Healthy(int64_t, int weight) { return {weight / 5, 0}; }

TEST(BlueGreenTest, SwitchesWhenGreenIsReadyAndRemovesBlueAfterTheDelay) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(3, "blue-green");
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 3; }));
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
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 2; }));
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
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 3; }));
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
  EXPECT_EQ(sim.Rollout("web")->rollback_reason(), "manual");
}

TEST(BlueGreenTest, PostSwitchAnalysisFailureFlipsBack) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(2, "blue-green");
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 2; }));
  sim.traffic_gen = [](int64_t revision, int weight) -> std::pair<int, int> {
    int n = weight / 5;
    return {n, revision == 2 ? n / 2 : 0};  // green fails half its requests
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), "error_rate");
  EXPECT_NE(d.reason().find("error_rate"), std::string::npos) << d.reason();
  EXPECT_EQ(sim.Service("web").revision(), 1);
  EXPECT_EQ(sim.Live(1), 2);
}

TEST(CanaryTest, WalksThroughTheStepsWithExactWeightsAndCounts) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(10, "canary");
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 10; }));
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
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 4; }));
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
  EXPECT_EQ(d.rollback_reason(), "error_rate");
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
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 4; }));
  sim.traffic_gen = Healthy;
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));
  v1::PromoteRequest promote;
  promote.set_name_or_id("web");
  promote.set_full(true);
  v1::Deployment d;
  ASSERT_TRUE(sim.api().PromoteRollout(nullptr, &promote, &d).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 100; }));
  EXPECT_EQ(sim.Weight(2), 100);
  v1::RolloutRequest abort;
  abort.set_name_or_id("web");
  ASSERT_TRUE(sim.api().AbortRollout(nullptr, &abort, &d).ok());
  EXPECT_EQ(d.weight(), 0);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == v1::DEPLOYMENT_PHASE_ROLLED_BACK; }));
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(1) == 4 && sim.Live(2) == 0; }));
}

TEST(CanaryTest, ThinTrafficPolicies) {
  for (const std::string policy : {"pass", "fail"}) {
    Sim sim;
    v1::ServiceSpec spec = Progressive(2, "canary");
    spec.mutable_update_config()->set_thin_traffic(policy);
    sim.Create(spec);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 2; }));
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
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 3; }));
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
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 4; }));
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
