// Routing-change benchmark: the time from a new task becoming healthy until every data plane
// serves it, on a real cluster of one `warren manager` and two `warren worker` processes on
// loopback. Each sample scales a warren-testapp service from 1 to 2 replicas, then polls, every
// 1 ms and from a thread each, the service DNS of the manager and of both workers (until an A
// query for the service answers with the new task's address) and both workers' proxies on the
// published port (until a response carries the new task's X-Task-Id). The start is the task's
// `health.healthy_since` (set by the worker's prober when the check passed) as the manager
// stores it; the manager's "task ... healthy" event time is shown as a breakdown. All of these
// are wall-clock times of processes on this one machine. Prints markdown rows.
//
// usage: routing_bench WARREN_BINARY TESTAPP_BINARY [SAMPLES]   (default 100)
// Everything runs on loopback; every loop is bounded in count and time; every process
// started is stopped.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

namespace {

using warren::bench::ApiChannel;
using warren::bench::Concat;
using warren::bench::Ctx;
using warren::bench::EventRecorder;
using warren::bench::FreePort;
using warren::bench::JoinFlags;
using warren::bench::KillProcessesWithEnv;
using warren::bench::Percentile;
using warren::bench::Seconds;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::TlsFlags;
using warren::bench::WaitUntil;

using SteadyClock = std::chrono::steady_clock;
namespace v1 = warren::v1;

constexpr char kService[] = "web";
constexpr int kWorkers = 2;
// How long one data plane is polled for a new task before the sample counts as missed.
constexpr auto kPlaneDeadline = std::chrono::seconds(5);
constexpr int kMaxPolls = 20000;

double WallNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void SetTimeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

sockaddr_in Addr(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A minimal DNS client for one server: A queries over UDP, answers as dotted quads.
class DnsClient {
 public:
  DnsClient(const std::string& ip, int port) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    SetTimeouts(fd_, 100);
    sockaddr_in a = Addr(ip, port);
    connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  ~DnsClient() { close(fd_); }
  DnsClient(const DnsClient&) = delete;
  DnsClient& operator=(const DnsClient&) = delete;

  // The A records for `name`, or nullopt when no valid answer came within the timeout.
  std::optional<std::vector<std::string>> QueryA(const std::string& name) {
    const uint16_t id = ++id_;
    std::string q;
    q += static_cast<char>(id >> 8);
    q += static_cast<char>(id & 0xff);
    q += std::string("\x01\x00", 2);          // RD
    q += std::string("\x00\x01\x00\x00", 4);  // QDCOUNT 1, ANCOUNT 0
    q += std::string("\x00\x00\x00\x00", 4);  // NSCOUNT 0, ARCOUNT 0
    size_t start = 0;
    while (start <= name.size()) {
      size_t dot = name.find('.', start);
      if (dot == std::string::npos) dot = name.size();
      if (dot > start) {
        q += static_cast<char>(dot - start);
        q += name.substr(start, dot - start);
      }
      start = dot + 1;
    }
    q += std::string("\x00\x00\x01\x00\x01", 5);  // root, QTYPE A, QCLASS IN
    if (send(fd_, q.data(), q.size(), 0) != static_cast<ssize_t>(q.size())) return std::nullopt;
    unsigned char buf[1500];
    // Stale answers to earlier (timed-out) queries are skipped; bounded.
    for (int tries = 0; tries < 4; ++tries) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n < 12) return std::nullopt;
      if (((buf[0] << 8) | buf[1]) != id) continue;
      return ParseA(buf, static_cast<size_t>(n));
    }
    return std::nullopt;
  }

 private:
  // Skips a (possibly compressed) name; returns the offset after it or 0 on malformed input.
  static size_t SkipName(const unsigned char* p, size_t n, size_t off) {
    for (int labels = 0; off < n && labels < 128; ++labels) {
      unsigned char len = p[off];
      if (len == 0) return off + 1;
      if ((len & 0xc0) == 0xc0) return off + 2 <= n ? off + 2 : 0;
      off += 1 + len;
    }
    return 0;
  }

  static std::optional<std::vector<std::string>> ParseA(const unsigned char* p, size_t n) {
    if ((p[3] & 0x0f) != 0) return std::vector<std::string>{};  // an error rcode: no records
    int qd = (p[4] << 8) | p[5];
    int an = (p[6] << 8) | p[7];
    size_t off = 12;
    for (int i = 0; i < qd; ++i) {
      off = SkipName(p, n, off);
      if (off == 0 || off + 4 > n) return std::nullopt;
      off += 4;
    }
    std::vector<std::string> out;
    for (int i = 0; i < an; ++i) {
      off = SkipName(p, n, off);
      if (off == 0 || off + 10 > n) return std::nullopt;
      int type = (p[off] << 8) | p[off + 1];
      int rdlen = (p[off + 8] << 8) | p[off + 9];
      off += 10;
      if (off + rdlen > n) return std::nullopt;
      if (type == 1 && rdlen == 4) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, p + off, text, sizeof(text));
        out.push_back(text);
      }
      off += rdlen;
    }
    return out;
  }

  int fd_ = -1;
  uint16_t id_ = 0;
};

// One HTTP/1.1 GET through a proxy on a fresh connection; returns the X-Task-Id response header
// (empty when the request failed or the header is missing).
std::string ProxyTaskId(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  SetTimeouts(fd, 200);
  sockaddr_in a = Addr(ip, port);
  std::string id;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      std::string resp;
      char buf[4096];
      // Only the headers are needed; bounded by size and by the receive timeout.
      while (resp.find("\r\n\r\n") == std::string::npos && resp.size() < 65536) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        resp.append(buf, n);
      }
      std::string lower = resp;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      size_t h = lower.find("\r\nx-task-id:");
      if (h != std::string::npos) {
        size_t v = h + std::strlen("\r\nx-task-id:");
        size_t end = resp.find("\r\n", v);
        id = resp.substr(v, end - v);
        id.erase(0, id.find_first_not_of(' '));
        id.erase(id.find_last_not_of(' ') + 1);
      }
    }
  }
  close(fd);
  return id;
}

// One data plane that should come to serve the new task, and when it first did.
struct Plane {
  std::string name;
  bool dns = false;
  std::string ip;
  int port = 0;
};

struct Sample {
  std::string node;
  double healthy_since = 0;  // worker prober, as stored by the manager
  double healthy_event = 0;  // manager's "task ... healthy" event
  std::vector<double> seen;  // per plane, wall time; < 0 when never seen
};

class Cluster {
 public:
  Cluster(std::string warren, std::string testapp)
      : warren_(std::move(warren)), testapp_(std::move(testapp)) {
    dir_ = std::filesystem::temp_directory_path() /
           ("warren-routing-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    marker_ = "WARREN_BENCH_RUN=" + dir_.string();
  }
  ~Cluster() {
    for (pid_t w : workers_) Terminate(w);
    if (manager_ > 0) Terminate(manager_);
    KillProcessesWithEnv(marker_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool Start() {
    api_ = "127.0.0.1:" + std::to_string(FreePort());
    published_ = FreePort();
    // Per-run loopback addresses, so two runs on one machine do not collide.
    const int base = 2 * (getpid() % 100);
    const int dns_port = FreePort();
    planes_.push_back({"manager DNS", true, "127.0.0.1", dns_port});
    manager_ = Spawn(Concat({warren_, "manager", "--data-dir", (dir_ / "manager").string(),
                             "--api-addr", api_, "--metrics-addr", "", "--dns-addr",
                             "127.0.0.1:" + std::to_string(dns_port), "--dns-refuse-external"},
                            TlsFlags(dir_ / "home")),
                     (dir_ / "manager.log").string());
    auto channel = ApiChannel(api_, dir_ / "home");
    stub_ = v1::Control::NewStub(channel);
    const std::vector<std::string> join = JoinFlags(channel);
    for (int i = 0; i < kWorkers; ++i) {
      const std::string name = "w" + std::to_string(i + 1);
      const std::string publish_ip = "127.0.0." + std::to_string(20 + base % 200 + i);
      const std::string range = "127.66." + std::to_string(base + i) + ".0/24";
      const int port = FreePort();
      planes_.push_back({name + " DNS", true, "127.0.0.1", port});
      proxies_.push_back({name + " proxy", false, publish_ip, published_});
      workers_.push_back(
          Spawn(Concat({warren_, "--manager", api_, "worker", "--node-name", name, "--data-dir",
                        (dir_ / name).string(), "--address-range", range, "--dns-addr",
                        "127.0.0.1:" + std::to_string(port), "--dns-refuse-external",
                        "--publish-ip", publish_ip, "--stop-tasks-on-exit"},
                       join),
                (dir_ / (name + ".log")).string()));
    }
    planes_.insert(planes_.end(), proxies_.begin(), proxies_.end());
    return WaitUntil(
        [&] {
          auto ctx = Ctx();
          v1::ListNodesResponse resp;
          if (!stub_->ListNodes(ctx.get(), v1::ListNodesRequest(), &resp).ok()) return false;
          int ready = 0;
          for (const auto& n : resp.nodes()) ready += n.state() == v1::NODE_STATE_READY;
          return ready == kWorkers;
        },
        std::chrono::seconds(20));
  }

  v1::Control::Stub& stub() { return *stub_; }
  const std::vector<Plane>& planes() const { return planes_; }
  int published() const { return published_; }

  bool CreateService() {
    v1::CreateServiceRequest req;
    auto* spec = req.mutable_spec();
    spec->set_name(kService);
    spec->set_replicas(1);
    auto* t = spec->mutable_template_();
    t->set_command(testapp_);
    (*t->mutable_env())["WARREN_BENCH_RUN"] = dir_.string();
    auto* port = t->add_ports();
    port->set_target(8080);
    port->set_published(published_);
    auto* hc = t->mutable_health_check();
    hc->mutable_http()->set_path("/healthz");
    hc->mutable_interval()->set_nanos(100'000'000);
    // Scale-downs between samples need not wait out the default 5 s drain.
    t->mutable_drain_timeout()->set_nanos(100'000'000);
    auto ctx = Ctx();
    v1::Service out;
    grpc::Status st = stub_->CreateService(ctx.get(), req, &out);
    if (!st.ok()) {
      std::fprintf(stderr, "create: %s\n", st.error_message().c_str());
      return false;
    }
    return WaitUntil([&] { return Healthy().size() == 1; }, std::chrono::seconds(30));
  }

  bool Scale(int replicas) {
    auto ctx = Ctx();
    v1::ScaleServiceRequest req;
    req.set_name_or_id(kService);
    req.set_replicas(replicas);
    v1::Service out;
    grpc::Status st = stub_->ScaleService(ctx.get(), req, &out);
    if (!st.ok()) std::fprintf(stderr, "scale: %s\n", st.error_message().c_str());
    return st.ok();
  }

  // Tasks of the service that should run.
  std::vector<v1::Task> Live() {
    auto ctx = Ctx();
    v1::ListTasksRequest req;
    req.set_service(kService);
    v1::ListTasksResponse resp;
    std::vector<v1::Task> out;
    if (!stub_->ListTasks(ctx.get(), req, &resp).ok()) return out;
    for (const auto& t : resp.tasks()) {
      if (t.desired_state() == v1::TASK_STATE_RUNNING) out.push_back(t);
    }
    return out;
  }

  std::vector<v1::Task> Healthy() {
    std::vector<v1::Task> out;
    for (auto& t : Live()) {
      if (t.status().state() == v1::TASK_STATE_RUNNING &&
          t.status().health().state() == v1::HEALTH_STATE_HEALTHY) {
        out.push_back(std::move(t));
      }
    }
    return out;
  }

  std::string NodeName(const std::string& node_id) {
    auto ctx = Ctx();
    v1::ListNodesResponse resp;
    if (stub_->ListNodes(ctx.get(), v1::ListNodesRequest(), &resp).ok()) {
      for (const auto& n : resp.nodes()) {
        if (n.id() == node_id) return n.name();
      }
    }
    return node_id;
  }

 private:
  std::string warren_, testapp_, api_, marker_;
  std::filesystem::path dir_;
  pid_t manager_ = -1;
  std::vector<pid_t> workers_;
  int published_ = 0;
  std::vector<Plane> planes_;
  std::vector<Plane> proxies_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

const std::string kName = std::string(kService) + ".warren";

// Polls one plane every 1 ms until it serves the task; returns the wall time it first did.
double PollPlane(const Plane& plane, const std::string& task_id, const std::string& address) {
  auto deadline = SteadyClock::now() + kPlaneDeadline;
  std::optional<DnsClient> dns;
  if (plane.dns) dns.emplace(plane.ip, plane.port);
  for (int i = 0; i < kMaxPolls && SteadyClock::now() < deadline; ++i) {
    if (plane.dns) {
      auto a = dns->QueryA(kName);
      if (a && std::find(a->begin(), a->end(), address) != a->end()) return WallNow();
    } else {
      // Two requests: round robin over two endpoints reaches the new one within two.
      for (int k = 0; k < 2; ++k) {
        if (ProxyTaskId(plane.ip, plane.port) == task_id) return WallNow();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return -1;
}

// After a scale-down: every DNS server answers with exactly `addresses`, so a re-used address
// is only seen again once the next task is routed.
bool DnsSettled(const Cluster& cluster, const std::set<std::string>& addresses) {
  for (const auto& p : cluster.planes()) {
    if (!p.dns) continue;
    DnsClient c(p.ip, p.port);
    bool ok = WaitUntil(
        [&] {
          auto a = c.QueryA(kName);
          return a && std::set<std::string>(a->begin(), a->end()) == addresses;
        },
        std::chrono::seconds(10), std::chrono::milliseconds(5));
    if (!ok) return false;
  }
  return true;
}

std::optional<Sample> OneSample(Cluster& cluster, EventRecorder& events) {
  std::set<std::string> before;
  for (const auto& t : cluster.Live()) before.insert(t.id());
  if (!cluster.Scale(2)) return std::nullopt;
  // The new task's id and address are known before its first probe (one interval after start).
  std::optional<v1::Task> task;
  WaitUntil(
      [&] {
        for (const auto& t : cluster.Live()) {
          if (!before.count(t.id()) && !t.address().empty()) {
            task = t;
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(5));
  if (!task) {
    std::fprintf(stderr, "sample: no new task with an address within 10 s\n");
    return std::nullopt;
  }
  const auto& planes = cluster.planes();
  Sample s;
  s.seen.assign(planes.size(), -1);
  std::vector<std::thread> pollers;
  for (size_t i = 0; i < planes.size(); ++i) {
    pollers.emplace_back([&, i] { s.seen[i] = PollPlane(planes[i], task->id(), task->address()); });
  }
  for (auto& t : pollers) t.join();
  WaitUntil(
      [&] {
        for (const auto& t : cluster.Healthy()) {
          if (t.id() == task->id() && t.status().health().has_healthy_since()) {
            s.healthy_since = Seconds(t.status().health().healthy_since());
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(5));
  auto healthy = events.WaitForEvent(
      [&](const v1::Event& e) {
        return e.kind() == "task" && e.object_id() == task->id() && e.action() == "healthy";
      },
      std::chrono::seconds(2), std::chrono::milliseconds(5));
  s.healthy_event = healthy ? Seconds(healthy->time()) : 0;
  s.node = cluster.NodeName(task->node_id());
  // Back to one replica, and wait until every DNS server forgot the removed task.
  if (!cluster.Scale(1)) return std::nullopt;
  std::set<std::string> remaining;
  bool one = WaitUntil(
      [&] {
        auto live = cluster.Healthy();
        if (live.size() != 1 || cluster.Live().size() != 1) return false;
        remaining = {live[0].address()};
        return true;
      },
      std::chrono::seconds(15));
  if (!one || !DnsSettled(cluster, remaining)) {
    std::fprintf(stderr, "sample: the service did not settle at one replica\n");
    return std::nullopt;
  }
  if (s.healthy_since == 0) {
    std::fprintf(stderr, "sample: task %s has no healthy_since\n", task->id().c_str());
    return std::nullopt;
  }
  return s;
}

std::string Fmt(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c, d);
  return buf;
}

std::string Stats(const std::vector<double>& ms) {
  return Fmt("p50 %.1f ms, p99 %.1f ms, max %.1f ms", Percentile(ms, 50), Percentile(ms, 99),
             Percentile(ms, 100));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s WARREN_BINARY TESTAPP_BINARY [SAMPLES]\n", argv[0]);
    return 2;
  }
  const int samples = argc > 3 ? std::clamp(atoi(argv[3]), 1, 1000) : 100;
  signal(SIGPIPE, SIG_IGN);
  Cluster cluster(argv[1], argv[2]);
  if (!cluster.Start()) {
    std::fprintf(stderr, "routing_bench: the manager and %d workers did not become ready\n",
                 kWorkers);
    return 1;
  }
  if (!cluster.CreateService()) {
    std::fprintf(stderr, "routing_bench: the service did not become healthy\n");
    return 1;
  }
  EventRecorder events(cluster.stub(), kService);
  const auto& planes = cluster.planes();
  std::vector<std::vector<double>> per_plane(planes.size());
  std::vector<double> dns_ms, proxy_ms, all_ms, report_ms;
  int missed = 0, failed = 0, negative = 0;
  std::map<std::string, int> nodes;
  for (int i = 0; i < samples; ++i) {
    auto s = OneSample(cluster, events);
    if (!s) {
      failed++;
      continue;
    }
    nodes[s->node]++;
    double dns = 0, proxy = 0;
    bool complete = true;
    for (size_t p = 0; p < planes.size(); ++p) {
      if (s->seen[p] < 0) {
        complete = false;
        continue;
      }
      // A plane cannot serve a task before its prober saw it healthy; anything below zero would
      // mean the times are not comparable, so it is counted and shown rather than hidden.
      double ms = (s->seen[p] - s->healthy_since) * 1000;
      if (ms < 0) negative++;
      per_plane[p].push_back(ms);
      (planes[p].dns ? dns : proxy) = std::max(planes[p].dns ? dns : proxy, ms);
    }
    if (!complete) {
      missed++;
      continue;
    }
    dns_ms.push_back(dns);
    proxy_ms.push_back(proxy);
    all_ms.push_back(std::max(dns, proxy));
    if (s->healthy_event > 0) report_ms.push_back((s->healthy_event - s->healthy_since) * 1000);
  }
  std::string placement;
  for (const auto& [n, c] : nodes)
    placement += (placement.empty() ? "" : ", ") + n + Fmt(" %.0f", c);
  std::printf("| benchmark | result | goal |\n|---|---|---|\n");
  const std::string tail =
      Fmt(" (%.0f samples", all_ms.size()) +
      Fmt("; %.0f missed, %.0f failed, %.0f below zero", missed, failed, negative) +
      "; new task on " + placement + ")";
  std::printf(
      "| routing change: task healthy -> every data plane serving it (slowest of 3 DNS "
      "servers and 2 proxies per sample) | %s%s | p99 < 100 ms |\n",
      Stats(all_ms).c_str(), tail.c_str());
  std::printf(
      "| ... DNS: manager's and both workers' answer with the task's address | %s | "
      "p99 < 100 ms |\n",
      Stats(dns_ms).c_str());
  std::printf(
      "| ... proxy: both workers' proxies (published port %d) send it requests | %s | "
      "p99 < 100 ms |\n",
      cluster.published(), Stats(proxy_ms).c_str());
  for (size_t p = 0; p < planes.size(); ++p) {
    std::printf("| ... %s alone | %s | - |\n", planes[p].name.c_str(), Stats(per_plane[p]).c_str());
  }
  std::printf(
      "| ... of which: prober healthy_since -> manager's \"task healthy\" event (status "
      "report) | %s | - |\n",
      Stats(report_ms).c_str());
  return all_ms.empty() ? 1 : 0;
}
