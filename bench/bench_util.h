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
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/processes.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

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

}  // namespace warren::bench

#endif  // WARREN_BENCH_BENCH_UTIL_H_
