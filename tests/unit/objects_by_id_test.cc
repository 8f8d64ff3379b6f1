// The stores' in-memory index of one kind (ObjectsById): lookups by hash, listings in id order,
// and the two kept in step through every insert, overwrite, erase and move.
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "store/store_common.h"

namespace warren {
namespace {

StoredObject Obj(const std::string& id, uint64_t version) {
  return StoredObject{Kind::kTask, id, "", version, "data-" + id};
}

std::vector<std::string> Ids(const ObjectsById& m) {
  std::vector<std::string> out;
  for (const auto& [id, obj] : m) out.push_back(id);
  return out;
}

TEST(ObjectsByIdTest, FindsWhatWasPutAndListsInIdOrder) {
  ObjectsById m;
  EXPECT_TRUE(m.emplace("b", Obj("b", 1)).second);
  EXPECT_TRUE(m.emplace("a", Obj("a", 2)).second);
  m.insert_or_assign("c", Obj("c", 3));
  EXPECT_FALSE(m.emplace("a", Obj("a", 9)).second);  // taken: unchanged
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(Ids(m), (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_NE(m.find("a"), m.end());
  EXPECT_EQ(m.find("a")->second.version, 2u);
  EXPECT_EQ(m.find("d"), m.end());
  m.insert_or_assign("a", Obj("a", 4));  // overwrite in place
  EXPECT_EQ(m.find("a")->second.version, 4u);
  EXPECT_EQ(m.size(), 3u);
}

TEST(ObjectsByIdTest, EraseAndMoveKeepTheHashInStep) {
  ObjectsById m;
  for (int i = 0; i < 1000; ++i) m.emplace("t" + std::to_string(i), Obj("t", i));
  for (int i = 0; i < 1000; i += 2) m.erase(m.find("t" + std::to_string(i)));
  ObjectsById moved = std::move(m);
  EXPECT_EQ(moved.size(), 500u);
  for (int i = 0; i < 1000; ++i) {
    auto it = moved.find("t" + std::to_string(i));
    if (i % 2 == 0) {
      EXPECT_EQ(it, moved.end()) << i;
    } else {
      ASSERT_NE(it, moved.end()) << i;
      EXPECT_EQ(it->second.version, static_cast<uint64_t>(i));
    }
  }
  // An id erased and put again is found again.
  moved.emplace("t0", Obj("t0", 7));
  ASSERT_NE(moved.find("t0"), moved.end());
  EXPECT_EQ(moved.find("t0")->second.version, 7u);
  // Assigned over a map that held other objects: only the assigned ones are found.
  ObjectsById target;
  target.emplace("x", Obj("x", 1));
  target = std::move(moved);
  EXPECT_EQ(target.find("x"), target.end());
  ASSERT_NE(target.find("t1"), target.end());
  EXPECT_EQ(target.find("t1")->second.version, 1u);
  EXPECT_EQ(target.size(), 501u);
}

}  // namespace
}  // namespace warren
