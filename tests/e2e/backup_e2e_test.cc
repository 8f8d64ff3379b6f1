// End-to-end: `warren cluster backup` from a running node, a change, a stop, `warren cluster
// restore`, a restart: the cluster's state is the backup's (services, revisions, history).
#include <set>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

std::set<std::string> ServiceNames(const std::string& json) {
  std::set<std::string> names;
  for (const auto& s : JsonList(json, "services")) names.insert(s["spec"].value("name", ""));
  return names;
}

TEST_F(E2eTest, BackupChangeRestoreRestartGivesTheBackupsState) {
  StartHybrid();
  ASSERT_EQ(CreateTestapp("web", 2, {"--env", "VERSION=v1"}).exit_code, 0);
  // Followed to its end: the backup holds a finished rollout.
  auto update = Cli({"service", "update", "web", "--env", "VERSION=v2"});
  ASSERT_EQ(update.exit_code, 0) << update.out << update.err;
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 2; }, std::chrono::seconds(60)))
      << Cli({"service", "ps", "web"}).out;
  auto history_before = Cli({"service", "history", "web", "-o", "json"});
  ASSERT_EQ(history_before.exit_code, 0);
  ASSERT_EQ(JsonList(history_before.out, "revisions").size(), 2u) << history_before.out;

  const std::string file = (dir_ / "cluster.backup").string();
  auto backup = Cli({"cluster", "backup", file});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_NE(backup.out.find("(1 service, "), std::string::npos) << backup.out;
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // The change the restore must undo.
  ASSERT_EQ(Cli({"service", "rm", "web"}).exit_code, 0);
  ASSERT_EQ(CreateTestapp("later", 1).exit_code, 0);
  EXPECT_EQ(ServiceNames(Cli({"service", "ls", "-o", "json"}).out), std::set<std::string>{"later"});

  // Not while the node runs on the data dir.
  const std::string data = (dir_ / "data").string();
  auto busy = e2e::Run({WARREN_BINARY, "cluster", "restore", file, "--data-dir", data});
  EXPECT_EQ(busy.exit_code, 1);
  EXPECT_NE(busy.err.find("is in use by another Warren process"), std::string::npos) << busy.err;

  ASSERT_EQ(processes_.back()->Kill(SIGTERM), 0);
  processes_.clear();
  auto restore = e2e::Run({WARREN_BINARY, "cluster", "restore", file, "--data-dir", data});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_NE(restore.out.find("restored store version"), std::string::npos) << restore.out;

  StartHybrid();
  EXPECT_EQ(ServiceNames(Cli({"service", "ls", "-o", "json"}).out), std::set<std::string>{"web"});
  auto history = Cli({"service", "history", "web", "-o", "json"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  EXPECT_EQ(JsonList(history.out, "revisions").size(), 2u) << history.out;
  auto inspect = Cli({"service", "inspect", "web", "-o", "json"});
  auto svc = nlohmann::json::parse(inspect.out, nullptr, false);
  ASSERT_TRUE(svc.is_object()) << inspect.out;
  EXPECT_EQ(svc.value("revision", ""), "2") << inspect.out;
  EXPECT_EQ(svc["spec"]["template"]["env"].value("VERSION", ""), "v2") << inspect.out;
  // The restored service runs again: its tasks are replaced on the restarted node.
  EXPECT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 2; }, std::chrono::seconds(60)))
      << Cli({"service", "ps", "web"}).out << processes_.back()->Log();
  EXPECT_TRUE(Tasks("later").empty());
}

}  // namespace
}  // namespace warren::e2e
