// Rolling updates judge the new revision's traffic (fake clock, simulated worker and proxies):
// a bad revision is rolled back with the failing check as the reason, a good one succeeds,
// thin traffic never fails it, the analysis can be turned off, and its window survives a
// manager restart.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "rollout_sim.h"
#include "test_util.h"

namespace warren::sim {
namespace {

// A rolling service of `replicas` that publishes a port (rolling analysis on by default).
v1::ServiceSpec PublishedRolling(int replicas) {
  v1::ServiceSpec spec = WebSpec(replicas);
  auto* port = spec.mutable_template_()->add_ports();
  port->set_target(8080);
  port->set_published(18080);
  return spec;
}

std::optional<v1::AnalysisResult> Check(Sim& sim, const std::string& check) {
  auto d = sim.Rollout("web");
  if (!d) return std::nullopt;
  for (const auto& r : d->analysis()) {
    if (r.check() == check) return r;
  }
  return std::nullopt;
}

bool Ended(Sim& sim) {
  const auto phase = sim.Phase("web");
  return phase == v1::DEPLOYMENT_PHASE_SUCCEEDED || phase == v1::DEPLOYMENT_PHASE_ROLLED_BACK ||
         phase == v1::DEPLOYMENT_PHASE_FAILED;
}

// Revision 2 answers `failed_percent` of its requests with 5xx; each revision gets requests
// in proportion to its routing weight (100 requests a step for the whole service).
std::function<std::pair<int, int>(int64_t, int)> Traffic(int failed_percent) {
  return [failed_percent](int64_t revision, int weight) -> std::pair<int, int> {
    if (revision != 2) return {weight, 0};
    return {weight, weight * failed_percent / 100};
  };
}

// Creates `spec`, sends `traffic` from then on, updates to v2 and runs until the deployment
// ended; returns it.
v1::Deployment UpdateUntilEnded(Sim& sim, v1::ServiceSpec spec,
                                std::function<std::pair<int, int>(int64_t, int)> traffic) {
  EXPECT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = std::move(traffic);
  ToV2(&spec);
  EXPECT_TRUE(sim.Update(spec).ok());
  EXPECT_TRUE(sim.RunUntil([&] { return Ended(sim); }));
  return *sim.Rollout("web");
}

TEST(RollingAnalysisTest, HalfErrorsRollBackWithTheCheckAsReason) {
  Sim sim;
  const v1::Deployment d = UpdateUntilEnded(sim, PublishedRolling(4), Traffic(50));
  EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_ROLLED_BACK);
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_ERROR_RATE);
  EXPECT_THAT(d.reason(), testing::ContainsRegex("error_rate [0-9.]+ exceeds 5: "));
  EXPECT_TRUE(sim.RunUntil([&] { return sim.Live(2) == 0; }));
  EXPECT_THAT(sim.registry().Render(),
              testing::HasSubstr("warren_rollbacks_total{reason=\"error_rate\"} 1"));
}

TEST(RollingAnalysisTest, HealthyRevisionSucceedsAfterItsWindow) {
  Sim sim;
  const v1::Deployment d = UpdateUntilEnded(sim, PublishedRolling(4), Traffic(1));
  EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_SUCCEEDED) << d.reason();
  EXPECT_GE(FromProtoTime(d.finished_at()) - FromProtoTime(d.created_at()), absl::Seconds(10))
      << "a rolling update is observed for its window (10 s) before it succeeds";
  ASSERT_TRUE(Check(sim, "error_rate").has_value()) << "the analysis ran";
  EXPECT_TRUE(Check(sim, "error_rate")->passed());
}

// The batch that would replace the previous revision's last task waits until the window is
// over: until then a bad revision's 5xx can be answered again by the previous revision.
TEST(RollingAnalysisTest, ThePreviousRevisionKeepsATaskUntilTheWindowIsOver) {
  Sim sim;
  v1::ServiceSpec spec = PublishedRolling(4);
  ASSERT_TRUE(sim.CreateServing(spec));
  sim.traffic_gen = Traffic(1);
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  const absl::Time settled = sim.clock().Now() + absl::Seconds(10);
  int fewest_v1 = 4;
  bool three_replaced = false;
  ASSERT_TRUE(sim.RunUntil([&] {
    if (sim.clock().Now() < settled) fewest_v1 = std::min(fewest_v1, sim.Live(1));
    three_replaced = three_replaced || sim.Live(2) >= 3;
    return Ended(sim);
  }));
  EXPECT_TRUE(three_replaced);
  EXPECT_EQ(fewest_v1, 1) << "revision 1 kept one task through the window, and no more";
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_SUCCEEDED) << sim.Rollout("web")->reason();
  EXPECT_EQ(sim.Live(1), 0);
}

TEST(RollingAnalysisTest, TooFewRequestsWaitAndDoNotFail) {
  Sim sim;
  v1::ServiceSpec spec = PublishedRolling(4);
  ASSERT_TRUE(sim.CreateServing(spec));
  // Every request of revision 2 fails, but there are fewer than min-requests (50).
  sim.traffic_gen = [](int64_t revision, int weight) -> std::pair<int, int> {
    if (revision != 2 || weight == 0) return {0, 0};
    return {1, 1};
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return Check(sim, "requests").has_value(); }));
  EXPECT_EQ(Check(sim, "requests")->state(), v1::ANALYSIS_STATE_WAITING);
  ASSERT_TRUE(sim.RunUntil([&] { return Ended(sim); }));
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_SUCCEEDED) << sim.Rollout("web")->reason();
}

TEST(RollingAnalysisTest, DisabledOrWithoutPublishedPortsNothingIsJudged) {
  for (bool published : {true, false}) {
    SCOPED_TRACE(published ? "rollingAnalysis: false" : "no published port");
    Sim sim;
    v1::ServiceSpec spec = published ? PublishedRolling(4) : WebSpec(4);
    if (published) spec.mutable_update_config()->set_rolling_analysis(false);
    const v1::Deployment d = UpdateUntilEnded(sim, spec, Traffic(50));
    EXPECT_EQ(d.phase(), v1::DEPLOYMENT_PHASE_SUCCEEDED) << d.reason();
    EXPECT_EQ(d.analysis_size(), 0);
    EXPECT_FALSE(d.config().rolling_analysis());
  }
}

// The requests seen before a manager restart still count (separate worker: its proxies kept
// counting; hybrid: they restarted too and the window's checkpoint in the store holds them).
class RollingAnalysisRestartTest : public testing::TestWithParam<bool> {};

TEST_P(RollingAnalysisRestartTest, JudgesTheRequestsSeenBeforeTheRestart) {
  const bool hybrid = GetParam();
  Sim sim;
  v1::ServiceSpec spec = PublishedRolling(2);
  auto* uc = spec.mutable_update_config();
  *uc->mutable_rolling_window() = ToProtoDuration(absl::Minutes(5));
  uc->set_min_requests(100);
  ASSERT_TRUE(sim.CreateServing(spec));
  // Revision 2 gets at most `budget` requests in all, 20 a step; 30 % of them fail.
  int budget = 80, sent = 0;
  sim.traffic_gen = [&](int64_t revision, int weight) -> std::pair<int, int> {
    if (revision != 2 || weight == 0) return {0, 0};
    const int n = std::min(20, budget - sent);
    sent += n;
    return {n, n * 3 / 10};
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sent == budget; }));
  // Hybrid mode loses what came after the last checkpoint; let one be written.
  for (int i = 0; i < 12; ++i) sim.Step();
  ASSERT_TRUE(Check(sim, "requests").has_value());
  ASSERT_EQ(Check(sim, "requests")->value(), 80) << "80 requests: too few to judge yet";
  ASSERT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PROGRESSING);

  sim.Restart(/*proxy_restarts=*/hybrid);
  for (int i = 0; i < 4; ++i) sim.Step();
  EXPECT_EQ(Check(sim, "requests")->value(), 80) << "the restarted manager forgot the window";
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PROGRESSING);
  // 20 more requests make 100: judged on all of them at once.
  budget = 100;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") != v1::DEPLOYMENT_PHASE_PROGRESSING; }));
  const v1::Deployment d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), v1::ROLLBACK_REASON_ERROR_RATE);
  EXPECT_NE(d.reason().find("error_rate 30 exceeds 5: 30 5xx and 0 connect errors in 100"),
            std::string::npos)
      << d.reason();
}

INSTANTIATE_TEST_SUITE_P(Modes, RollingAnalysisRestartTest, testing::Bool(),
                         [](const auto& info) { return info.param ? "hybrid" : "separate"; });

}  // namespace
}  // namespace warren::sim
