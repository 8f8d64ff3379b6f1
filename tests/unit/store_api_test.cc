// The store's failure modes as an API client and an operator see them, on an in-process
// manager (real gRPC on loopback, SQLite store): corruption (D8) and a full disk (D7).
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_http_client.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::TempDir;
using testing_util::WaitFor;

class StoreApiTest : public testing::Test {
 protected:
  void StartManager(const std::string& data_dir) {
    auto m = ManagerServer::Start(testing_util::TestManagerOptions(data_dir, /*metrics=*/true),
                                  RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    stub_ = v1::Control::NewStub(
        grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials()));
  }
  void StopManager() {
    if (manager_) manager_->Shutdown();
    manager_.reset();
  }
  void TearDown() override { StopManager(); }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }
  grpc::Status Create(const std::string& name, int replicas) {
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(replicas);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Service out;
    return stub_->CreateService(Ctx().get(), req, &out);
  }
  grpc::Status Get(const std::string& name) {
    v1::GetServiceRequest req;
    req.set_name_or_id(name);
    v1::Service out;
    return stub_->GetService(Ctx().get(), req, &out);
  }
  grpc::Status Scale(const std::string& name, int replicas) {
    v1::ScaleServiceRequest req;
    req.set_name_or_id(name);
    req.set_replicas(replicas);
    v1::Service out;
    return stub_->ScaleService(Ctx().get(), req, &out);
  }
  grpc::Status Remove(const std::string& name) {
    v1::DeleteServiceRequest req;
    req.set_name_or_id(name);
    v1::DeleteServiceResponse out;
    return stub_->DeleteService(Ctx().get(), req, &out);
  }
  grpc::Status List(std::set<std::string>* names) {
    v1::ListServicesResponse resp;
    grpc::Status s = stub_->ListServices(Ctx().get(), v1::ListServicesRequest(), &resp);
    names->clear();
    for (const auto& svc : resp.services()) names->insert(svc.spec().name());
    return s;
  }
  int Readyz() {
    auto r = test::HttpGet("127.0.0.1", manager_->metrics_port(), "/readyz");
    return r.ok() ? r->status : -1;
  }
  std::string Metrics() {
    auto r = test::HttpGet("127.0.0.1", manager_->metrics_port(), "/metrics");
    return r.ok() ? r->body : "";
  }
  // Tasks of a service as the store has them (the API refuses to list while any is corrupt).
  std::vector<v1::Task> StoredTasks(const std::string& service_id) {
    std::vector<v1::Task> out;
    for (auto& t : ListObjects<v1::Task>(manager_->store())) {
      if (t.service_id() == service_id) out.push_back(std::move(t));
    }
    return out;
  }

  TempDir tmp_;
  std::unique_ptr<ManagerServer> manager_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

// D8: a service whose stored data no longer parses used to vanish in silence: `ls` without it,
// `inspect` "not found", `create` "already exists".
TEST_F(StoreApiTest, CorruptServiceIsReportedAndCanBeRemoved) {
  const std::string dir = (tmp_.path() / "data").string();
  StartManager(dir);
  ASSERT_TRUE(Create("web", 2).ok());
  ASSERT_TRUE(Create("api", 1).ok());
  const std::string web_id = GetObjectByName<v1::Service>(manager_->store(), "web")->id();
  ASSERT_TRUE(WaitFor([&] { return StoredTasks(web_id).size() == 2; }));
  StopManager();
  ASSERT_EQ(testing_util::ExecSql(dir + "/store.db",
                                  absl::StrCat("UPDATE objects SET data = x'0a05ffffffff0f' "
                                               "WHERE kind = 1 AND id = '",
                                               web_id, "'")),
            "");

  testing_util::LogCapture log;
  StartManager(dir);
  EXPECT_THAT(log.Text(), HasSubstr(absl::StrCat("service \"web\" (id ", web_id)));
  EXPECT_THAT(log.Text(), HasSubstr("is corrupt"));
  EXPECT_EQ(Readyz(), 503);
  EXPECT_THAT(Metrics(), HasSubstr("warren_store_corrupt_objects 1"));

  std::set<std::string> names;
  grpc::Status ls = List(&names);
  EXPECT_EQ(ls.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(ls.error_message(), HasSubstr("service \"web\""));
  grpc::Status inspect = Get("web");
  EXPECT_EQ(inspect.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(inspect.error_message(), HasSubstr("is corrupt in the store"));
  EXPECT_THAT(inspect.error_message(), HasSubstr("warren service rm web"));
  EXPECT_EQ(Get(web_id).error_code(), grpc::StatusCode::DATA_LOSS);
  grpc::Status create = Create("web", 1);
  EXPECT_EQ(create.error_code(), grpc::StatusCode::DATA_LOSS) << create.error_message();
  EXPECT_THAT(create.error_message(), HasSubstr("service \"web\""));
  EXPECT_EQ(Scale("web", 3).error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_TRUE(Get("api").ok());

  // The control loop leaves the corrupt service's tasks alone (it used to stop and delete
  // the tasks of a service it could not see).
  const uint64_t passes = manager_->controller().stats().passes;
  ASSERT_TRUE(WaitFor([&] { return manager_->controller().stats().passes >= passes + 2; }));
  EXPECT_EQ(StoredTasks(web_id).size(), 2u);
  for (const auto& t : StoredTasks(web_id)) {
    EXPECT_EQ(t.desired_state(), v1::TASK_STATE_RUNNING);
  }

  // `service rm` is the way out; then all is well again.
  grpc::Status rm = Remove("web");
  ASSERT_TRUE(rm.ok()) << rm.error_message();
  EXPECT_EQ(Readyz(), 200);
  ASSERT_TRUE(List(&names).ok());
  EXPECT_EQ(names, std::set<std::string>{"api"});
  EXPECT_TRUE(Create("web", 1).ok());
}

// D7: a full data dir blocked every write, `service rm` included.
TEST_F(StoreApiTest, FullDiskStillRemovesAndScalesDown) {
  auto fs = testing_util::SmallFs::Mount(24 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status();
  const std::string dir = ((*fs)->path() / "data").string();
  StartManager(dir);
  std::set<std::string> acked;
  for (const char* name : {"drop", "shrink", "keep"}) {
    ASSERT_TRUE(Create(name, 3).ok());
    acked.insert(name);
  }
  const std::string shrink_id = GetObjectByName<v1::Service>(manager_->store(), "shrink")->id();
  ASSERT_TRUE(WaitFor([&] { return StoredTasks(shrink_id).size() == 3; }));
  ASSERT_GT((*fs)->Fill(), 0u);

  // The WAL may have room left: create until the disk refuses (bounded by its size).
  grpc::Status refused;
  for (int i = 0; i < 2000 && refused.ok(); ++i) {
    std::string name = absl::StrCat("fill-", i);
    refused = Create(name, 1);
    if (refused.ok()) acked.insert(name);
  }
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(),
              HasSubstr("disk full: no space left for the store in " + dir));
  EXPECT_EQ(Create("more", 1).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::Status up = Scale("keep", 5);
  EXPECT_EQ(up.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << up.error_message();
  EXPECT_THAT(Metrics(), HasSubstr("warren_store_disk_full 1"));

  // What frees space goes through, and the control loop can act on it.
  grpc::Status rm = Remove("drop");
  ASSERT_TRUE(rm.ok()) << rm.error_message();
  acked.erase("drop");
  grpc::Status down = Scale("shrink", 0);
  ASSERT_TRUE(down.ok()) << down.error_message();
  EXPECT_TRUE(WaitFor([&] {
    for (const auto& t : StoredTasks(shrink_id)) {
      if (t.desired_state() != v1::TASK_STATE_SHUTDOWN) return false;
    }
    return true;
  }));

  // Nothing acknowledged is lost, across a restart on the still full disk.
  StopManager();
  StartManager(dir);
  std::set<std::string> names;
  ASSERT_TRUE(List(&names).ok());
  EXPECT_EQ(names, acked);
  EXPECT_EQ(GetObjectByName<v1::Service>(manager_->store(), "shrink")->spec().replicas(), 0);

  // Space back: everything is accepted again.
  (*fs)->Unfill();
  grpc::Status after = Create("after", 1);
  EXPECT_TRUE(after.ok()) << after.error_message();
  EXPECT_TRUE(Scale("keep", 5).ok());
  EXPECT_THAT(Metrics(), HasSubstr("warren_store_disk_full 0"));
  StopManager();
}

}  // namespace
}  // namespace warren
