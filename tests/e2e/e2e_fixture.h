#ifndef WARREN_TESTS_E2E_E2E_FIXTURE_H_
#define WARREN_TESTS_E2E_E2E_FIXTURE_H_

// The fixture of the end-to-end tests: a temp dir, free ports, a loopback address range of
// its own, the real binary, and clean-up of every task process the test started. Clusters run
// mutual TLS (the default) with an admin bundle of the test's own (parallel tests never share
// ~/.warren), unless a test that checks plaintext behaviour calls UsePlaintext().

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/strip.h"
#include "e2e_util.h"
#include "gtest/gtest.h"
#include "security/client_bundle.h"

namespace warren::e2e {

class E2eTest : public testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("warren-e2e-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    marker_ = "WARREN_E2E_RUN=" + dir_.string();
    // Every `warren` the test runs (Cli, and commands it runs itself) presents the bundle.
    setenv("WARREN_TLS_DIR", (tls_root() / "current").c_str(), 1);
    api_addr_ = "127.0.0.1:" + std::to_string(FreePort());
    // Task ranges 127.X.0.0/16 for X in range_octet_..+3 (Range(0..3)), none of them in use
    // on the machine (another cluster running beside the tests, issue 11 D8).
    const std::set<int> in_use = LoopbackOctetsInUse();
    const int first = 100 + static_cast<int>(rd() % 97);
    range_octet_ = first;  // all in use: the workers move tasks off taken addresses anyway
    for (int i = 0; i < 97; ++i) {
      const int octet = 100 + (first - 100 + i) % 97;
      bool free = true;
      for (int k = 0; k <= 3; ++k) free = free && !in_use.contains(octet + k);
      if (free) {
        range_octet_ = octet;
        break;
      }
    }
  }

  void TearDown() override {
    unsetenv("WARREN_TLS_DIR");
    for (auto& p : processes_) p->Kill(SIGTERM, std::chrono::seconds(20));
    processes_.clear();
    KillProcessesWithEnv(marker_);
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }

  // For a test that exists to check plaintext behaviour; call it before starting nodes.
  void UsePlaintext() {
    plaintext_ = true;
    unsetenv("WARREN_TLS_DIR");
  }

  // Where the nodes the fixture starts write the admin client bundle (<root>/current).
  std::filesystem::path tls_root() const { return dir_ / "home"; }

  // The flags of `manager` / `cluster init` for the test's mode.
  std::vector<std::string> TlsFlags() const {
    if (plaintext_) return {"--insecure-plaintext"};
    return {"--tls-root", tls_root().string()};
  }

  // Credentials of a gRPC client of the API or a node's agent: the admin bundle (plaintext:
  // none).
  std::shared_ptr<grpc::ChannelCredentials> ApiCredentials() {
    if (plaintext_) return grpc::InsecureChannelCredentials();
    auto creds = security::BundleChannelCredentials((tls_root() / "current").string());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return creds.ok() ? *creds : grpc::InsecureChannelCredentials();
  }

  std::shared_ptr<grpc::Channel> ApiChannel() {
    return grpc::CreateChannel(api_addr_, ApiCredentials());
  }

  // `cluster join-token worker -q` (`rotate`: --rotate), once the manager answers.
  std::string JoinToken(bool rotate = false) {
    std::vector<std::string> args = {"cluster", "join-token", "worker", "-q"};
    if (rotate) args.push_back("--rotate");
    CommandResult r;
    EXPECT_TRUE(WaitFor([&] {
      r = Cli(args);
      return r.exit_code == 0;
    })) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  // The flags a separate worker joins with: a join token unless `extra` names one (plaintext:
  // none).
  std::vector<std::string> JoinFlags(const std::vector<std::string>& extra = {}) {
    if (plaintext_ || std::find(extra.begin(), extra.end(), "--token") != extra.end()) return {};
    return {"--token", JoinToken()};
  }

  std::string Range(int i = 0) { return "127." + std::to_string(range_octet_ + i) + ".0.0/16"; }

  Process& StartHybrid(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--address-range", Range(), "--stop-tasks-on-exit"};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartNode("node-1", args);
  }

  // `warren cluster init` on the test's dir, ports and DNS, plus `extra` flags.
  Process& StartNode(const std::string& node_name, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {WARREN_BINARY,
                                     "cluster",
                                     "init",
                                     "--data-dir",
                                     (dir_ / "data").string(),
                                     "--api-addr",
                                     api_addr_,
                                     "--metrics-addr",
                                     "127.0.0.1:" + std::to_string(metrics_port_),
                                     "--node-name",
                                     node_name,
                                     "--dns-addr",
                                     "127.0.0.1:" + std::to_string(dns_port_)};
    const std::vector<std::string> tls = TlsFlags();
    args.insert(args.end(), tls.begin(), tls.end());
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.begin(), command_prefix_.begin(), command_prefix_.end());
    processes_.push_back(std::make_unique<Process>(args, (dir_ / "hybrid.log").string()));
    WaitReady();
    return *processes_.back();
  }

  void WaitReady() {
    ASSERT_TRUE(WaitFor([&] {
      auto r = Cli({"node", "ls", "-o", "json"});
      return r.exit_code == 0 && r.out.find("NODE_STATE_READY") != std::string::npos;
    })) << processes_.back()->Log();
  }

  CommandResult Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {WARREN_BINARY, "--manager", api_addr_});
    return e2e::Run(args);
  }

  // `warren manager` on the test's API address and dir, plus `extra` flags.
  Process& StartManager(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {
        WARREN_BINARY, "manager", "--data-dir",     (dir_ / "m").string(),
        "--api-addr",  api_addr_, "--metrics-addr", "127.0.0.1:" + std::to_string(FreePort())};
    const std::vector<std::string> tls = TlsFlags();
    args.insert(args.end(), tls.begin(), tls.end());
    args.insert(args.end(), extra.begin(), extra.end());
    processes_.push_back(std::make_unique<Process>(args, (dir_ / "manager.log").string()));
    return *processes_.back();
  }

  // `warren worker` number `i` (node w<i>, address range Range(i)), plus `extra` flags; it
  // joins with a token (JoinFlags), so under TLS the manager must be up.
  Process& StartWorker(int i, const std::vector<std::string>& extra = {}) {
    const std::string name = "w" + std::to_string(i);
    std::vector<std::string> args = {
        WARREN_BINARY,     "worker", "--manager",  api_addr_,
        "--node-name",     name,     "--data-dir", (dir_ / name).string(),
        "--address-range", Range(i)};
    const std::vector<std::string> join = JoinFlags(extra);
    args.insert(args.end(), join.begin(), join.end());
    args.insert(args.end(), extra.begin(), extra.end());
    processes_.push_back(std::make_unique<Process>(args, (dir_ / (name + ".log")).string()));
    return *processes_.back();
  }

  // Waits until `n` nodes are ready.
  bool WaitNodesReady(int n) {
    return WaitFor([&] {
      auto r = Cli({"node", "ls", "-o", "json"});
      int ready = 0;
      for (const auto& node : JsonList(r.out, "nodes")) {
        ready += node.value("state", "") == "NODE_STATE_READY";
      }
      return ready == n;
    });
  }

  CommandResult CreateTestapp(const std::string& name, int replicas,
                              std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--replicas", std::to_string(replicas)});
    return CreateTestappWith(name, extra);
  }

  // One task on every node.
  CommandResult CreateGlobalTestapp(const std::string& name, std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--mode", "global"});
    return CreateTestappWith(name, extra);
  }

  CommandResult CreateTestappWith(const std::string& name, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"service",
                                     "create",
                                     name,
                                     "--command",
                                     WARREN_TESTAPP_BINARY,
                                     "--health-http",
                                     "/healthz",
                                     "--health-interval",
                                     "200ms",
                                     "--env",
                                     marker_,
                                     "--stop-timeout",
                                     "2s",
                                     "--drain-timeout",
                                     "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  }

  nlohmann::json Tasks(const std::string& service) {
    auto r = Cli({"service", "ps", service, "-o", "json"});
    return JsonList(r.out, "tasks");
  }

  std::vector<nlohmann::json> HealthyTasks(const std::string& service) {
    std::vector<nlohmann::json> out;
    for (const auto& t : Tasks(service)) {
      if (t.value("desiredState", "") == "TASK_STATE_RUNNING" &&
          t["status"].value("state", "") == "TASK_STATE_RUNNING" &&
          t["status"].contains("health") &&
          t["status"]["health"].value("state", "") == "HEALTH_STATE_HEALTHY") {
        out.push_back(t);
      }
    }
    return out;
  }

  std::filesystem::path dir_;
  std::string marker_;
  std::string api_addr_;
  int metrics_port_ = FreePort();
  int dns_port_ = FreePort();
  int range_octet_ = 100;
  bool plaintext_ = false;
  // Runs the node under a wrapper: {"/bin/sh", "-c", "ulimit -n 256 && exec \"$0\" \"$@\""}.
  std::vector<std::string> command_prefix_;
  std::vector<std::unique_ptr<Process>> processes_;
};

// Sends GET / through the proxy back to back (a new connection each) until stopped or
// bounded out; counts failures and answers by version.
class Load {
 public:
  // `weight_of` (optional) tags each request with a label (e.g. the canary weight in force
  // when it was sent); answers are then counted per label and version.
  // `ip`: the address the proxy publishes on (a node of its own on one machine).
  explicit Load(int port, std::function<int()> label = nullptr, std::string ip = "127.0.0.1")
      : port_(port), label_(std::move(label)), ip_(std::move(ip)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int sent() const { return sent_; }
  int failed() const { return failed_; }
  int v1() const { return v1_; }
  int v2() const { return v2_; }
  // label -> (v1 answers, v2 answers).
  std::map<int, std::pair<int, int>> by_label() {
    std::lock_guard<std::mutex> lock(mu_);
    return by_label_;
  }
  std::string last_error() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_error_;
  }
  // When the first and the last answer of version v2 arrived (epoch when none did).
  std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>
  v2_span() {
    std::lock_guard<std::mutex> lock(mu_);
    return {first_v2_, last_v2_};
  }
  // Failed requests that were sent at or after `since`.
  int failed_since(std::chrono::steady_clock::time_point since) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& t : failure_starts_) n += t >= since ? 1 : 0;
    return n;
  }

 private:
  void Run() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (!stop_ && sent_ < 200000 && std::chrono::steady_clock::now() < deadline) {
      sent_++;
      const auto started = std::chrono::steady_clock::now();
      auto r = HttpGet(ip_, port_, "/");
      if (!r || r->first != 200) {
        failed_++;
        std::lock_guard<std::mutex> lock(mu_);
        last_error_ = r ? std::to_string(r->first) + " " + r->second : "no response";
        failure_starts_.push_back(started);
        continue;
      }
      const bool is_v1 = r->second.find("version=v1") != std::string::npos;
      const bool is_v2 = r->second.find("version=v2") != std::string::npos;
      if (is_v1) v1_++;
      if (is_v2) {
        v2_++;
        std::lock_guard<std::mutex> lock(mu_);
        last_v2_ = std::chrono::steady_clock::now();
        if (first_v2_ == std::chrono::steady_clock::time_point()) first_v2_ = last_v2_;
      }
      if (label_) {
        int l = label_();
        std::lock_guard<std::mutex> lock(mu_);
        auto& [a, b] = by_label_[l];
        a += is_v1 ? 1 : 0;
        b += is_v2 ? 1 : 0;
      }
    }
  }
  int port_;
  std::function<int()> label_;
  std::string ip_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0}, failed_{0}, v1_{0}, v2_{0};
  std::mutex mu_;
  std::string last_error_;
  std::vector<std::chrono::steady_clock::time_point> failure_starts_;
  std::chrono::steady_clock::time_point first_v2_, last_v2_;
  std::map<int, std::pair<int, int>> by_label_;
  std::thread thread_;
};

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_E2E_FIXTURE_H_
