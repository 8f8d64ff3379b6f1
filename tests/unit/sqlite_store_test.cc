#include "store/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/typed_store.h"
#include "store_test_util.h"

namespace warren {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testing_util::Del;
using testing_util::Ids;
using testing_util::Put;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/warren_store_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    // A nested path checks that Open creates missing parent directories.
    path_ = dir_ + "/data/nested/store.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteStore> OpenStore(SqliteStoreOptions opts = {}) {
    auto store = SqliteStore::Open(path_, opts);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string dir_;
  std::string path_;
};

// The Store contract itself runs on every backend: store_contract_test.cc.

TEST(KindNameTest, AllKinds) {
  EXPECT_EQ(KindName(Kind::kService), "service");
  EXPECT_EQ(KindName(Kind::kTask), "task");
  EXPECT_EQ(KindName(Kind::kNode), "node");
  EXPECT_EQ(KindName(Kind::kRevision), "revision");
  EXPECT_EQ(KindName(Kind::kEvent), "event");
  EXPECT_EQ(KindName(Kind::kDeployment), "deployment");
  EXPECT_EQ(KindName(Kind::kClusterSecurity), "cluster security");
}

// Runs `body` in a forked child and returns its wait status: a crash (SIGBUS, SIGSEGV) shows as
// a signal instead of taking the test binary down. `body` returns the exit code.
template <typename F>
int InChild(F body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  return wstatus;
}

std::string DescribeWait(int wstatus) {
  if (WIFSIGNALED(wstatus)) return absl::StrCat("killed by signal ", WTERMSIG(wstatus));
  return absl::StrCat("exit code ", WEXITSTATUS(wstatus));
}

TEST_F(SqliteStoreTest, DiskFailureLeavesMemoryUnchanged) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit({Put(Kind::kService, "s1", "web", "1")}).ok());
  }
  // A write the file system refuses (here: beyond RLIMIT_FSIZE, EFBIG) fails the commit and
  // changes nothing; raising the limit again makes the store usable.
  int wstatus = InChild([&] {
    signal(SIGXFSZ, SIG_IGN);
    auto store = SqliteStore::Open(path_);
    if (!store.ok()) return 10;
    struct rlimit old_limit;
    getrlimit(RLIMIT_FSIZE, &old_limit);
    struct rlimit tiny = old_limit;
    tiny.rlim_cur = 1;
    if (setrlimit(RLIMIT_FSIZE, &tiny) != 0) return 11;
    auto r =
        (*store)->Commit({Put(Kind::kService, "s1", "web", "2"), Put(Kind::kTask, "t", "", "t")});
    setrlimit(RLIMIT_FSIZE, &old_limit);
    if (r.ok() || r.status().code() != absl::StatusCode::kInternal) return 12;
    if ((*store)->Version() != 1 || (*store)->Get(Kind::kService, "s1")->data != "1" ||
        (*store)->Get(Kind::kTask, "t").has_value()) {
      return 13;
    }
    auto again = (*store)->Commit({Put(Kind::kService, "s1", "web", "3")});
    if (!again.ok() || *again != 2) return 14;
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << DescribeWait(wstatus);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Version(), 2u);
  EXPECT_EQ(store->Get(Kind::kService, "s1")->data, "3");
  EXPECT_FALSE(store->Get(Kind::kTask, "t").has_value());
}

// D5 at the SQLite level too: while a store is open, no other connection can write the file.
TEST_F(SqliteStoreTest, OtherConnectionsAreLockedOut) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({Put(Kind::kService, "s1", "web", "1")}).ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 1);
  EXPECT_NE(sqlite3_exec(other, "BEGIN IMMEDIATE; INSERT INTO meta VALUES ('x', 1); COMMIT",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(store->Commit({Put(Kind::kService, "s1", "web", "2")}).ok());
}

// D9: with a shared-memory WAL index, a -shm file truncated under the store (or a full tmpfs
// behind it) raised SIGBUS on the next commit. The index now lives in heap memory.
TEST_F(SqliteStoreTest, TruncatedShmFileDoesNotCrash) {
  int wstatus = InChild([&] {
    auto store = SqliteStore::Open(path_);
    if (!store.ok()) return 10;
    for (int i = 0; i < 20; ++i) {
      if (!(*store)->Commit({Put(Kind::kTask, absl::StrCat("t", i), "", "x")}).ok()) return 11;
    }
    if (truncate((path_ + "-shm").c_str(), 0) != 0 && errno != ENOENT) return 12;
    for (int i = 0; i < 20; ++i) {
      (*store)->Commit({Put(Kind::kTask, absl::StrCat("u", i), "", "y")}).IgnoreError();
      (*store)->Get(Kind::kTask, "t1");
    }
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << DescribeWait(wstatus);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->List(Kind::kTask).size(), 40u);
  EXPECT_FALSE(std::filesystem::exists(path_ + "-shm"));
}

// D9 on a full disk: the commit fails with RESOURCE_EXHAUSTED, the process lives on and no
// acknowledged commit is lost.
TEST(SqliteStoreDiskTest, FullDiskFailsCommitsWithoutCrash) {
  auto fs = testing_util::SmallFs::Mount(1 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status();
  const std::string path = ((*fs)->path() / "data" / "store.db").string();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  int wstatus = InChild([&] {
    close(fds[0]);
    SqliteStoreOptions opts;
    opts.reserve_bytes = 0;
    auto store = SqliteStore::Open(path, opts);
    if (!store.ok()) return 10;
    const std::string blob(8192, 'z');
    // 1 MiB holds fewer than 128 such objects: the disk fills within the bound.
    for (int i = 0; i < 1000; ++i) {
      auto v = (*store)->Commit({Put(Kind::kTask, absl::StrCat("t", i), "", blob)});
      if (!v.ok()) {
        if (v.status().code() != absl::StatusCode::kResourceExhausted) return 11;
        if (v.status().message().find("disk full") == std::string::npos) return 12;
        // Reads still work and memory holds exactly what was acknowledged.
        if ((*store)->List(Kind::kTask).size() != static_cast<size_t>(i)) return 13;
        return 0;
      }
      if (write(fds[1], &i, sizeof(i)) != sizeof(i)) return 14;
    }
    return 15;
  });
  close(fds[1]);
  int acked = -1;
  for (int i; read(fds[0], &i, sizeof(i)) == sizeof(i);) acked = i;
  close(fds[0]);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << DescribeWait(wstatus);
  ASSERT_GT(acked, 0);
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i <= acked; ++i) {
    EXPECT_TRUE((*store)->Get(Kind::kTask, absl::StrCat("t", i)).has_value()) << "t" << i;
  }
}

TEST_F(SqliteStoreTest, ChangesCompactionAndReopen) {
  SqliteStoreOptions opts;
  opts.max_changes = 5;
  {
    auto store = OpenStore(opts);
    ASSERT_NE(store, nullptr);
    for (int i = 1; i <= 8; ++i) {
      ASSERT_TRUE(store->Commit({Put(Kind::kTask, absl::StrCat("t", i), "", "x")}).ok());
    }
    EXPECT_EQ(store->CompactedThrough(), 3u);
    auto old = store->ChangesSince(2, 100);
    EXPECT_EQ(old.status().code(), absl::StatusCode::kOutOfRange);
    auto retained = store->ChangesSince(3, 100);
    ASSERT_TRUE(retained.ok()) << retained.status();
    ASSERT_EQ(retained->size(), 5u);
    EXPECT_EQ(retained->front().version, 4u);
    EXPECT_EQ(retained->back().version, 8u);
  }
  auto store = OpenStore(opts);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->CompactedThrough(), 3u);
  EXPECT_EQ(store->ChangesSince(0, 100).status().code(), absl::StatusCode::kOutOfRange);
  auto retained = store->ChangesSince(5, 100);
  ASSERT_TRUE(retained.ok()) << retained.status();
  ASSERT_EQ(retained->size(), 3u);
  EXPECT_EQ(retained->front().version, 6u);
  EXPECT_EQ(retained->front().id, "t6");

  // A commit bigger than the retention is kept whole; everything older goes.
  std::vector<Mutation> big;
  for (int i = 0; i < 7; ++i) big.push_back(Put(Kind::kNode, absl::StrCat("n", i), "", "n"));
  auto v = store->Commit(big);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(store->CompactedThrough(), *v - 1);
  auto last = store->ChangesSince(*v - 1, 100);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->size(), 7u);
  store.reset();
  store = OpenStore(opts);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ChangesSince(*v - 1, 100)->size(), 7u);
  EXPECT_EQ(store->ChangesSince(*v - 2, 100).status().code(), absl::StatusCode::kOutOfRange);
}

// D3: each change holds the whole object, so a large object that changes often filled the
// feed (memory and disk) up to 100,000 copies of itself. Retention counts bytes too.
TEST_F(SqliteStoreTest, ChangesRetentionBoundsBytes) {
  SqliteStoreOptions opts;
  opts.max_change_bytes = 10 << 10;
  auto store = OpenStore(opts);
  ASSERT_NE(store, nullptr);
  const std::string big(3 << 10, 'x');
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(store->Commit({Put(Kind::kTask, "t", "", big)}).ok());
  }
  // Three 3 KiB changes fit in 10 KiB, a fourth does not.
  EXPECT_EQ(store->CompactedThrough(), 17u);
  auto retained = store->ChangesSince(17, 100);
  ASSERT_TRUE(retained.ok()) << retained.status();
  EXPECT_EQ(retained->size(), 3u);
  // A deletion carries no data; the newest commit is kept even when larger than the budget.
  ASSERT_TRUE(store->Commit({Put(Kind::kTask, "huge", "", std::string(20 << 10, 'y'))}).ok());
  EXPECT_EQ(store->CompactedThrough(), 20u);
  EXPECT_EQ(store->ChangesSince(20, 100)->size(), 1u);
  store.reset();
  store = OpenStore(opts);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ChangesSince(20, 100)->size(), 1u);
  ASSERT_TRUE(store->Commit({Put(Kind::kTask, "t", "", "small")}).ok());
  EXPECT_EQ(store->CompactedThrough(), 21u);
}

// An acknowledged commit survives kill -9 of the process that made it.
TEST_F(SqliteStoreTest, AcknowledgedCommitsSurviveSigkill) {
  struct Ack {
    int index;
    uint64_t version;
  };
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    auto store = SqliteStore::Open(path_);
    if (!store.ok()) _exit(2);
    for (int i = 0; i < 100000; ++i) {
      auto v = (*store)->Commit(
          {Put(Kind::kTask, absl::StrCat("t", i), "", absl::StrCat("payload-", i))});
      if (!v.ok()) _exit(3);
      Ack ack{i, *v};
      if (write(fds[1], &ack, sizeof(ack)) != sizeof(ack)) _exit(4);
    }
    _exit(0);
  }
  close(fds[1]);
  std::vector<Ack> acks;
  auto read_ack = [&]() {
    Ack ack;
    ssize_t n = read(fds[0], &ack, sizeof(ack));
    if (n != sizeof(ack)) return false;
    acks.push_back(ack);
    return true;
  };
  while (acks.size() < 30 && read_ack()) {
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(wstatus)) << "child exited early with status " << wstatus;
  // Acknowledgements still in the pipe were written after their commits returned too.
  while (read_ack()) {
  }
  close(fds[0]);
  ASSERT_GE(acks.size(), 30u);

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_GE(store->Version(), acks.back().version);
  for (const Ack& ack : acks) {
    auto o = store->Get(Kind::kTask, absl::StrCat("t", ack.index));
    ASSERT_TRUE(o.has_value()) << "acknowledged write t" << ack.index << " lost";
    EXPECT_EQ(o->version, ack.version);
    EXPECT_EQ(o->data, absl::StrCat("payload-", ack.index));
  }
  // The store is fully usable after the crash.
  EXPECT_TRUE(store->Commit({Put(Kind::kTask, "after-crash", "", "x")}).ok());
}

v1::Service Svc(const std::string& id, const std::string& name) {
  v1::Service svc;
  svc.set_id(id);
  svc.mutable_spec()->set_name(name);
  svc.mutable_spec()->set_replicas(2);
  return svc;
}

v1::Task TaskObj(const std::string& id, const std::string& service_id) {
  v1::Task t;
  t.set_id(id);
  t.set_service_id(service_id);
  return t;
}

class SqliteStoreCorruptionTest : public SqliteStoreTest {
 protected:
  SqliteStoreOptions Opts() {
    SqliteStoreOptions opts;
    opts.parse = ParseStoredObject;
    return opts;
  }
};

// D8: rows SQLite reads but Warren cannot are reported loudly, never hidden in silence.
TEST_F(SqliteStoreCorruptionTest, CorruptObjectsAreLoggedKeptAsideAndRefused) {
  {
    auto store = OpenStore(Opts());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store
                    ->Commit({PutMutation(Svc("s1", "web")), PutMutation(Svc("s2", "api")),
                              PutMutation(TaskObj("t1", "s2")), PutMutation(TaskObj("t2", "s2")),
                              PutMutation(TaskObj("t3", "s2"))})
                    .ok());
  }
  ASSERT_EQ(
      testing_util::ExecSql(path_,
                            "UPDATE objects SET data = x'ffffffff0001' WHERE id = 's1';"
                            "UPDATE objects SET version = 'seven' WHERE id = 't1';"
                            "UPDATE objects SET data = (SELECT data FROM objects WHERE id = 't3') "
                            "WHERE id = 't2';"
                            "INSERT INTO objects VALUES (42, 'x1', '', 3, x'00');"),
      "");

  testing_util::LogCapture log;
  auto store = OpenStore(Opts());
  ASSERT_NE(store, nullptr);
  const std::string logged = log.Text();
  EXPECT_THAT(logged, HasSubstr("service \"web\" (id s1, version 1) is corrupt: its data"));
  EXPECT_THAT(logged, HasSubstr("does not parse as warren.v1.Service"));
  EXPECT_THAT(logged, HasSubstr("task t1 (version unreadable) is corrupt: version \"seven\""));
  EXPECT_THAT(logged, HasSubstr("task t2 (version 1) is corrupt: its data is object \"t3\""));
  EXPECT_THAT(logged, HasSubstr("object of unknown kind 42 x1"));

  std::vector<std::string> corrupt;
  for (const auto& c : store->Corruption()) corrupt.push_back(c.id);
  EXPECT_THAT(corrupt, ElementsAre("s1", "t1", "t2", "x1"));
  // Left out of reads...
  EXPECT_FALSE(store->Get(Kind::kService, "s1").has_value());
  EXPECT_FALSE(store->GetByName(Kind::kService, "web").has_value());
  EXPECT_THAT(Ids(store->List(Kind::kService)), ElementsAre("s2"));
  EXPECT_THAT(Ids(store->List(Kind::kTask)), ElementsAre("t3"));
  // ...but named to whoever asks for them, by name or id.
  auto found = FindCorrupt(*store, Kind::kService, "web");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, "s1");
  EXPECT_TRUE(FindCorrupt(*store, Kind::kTask, "t1").has_value());
  absl::Status listing = CorruptKindError(*store, Kind::kTask);
  EXPECT_EQ(listing.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(listing.message(), HasSubstr("2 tasks are corrupt"));
  EXPECT_THAT(listing.message(), HasSubstr("task t1"));
  EXPECT_TRUE(CorruptKindError(*store, Kind::kNode).ok());

  // Writes to them, or to the name one holds, fail and say why; "already exists" it is not.
  auto overwrite = store->Commit({PutMutation(Svc("s1", "web"))});
  EXPECT_EQ(overwrite.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(overwrite.status().message(),
              HasSubstr("service \"web\" (id s1, version 1) is corrupt in the store"));
  EXPECT_THAT(overwrite.status().message(), HasSubstr("warren service rm web"));
  auto same_name = store->Commit({PutMutation(Svc("s9", "web"), Mutation::kMustNotExist)});
  EXPECT_EQ(same_name.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(same_name.status().message(), HasSubstr("service \"web\""));

  // Deleting is the way out; then the name is free again, and that survives a reopen.
  ASSERT_TRUE(
      store->Commit({DeleteMutation(Svc("s1", "web")), DeleteMutation(TaskObj("t1", ""))}).ok());
  EXPECT_THAT(store->Corruption().size(), 2u);
  ASSERT_TRUE(store->Commit({PutMutation(Svc("s9", "web"), Mutation::kMustNotExist)}).ok());
  store.reset();
  store = OpenStore(Opts());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Corruption().size(), 2u);
  EXPECT_EQ(store->GetByName(Kind::kService, "web")->id, "s9");
}

TEST_F(SqliteStoreCorruptionTest, NameColumnMustMatchTheData) {
  {
    auto store = OpenStore(Opts());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit({PutMutation(Svc("s1", "web"))}).ok());
  }
  ASSERT_EQ(testing_util::ExecSql(path_, "UPDATE objects SET name = 'api' WHERE id = 's1'"), "");
  auto store = OpenStore(Opts());
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(store->Corruption().size(), 1u);
  EXPECT_THAT(store->Corruption()[0].reason,
              HasSubstr("its data names it \"web\", its row \"api\""));
  EXPECT_FALSE(store->GetByName(Kind::kService, "api").has_value());
}

// D8: a version counter that is not a number (or lags behind the data) must never make the
// store hand out versions again.
TEST_F(SqliteStoreCorruptionTest, DamagedVersionCounterNeverReusesVersions) {
  for (const char* damage : {"'27x'", "''", "-4", "2", "x'00'"}) {
    SCOPED_TRACE(damage);
    std::filesystem::remove_all(dir_ + "/data");
    {
      auto store = OpenStore(Opts());
      ASSERT_NE(store, nullptr);
      for (int i = 1; i <= 5; ++i) {
        ASSERT_TRUE(store->Commit({PutMutation(TaskObj(absl::StrCat("t", i), "s"))}).ok());
      }
      // The newest change is a delete: its version lives on only in the feed.
      ASSERT_TRUE(store->Commit({DeleteMutation(TaskObj("t5", "s"))}).ok());
    }
    ASSERT_EQ(testing_util::ExecSql(path_, absl::StrCat("UPDATE meta SET value = ", damage,
                                                        " WHERE key = 'version'")),
              "");
    testing_util::LogCapture log;
    auto store = OpenStore(Opts());
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(log.Text(), HasSubstr("the version counter is damaged"));
    EXPECT_EQ(store->Version(), 6u);
    auto v = store->Commit({PutMutation(TaskObj("t9", "s"))});
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, 7u);
  }
}

// A corrupt row in the watch feed cuts the feed there: watchers relist instead of missing it.
TEST_F(SqliteStoreCorruptionTest, CorruptFeedRowCutsTheFeed) {
  {
    auto store = OpenStore(Opts());
    ASSERT_NE(store, nullptr);
    for (int i = 1; i <= 4; ++i) {
      ASSERT_TRUE(store->Commit({PutMutation(TaskObj(absl::StrCat("t", i), "s"))}).ok());
    }
  }
  ASSERT_EQ(testing_util::ExecSql(path_, "UPDATE changes SET data = x'ff' WHERE version = 2"), "");
  testing_util::LogCapture log;
  auto store = OpenStore(Opts());
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(log.Text(), HasSubstr("1 corrupt row(s) in the watch feed"));
  EXPECT_TRUE(store->Corruption().empty());
  EXPECT_EQ(store->CompactedThrough(), 2u);
  EXPECT_EQ(store->ChangesSince(1, 100).status().code(), absl::StatusCode::kOutOfRange);
  auto rest = store->ChangesSince(2, 100);
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ(rest->front().id, "t3");
  EXPECT_EQ(store->List(Kind::kTask).size(), 4u);
}

// D10: the store's files are private, also when an older version left them world-readable.
TEST_F(SqliteStoreTest, FilesArePrivate) {
  const mode_t old_umask = umask(022);
  std::filesystem::create_directories(dir_ + "/data/nested");
  chmod((dir_ + "/data/nested").c_str(), 0755);
  {
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT, 0644);
    close(fd);
    chmod(path_.c_str(), 0644);
  }
  auto store = OpenStore();
  umask(old_umask);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({Put(Kind::kTask, "t", "", "x")}).ok());
  using testing_util::Mode;
  EXPECT_EQ(Mode(dir_ + "/data/nested"), 0700);
  EXPECT_EQ(Mode(path_), 0600);
  EXPECT_EQ(Mode(path_ + "-wal"), 0600);
  EXPECT_EQ(Mode(path_ + ".reserve"), 0600);
  EXPECT_EQ(Mode(path_ + "-shm"), -1);
}

// D7: on a full disk, removals and updates in place still commit (on the released reserve),
// additions fail with RESOURCE_EXHAUSTED naming the directory, nothing acknowledged is lost,
// and everything works again once space is freed.
TEST(SqliteStoreDiskTest, FullDiskStillCommitsRemovals) {
  auto fs = testing_util::SmallFs::Mount(4 << 20);
  if (!fs.ok()) GTEST_SKIP() << fs.status();
  const std::string dir = ((*fs)->path() / "data").string();
  const std::string path = dir + "/store.db";
  SqliteStoreOptions opts;
  opts.reserve_bytes = 1 << 20;
  auto opened = SqliteStore::Open(path, opts);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<SqliteStore> store = std::move(*opened);
  const std::string blob(2048, 'b');
  std::set<std::string> acked;
  for (int i = 0; i < 20; ++i) {
    std::string id = absl::StrCat("keep", i);
    ASSERT_TRUE(store->Commit({Put(Kind::kTask, id, "", blob)}).ok());
    acked.insert(id);
  }
  ASSERT_TRUE(store->CheckSpace().ok());
  ASSERT_GT((*fs)->Fill(), 0u);

  testing_util::LogCapture log;
  // The WAL may still have room: add until the disk refuses (bounded by its size).
  absl::Status refused;
  for (int i = 0; i < 2000 && refused.ok(); ++i) {
    std::string id = absl::StrCat("more", i);
    auto v = store->Commit({Put(Kind::kTask, id, "", blob)});
    if (v.ok()) {
      acked.insert(id);
    } else {
      refused = v.status();
    }
  }
  ASSERT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("disk full: no space left for the store in " + dir));
  EXPECT_THAT(log.Text(), HasSubstr("released the 1048576-byte reserve"));
  EXPECT_EQ(store->CheckSpace().code(), absl::StatusCode::kResourceExhausted);

  // Additions keep failing; removals and updates in place (and events) go through.
  auto add = store->Commit({Put(Kind::kService, "svc", "web", "s")});
  EXPECT_EQ(add.status().code(), absl::StatusCode::kResourceExhausted);
  std::vector<Mutation> removal;
  for (int i = 0; i < 10; ++i) {
    removal.push_back(Del(Kind::kTask, absl::StrCat("keep", i)));
    acked.erase(absl::StrCat("keep", i));
  }
  removal.push_back(Put(Kind::kEvent, "00000000000000000001", "", "removed"));
  auto removed = store->Commit(removal);
  ASSERT_TRUE(removed.ok()) << removed.status();
  auto shrunk = store->Commit({Put(Kind::kTask, "keep10", "", "small")});
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();

  // All of it is on disk: a restart (on the still full disk) finds exactly what was acked.
  store.reset();
  opened = SqliteStore::Open(path, opts);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store = std::move(*opened);
  std::set<std::string> stored;
  for (const auto& o : store->List(Kind::kTask)) stored.insert(o.id);
  EXPECT_EQ(stored, acked);
  EXPECT_EQ(store->Get(Kind::kTask, "keep10")->data, "small");
  EXPECT_EQ(store->List(Kind::kEvent).size(), 1u);

  // Space back: the reserve is recreated and additions commit again.
  (*fs)->Unfill();
  EXPECT_TRUE(store->CheckSpace().ok());
  EXPECT_EQ(testing_util::Mode(path + ".reserve"), 0600);
  EXPECT_TRUE(store->Commit({Put(Kind::kService, "svc", "web", "s")}).ok());
}

}  // namespace
}  // namespace warren
