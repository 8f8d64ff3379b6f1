// Several managers on etcd (issue 14 phase 2), the parts that need no etcd: the workers' and
// the CLI's choice of manager after a failed call, the follower Dispatcher's refusal naming the
// leader, and the grace a controller gives every node when it starts to lead. Fake clock, no
// threads.
#include <memory>
#include <string>
#include <vector>

#include <sstream>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/manager_list.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/controller.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/manager_store.h"
#include "manager/node_liveness.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ManagerListTest, ParsesACommaListOfHostPorts) {
  auto one = ParseManagerList("--manager", "127.0.0.1:8080");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(*one, ElementsAre("127.0.0.1:8080"));
  auto three = ParseManagerList("--manager", "a:1, b.example:2,[::1]:3");
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_THAT(*three, ElementsAre("a:1", "b.example:2", "[::1]:3"));
}

TEST(ManagerListTest, RefusesBadEntriesNamingTheFlagAndTheEntry) {
  struct Case {
    std::string list;
    std::string why;
  };
  for (const Case& c : std::vector<Case>{{"a:1,", "\"\" is empty"},
                                         {"a", "\"a\" has no port"},
                                         {"a:0", "has no port in 1..65535"},
                                         {"a:70000", "has no port in 1..65535"},
                                         {":80", "has no host"},
                                         {"::1:80", "without brackets"},
                                         {"a:1,a:1", "is listed twice"}}) {
    auto parsed = ParseManagerList("--manager", c.list);
    ASSERT_FALSE(parsed.ok()) << c.list;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("--manager: "));
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.why)) << c.list;
  }
}

TEST(ManagerListTest, TheRefusalNamesTheLeaderAndClientsFindIt) {
  const std::string msg = FormatNotLeader("10.0.0.2:8080", "10.0.0.3:8080");
  EXPECT_THAT(msg, HasSubstr("10.0.0.2:8080 does not lead"));
  EXPECT_EQ(ParseLeaderHint(msg), "10.0.0.3:8080");
  const std::string none = FormatNotLeader("10.0.0.2:8080", "");
  EXPECT_THAT(none, HasSubstr("election is under way"));
  EXPECT_EQ(ParseLeaderHint(none), std::nullopt);
  EXPECT_EQ(ParseLeaderHint("connection refused"), std::nullopt);
}

TEST(ManagerListTest, FailsOverToTheNamedLeaderElseTheNextAddress) {
  const std::vector<std::string> m = {"a:1", "b:2", "c:3"};
  // A follower names the leader: straight there.
  EXPECT_EQ(NextManager(m, 0, absl::UnavailableError(FormatNotLeader("a:1", "c:3"))), 2u);
  // Down, unreachable or no leader yet: the next one, wrapping around.
  EXPECT_EQ(NextManager(m, 0, absl::UnavailableError("failed to connect to all addresses")), 1u);
  EXPECT_EQ(NextManager(m, 2, absl::DeadlineExceededError("deadline")), 0u);
  EXPECT_EQ(NextManager(m, 1, absl::UnavailableError(FormatNotLeader("b:2", ""))), 2u);
  // A leader outside the list: the next one (which knows it too).
  EXPECT_EQ(NextManager(m, 0, absl::UnavailableError(FormatNotLeader("a:1", "d:4"))), 1u);
  // Any other error is the manager's answer: stay.
  EXPECT_EQ(NextManager(m, 1, absl::NotFoundError("node not found")), 1u);
  EXPECT_EQ(NextManager(m, 1, absl::PermissionDeniedError("revoked")), 1u);
}

TEST(ManagerRecordTest, RoundTripsAndNamesAWildcardHostByTheHostName) {
  ManagerRecord me = ThisManager("m-1", "127.0.0.1:8080");
  EXPECT_EQ(me.api_addr, "127.0.0.1:8080");
  auto back = ParseManagerRecord(FormatManagerRecord(me));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, "m-1");
  EXPECT_EQ(back->api_addr, "127.0.0.1:8080");
  EXPECT_EQ(back->name, me.name);
  ManagerRecord wild = ThisManager("m-2", "0.0.0.0:9000");
  EXPECT_EQ(wild.api_addr, wild.name + ":9000");
  EXPECT_FALSE(ParseManagerRecord("{\"name\": 1}").ok());
  EXPECT_FALSE(ParseManagerRecord("not json").ok());
}

TEST(ManagerListTest, TheCliRefusesABadManagerListAsAUsageError) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"warren", "--manager", "10.0.0.1:8080,10.0.0.2", "service", "ls"}, out, err),
            2);
  EXPECT_THAT(err.str(), HasSubstr("--manager: \"10.0.0.2\" has no port"));
}

class LeadershipTest : public ::testing::Test {
 protected:
  static constexpr absl::Duration kNodeTimeout = absl::Seconds(15);

  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    events_ = std::make_unique<EventLog>(*store_, clock_);
    liveness_ = std::make_unique<NodeLiveness>(clock_);
    api_ = std::make_unique<ManagerApi>(*store_, clock_, *events_, *liveness_, ApiOptions{});
    controller_ = std::make_unique<Controller>(*store_, clock_, *events_, *liveness_, kNodeTimeout);
    controller_->SetLeadership([this] { return leading_; });
    v1::RegisterNodeRequest req;
    req.set_name("node-1");
    req.set_runtime("fake");
    req.set_address_range("127.52.0.0/16");
    v1::Node node;
    ASSERT_TRUE(api_->dispatcher().RegisterNode(nullptr, &req, &node).ok());
    node_id_ = node.id();
  }

  v1::NodeState NodeState() { return GetObject<v1::Node>(*store_, node_id_)->state(); }

  // The server's loop: a pass only while leading.
  void Tick() {
    if (controller_->UpdateLeadership()) controller_->RunPass();
  }

  testing_util::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<NodeLiveness> liveness_;
  std::unique_ptr<ManagerApi> api_;
  std::unique_ptr<Controller> controller_;
  std::string node_id_;
  bool leading_ = false;
};

TEST_F(LeadershipTest, ANewLeaderGivesEveryNodeOneTimeoutOfGraceFromWhenItLeads) {
  // This manager follows for a long time; the node's heartbeats go to the leader.
  clock_.Advance(kNodeTimeout * 4);
  Tick();
  EXPECT_EQ(controller_->stats().passes, 0u);
  EXPECT_FALSE(controller_->stats().leading);
  // It starts to lead: its last heartbeat from the node is four timeouts old, yet the node
  // stays ready for one timeout from now.
  leading_ = true;
  Tick();
  EXPECT_TRUE(controller_->stats().leading);
  EXPECT_EQ(controller_->stats().term_passes, 1u);
  EXPECT_EQ(NodeState(), v1::NODE_STATE_READY);
  clock_.Advance(kNodeTimeout - absl::Seconds(1));
  Tick();
  EXPECT_EQ(NodeState(), v1::NODE_STATE_READY);
  // A node that stays silent through the grace is down.
  clock_.Advance(absl::Seconds(2));
  Tick();
  EXPECT_EQ(NodeState(), v1::NODE_STATE_DOWN);
}

TEST_F(LeadershipTest, HeartbeatsDuringTheGraceKeepTheNodeAndAFollowerRunsNoPass) {
  leading_ = true;
  Tick();
  // Deposed: no pass, whatever the clock says.
  leading_ = false;
  clock_.Advance(kNodeTimeout * 3);
  const uint64_t passes = controller_->stats().passes;
  Tick();
  EXPECT_EQ(controller_->stats().passes, passes);
  EXPECT_EQ(NodeState(), v1::NODE_STATE_READY);
  // Leads again: a new term, with grace, and heartbeats from then on keep the node.
  leading_ = true;
  Tick();
  EXPECT_EQ(controller_->stats().term_passes, 1u);
  for (int i = 0; i < 6; ++i) {
    clock_.Advance(kNodeTimeout / 3);
    liveness_->Beat(node_id_);
    Tick();
  }
  EXPECT_EQ(NodeState(), v1::NODE_STATE_READY);
}

TEST_F(LeadershipTest, AFollowersDispatcherRefusesNamingTheLeaderAndItsControlApiServes) {
  api_->SetLeadership(
      [] { return absl::UnavailableError(FormatNotLeader("127.0.0.1:2", "127.0.0.1:3")); });
  v1::HeartbeatRequest hb;
  hb.set_node_id(node_id_);
  v1::HeartbeatResponse resp;
  grpc::Status s = api_->dispatcher().Heartbeat(nullptr, &hb, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ParseLeaderHint(s.error_message()), "127.0.0.1:3") << s.error_message();
  v1::RegisterNodeRequest reg;
  reg.set_name("node-2");
  reg.set_runtime("fake");
  reg.set_address_range("127.53.0.0/16");
  v1::Node node;
  s = api_->dispatcher().RegisterNode(nullptr, &reg, &node);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("the leader is at 127.0.0.1:3"));
  v1::ReportTaskStatusRequest report;
  report.set_node_id(node_id_);
  v1::ReportTaskStatusResponse report_resp;
  EXPECT_EQ(api_->dispatcher().ReportTaskStatus(nullptr, &report, &report_resp).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Users never see it: the Control API serves on every manager.
  v1::CreateServiceRequest create;
  create.mutable_spec()->set_name("web");
  create.mutable_spec()->set_replicas(1);
  create.mutable_spec()->mutable_template_()->set_command("/bin/true");
  v1::Service svc;
  s = api_->control().CreateService(nullptr, &create, &svc);
  EXPECT_TRUE(s.ok()) << s.error_message();
  v1::ListNodesResponse nodes;
  v1::ListNodesRequest list;
  EXPECT_TRUE(api_->control().ListNodes(nullptr, &list, &nodes).ok());
}

}  // namespace
}  // namespace warren
