// EtcdStore beyond the Store contract (store_contract_test.cc): several stores on one etcd,
// etcd's limits, compaction, corrupt values, TLS, an unreachable cluster and fenced commits.
// Against a real etcd; skipped with the reason without /usr/bin/etcd.

#include "store/etcd_store.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "etcd_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/node_subnets.h"
#include "security/certificates.h"
#include "security/root_ca.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"
#include "warren/store/etcd.pb.h"

namespace warren {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::Del;
using testing_util::EtcdCluster;
using testing_util::Ids;
using testing_util::Put;

class EtcdStoreTest : public testing_util::SharedEtcdTest {
 protected:
  EtcdStoreTest() : SharedEtcdTest("store") {}

  std::unique_ptr<EtcdStore> Open(EtcdStoreOptions o = {}) {
    o.prefix = prefix_;
    auto store = EtcdStore::Open(client_, o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Two stores that decide from their own mirrors, frozen (their watches paused): what a race
  // between two managers looks like.
  void OpenRacingPair(std::unique_ptr<EtcdStore>* a, std::unique_ptr<EtcdStore>* b) {
    EtcdStoreOptions o;
    o.read_your_writes_timeout = absl::Milliseconds(1);
    *a = Open(o);
    *b = Open(o);
    ASSERT_TRUE(*a && *b);
    (*a)->PauseWatchForTest(true);
    (*b)->PauseWatchForTest(true);
  }

  // Writes a raw key, as another program (or a damaged etcd) would.
  void RawPut(const std::string& key, const std::string& value) {
    etcdserverpb::TxnRequest txn;
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    ASSERT_TRUE(client_->Txn(txn).ok());
  }
};

// Every manager opens its own store on the same etcd: each sees the others' commits, from its
// reads and from its watch feed.
TEST_F(EtcdStoreTest, StoresOnOneEtcdSeeEachOthersCommits) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  const uint64_t before = a->Version();
  auto v = b->Commit({Put(Kind::kService, "s1", "web", "1")});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(a->WaitForVersion(*v - 1, absl::Seconds(30)), *v);
  ASSERT_TRUE(a->GetByName(Kind::kService, "web").has_value());
  EXPECT_EQ(a->Get(Kind::kService, "s1")->version, *v);
  auto changes = a->ChangesSince(before, 10);
  ASSERT_TRUE(changes.ok()) << changes.status();
  ASSERT_EQ(changes->size(), 1u);
  EXPECT_EQ((*changes)[0].id, "s1");
  EXPECT_EQ((*changes)[0].data, "1");

  auto d = a->Commit({Del(Kind::kService, "s1", *v)});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(b->WaitForVersion(*d - 1, absl::Seconds(30)), *d);
  EXPECT_FALSE(b->Get(Kind::kService, "s1").has_value());
  EXPECT_FALSE(b->GetByName(Kind::kService, "web").has_value());
}

// A store whose mirror is behind (its watch is stopped) still decides every commit on etcd's
// current state: its stale view of versions and names never lets a conflicting write through,
// and a write that does not conflict goes through.
TEST_F(EtcdStoreTest, StaleMirrorNeverLetsAConflictThrough) {
  EtcdStoreOptions o;
  o.read_your_writes_timeout = absl::Milliseconds(1);
  auto a = Open();
  auto b = Open(o);
  ASSERT_TRUE(a && b);
  auto v1 = a->Commit({Put(Kind::kService, "s1", "web", "1")});
  ASSERT_TRUE(v1.ok()) << v1.status();
  ASSERT_EQ(b->WaitForVersion(*v1 - 1, absl::Seconds(30)), *v1);

  b->PauseWatchForTest(true);
  auto v2 = a->Commit({Put(Kind::kService, "s1", "web", "2", *v1),
                       Put(Kind::kService, "s2", "api", "x", Mutation::kMustNotExist)});
  ASSERT_TRUE(v2.ok()) << v2.status();
  // b still believes s1 is at v1 and that "api" is free.
  ASSERT_EQ(b->Get(Kind::kService, "s1")->version, *v1);
  auto stale = b->Commit({Put(Kind::kService, "s1", "web", "b", *v1)});
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted) << stale.status();
  EXPECT_THAT(stale.status().message(),
              HasSubstr(absl::StrCat("is at version ", *v2, ", expected version ", *v1)));
  auto name = b->Commit({Put(Kind::kService, "s3", "api", "b", Mutation::kMustNotExist)});
  EXPECT_EQ(name.status().code(), absl::StatusCode::kAlreadyExists) << name.status();
  auto again = b->Commit({Put(Kind::kService, "s2", "other", "b", Mutation::kMustNotExist)});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAborted) << again.status();
  // A write without a version check applies on top of a's, whatever b's mirror says.
  auto blind = b->Commit({Put(Kind::kService, "s1", "web", "b-wins")});
  ASSERT_TRUE(blind.ok()) << blind.status();
  EXPECT_GT(*blind, *v2);

  b->PauseWatchForTest(false);
  EXPECT_GE(b->WaitForVersion(*blind - 1, absl::Seconds(30)), *blind);
  EXPECT_EQ(b->Get(Kind::kService, "s1")->data, "b-wins");
  EXPECT_EQ(b->GetByName(Kind::kService, "api")->id, "s2");
  EXPECT_FALSE(b->Get(Kind::kService, "s3").has_value());
  ASSERT_GE(a->WaitForVersion(*blind - 1, absl::Seconds(30)), *blind);
  EXPECT_EQ(a->Get(Kind::kService, "s1")->data, "b-wins");
}

// Two stores racing for one name from their own mirrors: exactly one wins.
TEST_F(EtcdStoreTest, NameRaceBetweenStoresHasOneWinner) {
  std::unique_ptr<EtcdStore> a, b;
  ASSERT_NO_FATAL_FAILURE(OpenRacingPair(&a, &b));
  auto ra = a->Commit({Put(Kind::kNode, "n1", "edge", "a")});
  auto rb = b->Commit({Put(Kind::kNode, "n2", "edge", "b")});
  EXPECT_TRUE(ra.ok()) << ra.status();
  EXPECT_EQ(rb.status().code(), absl::StatusCode::kAlreadyExists) << rb.status();
  a->PauseWatchForTest(false);
  b->PauseWatchForTest(false);
}

// Two managers registering a node each from their own mirrors pick the same lowest free subnet:
// the claim is a create-only key, so etcd's compare lets exactly one commit through, and the
// loser, on fresh reads, gets the next subnet.
TEST_F(EtcdStoreTest, SubnetClaimRaceBetweenStoresHasOneWinner) {
  std::unique_ptr<EtcdStore> a, b;
  ASSERT_NO_FATAL_FAILURE(OpenRacingPair(&a, &b));
  std::string sa, sb;
  auto ca = ClaimNodeSubnet(*a, "n1", &sa);
  auto cb = ClaimNodeSubnet(*b, "n2", &sb);
  ASSERT_TRUE(ca.ok() && cb.ok());
  EXPECT_EQ(sa, "10.99.0.0/24");
  EXPECT_EQ(sb, sa);
  auto ra = a->Commit({*ca, Put(Kind::kNode, "n1", "edge-1", "a", Mutation::kMustNotExist)});
  auto rb = b->Commit({*cb, Put(Kind::kNode, "n2", "edge-2", "b", Mutation::kMustNotExist)});
  EXPECT_TRUE(ra.ok()) << ra.status();
  EXPECT_EQ(rb.status().code(), absl::StatusCode::kAborted) << rb.status();
  EXPECT_FALSE(b->Get(Kind::kNode, "n2").has_value());  // nothing of the lost commit applied
  a->PauseWatchForTest(false);
  b->PauseWatchForTest(false);
  ASSERT_GE(b->WaitForVersion(*ra - 1, absl::Seconds(30)), *ra);
  auto again = ClaimNodeSubnet(*b, "n2", &sb);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(sb, "10.99.1.0/24");
  EXPECT_TRUE(b->Commit({*again}).ok());
}

// etcd's limits (128 operations per transaction, 1.5 MiB per request) are clear errors that
// apply nothing.
TEST_F(EtcdStoreTest, CommitsBeyondEtcdLimitsFailClearly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<Mutation> tasks;
  for (int i = 0; i < 128; ++i) tasks.push_back(Put(Kind::kTask, absl::StrCat("t", i), "", "x"));
  auto fits = store->Commit(tasks);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(store->List(Kind::kTask).size(), 128u);

  tasks.push_back(Put(Kind::kTask, "t128", "", "x"));
  auto too_many = store->Commit(tasks);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_many.status().message(), HasSubstr("a commit of 129 mutations needs 129"));
  EXPECT_THAT(too_many.status().message(), HasSubstr("--max-txn-ops"));
  // Unique names take an operation of their own.
  std::vector<Mutation> services;
  for (int i = 0; i < 65; ++i) {
    services.push_back(Put(Kind::kService, absl::StrCat("s", i), absl::StrCat("svc", i), "x"));
  }
  auto named = store->Commit(services);
  EXPECT_EQ(named.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(named.status().message(), HasSubstr("needs 130 operations"));

  auto big = store->Commit({Put(Kind::kService, "big", "big", std::string(1600 * 1024, 'b'))});
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), HasSubstr("--max-request-bytes"));
  auto large = store->Commit({Put(Kind::kService, "big", "big", std::string(1400 * 1024, 'b'))});
  ASSERT_TRUE(large.ok()) << large.status();

  EXPECT_FALSE(store->Get(Kind::kTask, "t128").has_value());
  EXPECT_TRUE(store->List(Kind::kService).size() == 1u);
  auto reopened = Open();
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->List(Kind::kTask).size(), 128u);
  EXPECT_EQ(reopened->Get(Kind::kService, "big")->data.size(), 1400u * 1024);
}

// History etcd compacted away is OUT_OF_RANGE (callers relist); a store whose watch fell
// behind the compaction reloads every object instead of missing changes.
TEST_F(EtcdStoreTest, CompactedHistoryIsOutOfRangeAndAStaleMirrorReloads) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  auto v1 = a->Commit({Put(Kind::kTask, "x1", "", "1")});
  auto v2 = a->Commit({Put(Kind::kTask, "x2", "", "2")});
  ASSERT_TRUE(v1.ok() && v2.ok());
  ASSERT_TRUE(a->Compact(*v2).ok());
  EXPECT_EQ(a->ChangesSince(*v1 - 1, 10).status().code(), absl::StatusCode::kOutOfRange);
  auto kept = a->ChangesSince(*v1, 10);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].id, "x2");

  ASSERT_GE(b->WaitForVersion(*v2 - 1, absl::Seconds(30)), *v2);
  b->PauseWatchForTest(true);
  auto v3 = a->Commit({Put(Kind::kTask, "x3", "", "3")});
  auto v4 = a->Commit({Del(Kind::kTask, "x1")});
  ASSERT_TRUE(v3.ok() && v4.ok());
  ASSERT_TRUE(a->Compact(*v4).ok());
  testing_util::LogCapture log;
  b->PauseWatchForTest(false);
  ASSERT_GE(b->WaitForVersion(*v4 - 1, absl::Seconds(30)), *v4);
  EXPECT_THAT(Ids(b->List(Kind::kTask)), ElementsAre("x2", "x3"));
  EXPECT_EQ(b->ChangesSince(*v2, 10).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(b->ChangesSince(b->Version(), 10)->empty());
  EXPECT_THAT(log.Text(), HasSubstr("fell behind etcd's compaction"));
  // The reloaded store keeps following.
  auto v5 = a->Commit({Put(Kind::kTask, "x5", "", "5")});
  ASSERT_TRUE(v5.ok());
  ASSERT_GE(b->WaitForVersion(*v5 - 1, absl::Seconds(30)), *v5);
  EXPECT_EQ(b->ChangesSince(b->CompactedThrough(), 10)->size(), 1u);
}

// Each change holds the whole object: the feed is bounded in bytes as well as in changes, so
// a large object that changes often cannot fill the memory.
TEST_F(EtcdStoreTest, FeedRetentionBoundsBytes) {
  EtcdStoreOptions o;
  o.max_change_bytes = 10 << 10;
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  const uint64_t base = store->Version();
  const std::string big(3 << 10, 'x');
  std::vector<uint64_t> versions;
  for (int i = 0; i < 20; ++i) {
    auto v = store->Commit({Put(Kind::kTask, "t", "", big)});
    ASSERT_TRUE(v.ok()) << v.status();
    versions.push_back(*v);
  }
  // Three 3 KiB changes fit in 10 KiB, a fourth does not.
  EXPECT_EQ(store->CompactedThrough(), versions[16]);
  EXPECT_EQ(store->ChangesSince(base, 100).status().code(), absl::StatusCode::kOutOfRange);
  auto retained = store->ChangesSince(versions[16], 100);
  ASSERT_TRUE(retained.ok()) << retained.status();
  EXPECT_EQ(retained->size(), 3u);
  // The newest revision is kept even when larger than the budget.
  auto huge = store->Commit({Put(Kind::kTask, "huge", "", std::string(20 << 10, 'y'))});
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(store->ChangesSince(versions[19], 100)->size(), 1u);
}

v1::Service Svc(const std::string& id, const std::string& name) {
  v1::Service svc;
  svc.set_id(id);
  svc.mutable_spec()->set_name(name);
  return svc;
}

// What Warren cannot read in etcd is reported and kept aside, never hidden or overwritten; a
// delete is the way out. Values written while the store runs are checked as well.
TEST_F(EtcdStoreTest, CorruptValuesAreKeptAsideAndRefused) {
  store::EtcdRecord good;
  good.set_name("web");
  Svc("s1", "web").SerializeToString(good.mutable_data());
  RawPut(prefix_ + "o/1/s1", good.SerializeAsString());
  RawPut(prefix_ + "o/1/s2", "\xff\xff garbage");
  store::EtcdRecord lying;
  lying.set_name("api");
  Svc("s3", "db").SerializeToString(lying.mutable_data());
  RawPut(prefix_ + "o/1/s3", lying.SerializeAsString());
  RawPut(prefix_ + "n/1/api", "s3");
  RawPut(prefix_ + "o/42/x", good.SerializeAsString());

  EtcdStoreOptions o;
  o.parse = ParseStoredObject;
  testing_util::LogCapture log;
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(log.Text(), HasSubstr("its etcd value is not a Warren record"));
  std::vector<std::string> corrupt;
  for (const auto& c : store->Corruption()) corrupt.push_back(c.id);
  EXPECT_THAT(corrupt, ElementsAre("s2", "s3", "x"));
  EXPECT_THAT(Ids(store->List(Kind::kService)), ElementsAre("s1"));
  EXPECT_FALSE(store->GetByName(Kind::kService, "api").has_value());

  auto overwrite = store->Commit({PutMutation(Svc("s2", "x"))});
  EXPECT_EQ(overwrite.status().code(), absl::StatusCode::kDataLoss) << overwrite.status();
  auto same_name = store->Commit({PutMutation(Svc("s9", "api"), Mutation::kMustNotExist)});
  EXPECT_EQ(same_name.status().code(), absl::StatusCode::kDataLoss) << same_name.status();
  auto removed = store->Commit({Del(Kind::kService, "s2"), Del(Kind::kService, "s3")});
  ASSERT_TRUE(removed.ok()) << removed.status();
  // The corrupt object's name went with it.
  ASSERT_TRUE(store->Commit({PutMutation(Svc("s9", "api"), Mutation::kMustNotExist)}).ok());
  EXPECT_THAT(store->Corruption().size(), 1u);

  // A value that turns corrupt while the store runs is a deletion to watchers.
  const uint64_t before = store->Version();
  RawPut(prefix_ + "o/1/s1", "junk");
  ASSERT_GT(store->WaitForVersion(before, absl::Seconds(30)), before);
  EXPECT_FALSE(store->Get(Kind::kService, "s1").has_value());
  auto changes = store->ChangesSince(before, 10);
  ASSERT_TRUE(changes.ok());
  ASSERT_EQ(changes->size(), 1u);
  EXPECT_TRUE((*changes)[0].deleted);
  EXPECT_EQ(store->Corruption().size(), 2u);
}

// With etcd down the store refuses commits with UNAVAILABLE and keeps serving reads; when etcd
// is back it commits again and its watch follows again.
TEST_F(EtcdStoreTest, UnreachableEtcdIsUnavailableAndRecovers) {
  auto cluster = EtcdCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdClientOptions co = (*cluster)->ClientOptions();
  co.rpc_timeout = absl::Seconds(2);
  co.connect_timeout = absl::Milliseconds(200);
  auto client = EtcdClient::Create(co);
  ASSERT_TRUE(client.ok());
  std::shared_ptr<EtcdClient> shared = std::move(*client);
  auto opened = EtcdStore::Open(shared, {});
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto store = std::move(*opened);
  ASSERT_TRUE(store->Commit({Put(Kind::kService, "s1", "web", "1")}).ok());

  (*cluster)->Kill(0);
  auto down = store->Commit({Put(Kind::kService, "s2", "api", "2")});
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_THAT(down.status().message(), HasSubstr((*cluster)->endpoints()[0]));
  EXPECT_TRUE(store->GetByName(Kind::kService, "web").has_value());
  auto other = EtcdStore::Open(shared, {});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE((*cluster)->Restart(0).ok());
  // The member is back: the first commits may still find the connection down.
  absl::StatusOr<uint64_t> up = absl::UnavailableError("not tried");
  ASSERT_TRUE(testing_util::WaitFor([&] {
    up = store->Commit({Put(Kind::kService, "s2", "api", "2")});
    return up.ok() || up.status().code() != absl::StatusCode::kUnavailable;
  }));
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(store->GetByName(Kind::kService, "api")->version, *up);
}

// Three members: losing one changes nothing for the store (it moves to another member, and its
// watch follows); losing two stops commits with UNAVAILABLE while reads go on; one member back
// restores quorum and the store commits again.
TEST_F(EtcdStoreTest, ThreeMembersSurviveOneLossAndRecoverQuorum) {
  auto cluster = EtcdCluster::Start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdClientOptions co = (*cluster)->ClientOptions();
  co.rpc_timeout = absl::Seconds(3);
  co.connect_timeout = absl::Milliseconds(300);
  std::shared_ptr<EtcdClient> writer_client = std::move(*EtcdClient::Create(co));
  std::shared_ptr<EtcdClient> reader_client = std::move(*EtcdClient::Create(co));
  auto writer = EtcdStore::Open(writer_client, {});
  auto reader = EtcdStore::Open(reader_client, {});
  ASSERT_TRUE(writer.ok() && reader.ok());
  ASSERT_TRUE((*writer)->Commit({Put(Kind::kService, "s1", "web", "1")}).ok());

  // Both clients start on member 0.
  (*cluster)->Kill(0);
  absl::StatusOr<uint64_t> v = absl::UnavailableError("not tried");
  ASSERT_TRUE(testing_util::WaitFor([&] {
    v = (*writer)->Commit({Put(Kind::kService, "s2", "api", "2")});
    return v.ok();
  })) << v.status();
  ASSERT_GE((*reader)->WaitForVersion(*v - 1, absl::Seconds(30)), *v);
  EXPECT_TRUE((*reader)->GetByName(Kind::kService, "api").has_value());

  (*cluster)->Kill(1);
  absl::StatusOr<uint64_t> lost = (*writer)->Commit({Put(Kind::kService, "s3", "db", "3")});
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable) << lost.status();
  EXPECT_THAT(lost.status().message(), HasSubstr("etcd cannot take writes now"));
  EXPECT_TRUE((*writer)->GetByName(Kind::kService, "api").has_value());
  // Once the member left knows it has no leader it refuses before proposing anything: the
  // error says so and does not leave the outcome open (one sent before may time out instead).
  absl::StatusOr<uint64_t> refused = absl::UnavailableError("not tried");
  ASSERT_TRUE(testing_util::WaitFor([&] {
    refused = (*writer)->Commit({Put(Kind::kService, "s4", "cache", "4")});
    return !refused.ok() && !EtcdOutcomeUnknown(refused.status());
  })) << refused.status();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("no leader"));
  EXPECT_THAT(refused.status().message(), HasSubstr((*cluster)->endpoints()[2]));

  ASSERT_TRUE((*cluster)->Restart(1).ok());
  ASSERT_TRUE(testing_util::WaitFor([&] {
    v = (*writer)->Commit({Put(Kind::kService, "s3", "db", "3")});
    return v.ok();
  })) << v.status();
  ASSERT_GE((*reader)->WaitForVersion(*v - 1, absl::Seconds(30)), *v);
  EXPECT_TRUE((*reader)->GetByName(Kind::kService, "db").has_value());
  EXPECT_FALSE((*reader)->GetByName(Kind::kService, "cache").has_value())
      << "a commit etcd refused was applied";
}

absl::Status WriteFile(const std::filesystem::path& p, absl::string_view text) {
  std::ofstream out(p, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  return out ? absl::OkStatus() : absl::InternalError("write " + p.string());
}

// etcd with TLS and client certificates: the store connects with the CA and its certificate,
// and a client without a certificate is refused.
TEST_F(EtcdStoreTest, TlsWithClientCertificates) {
  testing_util::TempDir dir;
  const absl::Time now = absl::Now();
  auto ca = security::RootCa::Create("etcdtest", now);
  ASSERT_TRUE(ca.ok()) << ca.status();
  security::IssueOptions server_opts;
  server_opts.hosts = {"127.0.0.1"};
  auto server =
      ca->IssueKeyAndCertificate({"etcd", security::Role::kManager, "etcdtest"}, server_opts, now);
  auto client_cert =
      ca->IssueKeyAndCertificate({"m1", security::Role::kManager, "etcdtest"}, {}, now);
  ASSERT_TRUE(server.ok() && client_cert.ok());
  testing_util::EtcdTlsFiles files{
      (dir.path() / "ca.pem").string(), (dir.path() / "server.pem").string(),
      (dir.path() / "server-key.pem").string(), (dir.path() / "client.pem").string(),
      (dir.path() / "client-key.pem").string()};
  ASSERT_TRUE(WriteFile(files.ca, ca->cert_pem()).ok());
  ASSERT_TRUE(WriteFile(files.server_cert, server->cert_pem).ok());
  ASSERT_TRUE(WriteFile(files.server_key, server->key_pem.reveal()).ok());
  ASSERT_TRUE(WriteFile(files.client_cert, client_cert->cert_pem).ok());
  ASSERT_TRUE(WriteFile(files.client_key, client_cert->key_pem.reveal()).ok());

  auto cluster = EtcdCluster::Start(1, files);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto opened = EtcdStore::Open((*cluster)->Client(), {});
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto v = (*opened)->Commit({Put(Kind::kService, "s1", "web", "1")});
  ASSERT_TRUE(v.ok()) << v.status();

  EtcdClientOptions no_cert = (*cluster)->ClientOptions();
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  no_cert.rpc_timeout = absl::Seconds(2);
  no_cert.connect_timeout = absl::Milliseconds(500);
  auto anonymous = EtcdClient::Create(no_cert);
  ASSERT_TRUE(anonymous.ok()) << anonymous.status();
  auto refused = EtcdStore::Open(std::move(*anonymous), {});
  EXPECT_FALSE(refused.ok());
}

TEST(EtcdClientOptionsTest, BadOptionsNameWhatIsWrong) {
  EtcdClientOptions o;
  EXPECT_THAT(EtcdClient::Create(o).status().message(), HasSubstr("no etcd endpoint"));
  o.endpoints = {"127.0.0.1:2379", "etcd-2"};
  EXPECT_THAT(EtcdClient::Create(o).status().message(),
              HasSubstr("etcd endpoint \"etcd-2\": no port"));
  o.endpoints = {"10.0.0.1:99999"};
  EXPECT_THAT(EtcdClient::Create(o).status().message(), HasSubstr("from 1 to 65535"));
  o.endpoints = {"[::1]:2379", "etcd.local:2379"};
  o.cert_file = "/nonexistent/client.pem";
  EXPECT_THAT(EtcdClient::Create(o).status().message(), HasSubstr("give both or neither"));
  o.key_file = "/nonexistent/client-key.pem";
  EXPECT_THAT(EtcdClient::Create(o).status().message(), HasSubstr("give the etcd CA"));
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_THAT(EtcdClient::Create(o).status().message(),
              HasSubstr("etcd CA certificate /nonexistent/ca.pem: cannot be read"));
  o = EtcdClientOptions();
  o.endpoints = {"[::1]:2379", "etcd.local:2379"};
  EXPECT_TRUE(EtcdClient::Create(o).ok());
}

// A leader's commits carry its fence: once its leader key is gone or created anew (another
// leader), they are rejected and apply nothing.
TEST_F(EtcdStoreTest, FencedCommitsFailOnceTheLeaderKeyChanged) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string key = prefix_ + "leader";
  RawPut(key, "m1");
  etcdserverpb::RangeRequest get;
  get.set_key(key);
  auto r = client_->Range(get);
  ASSERT_TRUE(r.ok() && r->kvs_size() == 1);
  EtcdFence fence{key, r->kvs(0).create_revision()};
  std::optional<EtcdFence> current = fence;
  EtcdFencedStore fenced(*store, [&] { return current; });
  ASSERT_TRUE(fenced.Commit({Put(Kind::kTask, "t1", "", "leader-1")}).ok());

  // Another manager's campaign: the key is deleted (lease expired) and created again.
  etcdserverpb::TxnRequest retake;
  retake.add_success()->mutable_request_delete_range()->set_key(key);
  ASSERT_TRUE(client_->Txn(retake).ok());
  RawPut(key, "m2");
  auto late = fenced.Commit({Put(Kind::kTask, "t1", "", "late"), Put(Kind::kTask, "t2", "", "x")});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kAborted) << late.status();
  EXPECT_THAT(late.status().message(), HasSubstr("not the leader any more"));
  EXPECT_EQ(store->Get(Kind::kTask, "t1")->data, "leader-1");
  EXPECT_FALSE(store->Get(Kind::kTask, "t2").has_value());
  // Unfenced commits (the API of every manager) are not affected.
  EXPECT_TRUE(store->Commit({Put(Kind::kTask, "t2", "", "api")}).ok());

  current.reset();
  EXPECT_EQ(fenced.Commit({Put(Kind::kTask, "t3", "", "x")}).status().code(),
            absl::StatusCode::kAborted);
}

}  // namespace
}  // namespace warren
