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

}  // namespace
}  // namespace warren::e2e
