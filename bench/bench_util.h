#ifndef WARREN_BENCH_BENCH_UTIL_H_
#define WARREN_BENCH_BENCH_UTIL_H_

// Process and port helpers shared by the benchmark programs (loopback only).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/processes.h"
#include "grpcpp/grpcpp.h"
#include "security/client_bundle.h"
#include "warren/v1/api.grpc.pb.h"
#include "warren/v1/security.grpc.pb.h"

namespace warren::bench {

using warren::KillProcessesWithEnv;

// A port that was free a moment ago on 127.0.0.1.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// Starts argv in its own process group with stdout and stderr in `log`.
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    FILE* f = fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// SIGTERM, up to 30 s to exit, then SIGKILL to the whole group.
inline void Terminate(pid_t pid) {
  kill(pid, SIGTERM);
  for (int i = 0; i < 300; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// Nearest-rank percentile (p in 0..100); 0 for no samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// Polls `cond` every `step` until it holds (true) or `timeout` passes (false).
inline bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(step);
  }
  return false;
}

inline double Seconds(const google::protobuf::Timestamp& t) {
  return t.seconds() + t.nanos() / 1e9;
}

// Wall-clock seconds since the epoch (event and deployment times are wall-clock).
inline double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Resident memory of a process in KiB (-1: unreadable).
inline long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A client context with a 5 s deadline.
inline std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return ctx;
}

// Every event of one service, collected from a WatchEvents stream on a thread of its own.
class EventRecorder {
 public:
  EventRecorder(v1::Control::Stub& stub, const std::string& service) {
    v1::WatchEventsRequest req;
    req.set_service(service);
    reader_ = stub.WatchEvents(&ctx_, req);
    thread_ = std::thread([this] {
      v1::Event e;
      while (reader_->Read(&e)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(e);
      }
    });
  }
  ~EventRecorder() {
    ctx_.TryCancel();
    thread_.join();
    reader_->Finish().ok();
  }
  std::vector<v1::Event> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // The first event matching `pred`, waiting up to `timeout`.
  std::optional<v1::Event> WaitForEvent(
      const std::function<bool(const v1::Event&)>& pred, std::chrono::milliseconds timeout,
      std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
    std::optional<v1::Event> found;
    WaitUntil(
        [&] {
          for (const auto& e : Snapshot()) {
            if (pred(e)) {
              found = e;
              return true;
            }
          }
          return false;
        },
        timeout, step);
    return found;
  }
  // The first event of `kind` with `action` at or after wall time `since`.
  std::optional<v1::Event> WaitFor(const std::string& kind, const std::string& action, double since,
                                   std::chrono::milliseconds timeout) {
    return WaitForEvent(
        [&](const v1::Event& e) {
          return e.kind() == kind && e.action() == action && Seconds(e.time()) >= since;
        },
        timeout);
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader_;
  std::mutex mu_;
  std::vector<v1::Event> events_;
  std::thread thread_;
};

// The tasks of service NAME, or nullopt when the manager does not answer.
inline std::optional<v1::ListTasksResponse> ListServiceTasks(v1::Control::Stub& stub,
                                                             const std::string& name) {
  auto ctx = Ctx();
  v1::ListTasksRequest req;
  req.set_service(name);
  v1::ListTasksResponse resp;
  if (!stub.ListTasks(ctx.get(), req, &resp).ok()) return std::nullopt;
  return resp;
}

// The ids of service NAME's tasks (empty when the manager does not answer).
inline std::set<std::string> ServiceTaskIds(v1::Control::Stub& stub, const std::string& name) {
  std::set<std::string> out;
  if (auto resp = ListServiceTasks(stub, name)) {
    for (const auto& t : resp->tasks()) out.insert(t.id());
  }
  return out;
}

// The controller's reactions in one rolling update's events (from `t0` on): for every batch
// after the first, ms from the "healthy" event of the previous batch's new task (not one of
// `old_tasks`) to the "batch" event that starts the next one; appended to `out`.
inline void AppendBatchReactionsMs(const std::vector<v1::Event>& events, double t0,
                                   const std::set<std::string>& old_tasks,
                                   std::vector<double>* out) {
  double last_healthy = -1;
  bool seen_batch = false;
  for (const auto& e : events) {
    if (Seconds(e.time()) < t0) continue;
    if (e.kind() == "task" && e.action() == "healthy" && !old_tasks.count(e.object_id())) {
      last_healthy = Seconds(e.time());
    } else if (e.kind() == "deployment" && e.action() == "batch") {
      if (seen_batch && last_healthy > 0) out->push_back((Seconds(e.time()) - last_healthy) * 1000);
      seen_batch = true;
      last_healthy = -1;
    }
  }
}

// Sets env vars on NAME's template (a new revision), `tweak` changing the rest of the spec;
// returns the new revision or 0 (the error on stderr).
inline int64_t UpdateServiceEnv(v1::Control::Stub& stub, const std::string& name,
                                const std::map<std::string, std::string>& env,
                                const std::function<void(v1::ServiceSpec*)>& tweak,
                                const std::string& cause) {
  auto ctx = Ctx();
  v1::GetServiceRequest get;
  get.set_name_or_id(name);
  v1::Service svc;
  if (!stub.GetService(ctx.get(), get, &svc).ok()) return 0;
  v1::UpdateServiceRequest req;
  *req.mutable_spec() = svc.spec();
  for (const auto& [k, v] : env) (*req.mutable_spec()->mutable_template_()->mutable_env())[k] = v;
  if (tweak) tweak(req.mutable_spec());
  req.set_expected_version(svc.version());
  req.set_change_cause(cause);
  auto ctx2 = Ctx();
  v1::Service out;
  grpc::Status st = stub.UpdateService(ctx2.get(), req, &out);
  if (!st.ok()) {
    std::fprintf(stderr, "update %s: %s\n", name.c_str(), st.error_message().c_str());
    return 0;
  }
  return out.revision();
}

// The latest deployment of NAME that satisfies `ours`, once it ended (polled every `step` up
// to `timeout`).
inline std::optional<v1::Deployment> WaitDeploymentEnded(
    v1::Control::Stub& stub, const std::string& name,
    const std::function<bool(const v1::Deployment&)>& ours, std::chrono::seconds timeout,
    std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  std::optional<v1::Deployment> out;
  WaitUntil(
      [&] {
        auto ctx = Ctx();
        v1::RolloutRequest req;
        req.set_name_or_id(name);
        v1::Deployment d;
        if (!stub.GetRollout(ctx.get(), req, &d).ok() || !ours(d)) return false;
        if (d.phase() == v1::DEPLOYMENT_PHASE_PENDING ||
            d.phase() == v1::DEPLOYMENT_PHASE_PROGRESSING ||
            d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
          return false;
        }
        out = d;
        return true;
      },
      timeout, step);
  return out;
}

// `argv` followed by `more`.
inline std::vector<std::string> Concat(std::vector<std::string> argv,
                                       const std::vector<std::string>& more) {
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

// The flags that give a node a bench starts mutual TLS (the default; --tls for a baseline
// build where it was opt-in) with its admin client bundle under `root`, not ~/.warren.
inline std::vector<std::string> TlsFlags(const std::filesystem::path& root) {
  return {"--tls", "--tls-root", root.string()};
}

// A channel to the API of a node started with TlsFlags(root), presenting the admin bundle once
// the node has written it (within `timeout`), connected (within 10 s).
inline std::shared_ptr<grpc::Channel> ApiChannel(
    const std::string& api, const std::filesystem::path& root,
    grpc::ChannelArguments args = grpc::ChannelArguments(),
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const std::string dir = (root / "current").string();
  std::shared_ptr<grpc::ChannelCredentials> creds;
  std::string error;
  WaitUntil(
      [&] {
        auto c = security::BundleChannelCredentials(dir);
        if (!c.ok()) {
          error = std::string(c.status().message());
          return false;
        }
        creds = *c;
        return true;
      },
      timeout, std::chrono::milliseconds(50));
  if (creds == nullptr) {
    std::fprintf(stderr, "no admin client bundle: %s\n", error.c_str());
    creds = grpc::InsecureChannelCredentials();  // every call fails, and says so
  }
  auto channel = grpc::CreateCustomChannel(api, creds, args);
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return channel;
}

// The flags a worker joins the manager behind `channel` (an ApiChannel) with: --token and the
// worker join token; empty (the worker then fails and says why) when the manager gives none.
inline std::vector<std::string> JoinFlags(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::Ca::NewStub(channel);
  v1::GetJoinTokenRequest req;
  req.set_role("worker");
  v1::GetJoinTokenResponse resp;
  grpc::Status status;
  WaitUntil(
      [&] {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        status = stub->GetJoinToken(&ctx, req, &resp);
        return status.ok();
      },
      std::chrono::seconds(30), std::chrono::milliseconds(100));
  if (!status.ok()) {
    std::fprintf(stderr, "join token: %s\n", status.error_message().c_str());
    return {};
  }
  return {"--token", resp.token()};
}

}  // namespace warren::bench

#endif  // WARREN_BENCH_BENCH_UTIL_H_
