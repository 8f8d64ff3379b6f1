// End-to-end: `node drain` on a cluster of a manager and two workers, and `service restart`,
// both under load through a published port: tasks are replaced start-first and health-gated,
// and no request fails.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "separate_workers.h"

namespace warren::e2e {
namespace {

class NodeOpsE2eTest : public SeparateWorkersTest {
 protected:
  // A manager and workers w1, w2 in processes of their own. Each worker's proxy listens on
  // its own loopback address; w1's is 127.0.0.1, where the load goes.
  void StartCluster() {
    processes_.push_back(std::make_unique<Process>(
        std::vector<std::string>{WARREN_BINARY, "manager", "--data-dir", (dir_ / "m").string(),
                                 "--api-addr", api_addr_, "--metrics-addr",
                                 "127.0.0.1:" + std::to_string(metrics_port_), "--dns-addr", "",
                                 "--tls-root", tls_root().string()},
        (dir_ / "manager.log").string()));
    StartSeparateWorkers(2);
    ASSERT_TRUE(WaitFor([&] {
      auto nodes = JsonList(Cli({"node", "ls", "-o", "json"}).out, "nodes");
      int ready = 0;
      for (const auto& n : nodes) ready += n.value("state", "") == "NODE_STATE_READY";
      return ready == 2;
    })) << processes_[0]->Log();
    for (const auto& n : JsonList(Cli({"node", "ls", "-o", "json"}).out, "nodes")) {
      node_ids_[n["name"]] = n["id"];
    }
  }

  // Healthy tasks of `service` per node name.
  std::map<std::string, int> HealthyByNode(const std::string& service) {
    std::map<std::string, int> out;
    for (const auto& t : HealthyTasks(service)) {
      for (const auto& [name, id] : node_ids_) {
        if (t.value("nodeId", "") == id) out[name]++;
      }
    }
    return out;
  }

  // Tasks of `service` on `node` that have not ended.
  int LiveOn(const std::string& service, const std::string& node) {
    int n = 0;
    for (const auto& t : Tasks(service)) {
      const std::string state = t["status"].value("state", "");
      if (t.value("nodeId", "") == node_ids_[node] && state != "TASK_STATE_SHUTDOWN" &&
          state != "TASK_STATE_FAILED" && state != "TASK_STATE_COMPLETE" &&
          state != "TASK_STATE_ORPHANED" && state != "TASK_STATE_REJECTED") {
        n++;
      }
    }
    return n;
  }

  std::map<std::string, std::string> node_ids_;
};

TEST_F(NodeOpsE2eTest, DrainMovesTasksToTheOtherWorkerWithoutFailedRequests) {
  StartCluster();
  const int port = FreePort();
  ASSERT_EQ(
      CreateTestapp("web", 4, {"--publish", std::to_string(port) + ":8080", "--min-ready", "500ms"})
          .exit_code,
      0);
  ASSERT_TRUE(WaitFor([&] {
    auto by_node = HealthyByNode("web");
    auto r = HttpGet("127.0.0.1", port, "/");
    return by_node["w1"] == 2 && by_node["w2"] == 2 && r && r->first == 200;
  })) << Cli({"service", "ps", "web"}).out;

  Load load(port);
  ASSERT_TRUE(WaitFor([&] { return load.sent() > 20; }));
  auto drain = Cli({"node", "drain", "w1", "--wait", "--timeout", "120s"});
  ASSERT_EQ(drain.exit_code, 0) << drain.out << drain.err << Cli({"service", "ps", "web"}).out;
  EXPECT_NE(drain.out.find("w1: drained"), std::string::npos) << drain.out;
  ASSERT_TRUE(WaitFor([&] { return HealthyByNode("web")["w2"] == 4; }))
      << Cli({"service", "ps", "web"}).out;
  const int sent_at_end = load.sent();
  // Some more requests once only w2's tasks serve, through w1's proxy.
  ASSERT_TRUE(WaitFor([&] { return load.sent() > sent_at_end + 20; }));
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last error: " << load.last_error();
  EXPECT_EQ(LiveOn("web", "w1"), 0);
  EXPECT_EQ(HealthyByNode("web")["w1"], 0);
  std::cout << "[ info ] drain of 2 tasks under load: " << load.sent() << " requests, "
            << load.failed() << " failed\n";

  // Drained, the node takes no new tasks; active again, it does.
  ASSERT_EQ(Cli({"service", "scale", "web=6"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyByNode("web")["w2"] == 6; }))
      << Cli({"service", "ps", "web"}).out;
  ASSERT_EQ(Cli({"node", "update", "w1", "--availability", "active"}).exit_code, 0);
  ASSERT_EQ(Cli({"service", "scale", "web=7"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyByNode("web")["w1"] == 1; }))
      << Cli({"service", "ps", "web"}).out;

  // A ready node is removed only with --force; stopped, its worker stays gone.
  auto rm = Cli({"node", "rm", "w1"});
  EXPECT_EQ(rm.exit_code, 1);
  EXPECT_NE(rm.err.find("is ready"), std::string::npos) << rm.err;
}

TEST_F(E2eTest, RestartReplacesEveryTaskWithoutFailedRequests) {
  const int port = FreePort();
  StartHybrid();
  ASSERT_EQ(CreateTestapp("web", 3,
                          {"--publish", "127.0.0.1:" + std::to_string(port) + ":8080",
                           "--min-ready", "500ms"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] {
    auto r = HttpGet("127.0.0.1", port, "/");
    return HealthyTasks("web").size() == 3 && r && r->first == 200;
  }));
  std::set<std::string> before;
  for (const auto& t : HealthyTasks("web")) before.insert(t["id"]);

  Load load(port);
  ASSERT_TRUE(WaitFor([&] { return load.sent() > 20; }));
  auto restart = Cli({"service", "restart", "web"});
  ASSERT_EQ(restart.exit_code, 0) << restart.out << restart.err;
  EXPECT_NE(restart.out.find("web: restarting every task (revision 2)"), std::string::npos)
      << restart.out;
  // Until the last old task drained and stopped.
  ASSERT_TRUE(WaitFor([&] {
    int fresh = 0;
    for (const auto& t : Tasks("web")) {
      if (t["status"].value("state", "") != "TASK_STATE_RUNNING") continue;
      if (before.count(t["id"])) return false;
      fresh++;
    }
    return fresh == 3;
  })) << Cli({"service", "ps", "web"}).out;
  const int sent_at_end = load.sent();
  ASSERT_TRUE(WaitFor([&] { return load.sent() > sent_at_end + 20; }));
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last error: " << load.last_error();
  EXPECT_EQ(HealthyTasks("web").size(), 3u);
  std::cout << "[ info ] restart of 3 tasks under load: " << load.sent() << " requests, "
            << load.failed() << " failed\n";
}

// The address plan with real processes: each worker's --advertise-addr and its /24 of the
// manager's --cluster-cidr in `node ls`; a manager restarted with another CIDR is refused, and
// one restarted without the flag keeps the cluster's and every node's subnet.
TEST_F(NodeOpsE2eTest, AdvertiseAddressesAndSubnetsOfTheNodes) {
  auto manager = [&](const std::string& cidr, const std::string& log) {
    std::vector<std::string> args = {
        WARREN_BINARY, "manager", "--data-dir",     (dir_ / "m").string(),
        "--api-addr",  api_addr_, "--metrics-addr", "127.0.0.1:" + std::to_string(metrics_port_),
        "--dns-addr",  "",        "--tls-root",     tls_root().string()};
    if (!cidr.empty()) args.insert(args.end(), {"--cluster-cidr", cidr});
    return std::make_unique<Process>(args, (dir_ / log).string());
  };
  processes_.push_back(manager("10.77.0.0/16", "manager.log"));
  const std::string token = JoinToken();
  for (int i = 1; i <= 2; ++i) {
    const std::string name = "w" + std::to_string(i);
    processes_.push_back(std::make_unique<Process>(
        std::vector<std::string>{WARREN_BINARY, "worker", "--manager", api_addr_, "--node-name",
                                 name, "--data-dir", (dir_ / name).string(), "--address-range",
                                 Range(i), "--advertise-addr", "192.0.2." + std::to_string(i),
                                 "--dns-addr", "", "--stop-tasks-on-exit", "--token", token},
        (dir_ / (name + ".log")).string()));
  }
  // name -> advertise address and subnet of the ready nodes.
  auto addresses = [&] {
    std::map<std::string, std::pair<std::string, std::string>> out;
    for (const auto& n : JsonList(Cli({"node", "ls", "-o", "json"}).out, "nodes")) {
      if (n.value("state", "") != "NODE_STATE_READY") continue;
      out[n.value("name", "")] = {n.value("advertiseAddr", ""), n.value("subnet", "")};
    }
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return addresses().size() == 2; })) << processes_[0]->Log();
  auto before = addresses();
  EXPECT_EQ(before["w1"].first, "192.0.2.1");
  EXPECT_EQ(before["w2"].first, "192.0.2.2");
  EXPECT_EQ((std::set<std::string>{before["w1"].second, before["w2"].second}),
            (std::set<std::string>{"10.77.0.0/24", "10.77.1.0/24"}));
  const auto table = Cli({"node", "ls"});
  EXPECT_NE(table.out.find("ADVERTISE"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(before["w1"].second), std::string::npos) << table.out;

  ASSERT_EQ(processes_[0]->Kill(SIGTERM), 0);
  auto refused = manager("10.78.0.0/16", "refused.log");
  ASSERT_TRUE(WaitFor([&] { return !refused->Alive(); })) << refused->Log();
  EXPECT_EQ(refused->Kill(SIGTERM), 1);
  EXPECT_NE(refused->Log().find("--cluster-cidr: 10.78.0.0/16 differs from the cluster's "
                                "10.77.0.0/16"),
            std::string::npos)
      << refused->Log();

  processes_[0] = manager("", "manager2.log");
  ASSERT_TRUE(WaitFor([&] { return addresses().size() == 2; })) << processes_[0]->Log();
  EXPECT_EQ(addresses(), before);
}

}  // namespace
}  // namespace warren::e2e
