// CertificateRenewer: when a node renews (50-80 % of the life, seeded), and what a renewal
// installs. The fake clock stands in for the days of a real certificate.
#include "security/cert_renewer.h"

#include <memory>
#include <set>

#include "gtest/gtest.h"
#include "security/cluster_authority.h"
#include "test_util.h"

namespace warren::security {
namespace {

using testing_util::TempDir;

class CertRenewerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto auth = ClusterAuthority::Create("c1", clock_.Now());
    ASSERT_TRUE(auth.ok()) << auth.status();
    auth_ = std::make_unique<ClusterAuthority>(std::move(*auth));
    Issue(dir_);
  }
  void Issue(CredentialsDirectory& dir) {
    auto kc = auth_->ca().IssueKeyAndCertificate({"w1", Role::kWorker, "c1"},
                                                 {absl::Minutes(10), {}}, clock_.Now());
    ASSERT_TRUE(kc.ok()) << kc.status();
    ASSERT_TRUE(
        dir.Install({auth_->ca().cert_pem(), kc->cert_pem, kc->key_pem}, clock_.Now()).ok());
  }
  RenewFn Renew() {
    return [this](const CertificateInfo& current,
                  const std::string& csr) -> absl::StatusOr<RenewedCertificate> {
      auto issued = auth_->Renew(current, csr, {}, revoked_, clock_.Now());
      if (!issued.ok()) return issued.status();
      return RenewedCertificate{issued->cert_pem, auth_->ca().cert_pem()};
    };
  }
  CertificateInfo Installed(const CredentialsDirectory& dir) {
    auto material = dir.Read();
    EXPECT_TRUE(material.ok()) << material.status();
    auto info = ParseNodeCertificate(material->cert_pem);
    EXPECT_TRUE(info.ok()) << info.status();
    EXPECT_TRUE(*KeyMatchesCertificate(material->key_pem, material->cert_pem));
    return *info;
  }

  FakeClock clock_;
  TempDir tmp_;
  CredentialsDirectory dir_{(tmp_.path() / "tls").string()};
  std::unique_ptr<ClusterAuthority> auth_;
  RevocationList revoked_;
};

TEST_F(CertRenewerTest, RenewsBetweenHalfAndFourFifthsOfTheLifeKeepingTheIdentity) {
  CertificateRenewer renewer(dir_, Renew(), clock_, /*seed=*/7);
  const CertificateInfo first = Installed(dir_);
  auto due = renewer.NextRenewal();
  ASSERT_TRUE(due.ok()) << due.status();
  const absl::Duration life = first.not_after - first.not_before;
  EXPECT_GE(*due, first.not_before + life / 2);
  EXPECT_LE(*due, first.not_before + life * 4 / 5);
  // Drawn once per certificate: asking again gives the same time.
  EXPECT_EQ(*renewer.NextRenewal(), *due);
  // The same seed, the same schedule.
  CertificateRenewer twin(dir_, Renew(), clock_, /*seed=*/7);
  EXPECT_EQ(*twin.NextRenewal(), *due);

  clock_.Set(*due - absl::Seconds(1));
  ASSERT_FALSE(*renewer.RenewIfDue());
  EXPECT_EQ(Installed(dir_).serial, first.serial);
  clock_.Set(*due);
  ASSERT_TRUE(*renewer.RenewIfDue());
  const CertificateInfo second = Installed(dir_);
  EXPECT_NE(second.serial, first.serial);
  EXPECT_EQ(second.identity.node_id, "w1");
  EXPECT_EQ(second.identity.role, Role::kWorker);
  EXPECT_EQ(renewer.renewals(), 1);
  // The next one is scheduled in the new certificate's life.
  auto next = renewer.NextRenewal();
  ASSERT_TRUE(next.ok());
  EXPECT_GE(*next, second.not_before + (second.not_after - second.not_before) / 2);
  EXPECT_FALSE(*renewer.RenewIfDue());
}

TEST_F(CertRenewerTest, SeedsSpreadNodesIssuedTogether) {
  std::set<absl::Time> times;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    CertificateRenewer r(dir_, Renew(), clock_, seed);
    times.insert(*r.NextRenewal());
  }
  EXPECT_GT(times.size(), 4u);
}

TEST_F(CertRenewerTest, ARefusedRenewalKeepsTheCurrentCertificate) {
  CertificateRenewer renewer(dir_, Renew(), clock_, 1);
  const CertificateInfo first = Installed(dir_);
  revoked_.RevokeNode("w1", clock_.Now(), clock_.Now() + absl::Hours(1));
  clock_.Set(*renewer.NextRenewal());
  auto renewed = renewer.RenewIfDue();
  EXPECT_EQ(renewed.status().code(), absl::StatusCode::kUnauthenticated) << renewed.status();
  EXPECT_EQ(Installed(dir_).serial, first.serial);
  EXPECT_EQ(renewer.renewals(), 0);
}

TEST_F(CertRenewerTest, TheBackgroundLoopRenewsWhenTheClockSaysSo) {
  CertificateRenewer renewer(dir_, Renew(), clock_, 3);
  const CertificateInfo first = Installed(dir_);
  renewer.Start(absl::Milliseconds(10));
  clock_.Set(*renewer.NextRenewal());
  EXPECT_TRUE(testing_util::WaitFor([&] { return renewer.renewals() == 1; }));
  renewer.Stop();
  EXPECT_NE(Installed(dir_).serial, first.serial);
}

}  // namespace
}  // namespace warren::security
