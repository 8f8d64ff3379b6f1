// The worker agent's own gRPC service (task logs) against requests no manager would send.

#include <fstream>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/agent.h"
#include "worker/process_driver.h"

namespace warren {
namespace {

using testing_util::TempDir;

// The task id became a path under the driver's state directory: "../x" read the log of a
// directory outside it (any file named output.log the worker can read).
TEST(AgentLogServiceTest, TaskIdsThatAreNotIdsAreRefused) {
  TempDir dir;
  const auto tasks = dir.path() / "tasks";
  std::filesystem::create_directories(dir.path() / "outside");
  std::ofstream(dir.path() / "outside" / "output.log") << "not yours\n";
  WorkerOptions wo;
  wo.manager_addr = "127.0.0.1:1";  // never reached in this test
  wo.data_dir = dir.path().string();
  wo.dns.addr = "";
  WorkerAgent agent(wo, std::make_unique<ProcessDriver>(tasks.string()), RealClock::Get());
  ASSERT_TRUE(agent.Start().ok());
  auto stub = v1::WorkerAgent::NewStub(
      grpc::CreateChannel(agent.agent_addr(), grpc::InsecureChannelCredentials()));
  for (const std::string id : {"../outside", "..", ".", "", "a/../../outside"}) {
    SCOPED_TRACE(id);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::TaskLogsRequest req;
    req.set_task_id(id);
    auto reader = stub->TaskLogs(&ctx, req);
    v1::LogLine line;
    std::string got;
    while (reader->Read(&line)) got += line.line();
    grpc::Status s = reader->Finish();
    EXPECT_EQ(got, "");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  }
  agent.Stop();
}

}  // namespace
}  // namespace warren
