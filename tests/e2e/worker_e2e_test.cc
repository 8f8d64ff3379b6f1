// End-to-end: what a worker keeps of its tasks across a restart of the node (exit codes) and
// what it keeps on disk (capped logs, directories of gone tasks), with the real binary.
#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

namespace fs = std::filesystem;

class WorkerE2eTest : public E2eTest {
 protected:
  fs::path TasksDir() { return dir_ / "data" / "worker" / "tasks"; }

  std::optional<nlohmann::json> Task(const std::string& service, const std::string& id) {
    for (const auto& t : Tasks(service)) {
      if (t.value("id", "") == id) return t;
    }
    return std::nullopt;
  }
};

// Issue 17 D11: a task adopted by a restarted node exits with code 3; `service ps` shows 3
// (it used to say "exited while adopted; exit code unknown").
TEST_F(WorkerE2eTest, AdoptedTaskExitCodeSurvivesANodeRestart) {
  const std::string go = (dir_ / "go").string();
  StartHybrid();
  auto r = Cli({"service", "create", "job", "--command", "/bin/sh", "--arg", "-c", "--arg",
                "while [ ! -e " + go + " ]; do sleep 0.05; done; exit 3", "--env", marker_,
                "--restart-condition", "never"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id;
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("job")) {
      if (t["status"].value("state", "") == "TASK_STATE_RUNNING") id = t.value("id", "");
    }
    return !id.empty();
  })) << Cli({"service", "ps", "job"}).out;
  processes_.back()->Kill(SIGKILL);
  StartHybrid();
  ASSERT_TRUE(WaitFor([&] {
    auto t = Task("job", id);
    return t && (*t)["status"].value("message", "") == "adopted after a worker restart";
  })) << Cli({"service", "ps", "job"}).out;
  std::ofstream(go) << "now";
  ASSERT_TRUE(WaitFor([&] {
    auto t = Task("job", id);
    return t && (*t)["status"].value("state", "") == "TASK_STATE_FAILED";
  })) << Cli({"service", "ps", "job"}).out;
  auto t = Task("job", id);
  EXPECT_EQ((*t)["status"].value("exitCode", 0), 3) << t->dump();
  EXPECT_EQ((*t)["status"].value("hasExitCode", false), true) << t->dump();
  // The EXIT column of the task's row.
  auto ps = Cli({"service", "ps", "job"});
  bool shown = false;
  std::istringstream rows(ps.out);
  for (std::string row; std::getline(rows, row);) {
    if (row.find(id) == std::string::npos) continue;
    std::istringstream cells(row);
    for (std::string cell; cells >> cell;) shown = shown || cell == "3";
  }
  EXPECT_TRUE(shown) << ps.out;
}

// Issue 17 D7: `yes` filled a 20 MB data dir in under 5 s. Its output is capped at
// --log-max-size x --log-max-files, `service logs` reads it, and once the service is gone its
// directory goes after --task-dir-retention (issue 11 item 7).
TEST_F(WorkerE2eTest, ChattyTaskStaysUnderItsLogCapAndItsDirectoryGoes) {
  StartHybrid({"--log-max-size", "64K", "--log-max-files", "2", "--task-dir-retention", "0s"});
  auto r = Cli({"service", "create", "chatty", "--command", "/usr/bin/yes", "--arg",
                "chatty output line", "--env", marker_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id;
  ASSERT_TRUE(WaitFor([&] {
    auto ts = Tasks("chatty");
    if (ts.empty() || ts[0]["status"].value("state", "") != "TASK_STATE_RUNNING") return false;
    id = ts[0].value("id", "");
    return fs::exists(TasksDir() / id / "output.log.1");
  })) << Cli({"service", "ps", "chatty"}).out;
  const fs::path log = TasksDir() / id / "output.log";
  const uintmax_t cap = 2 * (64 << 10);
  int rotations = 0;
  ino_t inode = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        // A file rotated away between two calls has no size (the call returns -1): count 0.
        auto size = [](const std::string& f) {
          std::error_code ec;
          const uintmax_t n = fs::file_size(f, ec);
          return ec ? uintmax_t{0} : n;
        };
        uintmax_t total = size(log.string()) + size(log.string() + ".1");
        EXPECT_LE(total, cap);
        EXPECT_FALSE(fs::exists(log.string() + ".2"));
        struct stat st;
        if (stat(log.c_str(), &st) == 0 && st.st_ino != inode) {
          rotations += inode != 0 ? 1 : 0;
          inode = st.st_ino;
        }
        return rotations >= 10;
      },
      std::chrono::seconds(20)));
  auto logs = Cli({"service", "logs", "chatty", "--tail", "3"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err << Cli({"service", "ps", "chatty"}).out
                               << Cli({"events"}).out;
  EXPECT_NE(logs.out.find("chatty output line"), std::string::npos) << logs.out << logs.err;

  ASSERT_EQ(Cli({"service", "rm", "chatty"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(TasksDir() / id); }))
      << "the directory of a removed service's task stayed";
}

// Issue 11 D8: another program (here another warren-testapp, as another cluster's task would
// be) listens on the address and port the scheduler gives the first task. The task starts on
// the next free address at once, instead of failing to bind and being restarted.
TEST_F(WorkerE2eTest, TaskWhoseAddressIsTakenStartsOnAFreeOneWithoutARestart) {
  const std::string taken = "127." + std::to_string(range_octet_) + ".0.1";
  Process other(
      {WARREN_TESTAPP_BINARY}, (dir_ / "other.log").string(),
      {{"WARREN_TASK_IP", taken}, {"WARREN_TASK_PORT", "8080"}, {"WARREN_E2E_RUN", dir_.string()}});
  ASSERT_TRUE(WaitFor([&] { return HttpGet(taken, 8080, "/healthz").has_value(); })) << other.Log();
  StartHybrid();
  ASSERT_EQ(CreateTestapp("web", 2).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 2; }))
      << Cli({"service", "ps", "web"}).out;
  EXPECT_EQ(Tasks("web").size(), 2u)
      << "a task failed and was replaced: " << Cli({"service", "ps", "web"}).out;
  bool moved = false;
  for (const auto& t : HealthyTasks("web")) {
    EXPECT_NE(t.value("address", ""), taken);
    moved = moved || t["status"]
                             .value("message", "")
                             .find(taken +
                                   " was taken by another "
                                   "program") != std::string::npos;
  }
  EXPECT_TRUE(moved) << Cli({"service", "ps", "web", "-o", "json"}).out;
  other.Kill(SIGTERM);
}

}  // namespace
}  // namespace warren::e2e
