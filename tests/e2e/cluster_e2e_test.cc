// End-to-end: the real `warren` binary (hybrid node, separate manager and workers) running
// real warren-testapp replicas on loopback.
#include <set>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

TEST_F(E2eTest, ReplicasBecomeHealthyAndServe) {
  StartHybrid();
  auto r = CreateTestapp("web", 3, {"--env", "VERSION=v1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 3; }))
      << Cli({"service", "ps", "web"}).out;
  std::set<std::string> addresses;
  for (const auto& t : HealthyTasks("web")) {
    std::string ip = t["address"];
    int port = t["port"];
    addresses.insert(ip);
    auto resp = HttpGet(ip, port, "/");
    ASSERT_TRUE(resp.has_value()) << ip;
    EXPECT_EQ(resp->first, 200);
    EXPECT_NE(resp->second.find("v1"), std::string::npos);
    EXPECT_NE(resp->second.find(t["id"].get<std::string>()), std::string::npos);
  }
  EXPECT_EQ(addresses.size(), 3u);
  auto table = Cli({"service", "ps", "web"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("healthy"), std::string::npos) << table.out;
  auto logs = Cli({"service", "logs", "web", "--tail", "5"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_FALSE(logs.out.empty());
}

TEST_F(E2eTest, KilledTaskIsReplaced) {
  StartHybrid();
  ASSERT_EQ(CreateTestapp("web", 3).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 3; }));
  auto victim = HealthyTasks("web")[0];
  int pid = victim["status"]["pid"];
  ASSERT_GT(pid, 0);
  kill(pid, SIGKILL);
  std::string victim_id = victim["id"];
  ASSERT_TRUE(WaitFor([&] {
    auto healthy = HealthyTasks("web");
    if (healthy.size() != 3) return false;
    for (const auto& t : healthy) {
      if (t["id"] == victim_id) return false;
    }
    return true;
  })) << Cli({"service", "ps", "web"}).out;
  bool failed_seen = false;
  for (const auto& t : Tasks("web")) {
    if (t["id"] == victim_id) failed_seen = t["status"].value("state", "") == "TASK_STATE_FAILED";
  }
  EXPECT_TRUE(failed_seen);
}

TEST_F(E2eTest, ManagerKill9LosesNothingAndAdoptsTasks) {
  StartHybrid();
  ASSERT_EQ(CreateTestapp("web", 2).exit_code, 0);
  ASSERT_EQ(CreateTestapp("api", 1).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 2; }));
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("api").size() == 1; }));
  std::set<std::string> before;
  for (const auto& t : HealthyTasks("web")) before.insert(t["id"]);
  // An acknowledged write right before the crash.
  ASSERT_EQ(Cli({"service", "scale", "api=2"}).exit_code, 0);
  processes_.back()->Kill(SIGKILL);
  StartHybrid();
  auto ls = Cli({"service", "ls", "-o", "json"});
  auto services = JsonList(ls.out, "services");
  ASSERT_EQ(services.size(), 2u) << ls.out;
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("api").size() == 2; }));
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 2; }));
  std::set<std::string> after;
  for (const auto& t : HealthyTasks("web")) after.insert(t["id"]);
  EXPECT_EQ(before, after) << "running tasks must be adopted, not replaced";
}

TEST_F(E2eTest, NodeTimeoutReschedulesOnAnotherWorker) {
  StartManager({"--node-timeout", "2s", "--dns-addr", "127.0.0.1:0"});
  for (int i = 1; i <= 2; ++i) StartWorker(i, {"--dns-addr", ""});
  ASSERT_TRUE(WaitNodesReady(2));
  ASSERT_EQ(CreateTestapp("web", 2).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 2; }));
  std::set<std::string> nodes_used;
  for (const auto& t : HealthyTasks("web")) nodes_used.insert(t["nodeId"]);
  EXPECT_EQ(nodes_used.size(), 2u) << "replicas spread over both workers";
  // Worker 2 dies hard; its task process lives on but the node stops heartbeating.
  processes_[2]->Kill(SIGKILL);
  ASSERT_TRUE(WaitFor([&] {
    auto r = Cli({"node", "inspect", "w2", "-o", "json"});
    return r.out.find("NODE_STATE_DOWN") != std::string::npos;
  }));
  ASSERT_TRUE(WaitFor([&] {
    auto healthy = HealthyTasks("web");
    if (healthy.size() != 2) return false;
    std::set<std::string> on;
    for (const auto& t : healthy) on.insert(t["nodeId"]);
    return on.size() == 1;
  })) << Cli({"service", "ps", "web"}).out;
}

TEST_F(E2eTest, BadInputIsRejectedAndNothingStored) {
  StartHybrid();
  struct Case {
    std::vector<std::string> args;
    std::string must_mention;
  };
  std::vector<Case> cases = {
      {{"service", "create", "web", "--command", "x", "--replicas", "-1"}, "replicas"},
      {{"service", "create", "Bad_Name", "--command", "x"}, "name"},
      {{"service", "create", "web", "--command", "x", "--health-http", "/healthz",
        "--health-interval", "10x"},
       "10x"},
      {{"service", "create", "web", "--command", "x", "--publish", "70000"}, "70000"},
      {{"service", "create", "web"}, "command"},
  };
  for (const auto& c : cases) {
    auto r = Cli(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args[2];
    EXPECT_NE((r.out + r.err).find(c.must_mention), std::string::npos)
        << "error should mention " << c.must_mention << ": " << r.err;
  }
  ASSERT_EQ(CreateTestapp("web", 1).exit_code, 0);
  auto dup = CreateTestapp("web", 1);
  EXPECT_NE(dup.exit_code, 0);
  EXPECT_NE(dup.err.find("already exists"), std::string::npos) << dup.err;

  std::string yaml = (dir_ / "bad.yaml").string();
  std::ofstream(yaml) << "name: good\ntemplate:\n  command: /bin/true\n---\nname: other\n"
                         "replicaz: 3\ntemplate:\n  command: /bin/true\n";
  auto apply = Cli({"apply", "-f", yaml});
  EXPECT_NE(apply.exit_code, 0);
  EXPECT_NE(apply.err.find("replicaz"), std::string::npos) << apply.err;
  auto ls = Cli({"service", "ls", "-o", "json"});
  EXPECT_EQ(JsonList(ls.out, "services").size(), 1u) << "nothing from the bad file is stored";

  auto unreachable = e2e::Run({WARREN_BINARY, "--manager", "127.0.0.1:1", "service", "ls"});
  EXPECT_NE(unreachable.exit_code, 0);
  EXPECT_NE(unreachable.err.find("127.0.0.1:1"), std::string::npos) << unreachable.err;
}

}  // namespace
}  // namespace warren::e2e
