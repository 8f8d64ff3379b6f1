// The cluster root CA, node certificates (issue, parse, verify, expiry, renewal time) and the
// sealed cluster authority.
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <random>

#include "absl/random/random.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "security/aead.h"
#include "security/certificates.h"
#include "security/cluster_authority.h"
#include "security/openssl_util.h"
#include "security/root_ca.h"

namespace warren::security {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

SecretBytes Kek(char fill = 'k') { return SecretBytes(std::string(kAeadKeySize, fill)); }

class RootCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = RootCa::Create("cluster1", kNow);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::make_unique<RootCa>(std::move(*ca));
  }

  std::string IssueFor(const CertificateIdentity& id, IssueOptions opts = {},
                       absl::Time at = kNow) {
    auto key = GeneratePrivateKey();
    EXPECT_TRUE(key.ok());
    auto csr = CreateCsr(*key);
    EXPECT_TRUE(csr.ok()) << csr.status();
    auto cert = ca_->Issue(*csr, id, opts, at);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.ok() ? *cert : "";
  }

  std::unique_ptr<RootCa> ca_;
};

TEST_F(RootCaTest, CaCertificateIsASelfSignedP256CaFor20Years) {
  auto cert = ParseCertificate(ca_->cert_pem(), "ca");
  ASSERT_TRUE(cert.ok());
  X509* x = cert->get();
  EXPECT_EQ(X509_check_ca(x), 1);
  EXPECT_EQ(X509_check_issued(x, x), X509_V_OK);
  EVP_PKEY* pub = X509_get0_pubkey(x);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(pub), 256);
  EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
  const uint32_t usage = X509_get_key_usage(x);
  EXPECT_TRUE(usage & KU_KEY_CERT_SIGN);
  EXPECT_TRUE(usage & KU_CRL_SIGN);
  EXPECT_FALSE(usage & KU_DIGITAL_SIGNATURE);
  auto na = Asn1TimeToTime(X509_get0_notAfter(x));
  ASSERT_TRUE(na.ok());
  EXPECT_EQ(*na, kNow + kDefaultCaValidity);
  EXPECT_EQ(ca_->not_after(), kNow + kDefaultCaValidity);
  // Self-verification: the CA certificate verifies against itself.
  X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), x);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), x, nullptr);
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), absl::ToTimeT(kNow));
  EXPECT_EQ(X509_verify_cert(ctx.get()), 1);
}

TEST_F(RootCaTest, CreateValidatesInputs) {
  EXPECT_EQ(RootCa::Create("", kNow).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RootCa::Create("bad,id", kNow).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RootCa::Create("c", kNow, absl::Hours(1)).status().message(),
            "CA validity 1h: must be at least 24h");
}

TEST_F(RootCaTest, IssuedCertificateCarriesIdentityUsagesAndNames) {
  IssueOptions opts;
  opts.hosts = {"10.0.0.5", "::1", "node-1.example.com"};
  const std::string pem = IssueFor({"node1", Role::kWorker, "cluster1"}, opts);
  auto info = VerifyCertificate(ca_->cert_pem(), pem, kNow);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->identity.node_id, "node1");
  EXPECT_EQ(info->identity.role, Role::kWorker);
  EXPECT_EQ(info->identity.cluster_id, "cluster1");
  EXPECT_EQ(info->not_after, kNow + kDefaultNodeCertValidity);
  EXPECT_EQ(info->not_before, kNow - kMaxCertBackdate);
  EXPECT_EQ(info->dns_names, std::vector<std::string>{"node-1.example.com"});
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"10.0.0.5", "::1"}));
  EXPECT_EQ(info->serial.size(), 32u);  // 127-bit serial, upper-case hex

  auto cert = ParseCertificate(pem, "leaf");
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(X509_check_ca(cert->get()), 0);
  const uint32_t eku = X509_get_extended_key_usage(cert->get());
  EXPECT_TRUE(eku & XKU_SSL_SERVER);
  EXPECT_TRUE(eku & XKU_SSL_CLIENT);
  EXPECT_NE(X509_get0_authority_key_id(cert->get()), nullptr);
}

TEST_F(RootCaTest, EachRoleRoundTripsThroughTheSubject) {
  for (Role role : {Role::kManager, Role::kWorker, Role::kAdmin, Role::kReadOnly}) {
    auto info = ParseNodeCertificate(IssueFor({"n", role, "cluster1"}));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->identity.role, role);
  }
}

TEST_F(RootCaTest, SerialsAreUnique) {
  const std::string a = IssueFor({"n", Role::kWorker, "cluster1"});
  const std::string b = IssueFor({"n", Role::kWorker, "cluster1"});
  EXPECT_NE(ParseNodeCertificate(a)->serial, ParseNodeCertificate(b)->serial);
}

TEST_F(RootCaTest, ShortCertificatesForTests) {
  IssueOptions opts;
  opts.validity = absl::Minutes(2);
  auto info = ParseNodeCertificate(IssueFor({"n", Role::kWorker, "cluster1"}, opts));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->not_after - kNow, absl::Minutes(2));
  EXPECT_EQ(kNow - info->not_before, absl::Seconds(12));  // backdate: 1/10 of the life
}

TEST_F(RootCaTest, IssueRejectsBadRequests) {
  auto key = GeneratePrivateKey();
  auto csr = CreateCsr(*key);
  ASSERT_TRUE(csr.ok());
  EXPECT_EQ(ca_->Issue(*csr, {"", Role::kWorker, "cluster1"}, {}, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ca_->Issue(*csr, {"a/b", Role::kWorker, "cluster1"}, {}, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ca_->Issue(*csr, {"n", Role::kWorker, "other"}, {}, kNow).status().message(),
            "cluster id other: this CA issues for cluster1");
  IssueOptions too_short;
  too_short.validity = absl::Seconds(30);
  EXPECT_EQ(ca_->Issue(*csr, {"n", Role::kWorker, "cluster1"}, too_short, kNow).status().message(),
            "certificate validity 30s: must be between 1m and 43800h");
  IssueOptions bad_host;
  bad_host.hosts = {"evil.com,DNS:other.com"};
  auto injected = ca_->Issue(*csr, {"n", Role::kWorker, "cluster1"}, bad_host, kNow);
  EXPECT_EQ(injected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(injected.status().message().find("not an IP address or a DNS name"), std::string::npos);
  EXPECT_EQ(ca_->Issue("garbage", {"n", Role::kWorker, "cluster1"}, {}, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A certificate outliving the CA is refused.
  EXPECT_EQ(ca_->Issue(*csr, {"n", Role::kWorker, "cluster1"}, {},
                       kNow + kDefaultCaValidity - absl::Hours(24))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RootCaTest, CsrWithBrokenSignatureIsRefused) {
  auto key = GeneratePrivateKey();
  auto csr = CreateCsr(*key);
  ASSERT_TRUE(csr.ok());
  // Flip a byte inside the base64 body near the end (the signature).
  std::string tampered = *csr;
  const size_t pos = tampered.rfind("-----END") - 10;
  tampered[pos] = tampered[pos] == 'A' ? 'B' : 'A';
  auto issued = ca_->Issue(tampered, {"n", Role::kWorker, "cluster1"}, {}, kNow);
  EXPECT_EQ(issued.status().code(), absl::StatusCode::kInvalidArgument) << issued.status();
}

TEST_F(RootCaTest, VerifyRefusesExpiredNotYetValidAndOtherCa) {
  const std::string pem = IssueFor({"n", Role::kWorker, "cluster1"});
  EXPECT_TRUE(VerifyCertificate(ca_->cert_pem(), pem, kNow + absl::Hours(24 * 89)).ok());
  auto expired = VerifyCertificate(ca_->cert_pem(), pem, kNow + absl::Hours(24 * 91));
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos) << expired.status();
  auto early = VerifyCertificate(ca_->cert_pem(), pem, kNow - absl::Hours(1));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(early.status().message().find("not yet valid"), std::string::npos) << early.status();

  auto other = RootCa::Create("cluster1", kNow);  // same cluster id, another key
  ASSERT_TRUE(other.ok());
  auto foreign = VerifyCertificate(other->cert_pem(), pem, kNow);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(RootCaTest, CheckValidAtUsesTheGivenClock) {
  FakeClock clock(kNow);
  auto info = ParseNodeCertificate(IssueFor({"n", Role::kWorker, "cluster1"}));
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(CheckValidAt(*info, clock.Now()).ok());
  clock.Advance(kDefaultNodeCertValidity + absl::Seconds(1));
  auto s = CheckValidAt(*info, clock.Now());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("certificate of node n expired at"), std::string::npos);
  clock.Set(kNow - absl::Hours(1));
  EXPECT_NE(CheckValidAt(*info, clock.Now()).message().find("not valid before"), std::string::npos);
}

TEST_F(RootCaTest, ParseRefusesCertificatesWithoutAWarrenIdentity) {
  // The CA certificate itself has no OU role and a CN that is not a node.
  auto ca_as_node = ParseNodeCertificate(ca_->cert_pem());
  EXPECT_EQ(ca_as_node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseNodeCertificate("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseNodeCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RootCaTest, KeyMatchesCertificate) {
  auto kc = ca_->IssueKeyAndCertificate({"n", Role::kAdmin, "cluster1"}, {}, kNow);
  ASSERT_TRUE(kc.ok()) << kc.status();
  EXPECT_TRUE(*KeyMatchesCertificate(kc->key_pem, kc->cert_pem));
  auto other = GeneratePrivateKey();
  EXPECT_FALSE(*KeyMatchesCertificate(*other, kc->cert_pem));
}

TEST_F(RootCaTest, SealUnsealRoundTripSignsWithTheSameKey) {
  auto sealed = ca_->Seal(Kek());
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->cert_pem(), ca_->cert_pem());
  EXPECT_EQ(sealed->SerializeAsString().find("PRIVATE KEY"), std::string::npos);
  auto back = RootCa::Unseal(*sealed, Kek());
  ASSERT_TRUE(back.ok()) << back.status();
  auto kc = back->IssueKeyAndCertificate({"n", Role::kWorker, "cluster1"}, {}, kNow);
  ASSERT_TRUE(kc.ok());
  EXPECT_TRUE(VerifyCertificate(ca_->cert_pem(), kc->cert_pem, kNow).ok());
}

TEST_F(RootCaTest, UnsealRefusesWrongKekTamperingAndSwappedCertificate) {
  auto sealed = ca_->Seal(Kek());
  ASSERT_TRUE(sealed.ok());
  auto wrong = RootCa::Unseal(*sealed, Kek('w'));
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(wrong.status().message().find("key-encryption key"), std::string::npos);

  v1::ClusterCA tampered = *sealed;
  (*tampered.mutable_sealed_key()->mutable_ciphertext())[5] ^= 1;
  EXPECT_EQ(RootCa::Unseal(tampered, Kek()).status().code(), absl::StatusCode::kDataLoss);

  auto other = RootCa::Create("cluster1", kNow);
  v1::ClusterCA swapped = *sealed;
  swapped.set_cert_pem(other->cert_pem());  // key bound to the certificate it was sealed with
  EXPECT_EQ(RootCa::Unseal(swapped, Kek()).status().code(), absl::StatusCode::kDataLoss);

  v1::ClusterCA renamed = *sealed;
  renamed.set_cluster_id("cluster2");
  EXPECT_EQ(RootCa::Unseal(renamed, Kek()).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(RootCaTest, FromPemChecksTheKeyAndTheCluster) {
  auto sealed = ca_->Seal(Kek());
  auto key = Open(Kek(), sealed->sealed_key(),
                  AssociatedData({"warren.v1.ClusterCA.sealed_key", "cluster1", ca_->cert_pem()}));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(RootCa::FromPem("cluster1", ca_->cert_pem(), *key).ok());
  EXPECT_EQ(RootCa::FromPem("cluster2", ca_->cert_pem(), *key).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto other_key = GeneratePrivateKey();
  EXPECT_EQ(RootCa::FromPem("cluster1", ca_->cert_pem(), *other_key).status().message(),
            "CA key does not belong to the CA certificate");
  // A node certificate is no CA.
  auto kc = ca_->IssueKeyAndCertificate({"n", Role::kManager, "cluster1"}, {}, kNow);
  EXPECT_EQ(RootCa::FromPem("cluster1", kc->cert_pem, kc->key_pem).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(RootCaTest, VerifyAcceptsALeafFollowedByItsChain) {
  const std::string pem = IssueFor({"n", Role::kWorker, "cluster1"});
  // gRPC hands over a peer's full chain in some places: leaf first, then the CA.
  auto info = VerifyCertificate(ca_->cert_pem(), pem + ca_->cert_pem(), kNow);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->identity.node_id, "n");
  EXPECT_EQ(ParseCertificate(pem + ca_->cert_pem(), "x").status().message(),
            "x: expected one certificate, found 2");
}

TEST(ValidateIdTest, AllowedCharactersAndLength) {
  EXPECT_TRUE(ValidateId("abc-DEF_1.2", "node id").ok());
  EXPECT_TRUE(ValidateId(std::string(64, 'a'), "node id").ok());
  EXPECT_EQ(ValidateId("", "node id").message(), "node id: 0 characters, must be 1 to 64");
  EXPECT_EQ(ValidateId(std::string(65, 'a'), "node id").message(),
            "node id: 65 characters, must be 1 to 64");
  EXPECT_EQ(ValidateId("a b", "cluster id").message(),
            "cluster id \"a b\": only letters, digits, '.', '_' and '-' allowed");
  EXPECT_FALSE(ValidateId("a,OU=admin", "node id").ok());
}

TEST(RenewalTimeTest, UniformWithin50To80PercentOfLife) {
  CertificateInfo info;
  info.not_before = kNow;
  info.not_after = kNow + absl::Hours(100);
  std::mt19937_64 rng(42);
  absl::Duration min = absl::InfiniteDuration();
  absl::Duration max = -absl::InfiniteDuration();
  int buckets[3] = {0, 0, 0};
  for (int i = 0; i < 3000; ++i) {
    const absl::Duration at = RenewalTime(info, rng) - kNow;
    ASSERT_GE(at, absl::Hours(50));
    ASSERT_LE(at, absl::Hours(80));
    min = std::min(min, at);
    max = std::max(max, at);
    buckets[std::min(2, static_cast<int>((at - absl::Hours(50)) / absl::Hours(10)))]++;
  }
  // Spread over the whole window, not clumped at one end.
  EXPECT_LT(min, absl::Hours(51));
  EXPECT_GT(max, absl::Hours(79));
  for (int b : buckets) EXPECT_GT(b, 800);
}

TEST(RenewalTimeTest, DeterministicForASeed) {
  CertificateInfo info;
  info.not_before = kNow;
  info.not_after = kNow + absl::Minutes(5);
  std::mt19937_64 a(7);
  std::mt19937_64 b(7);
  EXPECT_EQ(RenewalTime(info, a), RenewalTime(info, b));
}

TEST(RoleTest, NamesRoundTripAndUnknownIsRefused) {
  for (Role r : {Role::kManager, Role::kWorker, Role::kAdmin, Role::kReadOnly}) {
    EXPECT_EQ(*ParseRole(RoleName(r)), r);
  }
  EXPECT_EQ(ParseRole("root").status().message(),
            "role \"root\": must be manager, worker, admin or read-only");
}

TEST(ClusterAuthorityTest, CreateSealUnsealKeepsEverything) {
  auto auth = ClusterAuthority::Create("cluster1", kNow, {kDefaultCaValidity, absl::Minutes(10)});
  ASSERT_TRUE(auth.ok()) << auth.status();
  auto sealed = auth->Seal(Kek());
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  const std::string bytes = sealed->SerializeAsString();
  EXPECT_EQ(bytes.find(std::string(auth->tokens().Get(Role::kWorker)->reveal())),
            std::string::npos);
  EXPECT_EQ(bytes.find(std::string(auth->cluster_key().reveal())), std::string::npos);
  auto back = ClusterAuthority::Unseal(*sealed, Kek());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ca().cert_pem(), auth->ca().cert_pem());
  EXPECT_TRUE(back->cluster_key().Equals(auth->cluster_key()));
  EXPECT_TRUE(back->tokens().Get(Role::kWorker)->Equals(*auth->tokens().Get(Role::kWorker)));
  EXPECT_TRUE(back->tokens().Get(Role::kManager)->Equals(*auth->tokens().Get(Role::kManager)));
  EXPECT_EQ(back->node_cert_validity(), absl::Minutes(10));
  EXPECT_EQ(ClusterAuthority::Unseal(*sealed, Kek('x')).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ClusterAuthorityTest, UnsealRefusesSwappedSealedParts) {
  auto a = ClusterAuthority::Create("cluster1", kNow);
  auto b = ClusterAuthority::Create("cluster2", kNow);
  auto sa = a->Seal(Kek());
  auto sb = b->Seal(Kek());
  v1::ClusterSecurity mixed = *sa;
  *mixed.mutable_sealed_cluster_key() = sb->sealed_cluster_key();
  auto s = ClusterAuthority::Unseal(mixed, Kek());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("cluster key"), std::string::npos);
  mixed = *sa;
  *mixed.mutable_sealed_join_tokens() = sb->sealed_join_tokens();
  EXPECT_NE(ClusterAuthority::Unseal(mixed, Kek()).status().message().find("join tokens"),
            std::string::npos);
  mixed = *sa;
  mixed.clear_node_cert_validity();
  EXPECT_EQ(ClusterAuthority::Unseal(mixed, Kek()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClusterAuthorityTest, AdmitTakesTheRoleFromTheTokenAndTheIdFromTheCaller) {
  auto auth = ClusterAuthority::Create("cluster1", kNow);
  ASSERT_TRUE(auth.ok());
  auto key = GeneratePrivateKey();
  auto csr = CreateCsr(*key);
  const std::string worker_token(auth->tokens().Get(Role::kWorker)->reveal());
  const std::string manager_token(auth->tokens().Get(Role::kManager)->reveal());
  auto w = auth->Admit(worker_token, *csr, "node-w", {"127.0.0.1"}, kNow);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->identity.role, Role::kWorker);
  auto info = VerifyCertificate(auth->ca().cert_pem(), w->cert_pem, kNow);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->identity.node_id, "node-w");
  EXPECT_EQ(info->ip_addresses, std::vector<std::string>{"127.0.0.1"});
  auto m = auth->Admit(manager_token, *csr, "node-m", {}, kNow);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->identity.role, Role::kManager);

  ASSERT_TRUE(auth->tokens().Rotate(Role::kWorker, auth->ca().cert_pem()).ok());
  EXPECT_EQ(auth->Admit(worker_token, *csr, "node-x", {}, kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(auth->Admit(manager_token, *csr, "node-y", {}, kNow).ok());  // other role unchanged
  // Nodes admitted before the rotation still verify.
  EXPECT_TRUE(VerifyCertificate(auth->ca().cert_pem(), w->cert_pem, kNow).ok());
}

TEST(ClusterAuthorityTest, RenewKeepsTheIdentityAndRefusesRevokedOrForeign) {
  auto auth = ClusterAuthority::Create("cluster1", kNow);
  ASSERT_TRUE(auth.ok());
  auto key = GeneratePrivateKey();
  auto csr = CreateCsr(*key);
  auto w =
      auth->Admit(std::string(auth->tokens().Get(Role::kWorker)->reveal()), *csr, "n1", {}, kNow);
  ASSERT_TRUE(w.ok());
  auto current = ParseNodeCertificate(w->cert_pem);
  RevocationList revoked;
  auto new_key = GeneratePrivateKey();
  auto new_csr = CreateCsr(*new_key);
  auto renewed = auth->Renew(*current, *new_csr, {}, revoked, kNow + absl::Hours(24 * 60));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  auto info = ParseNodeCertificate(renewed->cert_pem);
  EXPECT_EQ(info->identity.node_id, "n1");
  EXPECT_EQ(info->identity.role, Role::kWorker);
  EXPECT_EQ(info->not_after, kNow + absl::Hours(24 * 150));

  revoked.RevokeNode("n1", kNow, auth->RevocationHorizon(kNow));
  EXPECT_EQ(auth->Renew(*current, *new_csr, {}, revoked, kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
  CertificateInfo foreign = *current;
  foreign.identity.cluster_id = "cluster2";
  EXPECT_EQ(auth->Renew(foreign, *new_csr, {}, RevocationList(), kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(ClusterAuthorityTest, CreateValidatesValidity) {
  EXPECT_EQ(ClusterAuthority::Create("c", kNow, {kDefaultCaValidity, absl::Seconds(10)})
                .status()
                .message(),
            "node certificate validity 10s: must be between 1m and 43800h");
}

}  // namespace
}  // namespace warren::security
