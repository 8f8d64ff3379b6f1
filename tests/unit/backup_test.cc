// `warren cluster backup` (an online copy made by the manager, streamed to the CLI) and
// `warren cluster restore` (checked, refused on a data dir in use, the old store kept), on an
// in-process manager with the CLI run in-process.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "store/sqlite_store.h"
#include "store/store_file.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::TempDir;

struct CliResult {
  int code;
  std::string out, err;
};

CliResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), "warren");
  std::ostringstream out, err;
  int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

class BackupTest : public testing::Test {
 protected:
  std::unique_ptr<ManagerServer> Start(const std::string& dir) {
    auto m = ManagerServer::Start(testing_util::TestManagerOptions(dir), RealClock::Get());
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }
  static grpc::Status Create(const std::string& addr, const std::string& name) {
    auto stub = v1::Control::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Service out;
    return stub->CreateService(&ctx, req, &out);
  }
  static std::set<std::string> ServiceNames(Store& store) {
    std::set<std::string> names;
    for (const auto& s : ListObjects<v1::Service>(store)) names.insert(s.spec().name());
    return names;
  }
  // The services a store file holds, read the way a manager would.
  static std::set<std::string> ServicesIn(const std::string& file) {
    TempDir tmp;
    fs::copy_file(file, tmp.path() / "store.db");
    auto store = SqliteStore::Open((tmp.path() / "store.db").string());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? ServiceNames(**store) : std::set<std::string>{};
  }

  TempDir tmp_;
};

TEST_F(BackupTest, BackupIsAConsistentPrivateCopyTakenWhileTheManagerServes) {
  const std::string dir = (tmp_.path() / "data").string();
  auto m = Start(dir);
  ASSERT_TRUE(m);
  for (const char* name : {"web", "api"}) ASSERT_TRUE(Create(m->api_addr(), name).ok());

  // Writers keep committing during the backups: each copy is of one commit, never half of one.
  std::atomic<bool> stop{false};
  std::atomic<int> created{0};
  std::thread writer([&] {
    for (int i = 0; i < 200 && !stop; ++i) {
      if (Create(m->api_addr(), absl::StrCat("load-", i)).ok()) created++;
    }
  });
  const std::string file = (tmp_.path() / "backup.db").string();
  for (int round = 0; round < 3; ++round) {
    CliResult r = Cli({"--manager", m->api_addr(), "cluster", "backup", file});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("backup of store version "));
    EXPECT_THAT(r.out, HasSubstr("written to " + file));
    EXPECT_EQ(testing_util::Mode(file), 0600);
    absl::StatusOr<StoreFileInfo> info = InspectStoreFile(file);
    ASSERT_TRUE(info.ok()) << info.status();
    // Each service was created with its revision and events in one commit.
    EXPECT_EQ(info->objects[Kind::kService], info->objects[Kind::kRevision]);
    std::set<std::string> names = ServicesIn(file);
    EXPECT_TRUE(names.count("web") && names.count("api"));
  }
  stop = true;
  writer.join();
  EXPECT_GT(created.load(), 0);
  // Nothing staged is left in the data dir.
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_THAT(e.path().filename().string(), ::testing::Not(HasSubstr("backup")));
  }
  m->Shutdown();
}

// On SQLite: `cluster status` names the store's file and its size, and the one manager (it
// leads, and answered); `node ls` lists it after the nodes.
TEST_F(BackupTest, StatusAndNodeLsShowTheSqliteStoreAndItsOneManager) {
  const std::string dir = (tmp_.path() / "data").string();
  auto m = Start(dir);
  ASSERT_TRUE(m);
  CliResult r = Cli({"--manager", m->api_addr(), "cluster", "status", "-o", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::ClusterStatus status;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &status).ok()) << r.out;
  EXPECT_EQ(status.store(), "sqlite");
  EXPECT_EQ(fs::path(status.sqlite().path()), fs::absolute(fs::path(dir) / "store.db"));
  EXPECT_GT(status.sqlite().size_bytes(), 0);
  EXPECT_EQ(status.etcd_members_size(), 0);
  ASSERT_EQ(status.managers_size(), 1);
  EXPECT_EQ(status.managers(0).id(), m->manager_id());
  EXPECT_EQ(status.managers(0).api_addr(), m->api_addr());
  EXPECT_TRUE(status.managers(0).leader());
  EXPECT_TRUE(status.managers(0).answered());

  r = Cli({"--manager", m->api_addr(), "cluster", "status"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("STORE: sqlite, "));
  EXPECT_THAT(r.out, HasSubstr(m->manager_id() + " *"));

  r = Cli({"--manager", m->api_addr(), "node", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nMANAGERS\n"));
  EXPECT_THAT(r.out, HasSubstr(m->api_addr() + "   leader"));
  // -q: node ids only (there is no node), no managers.
  r = Cli({"--manager", m->api_addr(), "node", "ls", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = Cli({"--manager", m->api_addr(), "cluster", "status", "-o", "xml"});
  EXPECT_EQ(r.code, 2);
  m->Shutdown();
}

TEST_F(BackupTest, BackupNeedsAManager) {
  const std::string file = (tmp_.path() / "backup.db").string();
  CliResult r = Cli({"--manager", "127.0.0.1:1", "cluster", "backup", file});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot reach the manager at 127.0.0.1:1"));
  EXPECT_FALSE(fs::exists(file));
  // Nothing half-written either.
  for (const auto& e : fs::directory_iterator(tmp_.path())) {
    ADD_FAILURE() << "left behind: " << e.path();
  }
}

TEST_F(BackupTest, RestorePutsTheBackupInPlaceAndKeepsThePreviousStore) {
  const std::string a = (tmp_.path() / "a").string();
  const std::string b = (tmp_.path() / "b").string();
  const std::string file = (tmp_.path() / "a.backup").string();
  {
    auto m = Start(a);
    ASSERT_TRUE(m);
    ASSERT_TRUE(Create(m->api_addr(), "from-a").ok());
    ASSERT_EQ(Cli({"--manager", m->api_addr(), "cluster", "backup", file}).code, 0);
    m->Shutdown();
  }
  auto m = Start(b);
  ASSERT_TRUE(m);
  ASSERT_TRUE(Create(m->api_addr(), "from-b").ok());

  // A data dir in use is refused, and left as it was.
  CliResult busy = Cli({"cluster", "restore", file, "--data-dir", b});
  EXPECT_EQ(busy.code, 1);
  EXPECT_THAT(busy.err, HasSubstr("data-dir " + b + " is in use by another Warren process"));
  EXPECT_EQ(ServiceNames(m->store()), std::set<std::string>{"from-b"});
  m->Shutdown();
  m.reset();

  CliResult r = Cli({"cluster", "restore", file, "--data-dir", b});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(1 service, "));
  EXPECT_THAT(r.out, HasSubstr("the previous store is kept as " + b + "/store.db.before-restore-"));
  EXPECT_EQ(testing_util::Mode(fs::path(b) / "store.db"), 0600);
  std::string kept;
  for (const auto& e : fs::directory_iterator(b)) {
    if (e.path().filename().string().find("before-restore") != std::string::npos &&
        e.path().filename().string().find("-wal") == std::string::npos) {
      kept = e.path().string();
    }
  }
  ASSERT_FALSE(kept.empty());

  // The restored store's CA is sealed under a's key file: b's own key file does not open it.
  auto refused = ManagerServer::Start(testing_util::TestManagerOptions(b), RealClock::Get());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("belongs to another cluster"));
  fs::copy_file(fs::path(a) / "cluster.kek", fs::path(b) / "cluster.kek",
                fs::copy_options::overwrite_existing);
  m = Start(b);
  ASSERT_TRUE(m);
  EXPECT_EQ(ServiceNames(m->store()), std::set<std::string>{"from-a"});
  m->Shutdown();
  m.reset();
  // The store that was replaced is intact (with its WAL) under its new name.
  TempDir check;
  fs::copy_file(kept, check.path() / "store.db");
  if (fs::exists(kept + "-wal")) fs::copy_file(kept + "-wal", check.path() / "store.db-wal");
  auto old = SqliteStore::Open((check.path() / "store.db").string());
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(ServiceNames(**old), std::set<std::string>{"from-b"});
}

TEST_F(BackupTest, RestoreRefusesWhatIsNotAStoreOfThisSchema) {
  const std::string dir = (tmp_.path() / "data").string();
  auto restore = [&](const std::string& file) {
    return Cli({"cluster", "restore", file, "--data-dir", dir});
  };
  CliResult missing = restore((tmp_.path() / "nope.db").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("nope.db: no such file"));

  const std::string garbage = (tmp_.path() / "garbage.db").string();
  std::ofstream(garbage) << "this is not a database, just some text that is long enough\n";
  CliResult g = restore(garbage);
  EXPECT_EQ(g.code, 1);
  EXPECT_THAT(g.err, HasSubstr("is not a Warren store this binary can use"));

  const std::string other = (tmp_.path() / "other.db").string();
  ASSERT_EQ(testing_util::ExecSql(other, "CREATE TABLE t (x INTEGER)"), "");
  CliResult o = restore(other);
  EXPECT_EQ(o.code, 1);
  EXPECT_THAT(o.err, HasSubstr("it lacks the table(s) objects, changes, meta"));

  // A store written by a newer Warren.
  const std::string newer = (tmp_.path() / "newer.db").string();
  {
    auto store = SqliteStore::Open(newer);
    ASSERT_TRUE(store.ok());
  }
  ASSERT_EQ(testing_util::ExecSql(newer, "PRAGMA user_version = 99"), "");
  CliResult n = restore(newer);
  EXPECT_EQ(n.code, 1);
  EXPECT_THAT(n.err, HasSubstr("its schema version 99 is newer than this binary supports"));

  // None of them touched the data dir.
  EXPECT_FALSE(fs::exists(fs::path(dir) / "store.db"));
}

}  // namespace
}  // namespace warren
