// Compaction of etcd's history by the leading manager (EtcdCompactor): on the manager's clock
// (a fake one here) against a real etcd; skipped with the reason without /usr/bin/etcd.

#include "manager/etcd_compactor.h"

#include <memory>
#include <string>

#include "etcd_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/metrics.h"
#include "store_test_util.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::EtcdCluster;
using testing_util::Put;

constexpr absl::Duration kInterval = absl::Minutes(5);

class EtcdCompactorTest : public testing_util::SharedEtcdTest {
 protected:
  EtcdCompactorTest() : SharedEtcdTest("compactor") {}

  void SetUp() override {
    SharedEtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    EtcdStoreOptions o;
    o.prefix = prefix_;
    auto store = EtcdStore::Open(client_, o);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    compactor_ = std::make_unique<EtcdCompactor>(
        *store_, clock_, kInterval, [this] { return leading_; }, &registry_);
  }

  // A commit; its revision.
  uint64_t Write(const std::string& id) {
    auto v = store_->Commit({Put(Kind::kTask, id, "", id)});
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : 0;
  }

  // How etcd answers a read of the whole key space at `revision`: OK, or why not.
  absl::Status ReadAt(uint64_t revision) {
    etcdserverpb::RangeRequest req;
    req.set_key(prefix_);
    req.set_range_end(EtcdPrefixEnd(prefix_));
    req.set_revision(static_cast<int64_t>(revision));
    return client_->Range(req).status();
  }

  // `n` intervals pass, the compactor looking at the end of each.
  void Intervals(int n) {
    for (int i = 0; i < n; ++i) {
      clock_.Advance(kInterval);
      compactor_->Tick();
    }
  }

  double Compactions(const std::string& result) {
    return registry_.AddCounter("warren_etcd_compactions_total", "", {"result"})
        .WithLabels({result})
        .Value();
  }

  FakeClock clock_;
  Registry registry_;
  bool leading_ = true;
  std::unique_ptr<EtcdStore> store_;
  std::unique_ptr<EtcdCompactor> compactor_;
};

// Kubernetes' scheme: each interval the leader compacts to the revision it saw one interval
// earlier, so the history of the last interval is always there.
TEST_F(EtcdCompactorTest, TheLeaderCompactsToTheRevisionOfOneIntervalEarlier) {
  const uint64_t old = Write("a");
  compactor_->Tick();  // the revision now (`old`) is what the next interval compacts to
  const uint64_t newer = Write("b");
  clock_.Advance(kInterval - absl::Seconds(1));
  compactor_->Tick();
  EXPECT_EQ(compactor_->compacted(), 0u);

  // One interval: compacted to `old`, which itself is still readable.
  clock_.Advance(absl::Seconds(1));
  compactor_->Tick();
  EXPECT_EQ(compactor_->compacted(), old);
  EXPECT_TRUE(ReadAt(old).ok()) << ReadAt(old);
  EXPECT_THAT(ReadAt(old - 1).message(), HasSubstr("compacted"));
  EXPECT_EQ(Compactions("ok"), 1);

  // Two intervals: compacted to what the first interval ended at; `old` is gone.
  Write("c");
  clock_.Advance(kInterval);
  compactor_->Tick();
  EXPECT_EQ(compactor_->compacted(), newer);
  EXPECT_THAT(ReadAt(old).message(), HasSubstr("compacted"));
  EXPECT_TRUE(ReadAt(newer).ok());
  EXPECT_EQ(Compactions("ok"), 2);
  EXPECT_EQ(Compactions("error"), 0);
}

TEST_F(EtcdCompactorTest, AFollowerNeverCompactsAndADeposedLeaderStops) {
  leading_ = false;
  const uint64_t first = Write("a");
  for (int i = 0; i < 4; ++i) {
    Write("b" + std::to_string(i));
    Intervals(1);
  }
  EXPECT_EQ(compactor_->compacted(), 0u);
  EXPECT_TRUE(ReadAt(first).ok());

  // Leads: the first interval only records where it is.
  leading_ = true;
  compactor_->Tick();
  const uint64_t led_at = store_->Version();
  Write("c");
  // Deposed before the interval ends: nothing is compacted, then or later.
  clock_.Advance(kInterval / 2);
  compactor_->Tick();
  leading_ = false;
  Intervals(3);
  EXPECT_EQ(compactor_->compacted(), 0u);
  EXPECT_TRUE(ReadAt(first).ok());

  // Leads again: a whole interval from now before the first compaction, to the revision seen
  // now (not the one of the earlier term).
  leading_ = true;
  compactor_->Tick();
  const uint64_t now = store_->Version();
  EXPECT_GE(now, led_at);
  clock_.Advance(kInterval);
  compactor_->Tick();
  EXPECT_EQ(compactor_->compacted(), now);
  EXPECT_EQ(Compactions("ok"), 1);
}

TEST_F(EtcdCompactorTest, ANothingToCompactIntervalSendsNothing) {
  Write("a");
  compactor_->Tick();
  clock_.Advance(kInterval);
  compactor_->Tick();
  const uint64_t compacted = compactor_->compacted();
  ASSERT_NE(compacted, 0u);
  // No write since: the same revision is not compacted again.
  Intervals(3);
  EXPECT_EQ(compactor_->compacted(), compacted);
  EXPECT_EQ(Compactions("ok"), 1);
  EXPECT_EQ(Compactions("error"), 0);
}

// etcd itself (--auto-compaction) went further: counted apart, not an error.
TEST_F(EtcdCompactorTest, HistoryCompactedByEtcdItselfIsNotAnError) {
  const uint64_t old = Write("a");
  compactor_->Tick();
  const uint64_t later = Write("b");
  ASSERT_TRUE(client_->Compact(static_cast<int64_t>(later)).ok());
  clock_.Advance(kInterval);
  compactor_->Tick();
  EXPECT_EQ(compactor_->compacted(), old);
  EXPECT_EQ(Compactions("already_compacted"), 1);
  EXPECT_EQ(Compactions("error"), 0);
}

// A cluster that cannot be reached: the error is counted and logged, and the next interval
// tries again once it is back.
TEST(EtcdCompactorUnreachableTest, ErrorsAreCountedAndTheNextIntervalTriesAgain) {
  if (std::string why = EtcdCluster::Unavailable(); !why.empty()) GTEST_SKIP() << why;
  auto cluster = EtcdCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdClientOptions co = (*cluster)->ClientOptions();
  co.rpc_timeout = absl::Seconds(2);
  auto client = EtcdClient::Create(co);
  ASSERT_TRUE(client.ok()) << client.status();
  std::shared_ptr<EtcdClient> shared = std::move(*client);
  EtcdStoreOptions o;
  o.prefix = "/c/";
  auto store = EtcdStore::Open(shared, o);
  ASSERT_TRUE(store.ok()) << store.status();
  FakeClock clock;
  Registry registry;
  EtcdCompactor compactor(
      **store, clock, kInterval, [] { return true; }, &registry);
  ASSERT_TRUE((*store)->Commit({Put(Kind::kTask, "a", "", "a")}).ok());
  compactor.Tick();
  ASSERT_TRUE((*store)->Commit({Put(Kind::kTask, "b", "", "b")}).ok());

  (*cluster)->Kill(0);
  testing_util::LogCapture log;
  clock.Advance(kInterval);
  compactor.Tick();
  auto& counter = registry.AddCounter("warren_etcd_compactions_total", "", {"result"});
  EXPECT_EQ(counter.WithLabels({"error"}).Value(), 1);
  EXPECT_EQ(compactor.compacted(), 0u);
  EXPECT_THAT(log.Text(), HasSubstr("compacting the history before revision"));

  ASSERT_TRUE((*cluster)->Restart(0).ok());
  clock.Advance(kInterval);
  ASSERT_TRUE(testing_util::WaitFor([&] {
    compactor.Tick();
    if (compactor.compacted() != 0) return true;
    clock.Advance(kInterval);  // another interval: the one before failed while reconnecting
    return false;
  }));
  EXPECT_GE(counter.WithLabels({"ok"}).Value(), 1);
}

}  // namespace
}  // namespace warren
