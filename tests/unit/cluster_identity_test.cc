// The manager's cluster identity: created once, the same CA after a restart, refused without
// the right key-encryption key.
#include "manager/cluster_identity.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/key_file.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::TempDir;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

class ClusterIdentityTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> OpenStore(const fs::path& dir) {
    SqliteStoreOptions opts;
    opts.parse = ParseStoredObject;
    auto store = SqliteStore::Open((dir / "store.db").string(), opts);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  TempDir tmp_;
};

TEST_F(ClusterIdentityTest, CreatedOnceAndTheSameAfterARestart) {
  const fs::path dir = tmp_.path() / "m";
  std::string ca_pem, cluster_id, worker_token;
  uint64_t version = 0;
  {
    auto store = OpenStore(dir);
    auto a = LoadOrCreateClusterAuthority(*store, dir, kNow);
    ASSERT_TRUE(a.ok()) << a.status();
    ca_pem = a->ca().cert_pem();
    cluster_id = a->cluster_id();
    worker_token = std::string(a->tokens().Get(security::Role::kWorker)->reveal());
    EXPECT_EQ(testing_util::Mode(dir / kClusterKekFile), 0600);
    auto stored = store->Get(Kind::kClusterSecurity, kClusterSecurityId);
    ASSERT_TRUE(stored.has_value());
    version = stored->version;
    // The stored object holds no key in the clear: the worker token's secret is not in it.
    EXPECT_EQ(stored->data.find(worker_token), std::string::npos);
    // A second call in the same process loads, it does not create again.
    auto again = LoadOrCreateClusterAuthority(*store, dir, kNow + absl::Hours(1));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->ca().cert_pem(), ca_pem);
    EXPECT_EQ(store->Get(Kind::kClusterSecurity, kClusterSecurityId)->version, version);
  }
  auto store = OpenStore(dir);
  auto a = LoadOrCreateClusterAuthority(*store, dir, kNow + absl::Hours(2));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ca().cert_pem(), ca_pem);
  EXPECT_EQ(a->cluster_id(), cluster_id);
  EXPECT_EQ(a->tokens().Get(security::Role::kWorker)->reveal(), worker_token);
  EXPECT_EQ(a->cluster_key().size(), 32u);
  EXPECT_EQ(store->Get(Kind::kClusterSecurity, kClusterSecurityId)->version, version);
}

TEST_F(ClusterIdentityTest, OptionsApplyToANewCluster) {
  const fs::path dir = tmp_.path() / "m";
  auto store = OpenStore(dir);
  security::ClusterAuthorityOptions options;
  options.node_cert_validity = absl::Minutes(3);
  auto a = LoadOrCreateClusterAuthority(*store, dir, kNow, options);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->node_cert_validity(), absl::Minutes(3));
  options.node_cert_validity = absl::Seconds(1);
  auto bad =
      LoadOrCreateClusterAuthority(*OpenStore(tmp_.path() / "n"), tmp_.path() / "n", kNow, options);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("node certificate validity"));
}

TEST_F(ClusterIdentityTest, AMissingKeyFileIsRefusedAndNothingIsReplaced) {
  const fs::path dir = tmp_.path() / "m";
  auto store = OpenStore(dir);
  ASSERT_TRUE(LoadOrCreateClusterAuthority(*store, dir, kNow).ok());
  const std::string before = store->Get(Kind::kClusterSecurity, kClusterSecurityId)->data;
  fs::remove(dir / kClusterKekFile);

  auto a = LoadOrCreateClusterAuthority(*store, dir, kNow);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(a.status().message(), HasSubstr((dir / kClusterKekFile).string() + " is missing"));
  // Neither a new key file nor a new CA: the old cluster stays recoverable.
  EXPECT_FALSE(fs::exists(dir / kClusterKekFile));
  EXPECT_EQ(store->Get(Kind::kClusterSecurity, kClusterSecurityId)->data, before);
}

TEST_F(ClusterIdentityTest, AnotherClustersKeyFileIsRefused) {
  const fs::path a_dir = tmp_.path() / "a";
  const fs::path b_dir = tmp_.path() / "b";
  auto a_store = OpenStore(a_dir);
  auto b_store = OpenStore(b_dir);
  ASSERT_TRUE(LoadOrCreateClusterAuthority(*a_store, a_dir, kNow).ok());
  ASSERT_TRUE(LoadOrCreateClusterAuthority(*b_store, b_dir, kNow).ok());
  fs::copy_file(b_dir / kClusterKekFile, a_dir / kClusterKekFile,
                fs::copy_options::overwrite_existing);

  auto a = LoadOrCreateClusterAuthority(*a_store, a_dir, kNow);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(),
              HasSubstr("key file " + (a_dir / kClusterKekFile).string() + " does not open"));
  EXPECT_THAT(a.status().message(), HasSubstr("belongs to another cluster"));
}

TEST_F(ClusterIdentityTest, AKeyFileOthersCanReadIsRefused) {
  const fs::path dir = tmp_.path() / "m";
  auto store = OpenStore(dir);
  ASSERT_TRUE(LoadOrCreateClusterAuthority(*store, dir, kNow).ok());
  ASSERT_EQ(chmod((dir / kClusterKekFile).c_str(), 0644), 0);
  auto a = LoadOrCreateClusterAuthority(*store, dir, kNow);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr((dir / kClusterKekFile).string()));
}

// node rm's revocation is stored with the cluster: it adds, prunes what expired, and a join
// token rotation (which seals the authority again) keeps it.
TEST_F(ClusterIdentityTest, TheRevocationListIsStoredWithTheClusterAndKeptByARotation) {
  const fs::path dir = tmp_.path() / "m";
  auto store = OpenStore(dir);
  EXPECT_EQ(RevokeNodeMutation(*store, "n0", kNow, kNow + absl::Hours(1))->has_value(), false);
  auto a = LoadOrCreateClusterAuthority(*store, dir, kNow);
  ASSERT_TRUE(a.ok()) << a.status();

  auto first = RevokeNodeMutation(*store, "n1", kNow, kNow + absl::Hours(1));
  ASSERT_TRUE(first.ok() && first->has_value()) << first.status();
  ASSERT_TRUE(store->Commit({**first}).ok());
  auto second = RevokeNodeMutation(*store, "n2", kNow + absl::Hours(2), kNow + absl::Hours(3));
  ASSERT_TRUE(second.ok() && second->has_value()) << second.status();
  ASSERT_TRUE(store->Commit({**second}).ok());
  // A write prepared against an older version does not overwrite a newer list.
  EXPECT_EQ(store->Commit({**first}).status().code(), absl::StatusCode::kAborted);

  auto list = LoadRevocationList(*store);
  ASSERT_TRUE(list.ok()) << list.status();
  // n1's entry expired before n2's revocation and was pruned by it.
  ASSERT_EQ(list->nodes_size(), 1);
  EXPECT_EQ(list->nodes(0).node_id(), "n2");

  ASSERT_TRUE(a->tokens().Rotate(security::Role::kWorker, a->ca().cert_pem()).ok());
  ASSERT_TRUE(SaveClusterAuthority(*store, dir, *a).ok());
  list = LoadRevocationList(*store);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->nodes_size(), 1);
  EXPECT_EQ(list->nodes(0).node_id(), "n2");
  // And the authority still loads from what was saved.
  EXPECT_TRUE(LoadOrCreateClusterAuthority(*store, dir, kNow).ok());
}

}  // namespace
}  // namespace warren
