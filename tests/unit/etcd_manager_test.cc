// Managers on etcd (--store etcd://...): the API and the controllers work on etcd, the state
// outlives a manager, several managers share one etcd with one of them leading, and workers
// fail over to the next leader without their tasks restarting (issue 14). Skipped with the
// reason without /usr/bin/etcd.

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "etcd_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "store/etcd_store.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/agent.h"
#include "worker/fake_driver.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::EtcdCluster;
using testing_util::WaitFor;

class EtcdManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
    auto cluster = EtcdCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    etcd_ = std::move(*cluster);
  }

  ManagerOptions Options(const std::string& name) {
    ManagerOptions mo = testing_util::TestManagerOptions((dir_.path() / name).string());
    mo.store.etcd_endpoints = etcd_->endpoints();
    mo.store.etcd_prefix = "/cluster-a/";
    mo.store.leader_ttl = absl::Seconds(1);
    return mo;
  }

  // A worker (node-1) of the managers at `managers` (a comma list).
  WorkerOptions Worker(const std::string& managers, const std::string& range) {
    WorkerOptions wo;
    wo.manager_addr = managers;
    wo.node_name = "node-1";
    wo.data_dir = (dir_.path() / "w1").string();
    wo.address_range = range;
    wo.dns.addr = "";
    return wo;
  }

  // Creates service "web" (3 replicas) through the manager at `addr`.
  void CreateWeb(const std::string& addr, v1::Service* svc) {
    auto stub = v1::Control::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(3);
    req.mutable_spec()->mutable_template_()->set_command("app");
    grpc::ClientContext ctx;
    grpc::Status s = stub->CreateService(&ctx, req, svc);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Starts the managers `names` on the cluster's etcd, the first one creating the cluster.
  void StartManagers(const std::vector<std::string>& names,
                     std::vector<std::unique_ptr<ManagerServer>>* managers) {
    for (const std::string& name : names) {
      if (name != names.front()) {
        // The cluster's key file, as an operator copies it before starting another manager.
        std::filesystem::create_directories(dir_.path() / name);
        std::filesystem::copy_file(dir_.path() / names.front() / "cluster.kek",
                                   dir_.path() / name / "cluster.kek");
      }
      auto started = ManagerServer::Start(Options(name), RealClock::Get());
      ASSERT_TRUE(started.ok()) << name << ": " << started.status();
      managers->push_back(std::move(*started));
    }
  }

  int RunningTasks(Store& store, const std::string& service_id) {
    int n = 0;
    for (const auto& t : ListObjects<v1::Task>(store)) {
      if (t.service_id() == service_id && t.status().state() == v1::TASK_STATE_RUNNING) ++n;
    }
    return n;
  }

  testing_util::TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
};

TEST_F(EtcdManagerTest, ManagerServesAndControlsFromEtcdAndItsStateOutlivesIt) {
  auto started = ManagerServer::Start(Options("m1"), RealClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ManagerServer> m1 = std::move(*started);

  auto agent = std::make_unique<WorkerAgent>(Worker(m1->api_addr(), "127.81.0.0/16"),
                                             std::make_unique<FakeDriver>(), RealClock::Get());
  ASSERT_TRUE(agent->Start().ok());

  v1::Service svc;
  ASSERT_NO_FATAL_FAILURE(CreateWeb(m1->api_addr(), &svc));
  // The controllers schedule through their fenced store; the worker reports through the API.
  ASSERT_TRUE(WaitFor([&] { return RunningTasks(m1->store(), svc.id()) == 3; }));

  // What the manager wrote is in etcd, under its prefix.
  EtcdStoreOptions eo;
  eo.prefix = "/cluster-a/";
  auto etcd_reader = EtcdStore::Open(etcd_->Client(), eo);
  ASSERT_TRUE(etcd_reader.ok()) << etcd_reader.status();
  EXPECT_TRUE(GetObjectByName<v1::Service>(**etcd_reader, "web").has_value());

  // The backup of an etcd store is etcd's snapshot.
  auto admin = v1::ClusterAdmin::NewStub(
      grpc::CreateChannel(m1->api_addr(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext backup_ctx;
  auto reader = admin->Backup(&backup_ctx, v1::BackupRequest());
  v1::BackupChunk chunk;
  while (reader->Read(&chunk)) {
  }
  grpc::Status backup = reader->Finish();
  EXPECT_EQ(backup.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(backup.error_message(), HasSubstr("etcdctl snapshot save"));

  // A manager that stops hands over at once; the next one finds the whole state in etcd.
  agent->Stop();
  m1.reset();
  // Without the cluster's key file the state's CA cannot be opened; with a copy it can.
  auto no_key = ManagerServer::Start(Options("m3"), RealClock::Get());
  EXPECT_EQ(no_key.status().code(), absl::StatusCode::kFailedPrecondition) << no_key.status();
  EXPECT_THAT(no_key.status().message(), HasSubstr("cluster.kek is missing"));
  std::filesystem::copy_file(dir_.path() / "m1" / "cluster.kek",
                             dir_.path() / "m3" / "cluster.kek");
  started = ManagerServer::Start(Options("m3"), RealClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(RunningTasks((*started)->store(), svc.id()), 3);
  EXPECT_TRUE(GetObjectByName<v1::Service>((*started)->store(), "web").has_value());
}

// Three managers on one etcd: one leads, the followers' Dispatcher refuses naming it, every
// one serves the Control API; a worker given every address finds the leader, and when the
// leader goes its tasks keep running (same tasks, same processes) under the next one.
TEST_F(EtcdManagerTest, ThreeManagersOneLeadsAndTheWorkerFollowsTheNextLeader) {
  std::vector<std::unique_ptr<ManagerServer>> managers;
  ASSERT_NO_FATAL_FAILURE(StartManagers({"m1", "m2", "m3"}, &managers));
  auto leader_index = [&]() -> int {
    int found = -1;
    for (size_t i = 0; i < managers.size(); ++i) {
      if (managers[i] && managers[i]->IsLeader()) {
        if (found >= 0) return -2;  // two at once would be a bug
        found = static_cast<int>(i);
      }
    }
    return found;
  };
  ASSERT_TRUE(WaitFor([&] { return leader_index() >= 0; }));
  const int first = leader_index();
  const std::string leader_addr = managers[first]->api_addr();

  // A follower's Dispatcher names the leader; its Control API serves.
  const int follower = (first + 1) % 3;
  auto dispatcher = v1::Dispatcher::NewStub(
      grpc::CreateChannel(managers[follower]->api_addr(), grpc::InsecureChannelCredentials()));
  v1::HeartbeatRequest hb;
  hb.set_node_id("nobody");
  v1::HeartbeatResponse hb_resp;
  grpc::ClientContext hb_ctx;
  grpc::Status refused = dispatcher->Heartbeat(&hb_ctx, hb, &hb_resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("the leader is at " + leader_addr));

  // The worker knows only the followers: the refusal sends it to the leader.
  std::vector<std::string> addrs;
  for (int i : {follower, (first + 2) % 3}) addrs.push_back(managers[i]->api_addr());
  auto driver = std::make_unique<FakeDriver>();
  FakeDriver* fake = driver.get();
  auto agent = std::make_unique<WorkerAgent>(Worker(absl::StrJoin(addrs, ","), "127.82.0.0/16"),
                                             std::move(driver), RealClock::Get());
  ASSERT_TRUE(agent->Start().ok());

  // Through a follower: every manager serves the Control API.
  v1::Service svc;
  ASSERT_NO_FATAL_FAILURE(CreateWeb(managers[follower]->api_addr(), &svc));
  auto control = v1::Control::NewStub(
      grpc::CreateChannel(managers[follower]->api_addr(), grpc::InsecureChannelCredentials()));
  Store& view = managers[follower]->store();
  ASSERT_TRUE(WaitFor([&] { return RunningTasks(view, svc.id()) == 3; }));
  std::map<std::string, int> pids;
  for (const auto& t : ListObjects<v1::Task>(view)) {
    if (t.service_id() == svc.id() && t.status().state() == v1::TASK_STATE_RUNNING) {
      pids[t.id()] = fake->Inspect(t.id())->pid;
    }
  }

  // The leader goes; another one leads and the worker follows it.
  managers[first].reset();
  ASSERT_TRUE(WaitFor([&] { return leader_index() >= 0; }, std::chrono::seconds(30)));
  const int second = leader_index();
  EXPECT_NE(second, first);
  v1::ScaleServiceRequest scale;
  scale.set_name_or_id("web");
  scale.set_replicas(4);
  grpc::ClientContext scale_ctx;
  grpc::Status s = control->ScaleService(&scale_ctx, scale, &svc);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(WaitFor([&] { return RunningTasks(view, svc.id()) == 4; }, std::chrono::seconds(30)));
  // The three tasks from before are the same tasks in the same processes.
  for (const auto& [id, pid] : pids) {
    auto t = GetObject<v1::Task>(view, id);
    ASSERT_TRUE(t.has_value()) << id;
    EXPECT_EQ(t->status().state(), v1::TASK_STATE_RUNNING) << id;
    ASSERT_TRUE(fake->Inspect(id).has_value()) << id;
    EXPECT_EQ(fake->Inspect(id)->pid, pid) << id;
  }
  // The node was never marked down.
  for (const auto& e : ListObjects<v1::Event>(view)) {
    EXPECT_FALSE(e.kind() == "node" && e.action() == "down") << e.message();
  }
  agent->Stop();
}

// `node ls` on etcd: every running manager, the leader and the one that answered; a manager
// that stops is gone from the list (its registry entry went with its lease).
TEST_F(EtcdManagerTest, NodeLsListsTheManagersWhichOneLeadsAndWhichAnswered) {
  std::vector<std::unique_ptr<ManagerServer>> managers;
  ASSERT_NO_FATAL_FAILURE(StartManagers({"m1", "m2"}, &managers));
  auto list = [&](const ManagerServer& via) {
    auto stub = v1::Control::NewStub(
        grpc::CreateChannel(via.api_addr(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ListNodesResponse resp;
    grpc::Status s = stub->ListNodes(&ctx, {}, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  };
  // Both registered, one of them leading.
  ASSERT_TRUE(WaitFor([&] {
    v1::ListNodesResponse r = list(*managers[1]);
    return r.managers_size() == 2 && (r.managers(0).leader() || r.managers(1).leader());
  }));
  const int leader = managers[0]->IsLeader() ? 0 : 1;
  ASSERT_TRUE(managers[leader]->IsLeader());
  for (int via : {0, 1}) {
    v1::ListNodesResponse r = list(*managers[via]);
    EXPECT_EQ(r.managers_error(), "");
    ASSERT_EQ(r.managers_size(), 2);
    int leaders = 0;
    for (const v1::ManagerInfo& m : r.managers()) {
      const int index = m.id() == managers[0]->manager_id() ? 0 : 1;
      EXPECT_EQ(m.id(), managers[index]->manager_id());
      EXPECT_EQ(m.api_addr(), managers[index]->api_addr());
      EXPECT_FALSE(m.name().empty());
      EXPECT_EQ(m.leader(), index == leader) << m.id();
      EXPECT_EQ(m.answered(), index == via) << m.id();
      leaders += m.leader() ? 1 : 0;
    }
    EXPECT_EQ(leaders, 1);
  }

  // The follower stops: its entry goes with its lease; the leader still leads.
  const int follower = 1 - leader;
  const std::string gone = managers[follower]->manager_id();
  managers[follower].reset();
  ASSERT_TRUE(WaitFor([&] { return list(*managers[leader]).managers_size() == 1; }));
  v1::ListNodesResponse r = list(*managers[leader]);
  EXPECT_EQ(r.managers(0).id(), managers[leader]->manager_id());
  EXPECT_TRUE(r.managers(0).leader());
  EXPECT_TRUE(r.managers(0).answered());
}

// `cluster status` on etcd: each member as it answers for itself; a stopped member is shown
// unhealthy with the reason, the others healthy, and the call answers all the same.
TEST_F(EtcdManagerTest, ClusterStatusShowsEachEtcdMemberAndAStoppedOneUnhealthy) {
  etcd_.reset();
  auto cluster = EtcdCluster::Start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  etcd_ = std::move(*cluster);
  auto started = ManagerServer::Start(Options("m1"), RealClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ManagerServer> m1 = std::move(*started);
  ASSERT_TRUE(WaitFor([&] { return m1->IsLeader(); }));
  auto admin = v1::ClusterAdmin::NewStub(
      grpc::CreateChannel(m1->api_addr(), grpc::InsecureChannelCredentials()));
  auto status = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::ClusterStatus resp;
    grpc::Status s = admin->Status(&ctx, {}, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  };
  const std::vector<std::string> endpoints = etcd_->endpoints();
  v1::ClusterStatus all = status();
  EXPECT_EQ(all.store(), "etcd");
  EXPECT_EQ(all.etcd_prefix(), "/cluster-a/");
  ASSERT_EQ(all.etcd_members_size(), 3);
  int leaders = 0;
  for (int i = 0; i < 3; ++i) {
    const v1::EtcdMemberStatus& m = all.etcd_members(i);
    EXPECT_EQ(m.endpoint(), endpoints[i]);
    EXPECT_TRUE(m.healthy()) << m.endpoint() << ": " << m.error();
    EXPECT_EQ(m.error(), "");
    EXPECT_NE(m.member_id(), 0u);
    EXPECT_NE(m.leader_id(), 0u);
    EXPECT_FALSE(m.version().empty());
    EXPECT_GT(m.db_size_bytes(), 0);
    EXPECT_GT(m.raft_term(), 0u);
    EXPECT_GT(m.raft_index(), 0u);
    leaders += m.is_leader() ? 1 : 0;
  }
  EXPECT_EQ(leaders, 1);
  ASSERT_EQ(all.managers_size(), 1);
  EXPECT_TRUE(all.managers(0).leader());
  EXPECT_TRUE(all.managers(0).answered());

  // A member stops: it is unhealthy, with the reason; the two others keep (or elect) a leader.
  etcd_->Kill(2);
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::ClusterStatus s = status();
        return s.etcd_members_size() == 3 && s.etcd_members(0).healthy() &&
               s.etcd_members(1).healthy();
      },
      std::chrono::seconds(30)));
  v1::ClusterStatus degraded = status();
  const v1::EtcdMemberStatus& dead = degraded.etcd_members(2);
  EXPECT_FALSE(dead.healthy());
  EXPECT_THAT(dead.error(), HasSubstr(endpoints[2]));
  EXPECT_THAT(dead.error(), HasSubstr("cannot connect"));
  EXPECT_EQ(dead.member_id(), 0u);
  EXPECT_EQ(degraded.managers_size(), 1);

  // The CLI shows it and exits 0: an unhealthy member is the answer, not a failure.
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"warren", "--manager", m1->api_addr(), "cluster", "status"}, out, err), 0)
      << err.str();
  EXPECT_THAT(out.str(), HasSubstr("unhealthy: etcd " + endpoints[2]));
  EXPECT_THAT(out.str(), HasSubstr("STORE: etcd, prefix /cluster-a/"));
}

}  // namespace
}  // namespace warren
