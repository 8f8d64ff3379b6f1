// Manager memory and store size under a crash loop and deploy/rm cycles (issue 17 D3), for one
// build or two (a baseline, e.g. main's, and this one) in the same run. For each: a manager and
// a process worker on loopback, then
//   1. one service with the largest valid spec (1 MiB of environment values) whose task exits
//      at once and is restarted every few milliseconds, for SECONDS: the manager's RSS, the
//      store's files and the tasks it keeps, sampled;
//   2. `service rm` of it: what the manager and the store keep afterwards;
//   3. CYCLES deploy/rm cycles of the same spec (REPLICAS tasks of `sleep`, each cycle waits
//      until they run, then removes the service and waits until its tasks are gone).
// With history pruning and a byte-bounded watch feed everything levels off however long the
// loop runs; without them it grows with the restart count. A build whose manager passes
// --rss-cap-mib stops its crash loop there (the machine is shared).
//
// usage: memory_bench WARREN [--baseline=WARREN] [--seconds=60] [--replicas=2] [--cycles=20]
//                            [--rss-cap-mib=3072]
// Each WARREN needs warren-shim beside it (the process runtime runs tasks under it).
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

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "bench_util.h"
#include "common/limits.h"
#include "common/spec.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

namespace {

using warren::bench::ApiChannel;
using warren::bench::Concat;
using warren::bench::FreePort;
using warren::bench::JoinFlags;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::TlsFlags;
using warren::bench::WaitUntil;

// A field of /proc/PID/status in MiB ("VmRSS", "VmHWM"); -1 if unreadable.
double StatusMiB(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1)) / 1024.0;
  }
  return -1;
}

// Bytes of the store's database and its WAL (not the fixed-size disk-space reserve beside them).
double StoreMiB(const std::filesystem::path& dir) {
  uintmax_t total = 0;
  for (const char* name : {"store.db", "store.db-wal"}) {
    std::error_code ec;
    uintmax_t n = std::filesystem::file_size(dir / name, ec);
    if (!ec) total += n;
  }
  return total / 1048576.0;
}

// The largest spec ValidateServiceSpec accepts: defaults applied, then environment values up to
// exactly limits::kMaxSpecBytes.
warren::v1::ServiceSpec MaximalSpec(const std::string& name, int replicas,
                                    const std::string& command,
                                    const std::vector<std::string>& args) {
  warren::v1::ServiceSpec spec;
  spec.set_name(name);
  spec.set_replicas(replicas);
  auto* t = spec.mutable_template_();
  t->set_command(command);
  for (const auto& a : args) t->add_args(a);
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

struct Options {
  int seconds = 60;
  int replicas = 2;
  int cycles = 20;
  int rss_cap_mib = 3072;
};

struct Sample {
  double t = 0;
  double rss_mib = 0;
  double store_mib = 0;
  int tasks = 0;  // -1: the API did not answer within 10 s
  int restarts = 0;
};

struct Result {
  std::string label;
  bool ok = false;
  std::string error;
  double idle_rss = 0;
  std::vector<Sample> crash;
  bool capped = false;
  double crash_hwm = 0;
  int api_timeouts = 0;
  Sample after_rm;
  double rm_seconds = 0;
  std::vector<Sample> cycles;  // t = cycle number
  int cycles_done = 0;
  std::vector<double> to_running, to_gone;  // per cycle: create -> all running, rm -> all gone
  double cycle_hwm = 0;
};

class Cluster {
 public:
  Cluster(const std::string& warren, const std::filesystem::path& dir) : dir_(dir) {
    const std::string api = "127.0.0.1:" + std::to_string(FreePort());
    manager_ = Spawn(Concat({warren, "manager", "--data-dir", (dir / "m").string(), "--api-addr",
                             api, "--metrics-addr", "", "--dns-addr", ""},
                            TlsFlags(dir / "home")),
                     (dir / "manager.log").string());
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(warren::limits::kMaxClientReceiveBytes);
    auto channel = ApiChannel(api, dir / "home", args);
    stub_ = warren::v1::Control::NewStub(channel);
    worker_ =
        Spawn(Concat({warren, "worker", "--manager", api, "--node-name", "bench-1", "--data-dir",
                      (dir / "w").string(), "--runtime", "process", "--address-range",
                      "127.63.0.0/16", "--dns-addr", "", "--stop-tasks-on-exit"},
                     JoinFlags(channel)),
              (dir / "worker.log").string());
  }
  ~Cluster() {
    Terminate(worker_);
    Terminate(manager_);
  }

  bool WaitForNode() {
    return WaitUntil(
        [&] {
          warren::v1::ListNodesResponse resp;
          return stub_->ListNodes(Ctx(5).get(), {}, &resp).ok() && resp.nodes_size() == 1;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(100));
  }

  std::string Create(const warren::v1::ServiceSpec& spec) {
    warren::v1::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    warren::v1::Service out;
    grpc::Status s = stub_->CreateService(Ctx(30).get(), req, &out);
    return s.ok() ? "" : "create " + spec.name() + ": " + s.error_message();
  }

  std::string Remove(const std::string& name) {
    warren::v1::DeleteServiceRequest req;
    req.set_name_or_id(name);
    warren::v1::DeleteServiceResponse out;
    grpc::Status s = stub_->DeleteService(Ctx(30).get(), req, &out);
    return s.ok() ? "" : "rm " + name + ": " + s.error_message();
  }

  // Every task of the cluster; false if the API did not answer within 10 s.
  bool Tasks(warren::v1::ListTasksResponse* out) {
    return stub_->ListTasks(Ctx(10).get(), {}, out).ok();
  }

  Sample Measure(double t) {
    Sample s;
    s.t = t;
    s.rss_mib = StatusMiB(manager_, "VmRSS");
    s.store_mib = StoreMiB(dir_ / "m");
    warren::v1::ListTasksResponse tasks;
    if (!Tasks(&tasks)) {
      s.tasks = -1;
      return s;
    }
    std::map<int, int> attempts;
    for (const auto& task : tasks.tasks()) {
      attempts[task.slot()] = std::max(attempts[task.slot()], task.attempt());
    }
    s.tasks = tasks.tasks_size();
    for (const auto& [slot, a] : attempts) s.restarts += a;
    return s;
  }

  // Polls until `pred` holds for the task list (bounded).
  bool WaitForTasks(const std::function<bool(const warren::v1::ListTasksResponse&)>& pred,
                    std::chrono::seconds timeout) {
    return WaitUntil(
        [&] {
          warren::v1::ListTasksResponse tasks;
          return Tasks(&tasks) && pred(tasks);
        },
        timeout, std::chrono::milliseconds(50));
  }

  pid_t manager() const { return manager_; }

 private:
  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ctx;
  }

  std::filesystem::path dir_;
  pid_t manager_ = -1;
  pid_t worker_ = -1;
  std::unique_ptr<warren::v1::Control::Stub> stub_;
};

int Running(const warren::v1::ListTasksResponse& tasks) {
  int n = 0;
  for (const auto& t : tasks.tasks()) n += t.status().state() == warren::v1::TASK_STATE_RUNNING;
  return n;
}

Result RunOne(const std::string& label, const std::string& warren, const Options& o) {
  Result r;
  r.label = label;
  auto dir = std::filesystem::temp_directory_path() /
             absl::StrFormat("warren-membench-%d-%d", getpid(), label == "baseline" ? 0 : 1);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    Cluster c(warren, dir);
    if (!c.WaitForNode()) {
      r.error = "the worker did not join within 30 s (see " + (dir / "worker.log").string() + ")";
      return r;
    }
    r.idle_rss = StatusMiB(c.manager(), "VmRSS");

    // 1. Crash loop.
    if (std::string e = c.Create(MaximalSpec("crashloop", o.replicas, "false", {})); !e.empty()) {
      r.error = e;
      return r;
    }
    const auto start = std::chrono::steady_clock::now();
    const auto step = std::chrono::seconds(std::max(2, o.seconds / 15));
    auto next = start;
    for (;;) {
      next += step;
      while (std::chrono::steady_clock::now() < next) {
        if (StatusMiB(c.manager(), "VmRSS") > o.rss_cap_mib) {
          r.capped = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      Sample s = c.Measure(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      r.api_timeouts += s.tasks < 0;
      r.crash.push_back(s);
      if (r.capped || s.t >= o.seconds) break;
    }
    r.crash_hwm = StatusMiB(c.manager(), "VmHWM");

    // 2. Remove it.
    const auto rm_start = std::chrono::steady_clock::now();
    if (std::string e = c.Remove("crashloop"); !e.empty()) {
      r.error = e;
      return r;
    }
    if (!c.WaitForTasks([](const auto& t) { return t.tasks_size() == 0; },
                        std::chrono::seconds(120))) {
      r.error = "the crash loop's tasks were not gone 120 s after service rm";
      return r;
    }
    r.rm_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - rm_start).count();
    r.after_rm = c.Measure(0);

    // 3. Deploy/rm cycles.
    auto since = [](std::chrono::steady_clock::time_point t) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    for (int i = 1; i <= o.cycles; ++i) {
      const std::string name = "cycle-" + std::to_string(i);
      auto t0 = std::chrono::steady_clock::now();
      if (std::string e = c.Create(MaximalSpec(name, o.replicas, "sleep", {"600"})); !e.empty()) {
        r.error = e;
        return r;
      }
      if (!c.WaitForTasks([&](const auto& t) { return Running(t) == o.replicas; },
                          std::chrono::seconds(60))) {
        r.error = name + ": its tasks were not running within 60 s";
        return r;
      }
      r.to_running.push_back(since(t0));
      t0 = std::chrono::steady_clock::now();
      if (std::string e = c.Remove(name); !e.empty()) {
        r.error = e;
        return r;
      }
      if (!c.WaitForTasks([](const auto& t) { return t.tasks_size() == 0; },
                          std::chrono::seconds(60))) {
        r.error = name + ": its tasks were not gone 60 s after service rm";
        return r;
      }
      r.to_gone.push_back(since(t0));
      r.cycles.push_back(c.Measure(i));
      r.cycles_done = i;
    }
    r.cycle_hwm = StatusMiB(c.manager(), "VmHWM");
    r.ok = true;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return r;
}

std::string Tasks(const Sample& s) { return s.tasks < 0 ? "API timeout" : std::to_string(s.tasks); }

void PrintRun(const Result& r, const Options& o) {
  std::printf("### %s\n\n", r.label.c_str());
  if (!r.crash.empty()) {
    std::printf(
        "Crash loop (manager RSS, store files = store.db + WAL, tasks kept, restarts):\n\n");
    std::printf("| time | manager RSS | store files | tasks kept | restarts |\n");
    std::printf("|---:|---:|---:|---:|---:|\n");
    for (const Sample& s : r.crash) {
      std::printf("| %.0f s | %.0f MiB | %.1f MiB | %s | %d |\n", s.t, s.rss_mib, s.store_mib,
                  Tasks(s).c_str(), s.restarts);
    }
    if (r.capped) std::printf("\nStopped early: the manager's RSS passed %d MiB.\n", o.rss_cap_mib);
    std::printf("\n");
  }
  if (!r.cycles.empty()) {
    std::printf("After `service rm` and each deploy/rm cycle (%d x `sleep 600`):\n\n", o.replicas);
    std::printf("| after | manager RSS | store files | tasks kept |\n|---|---:|---:|---:|\n");
    std::printf("| rm of the crash loop | %.0f MiB | %.1f MiB | %s |\n", r.after_rm.rss_mib,
                r.after_rm.store_mib, Tasks(r.after_rm).c_str());
    const size_t every = std::max<size_t>(1, r.cycles.size() / 10);
    for (size_t i = 0; i < r.cycles.size(); ++i) {
      if ((i + 1) % every != 0 && i + 1 != r.cycles.size()) continue;
      const Sample& s = r.cycles[i];
      std::printf("| cycle %.0f | %.0f MiB | %.1f MiB | %s |\n", s.t, s.rss_mib, s.store_mib,
                  Tasks(s).c_str());
    }
    std::printf("\n");
  }
  if (!r.ok) std::printf("**Failed:** %s\n\n", r.error.c_str());
}

// One summary row: the figure for each run.
template <typename F>
void Row(const std::vector<Result>& runs, const std::string& what, F figure) {
  std::printf("| %s |", what.c_str());
  for (const Result& r : runs) std::printf(" %s |", figure(r).c_str());
  std::printf("\n");
}

void PrintSummary(const std::vector<Result>& runs) {
  std::printf("### Summary\n\n| |");
  for (const Result& r : runs) std::printf(" %s |", r.label.c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < runs.size(); ++i) std::printf("---:|");
  std::printf("\n");
  auto mib = [](double v) { return absl::StrFormat("%.0f MiB", v); };
  auto max_of = [](const std::vector<Sample>& v, double Sample::*f) {
    double m = 0;
    for (const Sample& s : v) m = std::max(m, s.*f);
    return m;
  };
  Row(runs, "manager RSS, idle", [&](const Result& r) { return mib(r.idle_rss); });
  Row(runs, "crash loop: restarts (per s)", [&](const Result& r) {
    if (r.crash.empty()) return std::string("-");
    const Sample& s = r.crash.back();
    return absl::StrFormat("%d (%.1f/s)", s.restarts, s.restarts / std::max(1.0, s.t));
  });
  Row(runs, "crash loop: peak RSS (VmHWM)",
      [&](const Result& r) { return mib(r.crash_hwm) + (r.capped ? " (cap hit)" : ""); });
  // The highest value of `field` in the first half of the crash loop's samples -> the second.
  auto halves = [&](const Result& r, double Sample::*field, int decimals) {
    const size_t h = r.crash.size() / 2;
    std::vector<Sample> a(r.crash.begin(), r.crash.begin() + h),
        b(r.crash.begin() + h, r.crash.end());
    return absl::StrFormat("%.*f -> %.*f MiB", decimals, max_of(a, field), decimals,
                           max_of(b, field));
  };
  Row(runs, "crash loop: RSS, highest in 1st half -> 2nd half",
      [&](const Result& r) { return halves(r, &Sample::rss_mib, 0); });
  Row(runs, "crash loop: store, highest in 1st half -> 2nd half",
      [&](const Result& r) { return halves(r, &Sample::store_mib, 1); });
  Row(runs, "crash loop: tasks kept at the end",
      [&](const Result& r) { return r.crash.empty() ? "-" : Tasks(r.crash.back()); });
  Row(runs, "crash loop: API calls over 10 s",
      [&](const Result& r) { return std::to_string(r.api_timeouts); });
  Row(runs, "`service rm` until its tasks are gone", [&](const Result& r) {
    return r.rm_seconds > 0 ? absl::StrFormat("%.1f s", r.rm_seconds) : "-";
  });
  Row(runs, "after rm: RSS / store", [&](const Result& r) {
    return absl::StrFormat("%.0f / %.1f MiB", r.after_rm.rss_mib, r.after_rm.store_mib);
  });
  Row(runs, "deploy/rm cycles: RSS after the first -> last", [&](const Result& r) {
    if (r.cycles.empty()) return std::string("-");
    return absl::StrFormat("%.0f -> %.0f MiB (%d cycles)", r.cycles.front().rss_mib,
                           r.cycles.back().rss_mib, r.cycles_done);
  });
  Row(runs, "deploy/rm cycles: create -> running, p50 / max", [&](const Result& r) {
    return absl::StrFormat("%.2f / %.2f s", warren::bench::Percentile(r.to_running, 50),
                           warren::bench::Percentile(r.to_running, 100));
  });
  Row(runs, "deploy/rm cycles: rm -> tasks gone, p50 / max", [&](const Result& r) {
    return absl::StrFormat("%.2f / %.2f s", warren::bench::Percentile(r.to_gone, 50),
                           warren::bench::Percentile(r.to_gone, 100));
  });
  Row(runs, "deploy/rm cycles: store after the first -> last", [&](const Result& r) {
    if (r.cycles.empty()) return std::string("-");
    return absl::StrFormat("%.1f -> %.1f MiB", r.cycles.front().store_mib,
                           r.cycles.back().store_mib);
  });
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string warren, baseline;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto num = [&](const std::string& flag, auto* out) {
      if (!absl::StartsWith(a, flag)) return false;
      if (!absl::SimpleAtoi(a.substr(flag.size()), out)) {
        std::fprintf(stderr, "%s: not a number\n", a.c_str());
        std::exit(2);
      }
      return true;
    };
    if (absl::StartsWith(a, "--baseline=")) {
      baseline = a.substr(11);
    } else if (num("--seconds=", &o.seconds) || num("--replicas=", &o.replicas) ||
               num("--cycles=", &o.cycles) || num("--rss-cap-mib=", &o.rss_cap_mib)) {
    } else if (warren.empty() && !absl::StartsWith(a, "--")) {
      warren = a;
    } else {
      warren.clear();
      break;
    }
  }
  if (warren.empty() || o.seconds < 4 || o.replicas < 1 || o.cycles < 0) {
    std::fprintf(stderr,
                 "usage: %s WARREN [--baseline=WARREN] [--seconds=N>=4] [--replicas=N>=1] "
                 "[--cycles=N>=0] [--rss-cap-mib=N]\n",
                 argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);

  std::printf(
      "Spec: %zu bytes (the limit), %d replica(s), restart delay 1ms..20ms; crash loop of "
      "`false` for %d s, then `service rm`, then %d deploy/rm cycles.\n\n",
      warren::limits::kMaxSpecBytes, o.replicas, o.seconds, o.cycles);
  std::vector<Result> runs;
  if (!baseline.empty()) {
    runs.push_back(RunOne("baseline", baseline, o));
    PrintRun(runs.back(), o);
    std::fflush(stdout);
  }
  runs.push_back(RunOne("this build", warren, o));
  PrintRun(runs.back(), o);
  PrintSummary(runs);
  return runs.back().ok ? 0 : 1;
}
