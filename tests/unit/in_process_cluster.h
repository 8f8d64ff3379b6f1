#ifndef WARREN_TESTS_UNIT_IN_PROCESS_CLUSTER_H_
#define WARREN_TESTS_UNIT_IN_PROCESS_CLUSTER_H_

// An in-process manager (real gRPC on loopback, SQLite store) and workers on the fake runtime:
// the control plane, and the `warren` command line against it, end to end without processes.

#include <deque>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/agent.h"
#include "worker/fake_driver.h"

namespace warren::testing_util {

class InProcessClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions mo;
    mo.tls = false;  // the fake-runtime workers and the CLI calls carry no certificates
    mo.data_dir = (dir_.path() / "manager").string();
    mo.api_addr = "127.0.0.1:0";
    mo.metrics_addr = "";
    mo.node_timeout = node_timeout_;
    mo.dns.addr = "";
    auto m = ManagerServer::Start(mo, RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    channel_ = grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials());
    stub_ = v1::Control::NewStub(channel_);
    dispatcher_ = v1::Dispatcher::NewStub(channel_);
  }

  void TearDown() override {
    for (auto& w : workers_) w.agent->Stop();
    workers_.clear();
    if (manager_) manager_->Shutdown();
  }

  struct Worker {
    FakeDriver* driver;
    std::unique_ptr<WorkerAgent> agent;
  };

  WorkerOptions Options(const std::string& name, const std::string& range) {
    WorkerOptions wo;
    wo.manager_addr = manager_->api_addr();
    wo.node_name = name;
    wo.data_dir = (dir_.path() / name).string();
    wo.address_range = range;
    wo.dns.addr = "";
    return wo;
  }

  Worker& AddWorker(const std::string& name, const std::string& range,
                    std::map<std::string, std::string> labels = {}) {
    WorkerOptions wo = Options(name, range);
    wo.labels = std::move(labels);
    return AddWorker(wo);
  }

  // A worker on the fake runtime, once it has registered.
  Worker& AddWorker(const WorkerOptions& wo) {
    auto driver = std::make_unique<FakeDriver>();
    FakeDriver* raw = driver.get();
    auto agent = std::make_unique<WorkerAgent>(wo, std::move(driver), RealClock::Get());
    EXPECT_TRUE(agent->Start().ok());
    workers_.push_back({raw, std::move(agent)});
    EXPECT_TRUE(WaitFor([&] { return !workers_.back().agent->node_id().empty(); }));
    return workers_.back();
  }

  std::vector<v1::Task> Tasks(const std::string& service) {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    req.set_service(service);
    v1::ListTasksResponse resp;
    stub_->ListTasks(&ctx, req, &resp);
    return {resp.tasks().begin(), resp.tasks().end()};
  }

  int RunningCount(const std::string& service) {
    int n = 0;
    for (const auto& t : Tasks(service)) {
      if (t.status().state() == v1::TASK_STATE_RUNNING &&
          t.desired_state() == v1::TASK_STATE_RUNNING) {
        n++;
      }
    }
    return n;
  }

  v1::Service GetService(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetServiceRequest req;
    req.set_name_or_id(name);
    v1::Service svc;
    grpc::Status s = stub_->GetService(&ctx, req, &svc);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return svc;
  }

  // Long by default: a worker stopped by a test is down only when the test wants it.
  absl::Duration node_timeout_ = absl::Seconds(30);
  TempDir dir_;
  std::unique_ptr<ManagerServer> manager_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> stub_;
  // What workers call (raw node calls in tests).
  std::unique_ptr<v1::Dispatcher::Stub> dispatcher_;
  std::deque<Worker> workers_;  // stable references
};

// The same, with `warren` commands run against the manager.
class CliClusterTest : public InProcessClusterTest {
 protected:
  // Runs `warren --manager <this manager> args...`; the output is in out_ and err_.
  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    args.insert(args.begin(), {"warren", "--manager", manager_->api_addr()});
    return RunCli(args, out_, err_);
  }

  std::ostringstream out_, err_;
};

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_IN_PROCESS_CLUSTER_H_
