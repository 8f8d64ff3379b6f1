// The controller's ClusterIndex keeps what placed tasks hold per node from the store's change
// feed (issue 18): after any sequence of task changes it equals a count from scratch.
#include "manager/cluster_index.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "forwarding_store.h"
#include "gtest/gtest.h"
#include "manager/scheduler.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

// Empty when equal, else what differs.
std::string Diff(const NodeLoads& kept, const NodeLoads& counted) {
  std::string out;
  if (kept.size() != counted.size()) {
    absl::StrAppend(&out, "nodes ", kept.size(), " kept, ", counted.size(), " counted; ");
  }
  for (const auto& [node, want] : counted) {
    auto it = kept.find(node);
    if (it == kept.end()) {
      absl::StrAppend(&out, node, " missing; ");
      continue;
    }
    const NodeLoad& got = it->second;
    if (got.tasks != want.tasks) absl::StrAppend(&out, node, " tasks ", got.tasks, "; ");
    if (got.memory != want.memory) absl::StrAppend(&out, node, " memory ", got.memory, "; ");
    if (std::abs(got.cpus - want.cpus) > 1e-9) absl::StrAppend(&out, node, " cpus; ");
    if (got.per_service != want.per_service) absl::StrAppend(&out, node, " per service; ");
    if (got.addresses != want.addresses) absl::StrAppend(&out, node, " addresses; ");
  }
  return out;
}

TEST(ClusterIndexTest, NodeLoadsEqualACountFromScratchAfterRandomTaskChanges) {
  testing_util::TempDir dir;
  auto opened = SqliteStore::Open((dir.path() / "store.db").string());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<SqliteStore> store = std::move(*opened);
  ClusterIndex index(*store, /*node_loads=*/true);
  ClusterIndex plain(*store);

  std::mt19937 rng(18);
  const std::vector<v1::TaskState> states = {v1::TASK_STATE_PENDING,  v1::TASK_STATE_ASSIGNED,
                                             v1::TASK_STATE_STARTING, v1::TASK_STATE_RUNNING,
                                             v1::TASK_STATE_FAILED,   v1::TASK_STATE_SHUTDOWN,
                                             v1::TASK_STATE_COMPLETE, v1::TASK_STATE_ORPHANED};
  const std::vector<std::string> nodes = {"", "n1", "n2", "n3"};
  auto random_task = [&](int id) {
    v1::Task t;
    t.set_id(absl::StrCat("t", id));
    t.set_service_id(absl::StrCat("s", rng() % 7));
    t.set_node_id(nodes[rng() % nodes.size()]);
    t.mutable_status()->set_state(states[rng() % states.size()]);
    t.mutable_spec()->mutable_resources()->set_cpus((rng() % 5) * 0.1);
    t.mutable_spec()->mutable_resources()->set_memory_bytes((rng() % 3) << 20);
    // Few addresses, so two tasks sometimes hold the same one (a report racing a placement).
    if (rng() % 4 != 0) t.set_address(absl::StrCat("127.9.0.", 1 + rng() % 20));
    return t;
  };
  for (int round = 0; round < 300; ++round) {
    std::vector<Mutation> m;
    const int changes = 1 + rng() % 6;
    std::vector<std::string> touched;
    for (int i = 0; i < changes; ++i) {
      const int id = rng() % 60;
      const std::string task_id = absl::StrCat("t", id);
      if (std::find(touched.begin(), touched.end(), task_id) != touched.end()) continue;
      touched.push_back(task_id);
      if (rng() % 5 == 0) {
        if (store->Get(Kind::kTask, task_id)) {
          v1::Task gone;
          gone.set_id(task_id);
          m.push_back(DeleteMutation(gone));
        }
      } else {
        m.push_back(PutMutation(random_task(id)));
      }
    }
    if (!m.empty()) ASSERT_TRUE(store->Commit(m).ok());
    // Now and then the index is rebuilt from a full listing (the resync), then kept again.
    if (round % 97 == 96) index.Invalidate();
    index.Sync();
    plain.Sync();
    const NodeLoads counted = CountNodeLoads(ListObjects<v1::Task>(*store));
    ASSERT_EQ(Diff(index.node_loads(), counted), "") << "after round " << round;
    // An index that was not asked for loads keeps none.
    ASSERT_TRUE(plain.node_loads().empty());
  }
  // Every task gone: nothing held anywhere.
  std::vector<Mutation> all;
  for (const auto& t : ListObjects<v1::Task>(*store)) all.push_back(DeleteMutation(t));
  ASSERT_TRUE(store->Commit(all).ok());
  index.Sync();
  EXPECT_TRUE(index.node_loads().empty());
}

// What two indexes hold differs (empty when equal).
std::string IndexDiff(const ClusterIndex& a, const ClusterIndex& b) {
  std::string out;
  if (a.service_ids() != b.service_ids()) out += "services; ";
  if (a.tasks().size() != b.tasks().size()) out += "task count; ";
  for (const auto& [id, e] : b.tasks()) {
    auto it = a.tasks().find(id);
    if (it == a.tasks().end()) {
      absl::StrAppend(&out, "task ", id, " missing; ");
    } else if (it->second.state != e.state || it->second.node_id != e.node_id ||
               it->second.service_id != e.service_id || it->second.version != e.version) {
      absl::StrAppend(&out, "task ", id, " differs; ");
    }
  }
  for (const std::string& s : b.service_ids()) {
    if (a.TasksOf(s) != b.TasksOf(s)) absl::StrAppend(&out, "tasks of ", s, "; ");
    if (a.DeploymentsOf(s) != b.DeploymentsOf(s)) absl::StrAppend(&out, "deployments of ", s, "; ");
    if (a.RevisionsOf(s) != b.RevisionsOf(s)) absl::StrAppend(&out, "revisions of ", s, "; ");
  }
  if (a.pending() != b.pending()) out += "pending; ";
  if (!Diff(a.node_loads(), b.node_loads()).empty()) out += "loads; ";
  return out;
}

TEST(ClusterIndexTest, TheResyncAppliesWhatTheFeedLostAndNothingElse) {
  testing_util::TempDir dir;
  auto opened = SqliteStore::Open((dir.path() / "store.db").string());
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<SqliteStore> store = std::move(*opened);
  testing_util::LossyFeedStore lossy(*store);
  ClusterIndex index(lossy, /*node_loads=*/true);
  index.Sync();

  std::mt19937 rng(1818);
  int lost = 0;
  lossy.drop = [&](const Change&) {
    const bool drop = rng() % 10 == 0;
    lost += drop;
    return drop;
  };
  auto commit = [&](std::vector<Mutation> m) { ASSERT_TRUE(store->Commit(m).ok()); };
  for (int round = 0; round < 200; ++round) {
    const int n = rng() % 40;
    const std::string sid = absl::StrCat("s", rng() % 8);
    switch (rng() % 5) {
      case 0: {
        v1::Service s;
        s.set_id(sid);
        s.mutable_spec()->set_name(sid);
        s.mutable_spec()->set_replicas(rng() % 5);
        commit({PutMutation(s)});
        break;
      }
      case 1: {
        v1::Deployment d;
        d.set_id(absl::StrCat("d", n));
        d.set_service_id(sid);
        commit({PutMutation(d)});
        break;
      }
      case 2: {
        v1::Revision r;
        r.set_id(absl::StrCat("r", n));
        r.set_service_id(sid);
        commit({PutMutation(r)});
        break;
      }
      case 3:
        if (auto t = GetObject<v1::Task>(*store, absl::StrCat("t", n)))
          commit({DeleteMutation(*t)});
        break;
      default: {
        v1::Task t;
        t.set_id(absl::StrCat("t", n));
        t.set_service_id(sid);
        t.set_node_id(absl::StrCat("n", rng() % 3));
        t.mutable_status()->set_state(rng() % 2 ? v1::TASK_STATE_RUNNING : v1::TASK_STATE_PENDING);
        commit({PutMutation(t)});
        break;
      }
    }
    index.Sync();
  }
  ASSERT_GT(lost, 5);
  ClusterIndex fresh(*store, /*node_loads=*/true);
  fresh.Sync();
  ASSERT_NE(IndexDiff(index, fresh), "") << "the feed lost nothing that matters";

  // Nothing is lost from here on. What the resync finds is what the feed did not say.
  lossy.drop = [](const Change&) { return false; };
  ClusterIndex::Dirty repaired = index.Verify();
  EXPECT_EQ(IndexDiff(index, fresh), "");
  EXPECT_GT(index.repaired(), 0u);
  EXPECT_LE(index.repaired(), static_cast<uint64_t>(lost));
  EXPECT_FALSE(repaired.all);
  EXPECT_FALSE(repaired.services.empty());

  // A second resync finds nothing, and a change committed after the last Sync is the next
  // Sync's: the resync leaves it alone.
  const uint64_t before = index.repaired();
  v1::Task later;
  later.set_id("t-later");
  later.set_service_id("s1");
  commit({PutMutation(later)});
  EXPECT_TRUE(index.Verify().services.empty());
  EXPECT_EQ(index.repaired(), before);
  EXPECT_FALSE(index.tasks().contains("t-later"));
  EXPECT_TRUE(index.Sync().services.contains("s1"));
  EXPECT_TRUE(index.tasks().contains("t-later"));
}

}  // namespace
}  // namespace warren
