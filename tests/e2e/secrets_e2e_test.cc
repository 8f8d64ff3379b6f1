// End-to-end: secrets on a real `warren cluster init` node with the process runtime (issue 12).
// A task reads its secret from its own tmpfs; the value is never written to the store, the
// logs or anything else in the data dir; a new secret version rolls the service; the tmpfs is
// gone when the task stops, and after a worker killed with SIGKILL starts again.
#include <sys/statfs.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

namespace fs = std::filesystem;

constexpr long kTmpfsMagic = 0x01021994;

std::string RandomValue() {
  std::random_device rd;
  std::string out = "s3cr3t-";
  for (int i = 0; i < 4; ++i) out += std::to_string(rd());
  return out;
}

void WriteValue(const fs::path& path, const std::string& value) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << value;
}

std::string Sha256(const fs::path& path) {
  auto r = Run({"/usr/bin/sha256sum", path.string()});
  return r.out.substr(0, r.out.find(' '));
}

bool IsTmpfs(const fs::path& path) {
  struct statfs st;
  return statfs(path.c_str(), &st) == 0 && st.f_type == kTmpfsMagic;
}

// Files under `root` (outside the secrets tmpfs mounts) whose bytes contain `value`.
std::vector<std::string> FilesHolding(const fs::path& root, const fs::path& secrets_root,
                                      const std::string& value) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path p = it->path();
    if (p.parent_path() == secrets_root && it->is_directory()) {
      it.disable_recursion_pending();  // a task's tmpfs: where the value belongs
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (ReadFile(p.string()).find(value) != std::string::npos) found.push_back(p.string());
  }
  return found;
}

class SecretsE2eTest : public E2eTest {
 protected:
  // The task prints the hash and mode of its secret file and its directory, then sleeps.
  CommandResult CreateReader(const std::string& name) {
    return Cli({"service", "create", name, "--command", "/bin/sh", "--arg", "-c", "--arg",
                "f=\"$WARREN_SECRETS_DIR/db-pw\"; echo \"hash=$(sha256sum < \"$f\" | cut -d' ' "
                "-f1) mode=$(stat -c %a \"$f\") dir=$WARREN_SECRETS_DIR\"; exec sleep 600",
                "--secret", "db-pw", "--env", marker_, "--stop-timeout", "1s"});
  }

  // The one running task of `service` once its log shows `hash`; its id, or "".
  std::string RunningTaskWithHash(const std::string& service, const std::string& hash) {
    std::string id;
    WaitFor(
        [&] {
          auto t = Tasks(service);
          id.clear();
          for (const auto& task : t) {
            if (task.value("desiredState", "") == "TASK_STATE_RUNNING" &&
                task["status"].value("state", "") == "TASK_STATE_RUNNING") {
              if (!id.empty()) return false;  // still rolling
              id = task["id"];
            }
          }
          if (id.empty()) return false;
          // That task's own line: during a roll the new task can log before its state says
          // running, while the old one is still the only running task.
          std::istringstream lines(Cli({"service", "logs", service}).out);
          for (std::string line; std::getline(lines, line);) {
            if (line.find(id) != std::string::npos &&
                line.find("hash=" + hash) != std::string::npos)
              return true;
          }
          return false;
        },
        std::chrono::seconds(60));
    return id;
  }
};

TEST_F(SecretsE2eTest, TaskReadsItsSecretFromTmpfsAndNoDiskEverHoldsIt) {
  StartHybrid();
  const fs::path data = dir_ / "data";
  const fs::path secrets_root = data / "worker" / "secrets";
  const std::string v1 = RandomValue();
  const fs::path value_file = dir_ / "value";
  WriteValue(value_file, v1);
  const std::string h1 = Sha256(value_file);
  auto created = Cli({"secret", "create", "db-pw", "-f", value_file.string()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ((created.out + created.err).find(v1), std::string::npos);

  ASSERT_EQ(CreateReader("app").exit_code, 0);
  const std::string task1 = RunningTaskWithHash("app", h1);
  ASSERT_FALSE(task1.empty()) << Cli({"service", "logs", "app"}).out
                              << Cli({"service", "ps", "app"}).out;
  const std::string logs = Cli({"service", "logs", "app"}).out;
  EXPECT_NE(logs.find("mode=400"), std::string::npos) << logs;
  EXPECT_NE(logs.find("dir=" + (secrets_root / task1).string()), std::string::npos) << logs;
  EXPECT_TRUE(IsTmpfs(secrets_root / task1));

  // Nothing the manager or the worker wrote holds the value: store and its WAL (services,
  // revisions, events), logs, task state.
  // The scan over the whole test dir finds the value file the test wrote, and only that.
  EXPECT_EQ(FilesHolding(dir_, secrets_root, v1), std::vector<std::string>{value_file.string()});
  auto inspect = Cli({"secret", "inspect", "db-pw", "-o", "json"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(inspect.out.find(v1), std::string::npos);
  auto svc = Cli({"service", "inspect", "app", "-o", "json"});
  EXPECT_EQ(svc.out.find(v1), std::string::npos);

  // A new version rolls the service: the new task reads the new value, the old tmpfs goes.
  const std::string v2 = RandomValue();
  WriteValue(value_file, v2);
  const std::string h2 = Sha256(value_file);
  auto updated = Cli({"secret", "update", "db-pw", "-f", value_file.string()});
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  const std::string task2 = RunningTaskWithHash("app", h2);
  ASSERT_FALSE(task2.empty()) << Cli({"service", "ps", "app"}).out;
  EXPECT_NE(task2, task1);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(secrets_root / task1); })) << (secrets_root / task1);
  EXPECT_EQ(FilesHolding(data, secrets_root, v1), std::vector<std::string>{});
  EXPECT_EQ(FilesHolding(data, secrets_root, v2), std::vector<std::string>{});

  // In use: refused, naming the service; once the service is gone, so is the tmpfs.
  auto rm_used = Cli({"secret", "rm", "db-pw"});
  EXPECT_NE(rm_used.exit_code, 0);
  EXPECT_NE(rm_used.err.find("app"), std::string::npos) << rm_used.err;
  ASSERT_EQ(Cli({"service", "rm", "app"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(secrets_root / task2); })) << (secrets_root / task2);
  EXPECT_EQ(Cli({"secret", "rm", "db-pw"}).exit_code, 0);
}

TEST_F(SecretsE2eTest, TmpfsOfATaskThatDiedWithItsWorkerIsRemovedAtTheNextStart) {
  Process& node = StartHybrid();
  const fs::path secrets_root = dir_ / "data" / "worker" / "secrets";
  const fs::path value_file = dir_ / "value";
  const std::string value = RandomValue();
  WriteValue(value_file, value);
  ASSERT_EQ(Cli({"secret", "create", "db-pw", "-f", value_file.string()}).exit_code, 0);
  ASSERT_EQ(CreateReader("app").exit_code, 0);
  const std::string task1 = RunningTaskWithHash("app", Sha256(value_file));
  ASSERT_FALSE(task1.empty()) << Cli({"service", "ps", "app"}).out;
  ASSERT_TRUE(IsTmpfs(secrets_root / task1));

  // The node dies without a chance to clean up, and so does its task.
  node.Kill(SIGKILL);
  KillProcessesWithEnv(marker_);
  ASSERT_TRUE(fs::exists(secrets_root / task1));

  StartHybrid();
  // The dead task's tmpfs is unmounted and removed; the replacement gets a fresh one.
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(secrets_root / task1); })) << (secrets_root / task1);
  const std::string task2 = RunningTaskWithHash("app", Sha256(value_file));
  ASSERT_FALSE(task2.empty()) << Cli({"service", "ps", "app"}).out;
  EXPECT_NE(task2, task1);
  EXPECT_TRUE(IsTmpfs(secrets_root / task2));
}

}  // namespace
}  // namespace warren::e2e
