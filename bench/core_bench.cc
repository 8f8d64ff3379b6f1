// Core orchestrator benchmarks: scheduler throughput, API create rate and latency, manager
// memory with 1,000 services x 3 tasks on the fake runtime, and the process runtime's time
// from create to 100 healthy replicas. Everything runs on loopback; every loop is bounded.
//
// usage: core_bench WARREN_BINARY TESTAPP_BINARY
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "grpcpp/grpcpp.h"
#include "manager/scheduler.h"
#include "warren/v1/api.grpc.pb.h"

namespace {

using warren::bench::ApiChannel;
using warren::bench::Concat;
using warren::bench::FreePort;
using warren::bench::JoinFlags;
using warren::bench::KillProcessesWithEnv;
using warren::bench::Percentile;
using warren::bench::RssKiB;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::TlsFlags;
using warren::bench::WaitUntil;

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::unique_ptr<warren::v1::Control::Stub> Connect(const std::shared_ptr<grpc::Channel>& channel) {
  return warren::v1::Control::NewStub(channel);
}

int CountTasks(warren::v1::Control::Stub& stub, bool healthy_only) {
  grpc::ClientContext ctx;
  warren::v1::ListTasksResponse resp;
  if (!stub.ListTasks(&ctx, warren::v1::ListTasksRequest(), &resp).ok()) return -1;
  int n = 0;
  for (const auto& t : resp.tasks()) {
    if (t.status().state() != warren::v1::TASK_STATE_RUNNING) continue;
    if (healthy_only && t.status().health().state() != warren::v1::HEALTH_STATE_HEALTHY) continue;
    n++;
  }
  return n;
}

void Row(const std::string& name, const std::string& value, const std::string& goal,
         const std::string& peer = "-") {
  std::printf("| %-44s | %-30s | %-22s | %s |\n", name.c_str(), value.c_str(), goal.c_str(),
              peer.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s WARREN_BINARY TESTAPP_BINARY\n", argv[0]);
    return 2;
  }
  const std::string warren = argv[1], testapp = argv[2];
  signal(SIGPIPE, SIG_IGN);
  auto dir = std::filesystem::temp_directory_path() / ("warren-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::printf("| %-44s | %-30s | %-22s | %s |\n", "benchmark", "result", "goal",
              "peer (original Go Warren, claimed)");
  std::printf("|%s|%s|%s|---|\n", std::string(46, '-').c_str(), std::string(32, '-').c_str(),
              std::string(24, '-').c_str());

  // 1. Scheduler: 10,000 tasks over 1,000 nodes in one pass.
  {
    std::vector<warren::v1::Node> nodes(1000);
    for (int i = 0; i < 1000; ++i) {
      nodes[i].set_id("n" + std::to_string(i));
      nodes[i].set_state(warren::v1::NODE_STATE_READY);
      nodes[i].set_address_range("127." + std::to_string(1 + i / 250) + "." +
                                 std::to_string(i % 250) + ".0/24");
      nodes[i].mutable_capacity()->set_cpus(64);
      (*nodes[i].mutable_labels())["zone"] = i % 2 ? "a" : "b";
    }
    std::vector<warren::v1::Task> pending(10000);
    for (int i = 0; i < 10000; ++i) {
      pending[i].set_id("t" + std::to_string(i));
      pending[i].set_service_id("s" + std::to_string(i % 100));
      pending[i].set_revision(1);
      pending[i].mutable_spec()->mutable_resources()->set_cpus(0.1);
      if (i % 3 == 0) pending[i].mutable_spec()->add_constraints("node.labels.zone==a");
    }
    double best = 1e18;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = Clock::now();
      auto r = warren::Scheduler::Schedule(nodes, {}, pending);
      double ms = Ms(Clock::now() - t0);
      if (r.assigned.size() != pending.size()) std::fprintf(stderr, "scheduler: unplaced tasks\n");
      best = std::min(best, ms);
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.0f placements/s", 10000.0 / (best / 1000.0));
    Row("scheduler: 10,000 tasks over 1,000 nodes", buf, ">= 20,000/s");
  }

  // 2. API create rate and 3. manager memory (separate manager process, fake-runtime worker).
  {
    std::string api = "127.0.0.1:" + std::to_string(FreePort());
    pid_t manager = Spawn(Concat({warren, "manager", "--data-dir", (dir / "m").string(),
                                  "--api-addr", api, "--metrics-addr", "", "--dns-addr", ""},
                                 TlsFlags(dir / "m-home")),
                          (dir / "manager.log").string());
    auto channel = ApiChannel(api, dir / "m-home");
    auto stub = Connect(channel);
    std::vector<double> lat;
    auto t0 = Clock::now();
    for (int i = 0; i < 1000; ++i) {
      warren::v1::CreateServiceRequest req;
      req.mutable_spec()->set_name("svc-" + std::to_string(i));
      req.mutable_spec()->set_replicas(3);
      req.mutable_spec()->mutable_template_()->set_command("/bin/true");
      grpc::ClientContext ctx;
      warren::v1::Service out;
      auto s0 = Clock::now();
      grpc::Status st = stub->CreateService(&ctx, req, &out);
      lat.push_back(Ms(Clock::now() - s0));
      if (!st.ok()) std::fprintf(stderr, "create: %s\n", st.error_message().c_str());
    }
    double total_s = Ms(Clock::now() - t0) / 1000.0;
    char buf[96], peer[96];
    std::snprintf(buf, sizeof(buf), "%.0f services/s", 1000 / total_s);
    std::snprintf(peer, sizeof(peer), "10 services/s; Warren %.0fx", 1000 / total_s / 10);
    Row("API: create 1,000 services (sequential)", buf, ">= 500/s", peer);
    std::snprintf(buf, sizeof(buf), "p50 %.2f ms, p99 %.2f ms", Percentile(lat, 50),
                  Percentile(lat, 99));
    std::snprintf(peer, sizeof(peer), "66 ms; Warren p99 %.2fx of it", Percentile(lat, 99) / 66);
    Row("API: create latency", buf, "p99 < 20 ms", peer);

    pid_t worker = Spawn(Concat({warren, "worker", "--manager", api, "--node-name", "fake-1",
                                 "--data-dir", (dir / "w").string(), "--runtime", "fake",
                                 "--address-range", "127.60.0.0/16", "--dns-addr", ""},
                                JoinFlags(channel)),
                         (dir / "worker.log").string());
    auto r0 = Clock::now();
    bool all =
        WaitUntil([&] { return CountTasks(*stub, false) >= 3000; }, std::chrono::seconds(120));
    std::snprintf(buf, sizeof(buf), all ? "%.1f s" : "incomplete after %.1f s",
                  Ms(Clock::now() - r0) / 1000.0);
    Row("3,000 tasks scheduled and running (fake rt)", buf, "-");
    std::this_thread::sleep_for(std::chrono::seconds(1));
    std::snprintf(buf, sizeof(buf), "%.1f MiB", RssKiB(manager) / 1024.0);
    Row("manager RSS, 1,000 services x 3 tasks", buf, "< 64 MiB");
    Terminate(worker);
    Terminate(manager);
  }

  // 4. Process runtime: 100 replicas from create to all healthy.
  {
    std::string api = "127.0.0.1:" + std::to_string(FreePort());
    pid_t node = Spawn(Concat({warren, "cluster", "init", "--data-dir", (dir / "h").string(),
                               "--api-addr", api, "--metrics-addr", "", "--dns-addr", "",
                               "--address-range", "127.61.0.0/16", "--stop-tasks-on-exit"},
                              TlsFlags(dir / "h-home")),
                       (dir / "hybrid.log").string());
    auto stub = Connect(ApiChannel(api, dir / "h-home"));
    WaitUntil(
        [&] {
          grpc::ClientContext ctx;
          warren::v1::ListNodesResponse resp;
          return stub->ListNodes(&ctx, warren::v1::ListNodesRequest(), &resp).ok() &&
                 resp.nodes_size() == 1;
        },
        std::chrono::seconds(10));
    warren::v1::CreateServiceRequest req;
    auto* spec = req.mutable_spec();
    spec->set_name("hundred");
    spec->set_replicas(100);
    spec->mutable_template_()->set_command(testapp);
    auto* hc = spec->mutable_template_()->mutable_health_check();
    hc->mutable_http()->set_path("/healthz");
    hc->mutable_interval()->set_nanos(100'000'000);
    grpc::ClientContext ctx;
    warren::v1::Service out;
    auto t0 = Clock::now();
    stub->CreateService(&ctx, req, &out);
    bool all = WaitUntil([&] { return CountTasks(*stub, true) >= 100; }, std::chrono::seconds(60));
    char buf[64];
    std::snprintf(buf, sizeof(buf), all ? "%.2f s" : "incomplete after %.2f s",
                  Ms(Clock::now() - t0) / 1000.0);
    Row("process runtime: 100 replicas to healthy", buf, "< 5 s");
    Terminate(node);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
