// End-to-end: global services (one task per node) with the real binary (issue 11 D1). Their
// tasks were started before the scheduler gave them an address: an empty WARREN_TASK_IP, a
// task on 127.0.0.1:8080, a health check of another address, 502 on the published port, and
// on two workers a second global service crash-looping on "address already in use".
#include <set>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

// The range octet of an address "127.X.y.z".
int SecondOctet(const std::string& ip) { return std::stoi(ip.substr(4, ip.find('.', 4) - 4)); }

TEST_F(E2eTest, GlobalServiceOnAHybridNodeServesOnItsOwnAddress) {
  StartHybrid();
  const int published = FreePort();
  auto r = CreateGlobalTestapp("gweb", {"--publish", std::to_string(published) + ":8080"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("gweb").size() == 1; }))
      << Cli({"service", "ps", "gweb"}).out;
  const auto task = HealthyTasks("gweb")[0];
  const std::string ip = task["address"];
  ASSERT_FALSE(ip.empty());
  EXPECT_EQ(SecondOctet(ip), range_octet_) << ip;
  // The task itself listens there (it got WARREN_TASK_IP), and the proxy reaches it.
  auto direct = HttpGet(ip, 8080, "/");
  ASSERT_TRUE(direct.has_value()) << ip << ":8080 does not answer";
  EXPECT_NE(direct->second.find(task["id"].get<std::string>()), std::string::npos);
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", published, "/");
    return resp && resp->first == 200;
  })) << "the published port does not answer 200";
}

TEST_F(E2eTest, TwoGlobalServicesOnTwoWorkersEachGetTheirOwnAddresses) {
  StartManager({"--dns-addr", ""});
  // Two workers on one machine: each publishes on an address of its own.
  for (int i = 1; i <= 2; ++i) {
    StartWorker(i, {"--dns-addr", "", "--publish-ip", "127.0.0." + std::to_string(i)});
  }
  ASSERT_TRUE(WaitNodesReady(2));
  const int p1 = FreePort();
  const int p2 = FreePort();
  ASSERT_EQ(CreateGlobalTestapp("g1", {"--publish", std::to_string(p1) + ":8080"}).exit_code, 0);
  ASSERT_EQ(CreateGlobalTestapp("g2", {"--publish", std::to_string(p2) + ":8080"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    return HealthyTasks("g1").size() == 2 && HealthyTasks("g2").size() == 2;
  })) << Cli({"service", "ps", "g1"}).out
      << Cli({"service", "ps", "g2"}).out;
  std::set<std::string> addresses;
  for (const std::string service : {"g1", "g2"}) {
    for (const auto& t : HealthyTasks(service)) addresses.insert(t["address"].get<std::string>());
    // No restarts: every task the service ever had is still its first one on its node.
    EXPECT_EQ(Tasks(service).size(), 2u) << Cli({"service", "ps", service}).out;
  }
  EXPECT_EQ(addresses.size(), 4u);
  for (int port : {p1, p2}) {
    for (const std::string ip : {"127.0.0.1", "127.0.0.2"}) {
      EXPECT_TRUE(WaitFor([&] {
        auto resp = HttpGet(ip, port, "/");
        return resp && resp->first == 200;
      })) << ip
          << ":" << port;
    }
  }
}

}  // namespace
}  // namespace warren::e2e
