// Leader election and fencing on a real etcd (skipped with the reason without /usr/bin/etcd).
// Waits are bounded polls of etcd's real-time leases; how fast a takeover is belongs to a
// benchmark, not to these tests.

#include "store/etcd_election.h"

#include <memory>
#include <string>

#include "etcd_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/etcd_store.h"
#include "store_test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::EtcdCluster;
using testing_util::Put;

// Generous: a loaded CI machine may take seconds to schedule etcd and the candidates.
constexpr absl::Duration kBound = absl::Seconds(30);

class EtcdElectionTest : public testing_util::SharedEtcdTest {
 protected:
  EtcdElectionTest() : SharedEtcdTest("election") {}

  std::unique_ptr<EtcdElection> Candidate(const std::string& name) {
    EtcdElectionOptions o;
    o.key = prefix_ + "leader";
    o.candidate = name;
    o.ttl = absl::Seconds(2);
    auto e = EtcdElection::Start(client_, o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }

  // "manager-a" leading (it campaigned first), then "manager-b" campaigning.
  void LeaderAndFollower(std::unique_ptr<EtcdElection>& a, std::unique_ptr<EtcdElection>& b) {
    a = Candidate("manager-a");
    ASSERT_NE(a, nullptr);
    ASSERT_TRUE(a->WaitUntilLeader(kBound));
    b = Candidate("manager-b");
    ASSERT_NE(b, nullptr);
  }

  std::unique_ptr<EtcdStore> Store() {
    EtcdStoreOptions o;
    o.prefix = prefix_ + "store/";
    auto s = EtcdStore::Open(client_, o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
};

// Two candidates: one leads; killing its lease (revoked, as etcd does when it expires) makes the
// other lead, and the deposed leader's late write is rejected while the new leader's applies.
TEST_F(EtcdElectionTest, TheOtherLeadsWhenTheLeadersLeaseDiesAndTheOldFenceIsRejected) {
  std::unique_ptr<EtcdElection> a, b;
  ASSERT_NO_FATAL_FAILURE(LeaderAndFollower(a, b));
  auto leader = a->Leader();
  ASSERT_TRUE(leader.ok() && leader->has_value()) << leader.status();
  EXPECT_EQ((*leader)->candidate, "manager-a");
  EXPECT_EQ((*leader)->lease, a->lease_id());
  EXPECT_FALSE(b->IsLeader());

  auto store = Store();
  ASSERT_NE(store, nullptr);
  const EtcdFence old_fence = *a->Fence();
  EXPECT_EQ(old_fence.create_revision, (*leader)->create_revision);
  ASSERT_TRUE(store->CommitFenced({Put(Kind::kTask, "t1", "", "from-a")}, old_fence).ok());

  ASSERT_TRUE(client_->LeaseRevoke(a->lease_id()).ok());
  ASSERT_TRUE(b->WaitUntilLeader(kBound));
  EXPECT_TRUE(a->WaitUntilNotLeader(kBound));
  leader = b->Leader();
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ((*leader)->candidate, "manager-b");

  // The deposed leader's write, sent with the fence it held: rejected, nothing applied.
  auto late = store->CommitFenced(
      {Put(Kind::kTask, "t1", "", "late-a"), Put(Kind::kTask, "t2", "", "late-a")}, old_fence);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kAborted) << late.status();
  EXPECT_THAT(late.status().message(), HasSubstr("not the leader any more"));
  EXPECT_EQ(store->Get(Kind::kTask, "t1")->data, "from-a");
  EXPECT_FALSE(store->Get(Kind::kTask, "t2").has_value());
  auto fresh = store->CommitFenced({Put(Kind::kTask, "t1", "", "from-b")}, *b->Fence());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(store->Get(Kind::kTask, "t1")->data, "from-b");

  // The deposed candidate campaigns again with a new lease and follows.
  ASSERT_TRUE(testing_util::WaitFor([&] { return a->lease_id() != 0; }));
  EXPECT_NE(a->lease_id(), (*leader)->lease);
  EXPECT_FALSE(a->IsLeader());
}

// A leader that stops answering for its lease (hung, cut off) steps down by itself when the
// lease may have expired, and the other candidate takes over once etcd expires it: never
// two leaders at once, as each sees it.
TEST_F(EtcdElectionTest, HungLeaderStepsDownAndTheOtherTakesOverAfterTheTtl) {
  std::unique_ptr<EtcdElection> a, b;
  ASSERT_NO_FATAL_FAILURE(LeaderAndFollower(a, b));
  const absl::Time stopped = absl::Now();
  a->StopKeepAliveForTest();
  ASSERT_TRUE(b->WaitUntilLeader(kBound));
  // etcd expires the lease no earlier than A's own view of it ends.
  EXPECT_FALSE(a->IsLeader());
  EXPECT_GE(absl::Now() - stopped, absl::Seconds(1));
  auto leader = b->Leader();
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ((*leader)->candidate, "manager-b");
}

// Resigning (a manager that shuts down) hands the office over without waiting for the TTL.
TEST_F(EtcdElectionTest, ResignHandsOverAtOnce) {
  std::unique_ptr<EtcdElection> a, b;
  ASSERT_NO_FATAL_FAILURE(LeaderAndFollower(a, b));
  ASSERT_TRUE(a->Resign().ok());
  EXPECT_FALSE(a->IsLeader());
  ASSERT_TRUE(b->WaitUntilLeader(kBound));
  a.reset();
  b.reset();
  auto c = Candidate("manager-c");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->WaitUntilLeader(kBound));
}

TEST(EtcdElectionOptionsTest, BadOptionsNameWhatIsWrong) {
  EtcdClientOptions co;
  co.endpoints = {"127.0.0.1:1"};
  std::shared_ptr<EtcdClient> client = std::move(*EtcdClient::Create(co));
  EtcdElectionOptions o;
  EXPECT_THAT(EtcdElection::Start(client, o).status().message(), HasSubstr("candidate"));
  o.candidate = "m1";
  o.ttl = absl::Milliseconds(500);
  EXPECT_THAT(EtcdElection::Start(client, o).status().message(), HasSubstr("at least 1s"));
  o.ttl = absl::Seconds(1);
  o.key.clear();
  EXPECT_THAT(EtcdElection::Start(client, o).status().message(), HasSubstr("leader key"));
}

}  // namespace
}  // namespace warren
