// The standard gRPC services on the manager's API: grpc.health.v1 (its status follows
// readiness) and server reflection, seen by clients that know nothing of Warren.
#include <algorithm>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc_probe.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

using ::testing::IsSupersetOf;
using testing_util::HealthCheck;
using testing_util::TempDir;
using testing_util::WaitFor;

constexpr int kServing = 1;
constexpr int kNotServing = 2;

TEST(GrpcServicesTest, ManagerAnswersHealthAndReflection) {
  TempDir tmp;
  auto m =
      ManagerServer::Start(testing_util::TestManagerOptions(tmp.str() + "/data"), RealClock::Get());
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string addr = (*m)->api_addr();

  testing_util::HealthAnswer overall = HealthCheck(addr, "");
  ASSERT_TRUE(overall.status.ok()) << overall.status.error_message();
  EXPECT_EQ(overall.serving_status, kServing);
  testing_util::HealthAnswer api = HealthCheck(addr, "warren.v1.Control");
  ASSERT_TRUE(api.status.ok()) << api.status.error_message();
  EXPECT_EQ(api.serving_status, kServing);
  EXPECT_EQ(HealthCheck(addr, "no.such.Service").status.error_code(), grpc::StatusCode::NOT_FOUND);

  std::string error;
  auto services = testing_util::ReflectionListServices(addr, &error);
  ASSERT_TRUE(services.has_value()) << error;
  EXPECT_THAT(*services, IsSupersetOf({"warren.v1.Control", "grpc.health.v1.Health",
                                       "grpc.reflection.v1alpha.ServerReflection"}));
  auto files = testing_util::ReflectionFileOf(addr, "warren.v1.Control", &error);
  ASSERT_TRUE(files.has_value()) << error;
  bool found = false;
  for (const auto& f : *files) {
    for (const auto& svc : f.service()) {
      if (f.package() == "warren.v1" && svc.name() == "Control") {
        found = svc.method_size() > 10;
      }
    }
  }
  EXPECT_TRUE(found) << "warren.v1.Control and its methods are not in the reflected files";
  (*m)->Shutdown();
}

// /readyz is 503 while the store holds a corrupt object; the health service says the same.
TEST(GrpcServicesTest, HealthFollowsReadiness) {
  TempDir tmp;
  const std::string dir = tmp.str() + "/data";
  std::string web_id;
  {
    auto m = ManagerServer::Start(testing_util::TestManagerOptions(dir), RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    auto stub = v1::Control::NewStub(
        grpc::CreateChannel((*m)->api_addr(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Service svc;
    ASSERT_TRUE(stub->CreateService(&ctx, req, &svc).ok());
    web_id = svc.id();
    (*m)->Shutdown();
  }
  ASSERT_EQ(testing_util::ExecSql(dir + "/store.db",
                                  absl::StrCat("UPDATE objects SET data = x'0a05ffffffff0f' "
                                               "WHERE kind = 1 AND id = '",
                                               web_id, "'")),
            "");
  testing_util::LogCapture quiet;
  auto m = ManagerServer::Start(testing_util::TestManagerOptions(dir), RealClock::Get());
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string addr = (*m)->api_addr();
  EXPECT_EQ(HealthCheck(addr, "").serving_status, kNotServing);
  EXPECT_EQ(HealthCheck(addr, "warren.v1.Control").serving_status, kNotServing);

  auto stub = v1::Control::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::DeleteServiceRequest rm;
  rm.set_name_or_id("web");
  v1::DeleteServiceResponse out;
  ASSERT_TRUE(stub->DeleteService(&ctx, rm, &out).ok());
  EXPECT_TRUE(WaitFor([&] { return HealthCheck(addr, "").serving_status == kServing; }));
  EXPECT_EQ(HealthCheck(addr, "warren.v1.Control").serving_status, kServing);
  (*m)->Shutdown();
}

}  // namespace
}  // namespace warren
