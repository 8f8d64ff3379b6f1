// The Store contract (src/store/store.h), run on every backend: the embedded SQLite store and
// EtcdStore against a real etcd started here (skipped with the reason without /usr/bin/etcd).
// Versions are compared relative to each other: SQLite counts 1, 2, 3..., etcd's revisions
// increase but skip numbers and do not start at 0.

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "etcd_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/etcd_store.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::Del;
using testing_util::EtcdCluster;
using testing_util::Ids;
using testing_util::Put;

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void TearDownTestSuite() { testing_util::SharedEtcd::Release(); }

  void SetUp() override {
    if (GetParam() == "etcd") {
      if (std::string why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
      auto etcd = testing_util::SharedEtcd::Get();
      ASSERT_TRUE(etcd.ok()) << etcd.status();
      client_ = (*etcd)->Client();
      ASSERT_NE(client_, nullptr);
      prefix_ = testing_util::UniqueEtcdPrefix("contract");
    } else {
      dir_ = std::make_unique<testing_util::TempDir>();
    }
  }

  // A store on this test's data: a new instance each call, seeing what earlier ones committed.
  std::unique_ptr<Store> OpenStore() {
    if (GetParam() == "etcd") {
      EtcdStoreOptions o;
      o.prefix = prefix_;
      auto store = EtcdStore::Open(client_, o);
      EXPECT_TRUE(store.ok()) << store.status();
      return store.ok() ? std::move(*store) : nullptr;
    }
    auto store = SqliteStore::Open((dir_->path() / "store.db").string());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::shared_ptr<EtcdClient> client_;
  std::string prefix_;
  std::unique_ptr<testing_util::TempDir> dir_;
};

TEST_P(StoreContractTest, CreateGetListUpdateDelete) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t base = store->Version();
  EXPECT_FALSE(store->Get(Kind::kService, "a").has_value());

  auto v1 = store->Commit({Put(Kind::kService, "b", "web", "B1", Mutation::kMustNotExist)});
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_GT(*v1, base);
  auto v2 = store->Commit({Put(Kind::kService, "a", "db", "A1"), Put(Kind::kTask, "t1", "", "T")});
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_GT(*v2, *v1);
  EXPECT_EQ(store->Version(), *v2);

  auto b = store->Get(Kind::kService, "b");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->kind, Kind::kService);
  EXPECT_EQ(b->name, "web");
  EXPECT_EQ(b->data, "B1");
  EXPECT_EQ(b->version, *v1);
  auto by_name = store->GetByName(Kind::kService, "db");
  ASSERT_TRUE(by_name.has_value());
  EXPECT_EQ(by_name->id, "a");
  EXPECT_EQ(by_name->version, *v2);
  EXPECT_FALSE(store->GetByName(Kind::kTask, "db").has_value());
  EXPECT_FALSE(store->GetByName(Kind::kService, "").has_value());

  EXPECT_THAT(Ids(store->List(Kind::kService)), ElementsAre("a", "b"));
  EXPECT_THAT(Ids(store->List(Kind::kTask)), ElementsAre("t1"));
  EXPECT_TRUE(store->List(Kind::kNode).empty());

  auto v3 = store->Commit({Put(Kind::kService, "b", "web", "B2", *v1)});
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(store->Get(Kind::kService, "b")->data, "B2");
  EXPECT_EQ(store->Get(Kind::kService, "b")->version, *v3);
  // Untouched objects keep their version.
  EXPECT_EQ(store->Get(Kind::kService, "a")->version, *v2);

  auto v4 = store->Commit({Del(Kind::kService, "b", *v3)});
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_FALSE(store->Get(Kind::kService, "b").has_value());
  EXPECT_FALSE(store->GetByName(Kind::kService, "web").has_value());
  EXPECT_THAT(Ids(store->List(Kind::kService)), ElementsAre("a"));
}

TEST_P(StoreContractTest, VersionChecks) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto v1 = store->Commit({Put(Kind::kNode, "n1", "node-1", "x")});
  ASSERT_TRUE(v1.ok()) << v1.status();

  auto exists = store->Commit({Put(Kind::kNode, "n1", "node-1", "y", Mutation::kMustNotExist)});
  EXPECT_EQ(exists.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(exists.status().message(), HasSubstr("node \"n1\" already exists"));

  auto stale = store->Commit({Put(Kind::kNode, "n1", "node-1", "y", *v1 + 7)});
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(stale.status().message(),
              HasSubstr(absl::StrCat("node \"n1\" is at version ", *v1, ", expected")));

  auto missing = store->Commit({Put(Kind::kNode, "n2", "", "y", 1)});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(missing.status().message(), HasSubstr("node \"n2\" does not exist"));

  auto del_missing = store->Commit({Del(Kind::kNode, "n2")});
  EXPECT_EQ(del_missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(del_missing.status().message(), HasSubstr("node \"n2\" not found"));
  EXPECT_EQ(store->Commit({Del(Kind::kNode, "n2", 4)}).status().code(),
            absl::StatusCode::kNotFound);

  auto stale_delete = store->Commit({Del(Kind::kNode, "n1", *v1 + 1)});
  EXPECT_EQ(stale_delete.status().code(), absl::StatusCode::kAborted);

  EXPECT_EQ(store->Version(), *v1);
  EXPECT_EQ(store->Get(Kind::kNode, "n1")->data, "x");
  EXPECT_TRUE(store->Commit({Put(Kind::kNode, "n1", "node-1", "z", *v1)}).ok());
  EXPECT_EQ(store->Get(Kind::kNode, "n1")->data, "z");
}

TEST_P(StoreContractTest, InvalidMutations) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t base = store->Version();
  EXPECT_EQ(store->Commit({}).status().code(), absl::StatusCode::kInvalidArgument);

  auto empty_id = store->Commit({Put(Kind::kTask, "", "", "x")});
  EXPECT_EQ(empty_id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty_id.status().message(), HasSubstr("task id is empty"));

  auto bad_kind = store->Commit({Put(static_cast<Kind>(42), "x", "", "x")});
  EXPECT_EQ(bad_kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_kind.status().message(), HasSubstr("unknown kind 42"));

  auto twice = store->Commit({Put(Kind::kTask, "t", "", "1"), Del(Kind::kTask, "t")});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.status().message(), HasSubstr("task \"t\""));
  EXPECT_EQ(store->Version(), base);
}

TEST_P(StoreContractTest, UniqueNames) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({Put(Kind::kService, "s1", "web", "1")}).ok());

  auto dup = store->Commit({Put(Kind::kService, "s2", "web", "2")});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(dup.status().message(), HasSubstr("service name \"web\" already exists"));
  // Names are unique per kind only.
  EXPECT_TRUE(store->Commit({Put(Kind::kNode, "n1", "web", "n")}).ok());
  // Rewriting an object under its own name is no conflict.
  EXPECT_TRUE(store->Commit({Put(Kind::kService, "s1", "web", "1b")}).ok());

  // Two mutations of one commit claiming one name: nothing applies.
  uint64_t before = store->Version();
  auto both =
      store->Commit({Put(Kind::kService, "s3", "api", "3"), Put(Kind::kService, "s4", "api", "4")});
  EXPECT_EQ(both.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(both.status().message(), HasSubstr("service name \"api\" already exists"));
  EXPECT_FALSE(store->Get(Kind::kService, "s3").has_value());
  EXPECT_EQ(store->Version(), before);

  // A rename frees the old name, within the same commit too.
  ASSERT_TRUE(store
                  ->Commit({Put(Kind::kService, "s1", "web-old", "1c"),
                            Put(Kind::kService, "s2", "web", "2")})
                  .ok());
  EXPECT_EQ(store->GetByName(Kind::kService, "web")->id, "s2");
  EXPECT_EQ(store->GetByName(Kind::kService, "web-old")->id, "s1");
  // Clearing a name frees it as well, and so does a delete.
  ASSERT_TRUE(store->Commit({Put(Kind::kService, "s1", "", "1d")}).ok());
  EXPECT_FALSE(store->GetByName(Kind::kService, "web-old").has_value());
  ASSERT_TRUE(store->Commit({Put(Kind::kService, "s5", "web-old", "5")}).ok());
  // A delete frees the name even when the mutation repeats it.
  Mutation del_s2 = Del(Kind::kService, "s2");
  del_s2.name = "web";
  ASSERT_TRUE(store->Commit({del_s2}).ok());
  EXPECT_FALSE(store->GetByName(Kind::kService, "web").has_value());
  EXPECT_TRUE(store->Commit({Put(Kind::kService, "s6", "web", "6")}).ok());

  // The name index survives a reopen.
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetByName(Kind::kService, "web")->id, "s6");
  EXPECT_EQ(store->Commit({Put(Kind::kService, "s7", "web-old", "7")}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_P(StoreContractTest, FailingCheckAppliesNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto v1 = store->Commit({Put(Kind::kService, "s1", "web", "1")});
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto r = store->Commit({Put(Kind::kService, "s1", "web", "changed", *v1),
                          Put(Kind::kTask, "t1", "", "new"), Del(Kind::kService, "s1", *v1),
                          Put(Kind::kTask, "t2", "", "x", *v1 + 99)});
  // The duplicate object is caught first; fix it and fail on the last check instead.
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = store->Commit({Put(Kind::kService, "s1", "web", "changed", *v1),
                     Put(Kind::kTask, "t1", "", "new"), Put(Kind::kTask, "t2", "", "x", *v1 + 99)});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store->Version(), *v1);
  EXPECT_EQ(store->Get(Kind::kService, "s1")->data, "1");
  EXPECT_FALSE(store->Get(Kind::kTask, "t1").has_value());
  auto changes = store->ChangesSince(*v1, 100);
  ASSERT_TRUE(changes.ok());
  EXPECT_TRUE(changes->empty());

  // Nothing was stored either.
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get(Kind::kService, "s1")->data, "1");
  EXPECT_FALSE(store->Get(Kind::kTask, "t1").has_value());

  auto ok = store->Commit({Put(Kind::kService, "s1", "web", "changed", *v1),
                           Put(Kind::kTask, "t1", "", "new"), Put(Kind::kTask, "t2", "", "x")});
  ASSERT_TRUE(ok.ok()) << ok.status();
  for (const auto& o : store->List(Kind::kTask)) EXPECT_EQ(o.version, *ok);
  EXPECT_EQ(store->Get(Kind::kService, "s1")->version, *ok);
}

TEST_P(StoreContractTest, ReopenPersistence) {
  uint64_t v1 = 0;
  uint64_t v2 = 0;
  uint64_t v3 = 0;
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    v1 = *store->Commit({Put(Kind::kService, "s1", "web", std::string("a\0b", 3))});
    v2 = *store->Commit({Put(Kind::kTask, "t1", "", ""), Put(Kind::kTask, "t2", "", "x")});
    v3 = *store->Commit({Del(Kind::kTask, "t2")});
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_GE(store->Version(), v3);
  auto s1 = store->GetByName(Kind::kService, "web");
  ASSERT_TRUE(s1.has_value());
  EXPECT_EQ(s1->data, std::string("a\0b", 3));
  EXPECT_EQ(s1->version, v1);
  EXPECT_THAT(Ids(store->List(Kind::kTask)), ElementsAre("t1"));
  EXPECT_EQ(store->Get(Kind::kTask, "t1")->data, "");
  EXPECT_EQ(store->Get(Kind::kTask, "t1")->version, v2);
  // Versions continue past where they stopped.
  auto v4 = store->Commit({Put(Kind::kTask, "t3", "", "")});
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_GT(*v4, v3);
}

TEST_P(StoreContractTest, TypedHelpersRoundTrip) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  v1::Service svc;
  svc.set_id("svc1");
  svc.mutable_spec()->set_name("web");
  svc.mutable_spec()->set_replicas(3);
  auto v = store->Commit({PutMutation(svc, Mutation::kMustNotExist)});
  ASSERT_TRUE(v.ok()) << v.status();
  auto got = GetObjectByName<v1::Service>(*store, "web");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id(), "svc1");
  EXPECT_EQ(got->spec().replicas(), 3);
  EXPECT_EQ(got->version(), *v);
  EXPECT_EQ(ListObjects<v1::Service>(*store).size(), 1u);
  ASSERT_TRUE(store->Commit({DeleteMutation(svc, *v)}).ok());
  EXPECT_FALSE(GetObject<v1::Service>(*store, "svc1").has_value());
}

TEST_P(StoreContractTest, ChangesSince) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t base = store->Version();
  auto v1 = store->Commit({Put(Kind::kService, "s1", "web", "1")});
  auto v2 = store->Commit({Put(Kind::kTask, "t1", "", "a"), Put(Kind::kTask, "t2", "", "b")});
  auto v3 = store->Commit({Del(Kind::kService, "s1")});
  ASSERT_TRUE(v1.ok() && v2.ok() && v3.ok());

  auto all = store->ChangesSince(base, 100);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].version, *v1);
  EXPECT_EQ((*all)[0].id, "s1");
  EXPECT_EQ((*all)[0].data, "1");
  EXPECT_FALSE((*all)[0].deleted);
  EXPECT_EQ((*all)[1].version, *v2);
  EXPECT_EQ((*all)[1].kind, Kind::kTask);
  EXPECT_EQ((*all)[2].version, *v2);
  EXPECT_EQ((*all)[3].version, *v3);
  EXPECT_TRUE((*all)[3].deleted);
  EXPECT_EQ((*all)[3].data, "");

  auto after1 = store->ChangesSince(*v1, 100);
  ASSERT_TRUE(after1.ok());
  EXPECT_EQ(after1->size(), 3u);
  EXPECT_TRUE(store->ChangesSince(*v3, 100)->empty());
  EXPECT_TRUE(store->ChangesSince(*v3 + 50, 100)->empty());
  EXPECT_TRUE(store->ChangesSince(base, 0)->empty());

  // A page ends at a commit boundary, so resuming from its last version loses nothing.
  auto page = store->ChangesSince(base, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size(), 1u);
  page = store->ChangesSince(*v1, 1);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size(), 2u);  // One commit bigger than the limit comes whole.
}

TEST_P(StoreContractTest, WaitForVersionWakesOnCommit) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t base = store->Version();
  // Nothing to wait for: returns the current version once the (short) timeout passes.
  EXPECT_EQ(store->WaitForVersion(base, absl::Milliseconds(1)), base);

  std::atomic<uint64_t> woke{0};
  std::thread waiter([&] { woke = store->WaitForVersion(base, absl::Seconds(60)); });
  auto v = store->Commit({Put(Kind::kTask, "t1", "", "x")});
  ASSERT_TRUE(v.ok());
  waiter.join();
  EXPECT_EQ(woke.load(), *v);
  // Already newer: returns at once.
  EXPECT_EQ(store->WaitForVersion(base, absl::Seconds(60)), *v);
}

TEST_P(StoreContractTest, ConcurrentCommitsGetDistinctVersions) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const uint64_t base = store->Version();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20;
  std::vector<std::vector<uint64_t>> versions(kThreads);
  std::vector<int> contested_wins(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every thread also races for one contested object per round: exactly one create
        // wins, and the losers' failure must not fail the commits beside them.
        auto contested = store->Commit(
            {Put(Kind::kNode, absl::StrCat("round", i), "", "x", Mutation::kMustNotExist)});
        if (contested.ok()) {
          ++contested_wins[t];
          versions[t].push_back(*contested);
        } else {
          EXPECT_EQ(contested.status().code(), absl::StatusCode::kAborted) << contested.status();
        }
        auto v = store->Commit({Put(Kind::kTask, absl::StrCat("t", t, "-", i), "",
                                    absl::StrCat(t, ":", i), Mutation::kMustNotExist)});
        ASSERT_TRUE(v.ok()) << v.status();
        versions[t].push_back(*v);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::set<uint64_t> all;
  size_t total = 0;
  for (const auto& vs : versions) {
    total += vs.size();
    all.insert(vs.begin(), vs.end());
  }
  int wins = 0;
  for (int w : contested_wins) wins += w;
  EXPECT_EQ(wins, kPerThread);
  EXPECT_EQ(all.size(), total);
  EXPECT_EQ(total, static_cast<size_t>(kThreads * kPerThread + kPerThread));
  EXPECT_EQ(store->Version(), *all.rbegin());
  EXPECT_EQ(store->List(Kind::kTask).size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(store->List(Kind::kNode).size(), static_cast<size_t>(kPerThread));
  EXPECT_EQ(store->ChangesSince(base, 100000)->size(), total);

  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto o = store->Get(Kind::kTask, absl::StrCat("t", t, "-", i));
      ASSERT_TRUE(o.has_value());
      EXPECT_EQ(o->data, absl::StrCat(t, ":", i));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContractTest, ::testing::Values("sqlite"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Etcd, StoreContractTest, ::testing::Values("etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace warren
