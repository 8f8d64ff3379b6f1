// The routing rule of ComputeRoutingTable: which tasks an active deployment's min-ready holds
// back, on a fake clock.
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/traffic.h"

namespace warren {
namespace {

class RoutingRuleTest : public ::testing::Test {
 protected:
  RoutingRuleTest() {
    service_.set_id("svc");
    service_.mutable_spec()->set_name("web");
    auto* port = service_.mutable_spec()->mutable_template_()->add_ports();
    port->set_target(8080);
    port->set_published(80);
  }

  // A rolling update 1 -> 2 with min-ready 4s, begun at `created`.
  v1::Deployment Rolling(absl::Time created, v1::DeploymentPhase phase, int64_t target) {
    v1::Deployment d;
    d.set_id("dep");
    d.set_service_id("svc");
    d.set_from_revision(1);
    d.set_to_revision(2);
    d.set_target_revision(target);
    d.set_strategy(v1::DEPLOYMENT_STRATEGY_ROLLING);
    d.set_phase(phase);
    *d.mutable_config()->mutable_min_ready() = ToProtoDuration(absl::Seconds(4));
    *d.mutable_created_at() = ToProtoTime(created);
    return d;
  }

  // A running, healthy task created at `created` and healthy since `healthy_since`.
  v1::Task Healthy(const std::string& id, int64_t revision, absl::Time created,
                   absl::Time healthy_since) {
    v1::Task t;
    t.set_id(id);
    t.set_service_id("svc");
    t.set_revision(revision);
    t.set_slot(static_cast<int>(tasks_.size()) + 1);
    t.set_desired_state(v1::TASK_STATE_RUNNING);
    t.set_address("127.1.0." + std::to_string(tasks_.size() + 1));
    t.set_port(8080);
    t.mutable_spec()->mutable_health_check()->mutable_http()->set_path("/healthz");
    *t.mutable_created_at() = ToProtoTime(created);
    t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
    *t.mutable_status()->mutable_started_at() = ToProtoTime(created);
    t.mutable_status()->mutable_health()->set_state(v1::HEALTH_STATE_HEALTHY);
    *t.mutable_status()->mutable_health()->mutable_healthy_since() = ToProtoTime(healthy_since);
    return t;
  }

  std::set<std::string> Routed(const std::vector<v1::Deployment>& deployments,
                               absl::Time* next_change = nullptr) {
    v1::RoutingTable table =
        ComputeRoutingTable({service_}, tasks_, deployments, clock_.Now(), next_change);
    std::set<std::string> out;
    for (const auto& s : table.services()) {
      for (const auto& r : s.revisions()) {
        for (const auto& e : r.endpoints()) out.insert(e.task_id());
      }
    }
    return out;
  }

  FakeClock clock_;
  v1::Service service_;
  std::vector<v1::Task> tasks_;
};

// Issue 17 D6: after a restart mid-rollout every task reported a fresh healthy-since, and
// min-ready then held back every task of the service: no endpoint at all for 4 s.
TEST_F(RoutingRuleTest, TasksThatServedBeforeTheDeploymentStayRoutedWhateverTheirHealthySince) {
  const absl::Time t0 = clock_.Now();
  for (int i = 0; i < 3; ++i) {
    tasks_.push_back(Healthy("old" + std::to_string(i), 1, t0, t0 + absl::Seconds(1)));
  }
  clock_.Advance(absl::Minutes(10));
  const absl::Time rollout_began = clock_.Now();
  v1::Deployment d = Rolling(rollout_began, v1::DEPLOYMENT_PHASE_PROGRESSING, 2);
  clock_.Advance(absl::Seconds(1));
  tasks_.push_back(Healthy("new0", 2, clock_.Now(), clock_.Now()));
  clock_.Advance(absl::Seconds(30));
  // A restart: the adopted old tasks (and the first new one) turn healthy again just now.
  for (auto& t : tasks_) {
    *t.mutable_status()->mutable_health()->mutable_healthy_since() = ToProtoTime(clock_.Now());
  }
  absl::Time next = absl::InfiniteFuture();
  EXPECT_EQ(Routed({d}, &next), (std::set<std::string>{"old0", "old1", "old2"}))
      << "the old revision serves on; only the deployment's own task waits out min-ready";
  EXPECT_EQ(next, clock_.Now() + absl::Seconds(4));
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(Routed({d}), (std::set<std::string>{"old0", "old1", "old2", "new0"}));
}

TEST_F(RoutingRuleTest, MinReadyHoldsBackOnlyTheTasksTheDeploymentCreated) {
  const absl::Time t0 = clock_.Now();
  tasks_.push_back(Healthy("old", 1, t0, t0));
  clock_.Advance(absl::Minutes(1));
  v1::Deployment d = Rolling(clock_.Now(), v1::DEPLOYMENT_PHASE_PROGRESSING, 2);
  tasks_.push_back(Healthy("new-fresh", 2, clock_.Now(), clock_.Now() + absl::Seconds(2)));
  tasks_.push_back(Healthy("new-proven", 2, clock_.Now(), clock_.Now()));
  clock_.Advance(absl::Seconds(5));
  // new-proven has been healthy 5 s (> 4 s), new-fresh only 3 s.
  absl::Time next = absl::InfiniteFuture();
  EXPECT_EQ(Routed({d}, &next), (std::set<std::string>{"old", "new-proven"}));
  EXPECT_EQ(next, clock_.Now() + absl::Seconds(1));
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Routed({d}), (std::set<std::string>{"old", "new-fresh", "new-proven"}));
}

TEST_F(RoutingRuleTest, RollbackHoldsBackItsNewTasksButNotTheStableOnes) {
  const absl::Time t0 = clock_.Now();
  tasks_.push_back(Healthy("stable", 1, t0, t0));
  clock_.Advance(absl::Minutes(1));
  v1::Deployment d = Rolling(clock_.Now(), v1::DEPLOYMENT_PHASE_ROLLING_BACK, 1);
  clock_.Advance(absl::Seconds(10));
  // A task of the stable revision started by the rollback is as unproven as any new task.
  tasks_.push_back(Healthy("stable-new", 1, clock_.Now(), clock_.Now()));
  *tasks_[0].mutable_status()->mutable_health()->mutable_healthy_since() =
      ToProtoTime(clock_.Now());
  EXPECT_EQ(Routed({d}), (std::set<std::string>{"stable"}));
}

TEST_F(RoutingRuleTest, WithoutAnActiveDeploymentEveryServingTaskIsRouted) {
  const absl::Time now = clock_.Now();
  tasks_.push_back(Healthy("a", 1, now, now));
  v1::Deployment done = Rolling(now, v1::DEPLOYMENT_PHASE_SUCCEEDED, 2);
  EXPECT_EQ(Routed({done}), (std::set<std::string>{"a"}));
  EXPECT_EQ(Routed({}), (std::set<std::string>{"a"}));
}

}  // namespace
}  // namespace warren
