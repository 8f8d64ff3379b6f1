#ifndef WARREN_TESTS_E2E_E2E_FIXTURE_H_
#define WARREN_TESTS_E2E_E2E_FIXTURE_H_

// The fixture of the end-to-end tests: a temp dir, free ports, a loopback address range of
// its own, the real binary, and clean-up of every task process the test started.

#include <set>

#include "e2e_util.h"
#include "gtest/gtest.h"

namespace warren::e2e {

class E2eTest : public testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("warren-e2e-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    marker_ = "WARREN_E2E_RUN=" + dir_.string();
    api_addr_ = "127.0.0.1:" + std::to_string(FreePort());
    range_octet_ = 100 + rd() % 100;
  }

  void TearDown() override {
    for (auto& p : processes_) p->Kill(SIGTERM, std::chrono::seconds(20));
    processes_.clear();
    KillProcessesWithEnv(marker_);
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }

  std::string Range(int i = 0) { return "127." + std::to_string(range_octet_ + i) + ".0.0/16"; }

  Process& StartHybrid(const std::vector<std::string>& extra = {}) {
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
                                     "node-1",
                                     "--address-range",
                                     Range(),
                                     "--stop-tasks-on-exit",
                                     "--dns-addr",
                                     "127.0.0.1:" + std::to_string(dns_port_)};
    args.insert(args.end(), extra.begin(), extra.end());
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

  CommandResult CreateTestapp(const std::string& name, int replicas,
                              std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"service",
                                     "create",
                                     name,
                                     "--command",
                                     WARREN_TESTAPP_BINARY,
                                     "--replicas",
                                     std::to_string(replicas),
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
  std::vector<std::unique_ptr<Process>> processes_;
};

}  // namespace warren::e2e

#endif  // WARREN_TESTS_E2E_E2E_FIXTURE_H_
