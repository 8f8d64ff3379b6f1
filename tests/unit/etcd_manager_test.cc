// Managers on etcd (--store etcd://...): the API and the controllers work on etcd, the state
// outlives a manager, several managers share one etcd with one of them leading, and workers
// fail over to the next leader without their tasks restarting (issue 14). Skipped with the
// reason without /usr/bin/etcd.

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_join.h"
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
  for (const std::string name : {"m1", "m2", "m3"}) {
    if (name != "m1") {
      // The cluster's key file, as an operator copies it before starting another manager.
      std::filesystem::create_directories(dir_.path() / name);
      std::filesystem::copy_file(dir_.path() / "m1" / "cluster.kek",
                                 dir_.path() / name / "cluster.kek");
    }
    auto started = ManagerServer::Start(Options(name), RealClock::Get());
    ASSERT_TRUE(started.ok()) << name << ": " << started.status();
    managers.push_back(std::move(*started));
  }
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

}  // namespace
}  // namespace warren
