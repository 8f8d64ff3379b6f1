// End-to-end: the data directory of a real `warren cluster init` node: one process per data
// dir (issue 17 D5) and nothing in it readable by others (D10).
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

namespace fs = std::filesystem;

int Mode(const fs::path& p) {
  struct stat st;
  if (lstat(p.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

TEST_F(E2eTest, SecondProcessOnADataDirRefusesToStart) {
  Process& node = StartHybrid();
  const std::string data = (dir_ / "data").string();
  const std::string holder =
      "is in use by another Warren process (pid " + std::to_string(node.pid());
  const std::string free_addr = "127.0.0.1:" + std::to_string(FreePort());

  auto init = e2e::Run({WARREN_BINARY, "cluster", "init", "--data-dir", data, "--api-addr",
                        free_addr, "--metrics-addr", "", "--dns-addr", "", "--node-name", "node-2",
                        "--address-range", Range(1), "--tls-root", tls_root().string()},
                       {{"WARREN_E2E_RUN", dir_.string()}}, std::chrono::seconds(20));
  EXPECT_EQ(init.exit_code, 1) << init.out << init.err;
  EXPECT_NE((init.out + init.err).find("data-dir " + data + " " + holder + " manager)"),
            std::string::npos)
      << init.out << init.err;

  auto manager =
      e2e::Run({WARREN_BINARY, "manager", "--data-dir", data, "--api-addr", free_addr,
                "--metrics-addr", "", "--dns-addr", "", "--tls-root", tls_root().string()},
               {}, std::chrono::seconds(20));
  EXPECT_EQ(manager.exit_code, 1) << manager.out << manager.err;
  EXPECT_NE((manager.out + manager.err).find("data-dir " + data + " " + holder), std::string::npos)
      << manager.out << manager.err;

  // A worker on the hybrid node's worker dir would adopt and stop its tasks.
  const std::string worker_dir = data + "/worker";
  auto worker = e2e::Run({WARREN_BINARY, "worker", "--manager", api_addr_, "--data-dir", worker_dir,
                          "--node-name", "node-3", "--address-range", Range(2), "--dns-addr", ""},
                         {{"WARREN_E2E_RUN", dir_.string()}}, std::chrono::seconds(20));
  EXPECT_EQ(worker.exit_code, 1) << worker.out << worker.err;
  EXPECT_NE((worker.out + worker.err).find("data-dir " + worker_dir + " " + holder + " hybrid)"),
            std::string::npos)
      << worker.out << worker.err;

  // The first node serves on.
  EXPECT_TRUE(node.Alive());
  ASSERT_EQ(CreateTestapp("web", 1).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 1; }));
  auto nodes = Cli({"node", "ls", "-o", "json"});
  EXPECT_EQ(JsonList(nodes.out, "nodes").size(), 1u) << nodes.out;
}

TEST_F(E2eTest, DataDirIsPrivateAndTasksKeepTheirUmask) {
  const mode_t our_umask = umask(022);
  umask(our_umask);
  StartHybrid();
  auto r = Cli({"service", "create", "um", "--command", "/bin/sh", "--arg", "-c", "--arg",
                "umask; exec sleep 600", "--env", marker_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path data = dir_ / "data";
  const fs::path tasks = data / "worker" / "tasks";
  std::string task_id;
  ASSERT_TRUE(WaitFor([&] {
    auto t = Tasks("um");
    if (t.size() != 1 || t[0]["status"].value("state", "") != "TASK_STATE_RUNNING") return false;
    task_id = t[0]["id"];
    return fs::exists(tasks / task_id / "state") &&
           ReadFile((tasks / task_id / "output.log").string()).find('\n') != std::string::npos;
  })) << Cli({"service", "ps", "um"}).out;

  // The task's own files come out as they would without Warren.
  char expected[8];
  snprintf(expected, sizeof(expected), "%04o", static_cast<unsigned>(our_umask));
  EXPECT_EQ(ReadFile((tasks / task_id / "output.log").string()), std::string(expected) + "\n");

  EXPECT_EQ(Mode(data), 0700);
  EXPECT_EQ(Mode(data / "warren.lock"), 0600);
  EXPECT_EQ(Mode(data / "store.db"), 0600);
  EXPECT_EQ(Mode(data / "store.db-wal"), 0600);
  EXPECT_EQ(Mode(data / "store.db.reserve"), 0600);
  EXPECT_EQ(Mode(data / "store.db-shm"), -1);
  EXPECT_EQ(Mode(data / "worker"), 0700);
  EXPECT_EQ(Mode(data / "worker" / "warren.lock"), 0600);
  EXPECT_EQ(Mode(tasks), 0700);
  EXPECT_EQ(Mode(tasks / task_id), 0700);
  EXPECT_EQ(Mode(tasks / task_id / "state"), 0600);
  EXPECT_EQ(Mode(tasks / task_id / "output.log"), 0600);
  // And nothing else in there is open to group or others either.
  int checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    if (e.is_symlink()) continue;  // its own mode is always 0777 and grants nothing
    ++checked;
    EXPECT_EQ(Mode(e.path()) & 077, 0) << e.path() << " has mode " << std::oct << Mode(e.path());
  }
  EXPECT_GE(checked, 10);
}

}  // namespace
}  // namespace warren::e2e
