// AssignmentView's deltas (issue 18): after the first full set, a change to one task sends
// that task, not the node's whole set; a feed gap sends the whole set again.
#include "manager/assignment_view.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

class AssignmentViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  static v1::Task Task(const std::string& id, const std::string& node) {
    v1::Task t;
    t.set_id(id);
    t.set_node_id(node);
    t.set_service_id("svc");
    t.set_desired_state(v1::TASK_STATE_RUNNING);
    t.set_address("127.1.0.1");
    t.mutable_status()->set_state(v1::TASK_STATE_ASSIGNED);
    return t;
  }

  void Put(const v1::Task& t) {
    auto old = GetObject<v1::Task>(*store_, t.id());
    ASSERT_TRUE(
        store_->Commit({PutMutation(t, old ? old->version() : Mutation::kMustNotExist)}).ok());
  }

  testing_util::TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(AssignmentViewTest, OneTaskChangeSendsOneTask) {
  constexpr int kTasks = 200;
  for (int i = 0; i < kTasks; ++i) Put(Task("t" + std::to_string(i), "n1"));
  Put(Task("other", "n2"));
  AssignmentView view(*store_, "n1");
  ASSERT_TRUE(view.Update());
  v1::Assignments full = view.Next(store_->Version(), /*deltas=*/true);
  EXPECT_FALSE(full.delta());
  EXPECT_EQ(full.tasks_size(), kTasks);
  const uint64_t first = full.version();

  // A new revision of one task: one task goes out, whatever the node's set.
  v1::Task t5 = Task("t5", "n1");
  t5.set_desired_state(v1::TASK_STATE_SHUTDOWN);
  Put(t5);
  ASSERT_TRUE(view.Update());
  v1::Assignments d = view.Next(store_->Version(), true);
  EXPECT_TRUE(d.delta());
  EXPECT_EQ(d.base_version(), first);
  ASSERT_EQ(d.tasks_size(), 1);
  EXPECT_EQ(d.tasks(0).id(), "t5");
  EXPECT_EQ(d.removed_task_ids_size(), 0);

  // Gone from the node: only its id; another node's task: nothing at all.
  auto t7 = GetObject<v1::Task>(*store_, "t7");
  ASSERT_TRUE(t7.has_value());
  ASSERT_TRUE(store_->Commit({DeleteMutation(*t7)}).ok());
  Put(Task("t8", "n2"));
  Put(Task("other2", "n2"));
  ASSERT_TRUE(view.Update());
  d = view.Next(store_->Version(), true);
  EXPECT_TRUE(d.delta());
  EXPECT_EQ(d.tasks_size(), 0);
  ASSERT_EQ(d.removed_task_ids_size(), 2);
  EXPECT_EQ(d.removed_task_ids(0), "t7");
  EXPECT_EQ(d.removed_task_ids(1), "t8");

  // A status report alone sends nothing.
  v1::Task t1 = Task("t1", "n1");
  t1.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  Put(t1);
  EXPECT_FALSE(view.Update());

  // A stream that did not ask for deltas keeps getting the whole set.
  Put(Task("new", "n1"));
  ASSERT_TRUE(view.Update());
  EXPECT_EQ(view.Next(store_->Version(), false).tasks_size(), kTasks - 1);
}

TEST_F(AssignmentViewTest, AFeedGapSendsTheWholeSetAgain) {
  auto store =
      SqliteStore::Open((dir_.path() / "small.db").string(), SqliteStoreOptions{.max_changes = 4});
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  for (int i = 0; i < 3; ++i) Put(Task("t" + std::to_string(i), "n1"));
  AssignmentView view(*store_, "n1");
  ASSERT_TRUE(view.Update());
  EXPECT_FALSE(view.Next(store_->Version(), true).delta());
  // More changes than the feed keeps: the view cannot know what changed.
  for (int i = 3; i < 13; ++i) Put(Task("t" + std::to_string(i), "n1"));
  ASSERT_TRUE(view.Update());
  v1::Assignments a = view.Next(store_->Version(), true);
  EXPECT_FALSE(a.delta());
  EXPECT_EQ(a.tasks_size(), 13);
}

}  // namespace
}  // namespace warren
