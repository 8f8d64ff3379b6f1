// The data directory: one process per data dir (D5) and private files (D10).
#include "common/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "store_test_util.h"
#include "test_subprocess.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::Mode;
using testing_util::TempDir;

TEST(DataDirLockTest, SecondLockOfOneDirFailsNamingDirAndHolder) {
  TempDir tmp;
  const std::string dir = (tmp.path() / "data").string();
  auto first = DataDirLock::Acquire(dir, "manager");
  ASSERT_TRUE(first.ok()) << first.status();
  // flock belongs to the open file description: a second open in this same process conflicts
  // just as another process would.
  auto second = DataDirLock::Acquire(dir, "manager");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("data-dir ", dir, " is in use by another Warren process (pid ",
                                     getpid(), " manager)")));
  // Released with the object: the next process gets it.
  first->reset();
  auto third = DataDirLock::Acquire(dir, "worker");
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST(DataDirLockTest, RefusesDirectoriesThatAreNotWarrens) {
  TempDir tmp;
  const fs::path foreign = tmp.path() / "home";
  fs::create_directories(foreign);
  std::ofstream(foreign / "notes.txt") << "mine";
  chmod(foreign.c_str(), 0755);
  auto lock = DataDirLock::Acquire(foreign.string(), "manager");
  ASSERT_FALSE(lock.ok());
  EXPECT_THAT(lock.status().message(), HasSubstr("holds files that are not Warren's"));
  EXPECT_THAT(lock.status().message(), HasSubstr("notes.txt"));
  EXPECT_EQ(Mode(foreign), 0755);  // untouched

  const fs::path shared = tmp.path() / "shared";
  fs::create_directories(shared);
  chmod(shared.c_str(), 01777);
  lock = DataDirLock::Acquire(shared.string(), "manager");
  ASSERT_FALSE(lock.ok());
  EXPECT_THAT(lock.status().message(), HasSubstr("sticky bit"));
  EXPECT_EQ(Mode(shared), 01777);

  // A link to a data dir is fine: what counts is the directory it names.
  const fs::path real = tmp.path() / "real";
  fs::create_directories(real);
  std::ofstream(real / "store.db") << "";
  fs::create_symlink(real, tmp.path() / "link");
  auto through_link = DataDirLock::Acquire((tmp.path() / "link").string(), "manager");
  EXPECT_TRUE(through_link.ok()) << through_link.status();
  EXPECT_EQ(Mode(real), 0700);

  // An empty directory is fine, and becomes private.
  const fs::path empty = tmp.path() / "empty";
  fs::create_directories(empty);
  chmod(empty.c_str(), 0755);
  EXPECT_TRUE(DataDirLock::Acquire(empty.string(), "manager").ok());
  EXPECT_EQ(Mode(empty), 0700);
}

// Data dirs an older version wrote (0755 directories, 0644 files) are made private at start;
// symbolic links are not followed.
TEST(DataDirLockTest, TightensAnExistingDataDir) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "worker";
  const fs::path task = dir / "tasks" / "t1";
  fs::create_directories(task);
  std::ofstream(task / "state") << "{}";
  std::ofstream(task / "output.log") << "hello";
  std::ofstream(tmp.path() / "outside") << "not ours";
  fs::create_symlink(tmp.path() / "outside", task / "link");
  for (const fs::path& p : {dir, dir / "tasks", task}) chmod(p.c_str(), 0755);
  for (const fs::path& p : {task / "state", task / "output.log", tmp.path() / "outside"}) {
    chmod(p.c_str(), 0644);
  }
  chmod((task / "output.log").c_str(), 0754);

  auto lock = DataDirLock::Acquire(dir.string(), "worker");
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_EQ(Mode(dir), 0700);
  EXPECT_EQ(Mode(dir / "tasks"), 0700);
  EXPECT_EQ(Mode(task), 0700);
  EXPECT_EQ(Mode(task / "state"), 0600);
  EXPECT_EQ(Mode(task / "output.log"), 0700);  // only group and other bits go
  EXPECT_EQ(Mode(dir / kDataDirLockFile), 0600);
  EXPECT_EQ(Mode(tmp.path() / "outside"), 0644);
}

// The server roles run with umask 077; their task processes get the umask from before.
TEST(DataDirLockTest, RestrictedUmaskAndTheTasksOwn) {
  TempDir tmp;
  const std::string dir = tmp.str();
  pid_t pid = fork();
  if (pid == 0) {
    umask(022);
    RestrictUmask();
    int fd = open((dir + "/server-file").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) _exit(10);
    close(fd);
    if (mkdir((dir + "/server-dir").c_str(), 0777) != 0) _exit(11);
    pid_t task = fork();
    if (task == 0) {
      RestoreTaskUmask();
      int tfd = open((dir + "/task-file").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
      _exit(tfd < 0 ? 12 : 0);
    }
    int status = 0;
    waitpid(task, &status, 0);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 13);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(Mode(tmp.path() / "server-file"), 0600);
  EXPECT_EQ(Mode(tmp.path() / "server-dir"), 0700);
  EXPECT_EQ(Mode(tmp.path() / "task-file"), 0644);
}

grpc::Status ListServices(const std::string& addr, v1::ListServicesResponse* resp) {
  auto stub = v1::Control::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return stub->ListServices(&ctx, v1::ListServicesRequest(), resp);
}

// D5: both managers used to start and acknowledge writes the other one then overwrote.
TEST(DataDirLockTest, SecondManagerOnOneDataDirDoesNotStart) {
  TempDir tmp;
  const std::string dir = (tmp.path() / "data").string();
  auto first = ManagerServer::Start(testing_util::TestManagerOptions(dir), RealClock::Get());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = ManagerServer::Start(testing_util::TestManagerOptions(dir), RealClock::Get());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("data-dir ", dir, " is in use by another Warren process")));
  v1::ListServicesResponse resp;
  grpc::Status s = ListServices((*first)->api_addr(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The manager's files, lock included, are private.
  (*first)->Shutdown();
  EXPECT_EQ(Mode(dir), 0700);
  EXPECT_EQ(Mode(fs::path(dir) / kDataDirLockFile), 0600);
  EXPECT_EQ(Mode(fs::path(dir) / "store.db"), 0600);
  EXPECT_EQ(Mode(fs::path(dir) / "store.db-wal"), 0600);
  EXPECT_EQ(Mode(fs::path(dir) / "store.db.reserve"), 0600);
}

// The same with the real binary: the second `warren manager` exits non-zero naming the dir and
// the first one's pid, and the first one keeps serving.
TEST(DataDirLockTest, SecondManagerProcessExitsWithTheHoldersPid) {
  TempDir tmp;
  const std::string dir = (tmp.path() / "data").string();
  auto manager_args = [&] {
    return std::vector<std::string>{WARREN_BINARY, "manager", "--data-dir", dir, "--api-addr",
                                    "127.0.0.1:0", "--metrics-addr", "", "--dns-addr", "",
                                    // The check below is a plaintext call.
                                    "--insecure-plaintext"};
  };
  auto first = test::Subprocess::Start(manager_args(), {});
  ASSERT_TRUE(first.ok()) << first.status();
  auto line = (*first)->WaitForStdoutLine("manager listening on", absl::Seconds(30));
  ASSERT_TRUE(line.ok()) << line.status();
  const std::string on = "manager listening on ";
  std::string addr = line->substr(line->find(on) + on.size());
  addr = addr.substr(0, addr.find(' '));

  auto second = test::Subprocess::Start(manager_args(), {});
  ASSERT_TRUE(second.ok()) << second.status();
  auto code = (*second)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1);
  EXPECT_THAT((*second)->Stdout() + (*second)->Stderr(),
              HasSubstr(absl::StrCat("data-dir ", dir, " is in use by another Warren process (pid ",
                                     (*first)->pid(), " manager)")));

  v1::ListServicesResponse resp;
  grpc::Status s = ListServices(addr, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ((*first)->Wait(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  (*first)->Signal(SIGTERM);
  auto first_code = (*first)->Wait(absl::Seconds(30));
  ASSERT_TRUE(first_code.ok()) << first_code.status();
  EXPECT_EQ(*first_code, 0);
}

}  // namespace
}  // namespace warren
