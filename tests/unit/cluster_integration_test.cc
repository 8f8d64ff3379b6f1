// An in-process manager (real gRPC on loopback, SQLite store) and workers on the fake
// runtime: the control plane end to end without processes.
#include <deque>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "test_util.h"
#include "worker/agent.h"
#include "worker/fake_driver.h"

namespace warren {
namespace {

using testing_util::TempDir;
using testing_util::WaitFor;

class ClusterTest : public testing::Test {
 protected:
  void SetUp() override {
    ManagerOptions mo;
    mo.data_dir = (dir_.path() / "manager").string();
    mo.api_addr = "127.0.0.1:0";
    mo.metrics_addr = "";
    mo.node_timeout = node_timeout_;
    mo.dns.addr = "";
    auto m = ManagerServer::Start(mo, RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    channel_ = grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials());
    stub_ = v1::Warren::NewStub(channel_);
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
    wo.labels = labels;
    auto driver = std::make_unique<FakeDriver>();
    FakeDriver* raw = driver.get();
    auto agent = std::make_unique<WorkerAgent>(wo, std::move(driver), RealClock::Get());
    EXPECT_TRUE(agent->Start().ok());
    workers_.push_back({raw, std::move(agent)});
    EXPECT_TRUE(WaitFor([&] { return !workers_.back().agent->node_id().empty(); }));
    return workers_.back();
  }

  v1::Service Create(const std::string& name, int replicas) {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(replicas);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Service out;
    grpc::Status s = stub_->CreateService(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
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
          t.desired_state() == v1::TASK_STATE_RUNNING)
        n++;
    }
    return n;
  }

  absl::Duration node_timeout_ = absl::Seconds(1);
  TempDir dir_;
  std::unique_ptr<ManagerServer> manager_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Warren::Stub> stub_;
  std::deque<Worker> workers_;  // stable references
};

TEST_F(ClusterTest, ReplicasRunSpreadAcrossWorkers) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  auto& w2 = AddWorker("w2", "127.12.0.0/16");
  Create("web", 4);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 4; }));
  EXPECT_EQ(w1.driver->Running(), 2);
  EXPECT_EQ(w2.driver->Running(), 2);
  // The task environment carries its identity and address.
  std::set<std::string> addresses;
  for (const auto& [id, spec] : w1.driver->Specs()) {
    EXPECT_EQ(spec.env.at("WARREN_SERVICE"), "web");
    EXPECT_EQ(spec.env.at("WARREN_TASK_ID"), id);
    EXPECT_EQ(spec.env.at("WARREN_REVISION"), "1");
    EXPECT_EQ(spec.env.at("WARREN_TASK_IP").rfind("127.11.", 0), 0u);
    EXPECT_EQ(spec.env.at("WARREN_TASK_PORT"), "8080");
    addresses.insert(spec.env.at("WARREN_TASK_IP"));
  }
  EXPECT_EQ(addresses.size(), 2u);
}

// A node's assignment set carries every task's template (up to 1 MiB each): six replicas of a
// large spec are more than gRPC's default 4 MiB per message, which the worker refused, so
// none of them ever started.
TEST_F(ClusterTest, AssignmentsLargerThanFourMiBReachTheWorker) {
  auto& w = AddWorker("w1", "127.13.0.0/16");
  grpc::ClientContext ctx;
  v1::CreateServiceRequest req;
  req.mutable_spec()->set_name("big");
  req.mutable_spec()->set_replicas(6);
  req.mutable_spec()->mutable_template_()->set_command("app");
  for (int e = 0; e < 30; ++e) {
    (*req.mutable_spec()->mutable_template_()->mutable_env())[absl::StrCat("V", e)] =
        std::string(32000, 'x');
  }
  ASSERT_GT(6 * req.spec().ByteSizeLong(), 5u << 20);
  v1::Service out;
  grpc::Status s = stub_->CreateService(&ctx, req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(WaitFor([&] { return w.driver->Running() == 6; }, std::chrono::seconds(20)));
}

TEST_F(ClusterTest, CrashedTaskIsReplaced) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  Create("web", 2);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2; }));
  std::string victim = w1.driver->Specs().begin()->first;
  w1.driver->Crash(victim, 3);
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("web")) {
      if (t.id() == victim) return t.status().state() == v1::TASK_STATE_FAILED;
    }
    return false;
  }));
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2 && w1.driver->Running() == 2; }));
  bool found = false;
  for (const auto& t : Tasks("web")) {
    if (t.id() == victim) {
      found = true;
      EXPECT_EQ(t.status().exit_code(), 3);
      EXPECT_EQ(t.desired_state(), v1::TASK_STATE_SHUTDOWN);
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ClusterTest, ScaleAndDelete) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  Create("web", 3);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 3; }));
  {
    grpc::ClientContext ctx;
    v1::ScaleServiceRequest req;
    req.set_name_or_id("web");
    req.set_replicas(1);
    v1::Service out;
    ASSERT_TRUE(stub_->ScaleService(&ctx, req, &out).ok());
    EXPECT_EQ(out.revision(), 1);  // scaling makes no revision
  }
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 1 && w1.driver->Running() == 1; }));
  {
    grpc::ClientContext ctx;
    v1::DeleteServiceRequest req;
    req.set_name_or_id("web");
    v1::DeleteServiceResponse out;
    ASSERT_TRUE(stub_->DeleteService(&ctx, req, &out).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return w1.driver->Running() == 0; }));
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    v1::ListTasksResponse resp;
    stub_->ListTasks(&ctx, req, &resp);
    return resp.tasks_size() == 0;
  }));
}

TEST_F(ClusterTest, NodeTimeoutReschedulesTasks) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  auto& w2 = AddWorker("w2", "127.12.0.0/16");
  Create("web", 2);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2; }));
  ASSERT_EQ(w2.driver->Running(), 1);
  w2.agent->Stop();  // silent node: no more heartbeats
  ASSERT_TRUE(WaitFor([&] { return w1.driver->Running() == 2 && RunningCount("web") == 2; }));
  grpc::ClientContext ctx;
  v1::GetNodeRequest req;
  req.set_name_or_id("w2");
  v1::Node node;
  ASSERT_TRUE(stub_->GetNode(&ctx, req, &node).ok());
  EXPECT_EQ(node.state(), v1::NODE_STATE_DOWN);
  bool orphan_seen = false;
  for (const auto& t : Tasks("web")) {
    if (t.status().state() == v1::TASK_STATE_ORPHANED) orphan_seen = true;
  }
  EXPECT_TRUE(orphan_seen);
}

TEST_F(ClusterTest, TemplateUpdateRollsToNewRevision) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  v1::Service svc = Create("web", 3);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 3; }));
  grpc::ClientContext ctx;
  v1::UpdateServiceRequest req;
  *req.mutable_spec() = svc.spec();
  (*req.mutable_spec()->mutable_template_()->mutable_env())["VERSION"] = "v2";
  v1::Service out;
  ASSERT_TRUE(stub_->UpdateService(&ctx, req, &out).ok());
  EXPECT_EQ(out.revision(), 2);
  ASSERT_TRUE(WaitFor([&] {
    int v2 = 0;
    for (const auto& [id, spec] : w1.driver->Specs()) {
      if (spec.revision == 2 && w1.driver->Inspect(id)->phase != TaskRuntimeState::Phase::kExited)
        v2++;
    }
    return v2 == 3 && w1.driver->Running() == 3;
  }));
}

// A task whose health check never passed was never routed to: stopping it skips the drain
// (30 s here), so rolling back a bad version is not held up by it.
TEST_F(ClusterTest, NeverHealthyTaskStopsWithoutDraining) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  w1.driver->SetExecExitCode(1);
  grpc::ClientContext ctx;
  v1::CreateServiceRequest req;
  auto* spec = req.mutable_spec();
  spec->set_name("bad");
  spec->set_replicas(1);
  spec->mutable_template_()->set_command("app");
  spec->mutable_template_()->mutable_drain_timeout()->set_seconds(30);
  auto* hc = spec->mutable_template_()->mutable_health_check();
  hc->mutable_exec()->add_command("false");
  hc->mutable_interval()->set_nanos(50'000'000);
  hc->mutable_start_period()->set_seconds(0);  // unhealthy at once, not after the default
  hc->set_retries(1);
  v1::Service out;
  ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("bad")) {
      if (t.status().health().state() == v1::HEALTH_STATE_UNHEALTHY) return true;
    }
    return false;
  }));
  grpc::ClientContext del_ctx;
  v1::DeleteServiceRequest del;
  del.set_name_or_id("bad");
  v1::DeleteServiceResponse del_out;
  ASSERT_TRUE(stub_->DeleteService(&del_ctx, del, &del_out).ok());
  EXPECT_TRUE(WaitFor([&] { return w1.driver->Running() == 0; }, std::chrono::seconds(10)))
      << "the never-healthy task was drained before stopping";
}

// Issue 17 D6: a restarted worker reported its adopted tasks STARTING, then healthy since
// the restart, which took them out of the routing table and restarted their min-ready. The
// health the manager holds goes on; and a runtime that cannot be read at first is retried.
// A worker restart well within the node timeout.
class ClusterRestartTest : public ClusterTest {
 protected:
  ClusterRestartTest() { node_timeout_ = absl::Seconds(30); }
};

TEST_F(ClusterRestartTest, AdoptedTasksKeepTheirHealthAcrossAWorkerRestart) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    auto* spec = req.mutable_spec();
    spec->set_name("web");
    spec->set_replicas(2);
    spec->mutable_template_()->set_command("app");
    auto* hc = spec->mutable_template_()->mutable_health_check();
    hc->mutable_exec()->add_command("true");
    hc->mutable_interval()->set_nanos(50'000'000);
    v1::Service out;
    ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  }
  std::map<std::string, int64_t> since;  // task id -> healthy_since (unix nanos)
  ASSERT_TRUE(WaitFor([&] {
    since.clear();
    for (const auto& t : Tasks("web")) {
      if (t.status().health().state() != v1::HEALTH_STATE_HEALTHY) return false;
      since[t.id()] = absl::ToUnixNanos(FromProtoTime(t.status().health().healthy_since()));
    }
    return since.size() == 2;
  }));

  // Restart: a new agent on the same data dir; the tasks kept running.
  WorkerOptions wo = Options("w1", "127.11.0.0/16");
  w1.agent->Stop();
  auto driver = std::make_unique<FakeDriver>();
  for (const auto& [id, spec] : w1.driver->Specs()) {
    driver->AddRecoverable(spec, *w1.driver->Inspect(id));
  }
  driver->FailRecover(2);
  // Probes after the restart say so: their report marks the moment to look.
  driver->SetExecOutput("ok after the restart");
  WorkerAgent agent(wo, std::move(driver), RealClock::Get());
  ASSERT_TRUE(agent.Start().ok());
  ASSERT_TRUE(WaitFor([&] {
    int probed = 0;
    for (const auto& t : Tasks("web")) {
      if (t.status().message() == "adopted after a worker restart" &&
          t.status().health().last_probe().output() == "exit code 0: ok after the restart") {
        probed++;
      }
    }
    return probed == 2;
  })) << "the adopted tasks were not probed: "
      << [&] {
           std::string out;
           for (const auto& t : Tasks("web")) out += t.ShortDebugString() + "\n";
           return out;
         }();
  for (const auto& t : Tasks("web")) {
    EXPECT_EQ(t.status().health().state(), v1::HEALTH_STATE_HEALTHY) << t.id();
    EXPECT_EQ(absl::ToUnixNanos(FromProtoTime(t.status().health().healthy_since())), since[t.id()])
        << t.id() << ": healthy-since restarted with the worker";
  }
  agent.Stop();
}

// A task the worker lost while it was down (it died before the task was started, or its
// state went with the machine) was not the task's own doing: it is orphaned, not failed, so a
// rollout does not count it against the new revision (a rolling update rolled back after a
// kill -9 of the node), and the reconciler starts a replacement at once.
TEST_F(ClusterRestartTest, TaskLostWhileTheWorkerWasDownIsOrphanedNotFailed) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  Create("web", 2);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2; }));
  const std::vector<v1::Task> before = Tasks("web");
  WorkerOptions wo = Options("w1", "127.11.0.0/16");
  w1.agent->Stop();
  // Only the first task comes back after the restart.
  auto driver = std::make_unique<FakeDriver>();
  const std::string kept = before[0].id(), lost = before[1].id();
  driver->AddRecoverable(w1.driver->Specs().at(kept), *w1.driver->Inspect(kept));
  WorkerAgent agent(wo, std::move(driver), RealClock::Get());
  ASSERT_TRUE(agent.Start().ok());
  v1::Task lost_task;
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("web")) {
      if (t.id() == lost) lost_task = t;
    }
    return lost_task.status().state() != v1::TASK_STATE_RUNNING;
  }));
  EXPECT_EQ(lost_task.status().state(), v1::TASK_STATE_ORPHANED)
      << lost_task.status().ShortDebugString();
  EXPECT_EQ(lost_task.status().error(), "");
  EXPECT_THAT(lost_task.status().message(), testing::HasSubstr("lost while the worker was down"));
  EXPECT_TRUE(WaitFor([&] { return RunningCount("web") == 2; }));
  agent.Stop();
}

TEST_F(ClusterTest, RejectsBadInputAndStoresNothing) {
  AddWorker("w1", "127.11.0.0/16");
  struct Case {
    std::string field;
    std::function<void(v1::ServiceSpec*)> mutate;
  };
  std::vector<Case> cases = {
      {"name", [](auto* s) { s->set_name("Bad_Name"); }},
      {"replicas", [](auto* s) { s->set_replicas(-1); }},
      {"template.command", [](auto* s) { s->mutable_template_()->clear_command(); }},
      {"template.ports[0].target",
       [](auto* s) { s->mutable_template_()->add_ports()->set_target(70000); }},
  };
  uint64_t before = manager_->store().Version();
  for (const auto& c : cases) {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("ok");
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    c.mutate(req.mutable_spec());
    v1::Service out;
    grpc::Status s = stub_->CreateService(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_NE(s.error_message().find(c.field), std::string::npos)
        << c.field << ": " << s.error_message();
  }
  Create("web", 1);
  grpc::ClientContext ctx;
  v1::CreateServiceRequest dup;
  dup.mutable_spec()->set_name("web");
  dup.mutable_spec()->mutable_template_()->set_command("app");
  v1::Service out;
  EXPECT_EQ(stub_->CreateService(&ctx, dup, &out).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  grpc::ClientContext lctx;
  v1::ListServicesResponse list;
  stub_->ListServices(&lctx, v1::ListServicesRequest(), &list);
  EXPECT_EQ(list.services_size(), 1);
  EXPECT_GT(manager_->store().Version(), before);
}

TEST_F(ClusterTest, EventsStreamFromTheBeginning) {
  AddWorker("w1", "127.11.0.0/16");
  Create("web", 1);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 1; }));
  grpc::ClientContext ctx;
  v1::WatchEventsRequest req;
  req.set_service("web");
  auto reader = stub_->WatchEvents(&ctx, req);
  std::set<std::string> actions;
  v1::Event e;
  while (actions.count("running") == 0 && reader->Read(&e)) actions.insert(e.action());
  ctx.TryCancel();
  reader->Finish();
  EXPECT_TRUE(actions.count("created"));
  EXPECT_TRUE(actions.count("running"));
}

}  // namespace
}  // namespace warren

namespace warren {
namespace {

// A cri node registers without an address range; its tasks get the address the worker reports
// (the pod IP), which the routing layer then uses.
TEST_F(ClusterTest, CriNodeTasksTakeTheAddressTheWorkerReports) {
  v1::RegisterNodeRequest reg;
  reg.set_name("c1");
  reg.set_runtime("cri");
  reg.set_address_range("127.9.0.0/16");
  v1::Node node;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RegisterNode(&ctx, reg, &node);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("address_range"), std::string::npos) << s.error_message();
  }
  reg.clear_address_range();
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->RegisterNode(&ctx, reg, &node);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(node.address_range(), "");
  }
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_image("127.0.0.1:5000/web:1");
    v1::Service out;
    ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  }
  ASSERT_TRUE(WaitFor([&] {
    auto ts = Tasks("web");
    return ts.size() == 1 && ts[0].node_id() == node.id();
  }));
  v1::Task t = Tasks("web")[0];
  EXPECT_EQ(t.address(), "");
  v1::ReportTaskStatusRequest report;
  report.set_node_id(node.id());
  auto* r = report.add_reports();
  r->set_task_id(t.id());
  r->mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  r->mutable_status()->set_address("10.88.0.7");
  {
    grpc::ClientContext ctx;
    v1::ReportTaskStatusResponse resp;
    ASSERT_TRUE(stub_->ReportTaskStatus(&ctx, report, &resp).ok());
  }
  t = Tasks("web")[0];
  EXPECT_EQ(t.address(), "10.88.0.7");
  EXPECT_EQ(t.status().state(), v1::TASK_STATE_RUNNING);
}

}  // namespace
}  // namespace warren
