// End-to-end traffic: service DNS answered by the real server (dig), the proxy on a published
// port under constant load while the service scales down and rolls to a new version, with
// zero failed requests, and `service endpoints`.
#include <atomic>
#include <thread>

#include "e2e_fixture.h"

namespace warren::e2e {
namespace {

class TrafficE2eTest : public E2eTest {
 protected:
  int publish_port_ = FreePort();

  void CreateWeb(int replicas) {
    auto r = CreateTestapp("web", replicas,
                           {"--env", "VERSION=v1", "--publish",
                            "127.0.0.1:" + std::to_string(publish_port_) + ":8080"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(
        WaitFor([&] { return HealthyTasks("web").size() == static_cast<size_t>(replicas); }));
    // The proxy serves once the routing table reached the worker.
    ASSERT_TRUE(WaitFor([&] {
      auto resp = HttpGet("127.0.0.1", publish_port_, "/");
      return resp && resp->first == 200;
    }));
  }
};

TEST_F(TrafficE2eTest, DnsAnswersWithHealthyTasks) {
  if (e2e::Run({"/bin/sh", "-c", "command -v dig"}).exit_code != 0) {
    GTEST_SKIP() << "dig not installed (Debian package dnsutils)";
  }
  StartHybrid();
  CreateWeb(3);
  std::set<std::string> want;
  for (const auto& t : HealthyTasks("web")) want.insert(t["address"].get<std::string>());
  std::set<std::string> got;
  ASSERT_TRUE(WaitFor([&] {
    auto r = e2e::Run({"/usr/bin/dig", "+short", "+time=2", "+tries=1", "@127.0.0.1", "-p",
                       std::to_string(dns_port_), "web.warren", "A"});
    got.clear();
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) got.insert(line);
    }
    return got == want;
  })) << "dig answered "
      << got.size() << " records";
  auto tcp = e2e::Run({"/usr/bin/dig", "+tcp", "+time=2", "+tries=1", "@127.0.0.1", "-p",
                       std::to_string(dns_port_), "nothere.warren", "A"});
  EXPECT_NE(tcp.out.find("NXDOMAIN"), std::string::npos) << tcp.out;
}

TEST_F(TrafficE2eTest, ScaleDownUnderLoadLosesNoRequest) {
  StartHybrid();
  CreateWeb(4);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(Cli({"service", "scale", "web=1"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    int live = 0;
    for (const auto& t : Tasks("web")) {
      if (t["status"].value("state", "") == "TASK_STATE_RUNNING") live++;
    }
    return live == 1;
  })) << Cli({"service", "ps", "web"}).out;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  load.Stop();
  EXPECT_GT(load.sent(), 100);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
}

TEST_F(TrafficE2eTest, RollingUpdateThroughTheProxyLosesNoRequest) {
  StartHybrid();
  CreateWeb(3);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Draining tasks finish their requests; then only v2 answers.
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->second.find("version=v2") != std::string::npos;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_GT(load.v2(), 0);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  auto endpoints = Cli({"service", "endpoints", "web", "-o", "json"});
  ASSERT_EQ(endpoints.exit_code, 0) << endpoints.err;
  auto j = nlohmann::json::parse(endpoints.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << endpoints.out;
  bool v2_routed = false;
  for (const auto& rev : j["revisions"]) {
    if (rev.value("revision", "") == "2" && rev.value("weight", 0) == 100) v2_routed = true;
  }
  EXPECT_TRUE(v2_routed) << endpoints.out;
  auto table = Cli({"service", "endpoints", "web"});
  EXPECT_NE(table.out.find("100%"), std::string::npos) << table.out;
}

}  // namespace
}  // namespace warren::e2e
