// Failover time of the managers on etcd (issue 14): 3 etcd members and 3 managers (mutual TLS)
// on loopback; each trial SIGKILLs the manager that leads and measures the time until another
// manager's controllers have made their first pass as the new leader (its /metrics shows
// warren_controller_leading 1 and warren_controller_term_passes >= 1, polled every 5 ms), then
// starts the killed manager again for the next trial. Prints p50, p99 and max over the trials.
// What dominates is the leader lease: a SIGKILLed leader holds it until it expires
// (--leader-ttl), so the figures are for the TTL given here.
// Before the trials it measures the API's create rate and latency on this etcd store against a
// manager on the embedded SQLite store in the same run (sequential CreateService calls on one
// mutual-TLS connection, after a warm-up).
//
// usage: failover_bench WARREN_BINARY [TRIALS (default 20, at most 200)] [LEADER_TTL_SECONDS
// (default 2)] [CREATES (default 500, at most 20000; 0: no create rates)]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "store/etcd_client.h"
#include "warren/v1/api.grpc.pb.h"

namespace {

using warren::bench::FreePort;
using warren::bench::Percentile;
using warren::bench::Spawn;
using warren::bench::Terminate;
using warren::bench::WaitUntil;
using Clock = std::chrono::steady_clock;

constexpr const char* kEtcd = "/usr/bin/etcd";

// GET http://127.0.0.1:port/metrics; nullopt when nothing answers.
std::optional<std::string> Metrics(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (out.empty()) return std::nullopt;
  return out;
}

// The value of an unlabelled gauge in a /metrics text; -1 when absent.
double Gauge(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + at + name.size() + 2);
}

struct Manager {
  std::string name;
  std::filesystem::path data;
  std::filesystem::path tls_root;
  std::string api;
  int metrics = 0;
  pid_t pid = -1;
};

struct Creates {
  double seconds = 0;
  int failed = 0;
  std::vector<double> latency_ms;
  double rate() const { return seconds > 0 ? latency_ms.size() / seconds : 0; }
};

// `n` sequential creates on one connection to `api` (after 20 unmeasured ones).
Creates CreateRate(const std::string& api, const std::filesystem::path& tls_root, int n,
                   const std::string& prefix) {
  Creates out;
  auto stub = warren::v1::Control::NewStub(warren::bench::ApiChannel(api, tls_root));
  auto create = [&](const std::string& name) {
    warren::v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(0);
    req.mutable_spec()->mutable_template_()->set_command("/bin/true");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    warren::v1::Service created;
    grpc::Status s = stub->CreateService(&ctx, req, &created);
    if (!s.ok()) std::fprintf(stderr, "create %s: %s\n", name.c_str(), s.error_message().c_str());
    return s.ok();
  };
  for (int i = 0; i < 20; ++i) create(prefix + "warm-" + std::to_string(i));
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const auto c0 = Clock::now();
    if (!create(prefix + std::to_string(i))) out.failed++;
    out.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c0).count());
  }
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return out;
}

void StartManager(const std::string& warren, const std::string& store, int ttl_seconds,
                  const std::filesystem::path& dir, Manager* m) {
  m->metrics = FreePort();
  m->api = "127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> argv = {warren,           "manager",
                                   "--data-dir",     m->data.string(),
                                   "--api-addr",     m->api,
                                   "--metrics-addr", "127.0.0.1:" + std::to_string(m->metrics),
                                   "--dns-addr",     "",
                                   "--store",        store,
                                   "--leader-ttl",   std::to_string(ttl_seconds) + "s"};
  argv = warren::bench::Concat(argv, warren::bench::TlsFlags(m->tls_root));
  m->pid = Spawn(argv, (dir / (m->name + ".log")).string());
}

bool Leading(const Manager& m, bool with_pass) {
  auto text = Metrics(m.metrics);
  if (!text) return false;
  if (Gauge(*text, "warren_controller_leading") != 1) return false;
  return !with_pass || Gauge(*text, "warren_controller_term_passes") >= 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s WARREN_BINARY [TRIALS] [LEADER_TTL_SECONDS] [CREATES]\n",
                 argv[0]);
    return 2;
  }
  if (access(kEtcd, X_OK) != 0) {
    std::printf("skipped: %s not installed (scripts/setup.sh installs etcd-server)\n", kEtcd);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  const std::string warren = argv[1];
  const int trials = std::clamp(argc > 2 ? std::atoi(argv[2]) : 20, 1, 200);
  const int ttl = std::clamp(argc > 3 ? std::atoi(argv[3]) : 2, 1, 60);
  const int creates = std::clamp(argc > 4 ? std::atoi(argv[4]) : 500, 0, 20000);
  std::random_device rd;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("warren-failover-bench-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);

  // etcd: 3 members, the test timings (Raft heartbeat 50 ms, election 500 ms).
  std::vector<int> client(3), peer(3);
  for (int i = 0; i < 3; ++i) {
    client[i] = FreePort();
    peer[i] = FreePort();
  }
  std::string initial, store = "etcd://";
  for (int i = 0; i < 3; ++i) {
    initial +=
        (i ? "," : "") + ("e" + std::to_string(i)) + "=http://127.0.0.1:" + std::to_string(peer[i]);
    store += (i ? "," : "") + std::string("127.0.0.1:") + std::to_string(client[i]);
  }
  std::vector<pid_t> etcd;
  for (int i = 0; i < 3; ++i) {
    const std::string c = "http://127.0.0.1:" + std::to_string(client[i]);
    const std::string p = "http://127.0.0.1:" + std::to_string(peer[i]);
    etcd.push_back(Spawn(
        {kEtcd, "--name=e" + std::to_string(i),
         "--data-dir=" + (dir / ("etcd" + std::to_string(i))).string(), "--listen-client-urls=" + c,
         "--advertise-client-urls=" + c, "--listen-peer-urls=" + p,
         "--initial-advertise-peer-urls=" + p, "--initial-cluster=" + initial,
         "--initial-cluster-state=new", "--initial-cluster-token=" + dir.filename().string(),
         "--heartbeat-interval=50", "--election-timeout=500", "--log-level=warn"},
        (dir / ("etcd" + std::to_string(i) + ".log")).string()));
  }

  for (int i = 0; i < 3; ++i) {
    warren::EtcdClientOptions o;
    o.endpoints = {"127.0.0.1:" + std::to_string(client[i])};
    auto c = warren::EtcdClient::Create(o);
    if (!c.ok() || !WaitUntil(
                       [&] {
                         auto st = (*c)->MemberStatus(0);
                         return st.ok() && st->leader() != 0;
                       },
                       std::chrono::seconds(60), std::chrono::milliseconds(50))) {
      std::fprintf(stderr, "etcd member %d never served (log in %s)\n", i, dir.string().c_str());
      for (pid_t p : etcd) Terminate(p);
      return 1;
    }
  }

  std::vector<Manager> managers(3);
  for (int i = 0; i < 3; ++i) {
    managers[i].name = "m" + std::to_string(i);
    managers[i].data = dir / managers[i].name;
    managers[i].tls_root = dir / (managers[i].name + "-home");
  }
  auto cleanup = [&] {
    for (auto& m : managers) {
      if (m.pid > 0) Terminate(m.pid);
    }
    for (pid_t p : etcd) Terminate(p);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  };
  StartManager(warren, store, ttl, dir, &managers[0]);
  if (!WaitUntil([&] { return Leading(managers[0], true); }, std::chrono::seconds(90),
                 std::chrono::milliseconds(50))) {
    std::fprintf(stderr, "the first manager never led (log %s)\n",
                 (dir / "m0.log").string().c_str());
    cleanup();
    return 1;
  }
  for (int i = 1; i < 3; ++i) {
    std::filesystem::create_directories(managers[i].data);
    std::filesystem::copy_file(managers[0].data / "cluster.kek", managers[i].data / "cluster.kek");
    StartManager(warren, store, ttl, dir, &managers[i]);
  }
  for (auto& m : managers) {
    if (!WaitUntil([&] { return Metrics(m.metrics).has_value(); }, std::chrono::seconds(60),
                   std::chrono::milliseconds(50))) {
      std::fprintf(stderr, "%s never served /metrics\n", m.name.c_str());
      cleanup();
      return 1;
    }
  }

  // The API on etcd against the embedded SQLite store, in the same run.
  Creates on_etcd, on_sqlite;
  if (creates > 0) {
    on_etcd = CreateRate(managers[0].api, managers[0].tls_root, creates, "etcd-");
    Manager lone{.name = "sqlite", .data = dir / "sqlite", .tls_root = dir / "sqlite-home"};
    lone.metrics = FreePort();
    lone.api = "127.0.0.1:" + std::to_string(FreePort());
    lone.pid = Spawn(
        warren::bench::Concat({warren, "manager", "--data-dir", lone.data.string(), "--api-addr",
                               lone.api, "--metrics-addr", "", "--dns-addr", ""},
                              warren::bench::TlsFlags(lone.tls_root)),
        (dir / "sqlite.log").string());
    on_sqlite = CreateRate(lone.api, lone.tls_root, creates, "sqlite-");
    Terminate(lone.pid);
  }

  std::vector<double> ms;
  int failed = 0;
  for (int t = 0; t < trials; ++t) {
    int leader = -1;
    WaitUntil(
        [&] {
          for (int i = 0; i < 3; ++i) {
            if (Leading(managers[i], true)) leader = i;
          }
          return leader >= 0;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(20));
    if (leader < 0) {
      std::fprintf(stderr, "trial %d: no leader\n", t);
      failed++;
      continue;
    }
    kill(managers[leader].pid, SIGKILL);
    const auto killed = Clock::now();
    waitpid(managers[leader].pid, nullptr, 0);
    managers[leader].pid = -1;
    int next = -1;
    const bool took_over = WaitUntil(
        [&] {
          for (int i = 0; i < 3; ++i) {
            if (i != leader && Leading(managers[i], true)) next = i;
          }
          return next >= 0;
        },
        std::chrono::seconds(60), std::chrono::milliseconds(5));
    const double took = std::chrono::duration<double, std::milli>(Clock::now() - killed).count();
    if (!took_over) {
      std::fprintf(stderr, "trial %d: no manager took over within 60 s\n", t);
      failed++;
    } else {
      ms.push_back(took);
      std::fprintf(stderr, "trial %d: %s -> %s in %.0f ms\n", t, managers[leader].name.c_str(),
                   managers[next].name.c_str(), took);
    }
    // The killed one comes back (new ports) as a follower for the next trial.
    StartManager(warren, store, ttl, dir, &managers[leader]);
    WaitUntil([&] { return Metrics(managers[leader].metrics).has_value(); },
              std::chrono::seconds(60), std::chrono::milliseconds(50));
  }
  cleanup();

  std::printf("| Failover (leader SIGKILL -> new leader's first controller pass) | value |\n");
  std::printf("|---|---|\n");
  std::printf("| leader lease TTL | %d s |\n", ttl);
  std::printf("| trials (failed) | %zu (%d) |\n", ms.size(), failed);
  std::printf("| p50 | %.0f ms |\n", Percentile(ms, 50));
  std::printf("| p99 | %.0f ms |\n", Percentile(ms, 99));
  std::printf("| max | %.0f ms |\n", Percentile(ms, 100));
  std::printf("| min | %.0f ms |\n", Percentile(ms, 0.0001));
  if (creates > 0) {
    std::printf(
        "\n| API creates, sequential on one connection (%d) | SQLite | etcd (3 members) | "
        "etcd / SQLite |\n",
        creates);
    std::printf("|---|---|---|---|\n");
    std::printf("| creates/s | %.0f | %.0f | %.2f |\n", on_sqlite.rate(), on_etcd.rate(),
                on_etcd.rate() / std::max(on_sqlite.rate(), 1e-9));
    for (double p : {50.0, 99.0}) {
      const double a = Percentile(on_sqlite.latency_ms, p), b = Percentile(on_etcd.latency_ms, p);
      std::printf("| p%.0f ms | %.2f | %.2f | %.2f |\n", p, a, b, b / std::max(a, 1e-9));
    }
    std::printf("| failed | %d | %d | |\n", on_sqlite.failed, on_etcd.failed);
    failed += on_sqlite.failed + on_etcd.failed;
  }
  return failed == 0 ? 0 : 1;
}
