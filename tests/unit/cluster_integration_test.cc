// An in-process manager (real gRPC on loopback, SQLite store) and workers on the fake
// runtime: the control plane end to end without processes.
#include <deque>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "in_process_cluster.h"
#include "manager/server.h"
#include "store/typed_store.h"
#include "test_util.h"
#include "worker/agent.h"
#include "worker/fake_driver.h"

namespace warren {
namespace {

using testing_util::TempDir;
using testing_util::WaitFor;

class ClusterTest : public testing_util::InProcessClusterTest {
 protected:
  // Short, so that tests of a silent node are quick; not so short that a loaded machine
  // (a heartbeat every node_timeout / 5) flaps nodes.
  ClusterTest() { node_timeout_ = absl::Seconds(3); }

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

// Issue 11 D2: a worker that comes back after its tasks went elsewhere (or after their
// service was removed) adopts them, and then must stop every one the manager no longer
// assigns to it. A node left with no task at all got no assignment message, so nothing
// stopped them.
class OrphanTest : public ClusterTest {
 protected:
  // A new agent on `w`'s data dir that recovers the tasks `w` left running; their ids go to
  // `recovered`.
  Worker& Restart(Worker& w, const std::string& name, const std::string& range,
                  std::vector<std::string>* recovered) {
    auto driver = std::make_unique<FakeDriver>();
    for (const auto& [id, spec] : w.driver->Specs()) {
      auto st = w.driver->Inspect(id);
      if (st && st->phase != TaskRuntimeState::Phase::kExited) {
        driver->AddRecoverable(spec, *st);
        recovered->push_back(id);
      }
    }
    FakeDriver* raw = driver.get();
    auto agent =
        std::make_unique<WorkerAgent>(Options(name, range), std::move(driver), RealClock::Get());
    EXPECT_TRUE(agent->Start().ok());
    workers_.push_back({raw, std::move(agent)});
    return workers_.back();
  }

  // Restarts `w` and expects every task it recovers (`count` of them) to be stopped.
  void RestartAndExpectAllStopped(Worker& w, size_t count, const std::string& what) {
    std::vector<std::string> recovered;
    auto& again = Restart(w, "w1", "127.11.0.0/16", &recovered);
    ASSERT_EQ(recovered.size(), count);
    EXPECT_TRUE(WaitFor([&] { return StillRunning(again, recovered).empty(); }))
        << StillRunning(again, recovered).size() << " " << what;
  }

  // Ids among `ids` that still run on `w`.
  static std::vector<std::string> StillRunning(const Worker& w,
                                               const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    for (const auto& id : ids) {
      auto st = w.driver->Inspect(id);
      if (st && st->phase != TaskRuntimeState::Phase::kExited) out.push_back(id);
    }
    return out;
  }

  void Delete(const std::string& name) {
    grpc::ClientContext ctx;
    v1::DeleteServiceRequest req;
    req.set_name_or_id(name);
    v1::DeleteServiceResponse out;
    ASSERT_TRUE(stub_->DeleteService(&ctx, req, &out).ok());
  }
};

// A restart well within the node timeout: the node is never declared down.
class OrphanQuickRestartTest : public OrphanTest {
 protected:
  OrphanQuickRestartTest() { node_timeout_ = absl::Seconds(30); }
};

TEST_F(OrphanTest, RestartedWorkerStopsTasksRescheduledElsewhere) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  Create("web", 2);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2 && w1.driver->Running() == 2; }));
  auto& w2 = AddWorker("w2", "127.12.0.0/16");
  w1.agent->Stop();  // as killed: its tasks keep running, its heartbeats stop
  ASSERT_TRUE(WaitFor([&] { return w2.driver->Running() == 2 && RunningCount("web") == 2; }));
  RestartAndExpectAllStopped(w1, 2, "orphan(s) still run on the restarted worker");
}

// `service rm` while the node is down forgets its tasks at once (nothing can stop them).
TEST_F(OrphanTest, RestartedWorkerStopsTasksOfAServiceRemovedWhileItWasDown) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  Create("web", 2);
  Create("api", 1);
  ASSERT_TRUE(WaitFor([&] { return w1.driver->Running() == 3; }));
  w1.agent->Stop();
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    v1::GetNodeRequest req;
    req.set_name_or_id("w1");
    v1::Node node;
    return stub_->GetNode(&ctx, req, &node).ok() && node.state() == v1::NODE_STATE_DOWN;
  }));
  Delete("web");
  Delete("api");
  RestartAndExpectAllStopped(w1, 3, "task(s) of removed services still run");
}

// The node still has a task, so assignments arrive: only the one removed meanwhile stops.
TEST_F(OrphanQuickRestartTest, RestartedWorkerKeepsWhatIsStillAssigned) {
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  Create("web", 1);
  Create("api", 1);
  ASSERT_TRUE(WaitFor([&] { return w1.driver->Running() == 2; }));
  const std::string kept = Tasks("api")[0].id();
  const std::string gone = Tasks("web")[0].id();
  w1.agent->Stop();
  Delete("web");
  std::vector<std::string> recovered;
  auto& again = Restart(w1, "w1", "127.11.0.0/16", &recovered);
  ASSERT_TRUE(WaitFor([&] { return StillRunning(again, {gone}).empty(); }));
  EXPECT_EQ(StillRunning(again, {kept}).size(), 1u);
}

// Issue 11 D1: a global task names its node before the scheduler gives it an address, and the
// worker started it then: empty WARREN_TASK_IP, so it listened on 127.0.0.1 and two global
// services on one node clashed. A task that cannot be placed (here: more CPU than any node
// has) shows that deterministically: it must not run at all.
TEST_F(ClusterTest, GlobalTasksStartOnlyOncePlacedWithTheirOwnAddress) {
  auto add = [&](const std::string& name, const std::string& range) -> Worker& {
    WorkerOptions wo = Options(name, range);
    wo.cpus = 1;
    return AddWorker(wo);
  };
  auto& w1 = add("w1", "127.11.0.0/16");
  auto& w2 = add("w2", "127.12.0.0/16");
  auto global = [&](const std::string& name, double cpus) {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_mode("global");
    req.mutable_spec()->mutable_template_()->set_command("app");
    req.mutable_spec()->mutable_template_()->mutable_resources()->set_cpus(cpus);
    v1::Service out;
    grpc::Status s = stub_->CreateService(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
  };
  global("big", 4);
  global("a", 0.1);
  global("b", 0.1);
  ASSERT_TRUE(WaitFor([&] {
    int unplaced = 0;
    for (const auto& t : Tasks("big")) {
      unplaced += t.status().message().rfind("no suitable node", 0) == 0;
    }
    return RunningCount("a") == 2 && RunningCount("b") == 2 && unplaced == 2;
  })) << RunningCount("a")
      << " " << RunningCount("b");
  for (Worker* w : {&w1, &w2}) {
    std::set<std::string> addresses;
    for (const auto& [id, spec] : w->driver->Specs()) {
      EXPECT_NE(spec.service_name, "big") << "an unplaced global task was started";
      const std::string& ip = spec.env.at("WARREN_TASK_IP");
      EXPECT_FALSE(ip.empty()) << spec.service_name;
      EXPECT_EQ(ip, spec.address);
      addresses.insert(ip);
    }
    EXPECT_EQ(addresses.size(), 2u) << "two global services share an address on one node";
  }
  EXPECT_EQ(w1.driver->Running(), 2);
  EXPECT_EQ(w2.driver->Running(), 2);
}

// Issue 11 D3: two services publishing one port were both accepted.
TEST_F(ClusterTest, PublishedPortConflictsAreRejectedAtCreateAndUpdate) {
  AddWorker("w1", "127.11.0.0/16");
  auto spec = [](const std::string& name, int published) {
    v1::ServiceSpec s;
    s.set_name(name);
    s.set_replicas(1);
    s.mutable_template_()->set_command("app");
    v1::Port* p = s.mutable_template_()->add_ports();
    p->set_target(9000);
    p->set_published(published);
    return s;
  };
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec("web", 18000);
    v1::Service out;
    ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec("api", 18000);
    v1::Service out;
    grpc::Status s = stub_->CreateService(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("template.ports[0].published: port 18000"), std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("service \"web\""), std::string::npos) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    v1::GetServiceRequest get;
    get.set_name_or_id("api");
    v1::Service out;
    EXPECT_EQ(stub_->GetService(&ctx, get, &out).error_code(), grpc::StatusCode::NOT_FOUND)
        << "a rejected create stored the service";
  }
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec("api", 18001);
    v1::Service out;
    ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  }
  {
    // apply -f goes through UpdateService for a service that exists.
    grpc::ClientContext ctx;
    v1::UpdateServiceRequest req;
    *req.mutable_spec() = spec("api", 18000);
    v1::Service out;
    grpc::Status s = stub_->UpdateService(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("template.ports[0].published"), std::string::npos)
        << s.error_message();
  }
  grpc::ClientContext ctx;
  v1::GetServiceRequest get;
  get.set_name_or_id("api");
  v1::Service api;
  ASSERT_TRUE(stub_->GetService(&ctx, get, &api).ok());
  EXPECT_EQ(api.spec().template_().ports(0).published(), 18001);
  EXPECT_EQ(api.revision(), 1);
}

// Issue 11 D4: `--publish 8080` (published = target) on the process runtime crash-looped: the
// proxy and the task both bound 8080. Rejected, naming the field and a port to publish.
TEST_F(ClusterTest, ProcessServicePublishingItsOwnTargetPortIsRejected) {
  AddWorker("w1", "127.11.0.0/16");
  grpc::ClientContext ctx;
  v1::CreateServiceRequest req;
  req.mutable_spec()->set_name("web");
  req.mutable_spec()->set_replicas(1);
  req.mutable_spec()->mutable_template_()->set_command("app");
  v1::Port* p = req.mutable_spec()->mutable_template_()->add_ports();
  p->set_target(8080);
  p->set_published(8080);
  v1::Service out;
  grpc::Status s = stub_->CreateService(&ctx, req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("template.ports[0].published: port 8080 is also the port"),
            std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("--publish 18080:8080"), std::string::npos) << s.error_message();
  EXPECT_TRUE(Tasks("web").empty());
}

// Issue 11 D3: a port another program holds is retried with backoff; the service shows it
// (publish_errors, `service ps` and `inspect`) with one event, and it clears once it binds.
TEST_F(ClusterTest, PortTakenByAnotherProgramIsReportedOnceAndRetried) {
  auto holder = HttpServer::Start(
      "127.0.0.1:0", [](const HttpRequest&) { return HttpResponse::Text(200, "not warren\n"); });
  ASSERT_TRUE(holder.ok()) << holder.status();
  const int port = (*holder)->port();
  AddWorker("w1", "127.11.0.0/16");
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Port* p = req.mutable_spec()->mutable_template_()->add_ports();
    p->set_target(9000);
    p->set_published(port);
    p->set_host_ip("127.0.0.1");
    v1::Service out;
    ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  }
  auto service = [&] {
    grpc::ClientContext ctx;
    v1::GetServiceRequest req;
    req.set_name_or_id("web");
    v1::Service out;
    EXPECT_TRUE(stub_->GetService(&ctx, req, &out).ok());
    return out;
  };
  auto events = [&](const std::string& action) {
    int n = 0;
    for (const auto& e : ListObjects<v1::Event>(manager_->store())) {
      n += e.object_name() == "web" && e.action() == action;
    }
    return n;
  };
  // A second attempt (after the first backoff) has been made and reported.
  ASSERT_TRUE(WaitFor([&] {
    v1::Service s = service();
    return s.publish_errors_size() == 1 && s.publish_errors(0).attempts() >= 2;
  })) << service().ShortDebugString();
  v1::PublishError e = service().publish_errors(0);
  EXPECT_EQ(e.node_name(), "w1");
  EXPECT_EQ(e.port(), port);
  EXPECT_NE(e.error().find("in use"), std::string::npos) << e.error();
  EXPECT_EQ(events("publish-failed"), 1);

  (*holder)->Stop();
  holder->reset();
  ASSERT_TRUE(WaitFor([&] { return service().publish_errors_size() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return events("published") == 1; }));
  EXPECT_EQ(events("publish-failed"), 1);
}

// Issue 11 D8: another program (another cluster on the machine) holds the address and port
// the scheduler gave a task. The worker starts it on the next free address of its range, says
// so in the task's status and an event, and the manager takes the new address.
TEST_F(ClusterTest, TaskAddressTakenByAnotherProgramMovesToAFreeOne) {
  // The scheduler's first address on w1 is 127.11.0.1.
  auto holder = HttpServer::Start("127.11.0.1:0", [](const HttpRequest&) {
    return HttpResponse::Text(200, "another cluster\n");
  });
  ASSERT_TRUE(holder.ok()) << holder.status();
  const int port = (*holder)->port();
  auto& w1 = AddWorker("w1", "127.11.0.0/16");
  {
    grpc::ClientContext ctx;
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    req.mutable_spec()->mutable_template_()->add_ports()->set_target(port);
    v1::Service out;
    ASSERT_TRUE(stub_->CreateService(&ctx, req, &out).ok());
  }
  ASSERT_TRUE(WaitFor([&] {
    auto ts = Tasks("web");
    return RunningCount("web") == 1 && ts[0].address() == "127.11.0.2";
  })) << Tasks("web")[0].ShortDebugString();
  const v1::Task t = Tasks("web")[0];
  EXPECT_NE(t.status().message().find("127.11.0.1 was taken by another program"), std::string::npos)
      << t.status().message();
  EXPECT_EQ(w1.driver->Specs().at(t.id()).env.at("WARREN_TASK_IP"), "127.11.0.2");
  EXPECT_EQ(w1.driver->Specs().at(t.id()).address, "127.11.0.2");
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& e : ListObjects<v1::Event>(manager_->store())) {
      if (e.action() == "readdressed" && e.object_id() == t.id()) return true;
    }
    return false;
  }));
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
    grpc::Status s = dispatcher_->RegisterNode(&ctx, reg, &node);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("address_range"), std::string::npos) << s.error_message();
  }
  reg.clear_address_range();
  {
    grpc::ClientContext ctx;
    grpc::Status s = dispatcher_->RegisterNode(&ctx, reg, &node);
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
    ASSERT_TRUE(dispatcher_->ReportTaskStatus(&ctx, report, &resp).ok());
  }
  t = Tasks("web")[0];
  EXPECT_EQ(t.address(), "10.88.0.7");
  EXPECT_EQ(t.status().state(), v1::TASK_STATE_RUNNING);
}

}  // namespace
}  // namespace warren
