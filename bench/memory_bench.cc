// Manager memory and store size under a crash loop (issue 17 D3): a manager and a process
// worker on loopback, one service with the largest valid spec (1 MiB: environment values)
// whose task exits at once and is restarted every few milliseconds. Samples the manager's RSS,
// the store's files and the tasks it keeps; with history pruning and a byte-bounded watch feed
// they level off however long the loop runs.
//
// usage: memory_bench WARREN_BINARY [SECONDS (default 120)] [REPLICAS (default 2)]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/limits.h"
#include "common/spec.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

namespace {

using warren::bench::FreePort;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::WaitUntil;

long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Bytes of every file of the store (the database and its WAL).
double StoreMiB(const std::filesystem::path& dir) {
  uintmax_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind("store.db", 0) == 0 && e.is_regular_file(ec)) {
      total += e.file_size(ec);
    }
  }
  return total / 1048576.0;
}

// The largest spec ValidateServiceSpec accepts: defaults applied, then environment values up to
// exactly limits::kMaxSpecBytes.
warren::v1::ServiceSpec MaximalSpec(int replicas) {
  warren::v1::ServiceSpec spec;
  spec.set_name("crashloop");
  spec.set_replicas(replicas);
  auto* t = spec.mutable_template_();
  t->set_command("false");
  auto* rp = t->mutable_restart_policy();
  rp->mutable_delay()->set_nanos(1'000'000);       // 1ms
  rp->mutable_max_delay()->set_nanos(20'000'000);  // 20ms: restarts as fast as the loop goes
  warren::ApplySpecDefaults(&spec);
  for (int i = 0; spec.ByteSizeLong() + 33000 < warren::limits::kMaxSpecBytes; ++i) {
    (*t->mutable_env())["BENCH_" + std::to_string(i)] = std::string(32000, 'x');
  }
  std::string& pad = (*t->mutable_env())["BENCH_PAD"];
  while (spec.ByteSizeLong() < warren::limits::kMaxSpecBytes) pad.push_back('p');
  return spec;
}

struct Sample {
  double t = 0;
  double rss_mib = 0;
  double store_mib = 0;
  int tasks = 0;
  int restarts = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s WARREN_BINARY [SECONDS] [REPLICAS]\n", argv[0]);
    return 2;
  }
  const std::string warren = argv[1];
  const int seconds = argc > 2 ? std::max(10, std::atoi(argv[2])) : 120;
  const int replicas = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2;
  signal(SIGPIPE, SIG_IGN);
  auto dir =
      std::filesystem::temp_directory_path() / ("warren-membench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);

  const std::string api = "127.0.0.1:" + std::to_string(FreePort());
  pid_t manager = Spawn({warren, "manager", "--data-dir", (dir / "m").string(), "--api-addr", api,
                         "--metrics-addr", "", "--dns-addr", ""},
                        (dir / "manager.log").string());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(warren::limits::kMaxClientReceiveBytes);
  auto channel = grpc::CreateCustomChannel(api, grpc::InsecureChannelCredentials(), args);
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stub = warren::v1::Warren::NewStub(channel);
  pid_t worker = Spawn({warren, "worker", "--manager", api, "--node-name", "bench-1", "--data-dir",
                        (dir / "w").string(), "--runtime", "process", "--address-range",
                        "127.63.0.0/16", "--dns-addr", "", "--stop-tasks-on-exit"},
                       (dir / "worker.log").string());
  WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        warren::v1::ListNodesResponse resp;
        return stub->ListNodes(&ctx, {}, &resp).ok() && resp.nodes_size() == 1;
      },
      std::chrono::seconds(20));

  warren::v1::CreateServiceRequest req;
  *req.mutable_spec() = MaximalSpec(replicas);
  const size_t spec_bytes = req.spec().ByteSizeLong();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    warren::v1::Service out;
    grpc::Status s = stub->CreateService(&ctx, req, &out);
    if (!s.ok()) {
      std::fprintf(stderr, "create: %s\n", s.error_message().c_str());
      Terminate(worker);
      Terminate(manager);
      return 1;
    }
  }

  std::vector<Sample> samples;
  const auto start = std::chrono::steady_clock::now();
  const auto step = std::chrono::seconds(std::max(2, seconds / 20));
  auto next = start;
  for (;;) {
    next += step;
    std::this_thread::sleep_until(next);
    Sample s;
    s.t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    s.rss_mib = RssKiB(manager) / 1024.0;
    s.store_mib = StoreMiB(dir / "m");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    warren::v1::ListTasksResponse tasks;
    if (stub->ListTasks(&ctx, {}, &tasks).ok()) {
      std::map<int, int> attempts;
      for (const auto& t : tasks.tasks()) {
        attempts[t.slot()] = std::max(attempts[t.slot()], t.attempt());
      }
      s.tasks = tasks.tasks_size();
      for (const auto& [slot, a] : attempts) s.restarts += a;
    } else {
      s.tasks = -1;  // the API did not answer within 10 s
    }
    samples.push_back(s);
    if (s.t >= seconds) break;
  }
  Terminate(worker);
  Terminate(manager);

  std::printf(
      "Spec: %zu bytes (limit %zu), %d replica(s), restart delay 1ms..20ms, `false` "
      "as the task. Manager RSS, store files (store.db + WAL), tasks kept, restarts "
      "so far:\n\n",
      spec_bytes, warren::limits::kMaxSpecBytes, replicas);
  std::printf("| time | manager RSS | store files | tasks kept | restarts |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  for (const Sample& s : samples) {
    std::printf("| %.0f s | %.0f MiB | %.1f MiB | %s | %d |\n", s.t, s.rss_mib, s.store_mib,
                s.tasks < 0 ? "API timeout" : std::to_string(s.tasks).c_str(), s.restarts);
  }
  // Level: the second half against the first.
  double rss_half = 0, rss_max = 0, store_half = 0, store_max = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (i < samples.size() / 2) {
      rss_half = std::max(rss_half, samples[i].rss_mib);
      store_half = std::max(store_half, samples[i].store_mib);
    }
    rss_max = std::max(rss_max, samples[i].rss_mib);
    store_max = std::max(store_max, samples[i].store_mib);
  }
  std::printf(
      "\nHighest in the first half -> overall: RSS %.0f -> %.0f MiB, store %.1f -> %.1f "
      "MiB; %d restarts in %.0f s\n",
      rss_half, rss_max, store_half, store_max, samples.empty() ? 0 : samples.back().restarts,
      samples.empty() ? 0.0 : samples.back().t);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
