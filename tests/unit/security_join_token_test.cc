// Join tokens: format, CA pinning, constant-time authentication and rotation.
#include <openssl/sha.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "security/join_token.h"
#include "security/openssl_util.h"
#include "security/root_ca.h"

namespace warren::security {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

class JoinTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = RootCa::Create("cluster1", kNow);
    ASSERT_TRUE(ca.ok());
    ca_pem_ = ca->cert_pem();
    auto other = RootCa::Create("cluster1", kNow);
    ASSERT_TRUE(other.ok());
    other_ca_pem_ = other->cert_pem();
  }
  std::string ca_pem_;
  std::string other_ca_pem_;
};

TEST_F(JoinTokenTest, FormatIsSwarmsWithDerDigest) {
  auto token = NewJoinToken(ca_pem_);
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(token->size(), std::string("SWMTKN-1-").size() + 50 + 1 + 25);
  EXPECT_EQ(token->substr(0, 9), "SWMTKN-1-");
  auto parsed = ParseJoinToken(*token);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->ca_digest, *CaCertificateDigest(ca_pem_));
  EXPECT_EQ(parsed->secret.size(), 25u);
  EXPECT_TRUE(CheckJoinTokenCa(*parsed, ca_pem_).ok());
}

// The digest is base-36 of SHA-256 over the certificate's DER: recompute it independently via
// the hex digest and a big-number conversion.
TEST_F(JoinTokenTest, DigestIsBase36OfSha256OfDer) {
  auto cert = ParseCertificate(ca_pem_, "ca");
  auto der = CertificateDer(cert->get());
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der->data()), der->size(), md);
  BignumPtr n(BN_bin2bn(md, sizeof(md), nullptr));
  std::string digits;
  while (!BN_is_zero(n.get())) {
    const BN_ULONG rem = BN_div_word(n.get(), 36);
    digits.insert(digits.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[rem]);
  }
  digits.insert(digits.begin(), 50 - digits.size(), '0');
  EXPECT_EQ(*CaCertificateDigest(ca_pem_), digits);
}

TEST_F(JoinTokenTest, TokensAreRandom) {
  EXPECT_NE(*NewJoinToken(ca_pem_), *NewJoinToken(ca_pem_));
}

TEST_F(JoinTokenTest, ImpostorCaIsRefused) {
  auto parsed = ParseJoinToken(*NewJoinToken(ca_pem_));
  ASSERT_TRUE(parsed.ok());
  auto s = CheckJoinTokenCa(*parsed, other_ca_pem_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("does not match the CA digest"), std::string::npos);
  EXPECT_EQ(CheckJoinTokenCa(*parsed, "not a certificate").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JoinTokenTest, MalformedTokensEachHaveAClearError) {
  const std::string good = *NewJoinToken(ca_pem_);
  const std::string digest = good.substr(9, 50);
  const std::string secret = good.substr(60);
  const std::pair<std::string, std::string> cases[] = {
      {"", "join token: empty"},
      {"SWMTKN-1-abc", "join token: 3 parts separated by '-', expected 4"},
      {absl::StrCat(good, "-x"), "join token: 5 parts separated by '-', expected 4"},
      {absl::StrCat("SWMTKM-1-", digest, "-", secret), "join token: must start with \"SWMTKN-\""},
      {absl::StrCat("SWMTKN-2-", digest, "-", secret), "join token: unsupported version"},
      {absl::StrCat("SWMTKN-1-", digest.substr(1), "-", secret),
       "join token: CA digest has 49 characters, must have 50"},
      {absl::StrCat("SWMTKN-1-", digest, "-", secret, "0"),
       "join token: secret has 26 characters, must have 25"},
      {absl::StrCat("SWMTKN-1-", std::string(49, '0'), "A-", secret),
       "join token: CA digest must be base-36 (0-9, a-z)"},
      {absl::StrCat("SWMTKN-1-", digest, "-", std::string(24, '0'), "_"),
       "join token: secret must be base-36 (0-9, a-z)"},
      // 36^50 > 2^256 and 36^25 > 2^128: all-'z' values cannot come from a digest or secret.
      {absl::StrCat("SWMTKN-1-", std::string(50, 'z'), "-", secret),
       "join token: CA digest is larger than a 256-bit value"},
      {absl::StrCat("SWMTKN-1-", digest, "-", std::string(25, 'z')),
       "join token: secret is larger than a 128-bit value"},
  };
  for (const auto& [token, want] : cases) {
    auto parsed = ParseJoinToken(token);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_NE(parsed.status().message().find(want), std::string::npos)
        << token << " -> " << parsed.status();
    // The error never echoes the secret part.
    EXPECT_EQ(parsed.status().message().find(secret), std::string::npos);
  }
}

TEST_F(JoinTokenTest, AuthenticateGivesTheRoleAndRefusesOthers) {
  auto tokens = JoinTokens::Create(ca_pem_);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const std::string worker(tokens->Get(Role::kWorker)->reveal());
  const std::string manager(tokens->Get(Role::kManager)->reveal());
  EXPECT_NE(worker, manager);
  EXPECT_EQ(*tokens->Authenticate(worker), Role::kWorker);
  EXPECT_EQ(*tokens->Authenticate(manager), Role::kManager);
  // Same CA digest, another secret.
  auto forged = NewJoinToken(ca_pem_);
  EXPECT_EQ(tokens->Authenticate(*forged).status().code(), absl::StatusCode::kUnauthenticated);
  // Right secret with another CA's digest.
  auto other = ParseJoinToken(*NewJoinToken(other_ca_pem_));
  const std::string mixed = absl::StrCat("SWMTKN-1-", other->ca_digest, "-", worker.substr(60));
  EXPECT_EQ(tokens->Authenticate(mixed).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(tokens->Authenticate("garbage").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(tokens->Get(Role::kAdmin).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JoinTokenTest, RotationRefusesTheOldTokenOnlyForThatRole) {
  auto tokens = JoinTokens::Create(ca_pem_);
  const std::string old_worker(tokens->Get(Role::kWorker)->reveal());
  const std::string manager(tokens->Get(Role::kManager)->reveal());
  ASSERT_TRUE(tokens->Rotate(Role::kWorker, ca_pem_).ok());
  const std::string new_worker(tokens->Get(Role::kWorker)->reveal());
  EXPECT_NE(new_worker, old_worker);
  auto refused = tokens->Authenticate(old_worker);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(refused.status().message().find("rotated"), std::string::npos);
  EXPECT_EQ(*tokens->Authenticate(new_worker), Role::kWorker);
  EXPECT_EQ(*tokens->Authenticate(manager), Role::kManager);
  EXPECT_EQ(tokens->Rotate(Role::kReadOnly, ca_pem_).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JoinTokenTest, ProtoRoundTripValidates) {
  auto tokens = JoinTokens::Create(ca_pem_);
  auto back = JoinTokens::FromProto(tokens->ToProto());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->Get(Role::kWorker)->Equals(*tokens->Get(Role::kWorker)));
  v1::JoinTokens broken = tokens->ToProto();
  broken.set_manager("SWMTKN-1-x");
  EXPECT_NE(JoinTokens::FromProto(broken).status().message().find("stored manager join token"),
            std::string::npos);
}

}  // namespace
}  // namespace warren::security
