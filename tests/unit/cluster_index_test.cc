// The controller's ClusterIndex keeps what placed tasks hold per node from the store's change
// feed (issue 18): after any sequence of task changes it equals a count from scratch.
#include "manager/cluster_index.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

}  // namespace
}  // namespace warren
