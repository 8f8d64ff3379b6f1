// Revocation list and the role / node authorization rules.
#include "gtest/gtest.h"
#include "security/authz.h"
#include "security/revocation.h"

namespace warren::security {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

CertificateInfo Cert(std::string node, Role role, std::string serial = "AB01",
                     std::string cluster = "c1") {
  CertificateInfo info;
  info.identity = {std::move(node), role, std::move(cluster)};
  info.serial = std::move(serial);
  return info;
}

TEST(RevocationListTest, NodeAndSerialRevocation) {
  RevocationList list;
  EXPECT_TRUE(list.Check(Cert("n1", Role::kWorker)).ok());
  list.RevokeNode("n1", kNow, kNow + absl::Hours(1));
  auto s = list.Check(Cert("n1", Role::kWorker));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "node n1 was removed from the cluster");
  EXPECT_TRUE(list.Check(Cert("n2", Role::kWorker)).ok());
  list.RevokeCertificate("cd02", kNow, kNow + absl::Hours(1));  // case-insensitive
  EXPECT_TRUE(list.IsRevoked(Cert("n2", Role::kWorker, "CD02")));
  EXPECT_FALSE(list.IsRevoked(Cert("n2", Role::kWorker, "CD03")));
  EXPECT_EQ(list.Check(Cert("n2", Role::kWorker, "CD02")).message(),
            "certificate CD02 of node n2 was revoked");
}

TEST(RevocationListTest, PruneDropsOnlyExpiredEntries) {
  RevocationList list;
  list.RevokeNode("old", kNow, kNow + absl::Minutes(1));
  list.RevokeNode("new", kNow, kNow + absl::Hours(1));
  list.RevokeCertificate("AA", kNow, kNow + absl::Minutes(1));
  list.Prune(kNow + absl::Minutes(30));
  EXPECT_EQ(list.size(), 1u);
  EXPECT_FALSE(list.IsRevoked(Cert("old", Role::kWorker)));
  EXPECT_TRUE(list.IsRevoked(Cert("new", Role::kWorker)));
}

TEST(RevocationListTest, ProtoRoundTripAndValidation) {
  RevocationList list;
  list.RevokeNode("n1", kNow, kNow + absl::Hours(1));
  list.RevokeCertificate("AA", kNow, kNow + absl::Hours(2));
  RevocationList copy;
  ASSERT_TRUE(copy.Replace(list.ToProto()).ok());
  EXPECT_TRUE(copy.IsRevoked(Cert("n1", Role::kWorker)));
  EXPECT_TRUE(copy.IsRevoked(Cert("x", Role::kWorker, "AA")));
  copy.Prune(kNow + absl::Minutes(90));
  EXPECT_EQ(copy.size(), 1u);

  v1::RevocationList bad = list.ToProto();
  bad.add_nodes();
  EXPECT_EQ(copy.Replace(bad).message(), "revocation list: nodes[1].node_id empty");
  EXPECT_EQ(copy.size(), 1u);  // unchanged by a refused Replace
}

TEST(CheckPeerTest, ClusterRevocationRoleAndNode) {
  auto revoked = std::make_shared<RevocationList>();
  PeerPolicy policy{"c1", {Role::kManager}, "", revoked};
  EXPECT_TRUE(CheckPeer(Cert("m1", Role::kManager), policy).ok());
  EXPECT_EQ(CheckPeer(Cert("m1", Role::kManager, "AB01", "c2"), policy).code(),
            absl::StatusCode::kUnauthenticated);
  auto wrong_role = CheckPeer(Cert("w1", Role::kWorker), policy);
  EXPECT_EQ(wrong_role.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(wrong_role.message(), "peer w1 has role worker, expected manager");
  revoked->RevokeNode("m1", kNow, kNow + absl::Hours(1));
  EXPECT_EQ(CheckPeer(Cert("m1", Role::kManager), policy).code(),
            absl::StatusCode::kUnauthenticated);

  PeerPolicy one_node{"c1", {}, "w7", nullptr};
  EXPECT_TRUE(CheckPeer(Cert("w7", Role::kWorker), one_node).ok());
  EXPECT_EQ(CheckPeer(Cert("w8", Role::kWorker), one_node).message(),
            "peer is node w8, expected node w7");
}

TEST(AuthorizeTest, RoleRules) {
  const CertificateIdentity worker{"w1", Role::kWorker, "c1"};
  const CertificateIdentity admin{"cli", Role::kAdmin, "c1"};
  const CertificateIdentity reader{"ro", Role::kReadOnly, "c1"};
  EXPECT_TRUE(AuthorizeRole(admin, {Role::kAdmin}, "CreateService").ok());
  auto denied = AuthorizeRole(worker, {Role::kAdmin}, "CreateService");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "CreateService: not allowed for role worker (node w1); allowed: admin");
  EXPECT_TRUE(AuthorizeRole(reader, {Role::kAdmin, Role::kReadOnly}, "ListServices").ok());
  EXPECT_EQ(AuthorizeRole(reader, {Role::kAdmin}, "DeleteService").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AuthorizeTest, NodesActOnlyForThemselves) {
  const CertificateIdentity worker{"w1", Role::kWorker, "c1"};
  const CertificateIdentity manager{"m1", Role::kManager, "c1"};
  const CertificateIdentity admin{"cli", Role::kAdmin, "c1"};
  EXPECT_TRUE(AuthorizeNode(worker, "w1", "ReportTaskStatus").ok());
  auto other = AuthorizeNode(worker, "w2", "ReportTaskStatus");
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other.message(), "ReportTaskStatus: node w1 may not act for node w2");
  EXPECT_TRUE(AuthorizeNode(manager, "m1", "Heartbeat").ok());
  EXPECT_EQ(AuthorizeNode(manager, "w1", "Heartbeat").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(AuthorizeNode(admin, "w1", "DrainNode").ok());
}

TEST(AuthorizerTest, ANullServerContextIsTheManagerItselfUnderMutualTls) {
  auto authorizer = Authorizer::Create(AuthMode::kMutualTls, "0.0.0.0:1", "c1",
                                       std::make_shared<RevocationList>());
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  for (const char* method : {"/warren.v1.Control/CreateService", "/warren.v1.Secrets/UpdateSecret",
                             "/warren.v1.ClusterAdmin/Backup", "/warren.v1.Ca/GetJoinToken"}) {
    auto in_process = (*authorizer)->AuthorizeCall(nullptr, method);
    ASSERT_TRUE(in_process.ok()) << method << ": " << in_process.status();
    EXPECT_FALSE(in_process->has_value()) << method;
    // A call that reached the server without an auth context is not the manager.
    EXPECT_EQ((*authorizer)->Authorize(nullptr, method).status().code(),
              absl::StatusCode::kUnauthenticated)
        << method;
  }
}

}  // namespace
}  // namespace warren::security
