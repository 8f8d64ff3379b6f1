// The control plane at scale (issue 18): a `warren manager` and a `--runtime fake` worker
// holding N other services x 3 tasks, then, for one service: the controller's reaction (task
// healthy -> next batch), a 10-replica rolling update against its floor, a scale-up to running
// and a manual rollback; the manager's RSS and the rate at which the N services were created.
// Prints one markdown row per N. Loopback only; every wait is bounded; every process started
// is stopped.
//
// usage: scale_bench WARREN_BINARY [N...]   (default: 0 1000)
// Env: SCALE_ROLLOUTS (rolling updates for the reaction samples, 9 each; default 12),
// SCALE_UPS (scale-ups by one, each scaled back before the next; default 9).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/health_prober.h"

namespace {

using warren::bench::ApiChannel;
using warren::bench::Concat;
using warren::bench::Ctx;
using warren::bench::EventRecorder;
using warren::bench::FreePort;
using warren::bench::JoinFlags;
using warren::bench::Percentile;
using warren::bench::RssKiB;
using warren::bench::Seconds;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::TlsFlags;
using warren::bench::WaitUntil;
using warren::bench::WallNow;
namespace v1 = warren::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kReplicas = 10;

// A count from the environment, `fallback` when unset; bounded so that every run ends.
int EnvCount(const char* name, int fallback, int max) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 1 || n > max) {
    std::fprintf(stderr, "scale_bench: %s must be a whole number from 1 to %d, got \"%s\"\n", name,
                 max, v);
    std::exit(2);
  }
  return static_cast<int>(n);
}

std::string Fmt(const char* fmt, double a, double b = 0, double c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c);
  return buf;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Figures {
  double create_rate = 0;  // services/s
  double settle_s = 0;     // all 3N tasks running
  double reaction_p50_ms = 0, reaction_p99_ms = 0;
  int reaction_samples = 0;
  double rolling_s = 0, rolling_floor_s = 0;  // median
  double scale_s = 0;                         // median
  // Where a scale-up's time went (medians, ms): the controller's new task, the worker's start
  // of it, its RUNNING report in the store, and the bench seeing it.
  double scale_created_ms = 0, scale_started_ms = 0, scale_reported_ms = 0, scale_seen_ms = 0;
  double rollback_s = 0;
  double rss_mib = 0;
  std::string error;
};

class Cluster {
 public:
  Cluster(std::string warren, std::filesystem::path dir) : warren_(std::move(warren)), dir_(dir) {
    std::filesystem::create_directories(dir_);
  }
  ~Cluster() {
    if (worker_ > 0) Terminate(worker_);
    if (manager_ > 0) Terminate(manager_);
  }

  bool Start() {
    api_ = "127.0.0.1:" + std::to_string(FreePort());
    manager_ = Spawn(Concat({warren_, "manager", "--data-dir", (dir_ / "m").string(), "--api-addr",
                             api_, "--metrics-addr", "", "--dns-addr", ""},
                            TlsFlags(dir_ / "home")),
                     (dir_ / "manager.log").string());
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // every task of 10,000 services in one answer
    auto channel = ApiChannel(api_, dir_ / "home", args);
    stub_ = v1::Control::NewStub(channel);
    worker_ = Spawn(Concat({warren_, "worker", "--manager", api_, "--node-name", "fake-1",
                            "--data-dir", (dir_ / "w").string(), "--runtime", "fake",
                            "--address-range", "127.63.0.0/16", "--dns-addr", ""},
                           JoinFlags(channel)),
                    (dir_ / "worker.log").string());
    return WaitUntil(
        [&] {
          auto ctx = Ctx();
          v1::ListNodesResponse resp;
          return stub_->ListNodes(ctx.get(), v1::ListNodesRequest(), &resp).ok() &&
                 resp.nodes_size() == 1 && resp.nodes(0).state() == v1::NODE_STATE_READY;
        },
        seconds(20));
  }

  v1::Control::Stub& stub() { return *stub_; }
  pid_t manager() const { return manager_; }

  // Running tasks of every service (-1: no answer).
  int RunningTasks() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(60));
    v1::ListTasksResponse resp;
    if (!stub_->ListTasks(&ctx, v1::ListTasksRequest(), &resp).ok()) return -1;
    int n = 0;
    for (const auto& t : resp.tasks()) n += t.status().state() == v1::TASK_STATE_RUNNING;
    return n;
  }

  std::optional<v1::ListTasksResponse> Tasks(const std::string& name) {
    return warren::bench::ListServiceTasks(*stub_, name);
  }

  // Tasks of NAME that should run and run (and are healthy when `healthy`), on `revision`
  // unless it is 0.
  int Live(const std::string& name, int64_t revision, bool healthy) {
    auto resp = Tasks(name);
    if (!resp) return -1;
    int n = 0;
    for (const auto& t : resp->tasks()) {
      if (t.desired_state() != v1::TASK_STATE_RUNNING ||
          t.status().state() != v1::TASK_STATE_RUNNING) {
        continue;
      }
      if (healthy && t.status().health().state() != v1::HEALTH_STATE_HEALTHY) continue;
      if (revision != 0 && t.revision() != revision) continue;
      n++;
    }
    return n;
  }

  std::set<std::string> TaskIds(const std::string& name) {
    return warren::bench::ServiceTaskIds(*stub_, name);
  }

  // A fake-runtime service of `replicas` with an exec health check every `interval_ms`,
  // rolling one task at a time start-first; waits until all are healthy.
  bool CreateProbed(const std::string& name, int replicas, int interval_ms) {
    v1::CreateServiceRequest req;
    auto* spec = req.mutable_spec();
    spec->set_name(name);
    spec->set_replicas(replicas);
    auto* t = spec->mutable_template_();
    t->set_command("/bin/true");
    (*t->mutable_env())["VERSION"] = "v1";
    auto* hc = t->mutable_health_check();
    hc->mutable_exec()->add_command("true");
    hc->mutable_interval()->set_seconds(interval_ms / 1000);
    hc->mutable_interval()->set_nanos((interval_ms % 1000) * 1'000'000);
    auto* u = spec->mutable_update_config();
    u->set_parallelism(1);
    u->set_max_surge("1");
    u->set_max_unavailable("0");
    u->mutable_min_ready()->set_seconds(0);
    auto ctx = Ctx();
    v1::Service out;
    grpc::Status st = stub_->CreateService(ctx.get(), req, &out);
    if (!st.ok()) {
      std::fprintf(stderr, "create %s: %s\n", name.c_str(), st.error_message().c_str());
      return false;
    }
    return WaitUntil([&] { return Live(name, out.revision(), true) == replicas; }, seconds(120),
                     milliseconds(50));
  }

  int64_t Update(const std::string& name, const std::string& version) {
    return warren::bench::UpdateServiceEnv(*stub_, name, {{"VERSION", version}}, nullptr,
                                           "scale_bench");
  }

  std::optional<v1::Deployment> WaitEnded(const std::string& name,
                                          const std::function<bool(const v1::Deployment&)>& ours,
                                          seconds timeout) {
    return warren::bench::WaitDeploymentEnded(*stub_, name, ours, timeout, milliseconds(20));
  }

  // The rolling update of NAME to `revision` (not a rollback), once it ended.
  std::optional<v1::Deployment> WaitRolloutTo(const std::string& name, int64_t revision) {
    return WaitEnded(
        name, [&](const v1::Deployment& x) { return x.to_revision() == revision && !x.rollback(); },
        seconds(120));
  }

 private:
  std::string warren_, api_;
  std::filesystem::path dir_;
  pid_t manager_ = -1, worker_ = -1;
  std::unique_ptr<v1::Control::Stub> stub_;
};

// Clients creating at once: one create per process (the CLI) measures the client's start-up,
// one at a time measures a round trip; several in flight measure what the manager sustains.
constexpr int kCreatesInFlight = 32;

// Creates N services x 3 tasks, kCreatesInFlight at a time; returns services/s.
double CreateOthers(Cluster& c, int n) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int k = 0; k < kCreatesInFlight; ++k) {
    clients.emplace_back([&c, n, k] {
      for (int i = k; i < n; i += kCreatesInFlight) {
        v1::CreateServiceRequest req;
        req.mutable_spec()->set_name("other-" + std::to_string(i));
        req.mutable_spec()->set_replicas(3);
        req.mutable_spec()->mutable_template_()->set_command("/bin/true");
        auto ctx = Ctx();
        v1::Service out;
        grpc::Status st = c.stub().CreateService(ctx.get(), req, &out);
        if (!st.ok()) std::fprintf(stderr, "create other-%d: %s\n", i, st.error_message().c_str());
      }
    });
  }
  for (auto& t : clients) t.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return n == 0 ? 0 : n / s;
}

// Healthy -> next batch, as rollout_bench measures it, over `rollouts` rolling updates.
void Reaction(Cluster& c, int rollouts, Figures* f) {
  const std::string name = "react";
  if (!c.CreateProbed(name, kReplicas, 100)) {
    f->error += "react did not become healthy; ";
    return;
  }
  EventRecorder events(c.stub(), name);
  std::vector<double> ms;
  for (int r = 0; r < rollouts; ++r) {
    std::set<std::string> old_tasks = c.TaskIds(name);
    double t0 = WallNow();
    int64_t rev = c.Update(name, "v" + std::to_string(r + 2));
    auto d = rev ? c.WaitRolloutTo(name, rev) : std::nullopt;
    if (!d || d->phase() != v1::DEPLOYMENT_PHASE_SUCCEEDED) continue;
    events.WaitFor("deployment", "succeeded", t0, seconds(5));
    warren::bench::AppendBatchReactionsMs(events.Snapshot(), t0, old_tasks, &ms);
  }
  f->reaction_p50_ms = Percentile(ms, 50);
  f->reaction_p99_ms = Percentile(ms, 99);
  f->reaction_samples = static_cast<int>(ms.size());
  std::sort(ms.rbegin(), ms.rend());
  std::string slowest;
  for (size_t i = 0; i < ms.size() && i < 5; ++i) slowest += Fmt(" %.1f", ms[i]);
  std::fprintf(stderr, "reaction, the slowest samples (ms):%s\n", slowest.c_str());
}

// A 10-replica rolling update (parallelism 1, health interval 1 s) `runs` times, a scale-up by
// one `ups` times (scaled back to 10 between them, so that the rollback rolls 10), then a manual
// rollback.
void RollingScaleRollback(Cluster& c, int runs, int ups, Figures* f) {
  const std::string name = "roll";
  if (!c.CreateProbed(name, kReplicas, 1000)) {
    f->error += "roll did not become healthy; ";
    return;
  }
  f->rolling_floor_s = kReplicas * 1.0 / warren::HealthTracker::kStartupProbesPerInterval;
  std::vector<double> rolling;
  for (int r = 0; r < runs; ++r) {
    double t0 = WallNow();
    int64_t rev = c.Update(name, "v" + std::to_string(r + 2));
    auto d = rev ? c.WaitRolloutTo(name, rev) : std::nullopt;
    if (d && d->phase() == v1::DEPLOYMENT_PHASE_SUCCEEDED) {
      rolling.push_back(Seconds(d->finished_at()) - t0);
    }
  }
  f->rolling_s = Median(rolling);

  std::vector<double> scale, created, started, reported, seen;
  // For `perf record -k CLOCK_MONOTONIC` and `perf report --time`: the scale-ups' window.
  auto monotonic = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  auto scale_to = [&](int replicas) {
    auto ctx = Ctx();
    v1::ScaleServiceRequest req;
    req.set_name_or_id(name);
    req.set_replicas(replicas);
    v1::Service out;
    return c.stub().ScaleService(ctx.get(), req, &out).ok();
  };
  const double scale_from = monotonic();
  for (int r = 0; r < ups; ++r) {
    const int want = kReplicas + 1;
    const std::set<std::string> before = c.TaskIds(name);
    double t0 = WallNow();
    if (!scale_to(want)) continue;
    if (!WaitUntil([&] { return c.Live(name, 0, false) >= want; }, seconds(60), milliseconds(5))) {
      // Not a sample; and the next scale-up must start from 10 again.
      f->error += "a scale-up did not run in 60 s; ";
      scale_to(kReplicas);
      continue;
    }
    const double t1 = WallNow();
    scale.push_back(t1 - t0);
    // The new task's timestamps: the manager's and the worker's clocks are this machine's.
    if (auto tasks = c.Tasks(name)) {
      for (const auto& t : tasks->tasks()) {
        if (before.contains(t.id()) || t.status().state() != v1::TASK_STATE_RUNNING) continue;
        const double made = Seconds(t.created_at()), up = Seconds(t.status().started_at()),
                     told = Seconds(t.status().timestamp());
        created.push_back((made - t0) * 1000);
        started.push_back((up - made) * 1000);
        reported.push_back((told - up) * 1000);
        seen.push_back((t1 - told) * 1000);
      }
    }
    // Back to 10 (not timed): the next scale-up starts from the same state.
    if (!scale_to(kReplicas) || !WaitUntil([&] { return c.Live(name, 0, false) == kReplicas; },
                                           seconds(60), milliseconds(5))) {
      f->error += "roll did not scale back to 10; ";
      return;
    }
  }
  std::fprintf(stderr, "scale-ups: CLOCK_MONOTONIC %.6f to %.6f\n", scale_from, monotonic());
  f->scale_s = Median(scale);
  f->scale_created_ms = Median(created);
  f->scale_started_ms = Median(started);
  f->scale_reported_ms = Median(reported);
  f->scale_seen_ms = Median(seen);

  auto ctx = Ctx();
  v1::RollbackServiceRequest req;
  req.set_name_or_id(name);
  v1::Service out;
  double t0 = WallNow();
  if (!c.stub().RollbackService(ctx.get(), req, &out).ok()) {
    f->error += "rollback refused; ";
    return;
  }
  auto d = c.WaitEnded(
      name,
      [&](const v1::Deployment& x) {
        return x.rollback() && x.to_revision() == out.revision() && Seconds(x.created_at()) >= t0;
      },
      seconds(120));
  if (d && d->phase() == v1::DEPLOYMENT_PHASE_SUCCEEDED)
    f->rollback_s = Seconds(d->finished_at()) - t0;
}

Figures Measure(const std::string& warren, const std::filesystem::path& dir, int n) {
  Figures f;
  Cluster c(warren, dir);
  if (!c.Start()) {
    f.error = "the worker did not become ready";
    return f;
  }
  f.create_rate = CreateOthers(c, n);
  auto t0 = std::chrono::steady_clock::now();
  // Bounded: 10,000 x 3 fake tasks settle in well under this on the 2-core reference machine.
  auto last_report = t0;
  if (!WaitUntil(
          [&] {
            const int running = c.RunningTasks();
            auto now = std::chrono::steady_clock::now();
            if (now - last_report >= seconds(10)) {
              last_report = now;
              std::fprintf(stderr, "N=%d: %d of %d tasks running after %.0f s, manager %.0f MiB\n",
                           n, running, 3 * n, std::chrono::duration<double>(now - t0).count(),
                           RssKiB(c.manager()) / 1024.0);
            }
            return running >= 3 * n;
          },
          seconds(600), milliseconds(500))) {
    f.error += "not every task of the others ran; ";
  }
  f.settle_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Reaction(c, EnvCount("SCALE_ROLLOUTS", 12, 200), &f);
  RollingScaleRollback(c, 3, EnvCount("SCALE_UPS", 9, 200), &f);
  f.rss_mib = RssKiB(c.manager()) / 1024.0;
  // WARREN_SCALE_HOLD=SECONDS keeps the settled cluster up that long before it is torn down, to
  // profile the manager at rest (its pid is printed), e.g. the controller's periodic resync.
  if (const char* hold = std::getenv("WARREN_SCALE_HOLD")) {
    std::fprintf(stderr, "N = %d: holding the cluster %s s, manager pid %d\n", n, hold,
                 static_cast<int>(c.manager()));
    std::this_thread::sleep_for(seconds(std::atoi(hold)));
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s WARREN_BINARY [N...]\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::vector<int> ns;
  for (int i = 2; i < argc; ++i) ns.push_back(std::atoi(argv[i]));
  if (ns.empty()) ns = {0, 1000};
  auto root =
      std::filesystem::temp_directory_path() / ("warren-scale-bench-" + std::to_string(getpid()));
  std::printf(
      "| other services x 3 tasks | creates/s (32 in flight) | all running | reaction p50 / p99 "
      "(samples) | "
      "rolling update, 10 replicas (floor) | scale +1 to running | rollback | manager RSS |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::map<int, Figures> all;
  for (int n : ns) {
    Figures f = Measure(argv[1], root / std::to_string(n), n);
    all[n] = f;
    std::printf(
        "| %d | %s | %s | %s | %s | %s | %s | %s |%s\n", n,
        n ? Fmt("%.0f", f.create_rate).c_str() : "-", Fmt("%.1f s", f.settle_s).c_str(),
        Fmt("%.1f / %.1f ms (%.0f)", f.reaction_p50_ms, f.reaction_p99_ms, f.reaction_samples)
            .c_str(),
        Fmt("%.2f s (%.2f s, %.2fx)", f.rolling_s, f.rolling_floor_s,
            f.rolling_floor_s > 0 ? f.rolling_s / f.rolling_floor_s : 0)
            .c_str(),
        Fmt("%.3f s", f.scale_s).c_str(), Fmt("%.2f s", f.rollback_s).c_str(),
        Fmt("%.1f MiB", f.rss_mib).c_str(), f.error.c_str());
    std::fflush(stdout);
  }
  std::printf(
      "\nscale +1, medians: scale call -> task created / -> started by the worker / -> "
      "RUNNING in the store / -> seen by the bench (polled every 5 ms)\n");
  for (const auto& [n, f] : all) {
    std::printf("N = %d: %.1f / %.1f / %.1f / %.1f ms\n", n, f.scale_created_ms, f.scale_started_ms,
                f.scale_reported_ms, f.scale_seen_ms);
  }
  std::error_code ec;
  // WARREN_SCALE_KEEP keeps the data directories and logs of the run (printed) to look into.
  if (std::getenv("WARREN_SCALE_KEEP") != nullptr) {
    std::fprintf(stderr, "kept %s\n", root.c_str());
  } else {
    std::filesystem::remove_all(root, ec);
  }
  return 0;
}
