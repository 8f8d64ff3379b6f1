// A manager on etcd (--store etcd://...): the API and the controllers work on etcd, the state
// outlives the manager, and a second manager on the same etcd is refused (phase 1 of issue 14
// runs one manager per etcd). Skipped with the reason without /usr/bin/etcd.

#include <memory>
#include <string>

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

TEST_F(EtcdManagerTest, ManagerServesAndControlsFromEtcdAndASecondOneIsRefused) {
  auto started = ManagerServer::Start(Options("m1"), RealClock::Get());
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<ManagerServer> m1 = std::move(*started);

  WorkerOptions wo;
  wo.manager_addr = m1->api_addr();
  wo.node_name = "node-1";
  wo.data_dir = (dir_.path() / "w1").string();
  wo.address_range = "127.81.0.0/16";
  wo.dns.addr = "";
  auto agent = std::make_unique<WorkerAgent>(wo, std::make_unique<FakeDriver>(), RealClock::Get());
  ASSERT_TRUE(agent->Start().ok());

  auto stub =
      v1::Control::NewStub(grpc::CreateChannel(m1->api_addr(), grpc::InsecureChannelCredentials()));
  v1::CreateServiceRequest req;
  req.mutable_spec()->set_name("web");
  req.mutable_spec()->set_replicas(3);
  req.mutable_spec()->mutable_template_()->set_command("app");
  v1::Service svc;
  grpc::ClientContext ctx;
  grpc::Status s = stub->CreateService(&ctx, req, &svc);
  ASSERT_TRUE(s.ok()) << s.error_message();
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

  auto second = ManagerServer::Start(Options("m2"), RealClock::Get());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("leads the controllers on etcd"));
  EXPECT_THAT(second.status().message(), HasSubstr("docs/high-availability.md"));

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

}  // namespace
}  // namespace warren
