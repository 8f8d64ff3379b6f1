// `service logs` through the manager: the lines of every task of the service, read from the
// workers' log services, and a worker that cannot give a live task's log makes the call fail with
// the task and the node named, instead of an empty, successful answer. An in-process manager
// (real gRPC on loopback, SQLite) and a log service of the test's own.
#include <memory>
#include <string>
#include <vector>

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

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::TempDir;

// Serves two lines for task "t-ok"; any other task has no log.
class FakeLogService final : public v1::WorkerAgent::Service {
 public:
  grpc::Status TaskLogs(grpc::ServerContext*, const v1::TaskLogsRequest* req,
                        grpc::ServerWriter<v1::LogLine>* writer) override {
    if (req->task_id() != "t-ok") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no logs for task " + req->task_id());
    }
    v1::LogLine line;
    line.set_task_id(req->task_id());
    for (const char* text : {"first", "second"}) {
      line.set_line(text);
      writer->Write(line);
    }
    return grpc::Status::OK;
  }
};

class ServiceLogsTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&logs_);
    agent_ = builder.BuildAndStart();
    ASSERT_NE(agent_, nullptr);
    agent_addr_ = "127.0.0.1:" + std::to_string(port);
    auto m = ManagerServer::Start(testing_util::TestManagerOptions((tmp_.path() / "m").string()),
                                  RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    stub_ = v1::Control::NewStub(
        grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials()));
    v1::CreateServiceRequest create;
    create.mutable_spec()->set_name("web");
    // Two slots, so that the controller keeps the tasks this test puts there.
    create.mutable_spec()->set_replicas(2);
    create.mutable_spec()->mutable_template_()->set_command("app");
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->CreateService(&ctx, create, &service_).ok());
  }
  void TearDown() override {
    if (manager_) manager_->Shutdown();
    if (agent_) agent_->Shutdown();
  }

  // A node whose log service is `addr`, and a task of "web" on it.
  void AddTask(const std::string& task_id, int slot, const std::string& node_name,
               const std::string& addr, v1::TaskState state = v1::TASK_STATE_RUNNING) {
    v1::Node node;
    node.set_id("n-" + node_name);
    node.set_name(node_name);
    node.set_agent_addr(addr);
    v1::Task task;
    task.set_id(task_id);
    task.set_service_id(service_.id());
    task.set_slot(slot);
    task.set_node_id(node.id());
    task.mutable_status()->set_state(state);
    ASSERT_TRUE(manager_->store().Commit({PutMutation(node), PutMutation(task)}).ok());
  }

  struct Answer {
    std::vector<std::string> lines;
    grpc::Status status;
  };
  Answer Logs() {
    v1::ServiceLogsRequest req;
    req.set_name_or_id("web");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto reader = stub_->ServiceLogs(&ctx, req);
    Answer out;
    v1::LogLine line;
    while (reader->Read(&line)) out.lines.push_back(line.line());
    out.status = reader->Finish();
    return out;
  }

  TempDir tmp_;
  FakeLogService logs_;
  std::unique_ptr<grpc::Server> agent_;
  std::string agent_addr_;
  std::unique_ptr<ManagerServer> manager_;
  std::unique_ptr<v1::Control::Stub> stub_;
  v1::Service service_;
};

TEST_F(ServiceLogsTest, LinesOfEveryTask) {
  AddTask("t-ok", 1, "n1", agent_addr_);
  Answer a = Logs();
  EXPECT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_THAT(a.lines, ElementsAre("first", "second"));
}

// A dead task's directory goes after --task-dir-retention, and its node may be gone: its log is
// best effort.
TEST_F(ServiceLogsTest, ADeadTaskWithoutALogIsLeftOut) {
  AddTask("t-old", 1, "n1", agent_addr_, v1::TASK_STATE_FAILED);
  AddTask("t-ok", 1, "n1", agent_addr_);
  Answer a = Logs();
  EXPECT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_THAT(a.lines, ElementsAre("first", "second"));
}

// A task that has not started yet has no log either.
TEST_F(ServiceLogsTest, ATaskThatHasNotStartedIsLeftOut) {
  AddTask("t-ok", 1, "n1", agent_addr_);
  AddTask("t-new", 2, "n1", agent_addr_, v1::TASK_STATE_STARTING);
  Answer a = Logs();
  EXPECT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_THAT(a.lines, ElementsAre("first", "second"));
}

TEST_F(ServiceLogsTest, ALiveTaskWhoseLogCannotBeReadFailsTheCallAfterTheOthersLines) {
  AddTask("t-ok", 1, "n1", agent_addr_);
  AddTask("t-gone", 2, "n2", agent_addr_);
  Answer a = Logs();
  EXPECT_THAT(a.lines, ElementsAre("first", "second"));
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(a.status.error_message(), HasSubstr("logs of task t-gone on node n2"));
  EXPECT_THAT(a.status.error_message(), HasSubstr("no logs for task t-gone"));
}

TEST_F(ServiceLogsTest, AnUnreachableWorkerIsAnErrorNotAnEmptyAnswer) {
  const std::string closed = "127.0.0.1:" + std::to_string(testing_util::FreePort());
  AddTask("t-far", 1, "n3", closed);
  Answer a = Logs();
  EXPECT_THAT(a.lines, ::testing::IsEmpty());
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(a.status.error_message(), HasSubstr("logs of task t-far on node n3 (" + closed));
}

}  // namespace
}  // namespace warren
