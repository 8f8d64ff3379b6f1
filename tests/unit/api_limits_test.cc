// D2 through the API: sizes a client sends are refused with the field and the allowed range,
// and a refused request stores nothing. An in-process manager (real gRPC on loopback, SQLite).
#include <string>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::TempDir;
using testing_util::WaitFor;

class ApiLimitsTest : public testing::Test {
 protected:
  void SetUp() override {
    auto m = ManagerServer::Start(testing_util::TestManagerOptions((tmp_.path() / "m").string()),
                                  RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    stub_ = v1::Control::NewStub(
        grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (manager_) manager_->Shutdown();
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }
  static v1::ServiceSpec Spec(const std::string& name, int replicas) {
    v1::ServiceSpec spec;
    spec.set_name(name);
    spec.set_replicas(replicas);
    spec.mutable_template_()->set_command("app");
    return spec;
  }
  grpc::Status Create(const v1::ServiceSpec& spec, bool dry_run = false) {
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    req.set_dry_run(dry_run);
    v1::Service out;
    return stub_->CreateService(Ctx().get(), req, &out);
  }
  size_t Count(Kind kind) { return manager_->store().List(kind).size(); }

  TempDir tmp_;
  std::unique_ptr<ManagerServer> manager_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

TEST_F(ApiLimitsTest, HugeReplicasAreRefusedAndStoreNothing) {
  const uint64_t version = manager_->store().Version();
  for (bool dry_run : {true, false}) {
    grpc::Status s = Create(Spec("web", 2147483647), dry_run);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(), "replicas: must be 0..10000, got 2147483647");
  }
  EXPECT_EQ(manager_->store().Version(), version);
  EXPECT_EQ(Count(Kind::kService), 0u);
  EXPECT_EQ(Count(Kind::kRevision), 0u);
  EXPECT_EQ(Count(Kind::kEvent), 0u);

  // Update and scale go through the same limit.
  ASSERT_TRUE(Create(Spec("web", 1)).ok());
  ASSERT_TRUE(WaitFor([&] { return Count(Kind::kTask) == 1; }));
  const uint64_t after_create = manager_->store().Version();
  v1::UpdateServiceRequest update;
  *update.mutable_spec() = Spec("web", 10001);
  v1::Service out;
  grpc::Status s = stub_->UpdateService(Ctx().get(), update, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "replicas: must be 0..10000, got 10001");
  v1::ScaleServiceRequest scale;
  scale.set_name_or_id("web");
  scale.set_replicas(2147483647);
  s = stub_->ScaleService(Ctx().get(), scale, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "replicas: must be 0..10000, got 2147483647");
  EXPECT_EQ(GetObjectByName<v1::Service>(manager_->store(), "web")->spec().replicas(), 1);
  // Nothing but the controller's own work on the one task may have been committed.
  for (const auto& svc : ListObjects<v1::Service>(manager_->store())) {
    EXPECT_LE(svc.version(), after_create);
  }
  EXPECT_EQ(Count(Kind::kTask), 1u);
}

// The spec size limit holds for what passes gRPC's own 4 MiB request limit; larger requests
// are refused by gRPC before anything is parsed.
TEST_F(ApiLimitsTest, OversizedSpecsAreRefused) {
  v1::ServiceSpec spec = Spec("web", 1);
  for (int i = 0; i < 64; ++i) {
    (*spec.mutable_template_()->mutable_env())[absl::StrCat("V", i)] = std::string(32 << 10, 'x');
  }
  grpc::Status s = Create(spec);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("spec: must be at most 1048576 bytes (1 MiB) encoded"));

  for (int i = 64; i < 200; ++i) {
    (*spec.mutable_template_()->mutable_env())[absl::StrCat("V", i)] = std::string(32 << 10, 'x');
  }
  s = Create(spec);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Count(Kind::kService), 0u);
  // The manager serves on.
  EXPECT_TRUE(Create(Spec("web", 1)).ok());
}

TEST_F(ApiLimitsTest, OtherRequestSizes) {
  ASSERT_TRUE(Create(Spec("web", 0)).ok());
  v1::Service out;

  v1::RollbackServiceRequest rollback;
  rollback.set_name_or_id("web");
  rollback.set_to_revision(-5);
  grpc::Status s = stub_->RollbackService(Ctx().get(), rollback, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "to_revision: must be 0 (the previous revision) or a kept revision number, got -5");
  rollback.set_to_revision(int64_t{1} << 60);
  s = stub_->RollbackService(Ctx().get(), rollback, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("is not kept (kept: 1)"));

  v1::ServiceLogsRequest logs;
  logs.set_name_or_id("web");
  logs.set_tail(limits::kMaxLogTail + 1);
  auto ctx = Ctx();
  auto reader = stub_->ServiceLogs(ctx.get(), logs);
  v1::LogLine line;
  while (reader->Read(&line)) {
  }
  s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "tail: must be 0 (all)..1000000, got 1000001");

  v1::RegisterNodeRequest node;
  node.set_name("n1");
  node.set_address_range("127.77.0.0/16");
  for (int i = 0; i <= limits::kMaxLabels; ++i)
    (*node.mutable_labels())[absl::StrCat("k", i)] = "v";
  v1::Node registered;
  auto dispatcher = v1::Dispatcher::NewStub(
      grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials()));
  s = dispatcher->RegisterNode(Ctx().get(), node, &registered);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "labels: must have at most 256 entries, got 257");
  EXPECT_EQ(Count(Kind::kNode), 0u);
}

// D11: an event id past the newest can never arrive; the stream used to wait in silence.
TEST_F(ApiLimitsTest, EventsSinceBeyondTheNewestIsAnError) {
  ASSERT_TRUE(Create(Spec("web", 0)).ok());
  const uint64_t newest = std::stoull(manager_->store().List(Kind::kEvent).back().id);
  for (uint64_t since : {newest + 1, ~uint64_t{0} - 4}) {
    v1::WatchEventsRequest req;
    req.set_since_id(since);
    auto ctx = Ctx();
    auto reader = stub_->WatchEvents(ctx.get(), req);
    v1::Event e;
    EXPECT_FALSE(reader->Read(&e));
    grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(), absl::StrCat("since_id: must be an event id 0..", newest,
                                              " (the newest event), got ", since));
  }
  // Since the newest itself: nothing yet, the stream waits for new events.
  v1::WatchEventsRequest req;
  req.set_since_id(newest);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  auto reader = stub_->WatchEvents(&ctx, req);
  v1::Event e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

// A service at the replica limit is created, and removing it leaves no task behind.
TEST_F(ApiLimitsTest, MaxReplicasCreateAndRemoveLeavesNothing) {
  ASSERT_TRUE(Create(Spec("big", limits::kMaxReplicas)).ok());
  ASSERT_TRUE(WaitFor([&] { return Count(Kind::kTask) == limits::kMaxReplicas; },
                      std::chrono::seconds(60)));
  v1::DeleteServiceRequest rm;
  rm.set_name_or_id("big");
  v1::DeleteServiceResponse gone;
  ASSERT_TRUE(stub_->DeleteService(Ctx().get(), rm, &gone).ok());
  EXPECT_TRUE(WaitFor([&] { return Count(Kind::kTask) == 0; }, std::chrono::seconds(60)));
  EXPECT_EQ(Count(Kind::kService), 0u);
  EXPECT_EQ(Count(Kind::kRevision), 0u);
}

}  // namespace
}  // namespace warren
