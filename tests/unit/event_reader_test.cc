// The event stream a watcher reads (WatchEvents, `warren events`, rollout follow): backlog,
// then new events once each, also when large task changes compact the store's watch feed past
// the watcher.
#include <algorithm>
#include <string>
#include <vector>

#include "common/clock.h"
#include "forwarding_store.h"
#include "gtest/gtest.h"
#include "manager/events.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

class EventReaderTest : public testing::Test {
 protected:
  void SetUp() override {
    SqliteStoreOptions opts;
    opts.max_change_bytes = 64 << 10;
    auto s = SqliteStore::Open((tmp_.path() / "store.db").string(), opts);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    log_ = std::make_unique<EventLog>(*store_, clock_);
  }

  // One commit: an event, and optionally a task of `task_bytes` (a large template).
  void Commit(const std::string& message, size_t task_bytes = 0, const std::string& service = "") {
    std::vector<Mutation> m = {log_->Make("service", "s1", "web", "updated", message, service)};
    if (task_bytes > 0) {
      v1::Task t;
      t.set_id("t-" + message);
      (*t.mutable_spec()->mutable_env())["BIG"] = std::string(task_bytes, 'x');
      m.push_back(PutMutation(t));
    }
    ASSERT_TRUE(store_->Commit(m).ok());
  }

  static std::vector<std::string> Messages(const std::vector<v1::Event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.message());
    return out;
  }

  testing_util::TempDir tmp_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(EventReaderTest, BacklogThenNewEventsOnce) {
  Commit("a");
  Commit("b");
  EventReader reader(*store_, /*since_id=*/1, nullptr);
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())), std::vector<std::string>{"b"});
  EXPECT_TRUE(reader.Next(absl::ZeroDuration()).empty());
  Commit("c");
  Commit("d");
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())), (std::vector<std::string>{"c", "d"}));
  EXPECT_TRUE(reader.Next(absl::ZeroDuration()).empty());
}

TEST_F(EventReaderTest, FilterApplies) {
  Commit("a", 0, "s1");
  Commit("b", 0, "s2");
  EventReader reader(*store_, 0, [](const v1::Event& e) { return e.service_id() == "s2"; });
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())), std::vector<std::string>{"b"});
  Commit("c", 0, "s1");
  Commit("d", 0, "s2");
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())), std::vector<std::string>{"d"});
}

// Issue 17 D3 bounds the feed in bytes: a few changes of 1 MiB tasks drop what a watcher had
// not read yet. The stream used to end with OUT_OF_RANGE ("fell behind"); it catches up from
// the stored events, in order, none twice.
TEST_F(EventReaderTest, CatchesUpWhenTheFeedIsCompactedPastIt) {
  Commit("a");
  EventReader reader(*store_, 0, nullptr);
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())), std::vector<std::string>{"a"});
  const uint64_t read_through = store_->Version();
  // 64 KiB of feed: four commits of 20 KiB tasks push the reader's position out of it.
  for (const char* m : {"b", "c", "d", "e", "f"}) Commit(m, 20 << 10);
  ASSERT_GT(store_->CompactedThrough(), read_through);
  ASSERT_FALSE(store_->ChangesSince(read_through, 1000).ok());
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())),
            (std::vector<std::string>{"b", "c", "d", "e", "f"}));
  // And follows the feed again from there.
  Commit("g");
  EXPECT_EQ(Messages(reader.Next(absl::ZeroDuration())), std::vector<std::string>{"g"});
  EXPECT_TRUE(reader.Next(absl::ZeroDuration()).empty());
}

// The controller's pruner (its own thread, every 10 s while leading) keeps the newest
// kMaxEvents: past the cap the oldest go (ids are zero-padded, so their order is numeric), in
// commits of at most kPruneBatch deletes so that other commits are not held up behind one large
// one.
TEST_F(EventReaderTest, PruneKeepsTheNewestEventsInBoundedCommits) {
  const size_t excess = 2 * EventLog::kPruneBatch + 25;
  const size_t total = EventLog::kMaxEvents + excess;
  for (size_t done = 0; done < total;) {
    std::vector<Mutation> batch;
    for (size_t i = 0; i < 2000 && done < total; ++i, ++done) {
      batch.push_back(log_->Make("service", "s1", "web", "updated", std::to_string(done)));
    }
    ASSERT_TRUE(store_->Commit(batch).ok());
  }
  const uint64_t before = store_->Version();
  log_->Prune();
  EXPECT_EQ(store_->Version(), before + 3);  // 256 + 256 + 25 deletes
  std::vector<v1::Event> kept = ListObjects<v1::Event>(*store_);
  ASSERT_EQ(kept.size(), EventLog::kMaxEvents);
  std::vector<std::string> messages = Messages(kept);
  std::sort(messages.begin(), messages.end(), [](const std::string& a, const std::string& b) {
    return std::stoul(a) < std::stoul(b);
  });
  EXPECT_EQ(messages.front(), std::to_string(excess));
  EXPECT_EQ(messages.back(), std::to_string(total - 1));
  // At the cap it deletes nothing.
  const uint64_t version = store_->Version();
  log_->Prune();
  EXPECT_EQ(store_->Version(), version);
}

// A store that takes fewer mutations per commit (etcd: 63) gets commits of that size, and the
// pruning stops between commits when told to (Stop(), a lost leadership).
class SmallCommitStore : public testing_util::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  size_t MaxMutationsPerCommit() const override { return 63; }
  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override {
    if (mutations.size() > 63) return absl::InvalidArgumentError("too many mutations");
    commits++;
    return ForwardingStore::Commit(mutations);
  }
  int commits = 0;
};

TEST_F(EventReaderTest, PruneCommitsNoMoreThanTheStoreTakesAndStopsWhenTold) {
  SmallCommitStore small(*store_);
  EventLog log(small, clock_);
  const size_t excess = 3 * 63 + 1;
  std::vector<Mutation> batch;
  for (size_t i = 0; i < EventLog::kMaxEvents + excess; ++i) {
    batch.push_back(log.Make("service", "s1", "web", "updated", std::to_string(i)));
    if (batch.size() == 2000) {
      ASSERT_TRUE(store_->Commit(batch).ok());
      batch.clear();
    }
  }
  ASSERT_TRUE(store_->Commit(batch).ok());
  int allowed = 2;
  log.Prune([&allowed] { return allowed-- > 0; });
  EXPECT_EQ(small.commits, 2);
  EXPECT_EQ(store_->ListVersions(Kind::kEvent).size(), EventLog::kMaxEvents + excess - 2 * 63);
  log.Prune();
  EXPECT_EQ(small.commits, 4);  // the rest: 63 + 1
  EXPECT_EQ(store_->ListVersions(Kind::kEvent).size(), EventLog::kMaxEvents);
}

}  // namespace
}  // namespace warren
