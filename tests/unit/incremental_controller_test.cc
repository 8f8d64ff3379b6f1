// The controller's incremental passes (issue 18): a change is acted on by a pass that looks
// at the changed service only, and a change the feed did not report is repaired by the
// periodic resync. Fake clock, no threads.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/task_state.h"
#include "forwarding_store.h"
#include "gtest/gtest.h"
#include "manager/controller.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/node_liveness.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

// A lossy feed whose commits can also fail as a conflict or a transaction limit would.
class LossyFeedStore : public testing_util::LossyFeedStore {
 public:
  using testing_util::LossyFeedStore::LossyFeedStore;
  // The next commit of more than this many mutations fails as a conflict (0: none does).
  size_t abort_next_commit_over = 0;
  // Refuses commits of more mutations, as etcd's transaction limit does (0: no limit).
  size_t max_mutations = 0;

  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override {
    if (abort_next_commit_over > 0 && mutations.size() > abort_next_commit_over) {
      abort_next_commit_over = 0;
      return absl::AbortedError("a concurrent write won");
    }
    if (max_mutations > 0 && mutations.size() > max_mutations) {
      return absl::InvalidArgumentError("too many mutations for one commit");
    }
    return inner_.Commit(mutations);
  }
  size_t MaxMutationsPerCommit() const override {
    return max_mutations > 0 ? max_mutations : inner_.MaxMutationsPerCommit();
  }
};

class IncrementalControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    lossy_ = std::make_unique<LossyFeedStore>(*store_);
    events_ = std::make_unique<EventLog>(*store_, clock_);
    liveness_ = std::make_unique<NodeLiveness>(clock_);
    api_ = std::make_unique<ManagerApi>(*store_, clock_, *events_, *liveness_, ApiOptions{});
    controller_ =
        std::make_unique<Controller>(*lossy_, clock_, *events_, *liveness_, absl::Seconds(15));
    controller_->SetResyncInterval(absl::Minutes(5));
    v1::RegisterNodeRequest req;
    req.set_name("node-1");
    req.set_runtime("fake");
    req.set_address_range("127.51.0.0/16");
    v1::Node node;
    ASSERT_TRUE(api_->dispatcher().RegisterNode(nullptr, &req, &node).ok());
    node_id_ = node.id();
  }

  void Create(const std::string& name, int replicas) {
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(replicas);
    req.mutable_spec()->mutable_template_()->set_command("/bin/true");
    v1::Service out;
    grpc::Status s = api_->control().CreateService(nullptr, &req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void Scale(const std::string& name, int replicas) {
    v1::ScaleServiceRequest req;
    req.set_name_or_id(name);
    req.set_replicas(replicas);
    v1::Service out;
    grpc::Status s = api_->control().ScaleService(nullptr, &req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The worker's part: assigned tasks run.
  void RunAssigned() {
    std::vector<Mutation> m;
    for (v1::Task t : ListObjects<v1::Task>(*store_)) {
      if (t.status().state() != v1::TASK_STATE_ASSIGNED ||
          t.desired_state() != v1::TASK_STATE_RUNNING) {
        continue;
      }
      const uint64_t version = t.version();
      t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
      m.push_back(PutMutation(t, version));
    }
    if (!m.empty()) ASSERT_TRUE(store_->Commit(m).ok());
  }

  void Step() {
    clock_.Advance(absl::Milliseconds(500));
    liveness_->Beat(node_id_);
    RunAssigned();
    controller_->RunPass();
  }

  int LiveTasks(const std::string& name) {
    auto service = GetObjectByName<v1::Service>(*store_, name);
    int n = 0;
    for (const auto& t : ListObjects<v1::Task>(*store_)) {
      if (t.service_id() == service->id() && t.desired_state() == v1::TASK_STATE_RUNNING) n++;
    }
    return n;
  }

  bool AnyDeploymentActive() {
    for (const auto& d : ListObjects<v1::Deployment>(*store_)) {
      if (d.phase() == v1::DEPLOYMENT_PHASE_PENDING ||
          d.phase() == v1::DEPLOYMENT_PHASE_PROGRESSING ||
          d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
        return true;
      }
    }
    return false;
  }

  // Creates `n` services of 2 replicas and steps until they run and every deployment ended.
  void Settle(int n) {
    for (int i = 0; i < n; ++i) Create("s" + std::to_string(i), 2);
    for (int i = 0; i < 40 && (AnyDeploymentActive() || i < 4); ++i) Step();
    ASSERT_FALSE(AnyDeploymentActive());
    for (int i = 0; i < n; ++i) ASSERT_EQ(LiveTasks("s" + std::to_string(i)), 2);
  }

  testing_util::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<LossyFeedStore> lossy_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<NodeLiveness> liveness_;
  std::unique_ptr<ManagerApi> api_;
  std::unique_ptr<Controller> controller_;
  std::string node_id_;
};

TEST_F(IncrementalControllerTest, AChangeToOneServiceIsActedOnWithoutAFullPass) {
  Settle(40);
  const ControllerStats before = controller_->stats();
  // Quiet: a pass with nothing changed and nothing due looks at no service.
  Step();
  EXPECT_EQ(controller_->stats().last_visited, 0u);

  Scale("s7", 3);
  controller_->RunPass();
  EXPECT_EQ(LiveTasks("s7"), 3);
  const ControllerStats after = controller_->stats();
  EXPECT_EQ(after.full_passes, before.full_passes);
  EXPECT_EQ(after.last_visited, 1u);
  // Scaling touched one service of 40: the work stays a few visits, not 40 per pass.
  EXPECT_LT(after.services_visited - before.services_visited, 5u);
}

TEST_F(IncrementalControllerTest, ASchedulingRoundDoesNotCountThePlacedTasks) {
  // 10,000 placed tasks of 10 services.
  for (int i = 0; i < 10; ++i) Create("big" + std::to_string(i), 1000);
  for (int i = 0; i < 40 && (AnyDeploymentActive() || i < 4); ++i) Step();
  ASSERT_FALSE(AnyDeploymentActive());
  ASSERT_EQ(LiveTasks("big3"), 1000);
  RunAssigned();

  Scale("big3", 1001);
  controller_->RunPass();
  int assigned = 0;
  for (const auto& t : ListObjects<v1::Task>(*store_)) {
    assigned += t.status().state() == v1::TASK_STATE_ASSIGNED;
  }
  EXPECT_EQ(assigned, 1);
  // The round placing the new task looked at it, the node and an address or two: nothing per
  // placed task (it used to copy and count all 10,000 of them).
  EXPECT_LE(controller_->stats().last_schedule_work, 10u);
}

TEST_F(IncrementalControllerTest, AMissedEventIsRepairedByTheResync) {
  Settle(3);
  // The feed loses every change of a service record from now on.
  lossy_->drop = [](const Change& c) { return c.kind == Kind::kService; };
  Scale("s1", 4);
  Step();
  Step();
  // Nothing told the controller: the service keeps its 2 tasks...
  EXPECT_EQ(LiveTasks("s1"), 2);
  // ...until the resync compares the store with what the controller holds. It finds the one
  // service and looks at it alone: no pass over everything.
  const ControllerStats before = controller_->stats();
  clock_.Advance(absl::Minutes(5));
  Step();
  EXPECT_EQ(LiveTasks("s1"), 4);
  const ControllerStats after = controller_->stats();
  EXPECT_EQ(after.full_passes, before.full_passes);
  EXPECT_EQ(after.resyncs, before.resyncs + 1);
  EXPECT_EQ(after.repaired, before.repaired + 1);
  EXPECT_LT(after.services_visited - before.services_visited, 3u);
}

TEST_F(IncrementalControllerTest, ADeletedServiceIsStoppedWithoutAFullPass) {
  Settle(5);
  const uint64_t full_before = controller_->stats().full_passes;
  v1::DeleteServiceRequest req;
  req.set_name_or_id("s2");
  v1::DeleteServiceResponse resp;
  ASSERT_TRUE(api_->control().DeleteService(nullptr, &req, &resp).ok());
  for (int i = 0; i < 5; ++i) Step();
  int left = 0;
  for (const auto& t : ListObjects<v1::Task>(*store_)) {
    if (t.service_name() == "s2" && t.desired_state() == v1::TASK_STATE_RUNNING) left++;
  }
  EXPECT_EQ(left, 0);
  EXPECT_EQ(controller_->stats().full_passes, full_before);
}

TEST_F(IncrementalControllerTest, TheTasksOfManyNewServicesAreCommittedTogether) {
  controller_->RunPass();
  for (int i = 0; i < 40; ++i) Create("n" + std::to_string(i), 2);
  const ControllerStats before = controller_->stats();
  controller_->RunPass();
  for (int i = 0; i < 40; ++i) ASSERT_EQ(LiveTasks("n" + std::to_string(i)), 2) << i;
  // One commit for the 40 services' tasks and one for their placement, not one per service:
  // each commit is an fsync, which bounded the creates a pass could keep up with.
  EXPECT_LE(controller_->stats().commits - before.commits, 2u);
}

TEST_F(IncrementalControllerTest, AConflictInABatchCostsOnlyItsOwnService) {
  controller_->RunPass();
  for (int i = 0; i < 40; ++i) Create("n" + std::to_string(i), 2);
  // The joint commit fails; each service's tasks are then committed on their own.
  lossy_->abort_next_commit_over = 20;
  controller_->RunPass();
  for (int i = 0; i < 40; ++i) ASSERT_EQ(LiveTasks("n" + std::to_string(i)), 2) << i;
}

// A store that takes at most 5 mutations per commit (etcd takes 63): every change the
// controller and the API make in bulk still happens, in parts.
class CommitLimitTest : public IncrementalControllerTest {
 protected:
  void SetUp() override {
    IncrementalControllerTest::SetUp();
    lossy_->max_mutations = 5;
    // The API writes through the limited store too.
    api_ = std::make_unique<ManagerApi>(*lossy_, clock_, *events_, *liveness_, ApiOptions{});
  }

  std::vector<v1::Task> TasksOf(const std::string& service_id) {
    std::vector<v1::Task> out;
    for (auto& t : ListObjects<v1::Task>(*store_)) {
      if (t.service_id() == service_id) out.push_back(std::move(t));
    }
    return out;
  }
};

TEST_F(CommitLimitTest, AScaleUpLargerThanOneCommitIsCommittedInParts) {
  Create("big", 1);
  for (int i = 0; i < 4; ++i) Step();
  Scale("big", 23);
  for (int i = 0; i < 10; ++i) Step();
  EXPECT_EQ(LiveTasks("big"), 23);
  int running = 0;
  for (const auto& t : ListObjects<v1::Task>(*store_)) {
    running += t.status().state() == v1::TASK_STATE_RUNNING;
  }
  EXPECT_EQ(running, 23);
}

TEST_F(CommitLimitTest, ARemovalLargerThanOneCommitLeavesTheRestToTheController) {
  Create("big", 12);
  for (int i = 0; i < 6; ++i) Step();
  ASSERT_EQ(LiveTasks("big"), 12);
  const std::string id = GetObjectByName<v1::Service>(*store_, "big")->id();
  v1::DeleteServiceRequest req;
  req.set_name_or_id("big");
  v1::DeleteServiceResponse resp;
  grpc::Status s = api_->control().DeleteService(nullptr, &req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(GetObjectByName<v1::Service>(*store_, "big").has_value());
  for (int i = 0; i < 5; ++i) Step();
  for (const auto& t : TasksOf(id)) {
    EXPECT_EQ(t.desired_state(), v1::TASK_STATE_SHUTDOWN) << t.id();
  }
  for (const auto& r : ListObjects<v1::Revision>(*store_)) EXPECT_NE(r.service_id(), id);
  for (const auto& d : ListObjects<v1::Deployment>(*store_)) EXPECT_NE(d.service_id(), id);
}

TEST_F(CommitLimitTest, ANodeWithMoreTasksThanOneCommitGoesDownWithAllOfThem) {
  Create("big", 12);
  for (int i = 0; i < 6; ++i) Step();
  ASSERT_EQ(LiveTasks("big"), 12);
  const std::string id = GetObjectByName<v1::Service>(*store_, "big")->id();
  // The node stops beating.
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(absl::Seconds(10));
    controller_->RunPass();
  }
  auto node = GetObject<v1::Node>(*store_, node_id_);
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(node->state(), v1::NODE_STATE_DOWN);
  int on_node = 0;
  for (const auto& t : TasksOf(id)) {
    if (t.node_id() != node_id_) continue;
    on_node++;
    EXPECT_TRUE(t.status().state() == v1::TASK_STATE_ORPHANED)
        << t.id() << " " << t.status().state();
  }
  EXPECT_EQ(on_node, 12);
}

}  // namespace
}  // namespace warren
