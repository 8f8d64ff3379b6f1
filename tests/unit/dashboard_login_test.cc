// The dashboard's login (src/ui/login.h, AuthenticateRequest in src/ui/dashboard.h): tokens and
// sessions signed and checked with explicit times, tampering, the session cookie, client
// certificates, and the request checks under TLS.
#include "ui/login.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/cluster_authority.h"
#include "security/revocation.h"
#include "ui/dashboard.h"

namespace warren::ui {
namespace {

using ::testing::HasSubstr;

security::SecretBytes Key(char fill) { return security::SecretBytes(std::string(32, fill)); }

DashboardKeys Keys(char fill = 'k') {
  auto keys = DashboardKeys::Derive(Key(fill));
  EXPECT_TRUE(keys.ok()) << keys.status();
  return *keys;
}

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

TEST(DashboardTokenTest, ATokenVerifiesWithItsRoleAndExpiry) {
  DashboardKeys keys = Keys();
  for (DashboardRole role : {DashboardRole::kAdmin, DashboardRole::kReadOnly}) {
    auto token = keys.IssueToken(role, kStart + absl::Hours(1));
    ASSERT_TRUE(token.ok()) << token.status();
    EXPECT_THAT(*token, ::testing::StartsWith("wdt1."));
    auto grant = keys.VerifyToken(*token, kStart);
    ASSERT_TRUE(grant.ok()) << grant.status();
    EXPECT_EQ(grant->role, role);
    EXPECT_EQ(grant->expires, kStart + absl::Hours(1));
  }
  // Two tokens for the same role and time differ (a random nonce).
  EXPECT_NE(*keys.IssueToken(DashboardRole::kAdmin, kStart),
            *keys.IssueToken(DashboardRole::kAdmin, kStart));
}

TEST(DashboardTokenTest, ExpiryIsEnforcedOnTheClock) {
  FakeClock clock(kStart);
  DashboardKeys keys = Keys();
  const std::string token = *keys.IssueToken(DashboardRole::kAdmin, clock.Now() + absl::Minutes(5));
  EXPECT_TRUE(keys.VerifyToken(token, clock.Now()).ok());
  clock.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_TRUE(keys.VerifyToken(token, clock.Now()).ok());
  clock.Advance(absl::Seconds(1));
  auto expired = keys.VerifyToken(token, clock.Now());
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(),
              HasSubstr("login token expired at 2027-01-15T08:05:00Z: create a new one with "
                        "`warren dashboard token`"));
  // Sessions the same way.
  const std::string session =
      *keys.IssueSession(DashboardRole::kReadOnly, clock.Now() + absl::Minutes(1));
  EXPECT_TRUE(keys.VerifySession(session, clock.Now()).ok());
  clock.Advance(absl::Minutes(1));
  EXPECT_THAT(keys.VerifySession(session, clock.Now()).status().message(),
              HasSubstr("session expired"));
}

TEST(DashboardTokenTest, ChangedOrForeignTokensAreRefused) {
  DashboardKeys keys = Keys();
  const std::string token = *keys.IssueToken(DashboardRole::kReadOnly, kStart + absl::Hours(1));
  // Every single changed character of the payload or the MAC.
  for (size_t i = 5; i < token.size(); ++i) {
    if (token[i] == '.') continue;
    std::string changed = token;
    changed[i] = changed[i] == 'A' ? 'B' : 'A';
    auto r = keys.VerifyToken(changed, kStart);
    EXPECT_FALSE(r.ok()) << "position " << i;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  }
  // A read-only token rewritten to say admin, with the old MAC.
  const size_t dot = token.rfind('.');
  std::string payload;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(token.substr(5, dot - 5), &payload));
  ASSERT_EQ(payload.rfind("read-only|", 0), 0u) << payload;
  const std::string forged = absl::StrCat(
      "wdt1.", absl::WebSafeBase64Escape("admin" + payload.substr(9)), token.substr(dot));
  EXPECT_THAT(keys.VerifyToken(forged, kStart).status().message(),
              HasSubstr("signature does not match"));
  // Another cluster's key.
  EXPECT_THAT(Keys('x').VerifyToken(token, kStart).status().message(),
              HasSubstr("signature does not match"));
  // A session is not a token, nor the reverse.
  const std::string session = *keys.IssueSession(DashboardRole::kAdmin, kStart + absl::Hours(1));
  EXPECT_THAT(keys.VerifyToken(session, kStart).status().message(),
              HasSubstr("not a dashboard login token"));
  EXPECT_THAT(keys.VerifySession(token, kStart).status().message(),
              HasSubstr("not a dashboard session"));
  for (const char* bad : {"", "wdt1.", "wdt1..", "wdt1.abc", "SWMTKN-1-abc", "wdt1.!!!.???"}) {
    EXPECT_EQ(keys.VerifyToken(bad, kStart).status().code(), absl::StatusCode::kUnauthenticated)
        << bad;
  }
  EXPECT_FALSE(keys.VerifyToken(std::string(10000, 'a'), kStart).ok());
}

TEST(DashboardTokenTest, RolesTtlsAndKeysAreChecked) {
  EXPECT_EQ(*ParseDashboardRole("admin", "--role"), DashboardRole::kAdmin);
  EXPECT_EQ(*ParseDashboardRole("read-only", "--role"), DashboardRole::kReadOnly);
  EXPECT_EQ(ParseDashboardRole("root", "--role").status().message(),
            "--role: expected \"admin\" or \"read-only\", got \"root\"");
  EXPECT_TRUE(CheckTokenTtl(absl::Minutes(1), "--ttl").ok());
  EXPECT_TRUE(CheckTokenTtl(absl::Hours(24), "--ttl").ok());
  EXPECT_THAT(CheckTokenTtl(absl::Seconds(59), "--ttl").message(),
              HasSubstr("--ttl: must be 1m..24h"));
  EXPECT_FALSE(CheckTokenTtl(absl::Hours(25), "--ttl").ok());
  EXPECT_FALSE(DashboardKeys::Derive(security::SecretBytes("short")).ok());
}

TEST(DashboardSessionTest, TheCookieIsHostOnlySecureHttpOnlyAndStrict) {
  EXPECT_EQ(SessionCookie("wds1.x.y", absl::Minutes(10)),
            "__Host-warren-session=wds1.x.y; Path=/; Max-Age=600; Secure; HttpOnly; "
            "SameSite=Strict");
  EXPECT_THAT(SessionCookie("", absl::ZeroDuration()), HasSubstr("Max-Age=0;"));
  EXPECT_THAT(SessionCookie("", -absl::Minutes(1)), HasSubstr("Max-Age=0;"));
}

class AuthenticateRequestTest : public testing::Test {
 protected:
  void SetUp() override {
    auto authority = security::ClusterAuthority::Create("c1", absl::Now());
    ASSERT_TRUE(authority.ok()) << authority.status();
    authority_ = std::make_unique<security::ClusterAuthority>(std::move(*authority));
    keys_ = std::make_shared<const DashboardKeys>(Keys());
    revoked_ = std::make_shared<security::RevocationList>();
    access_ = {keys_, authority_->ca().cert_pem(), "c1", revoked_};
  }
  std::string Cert(security::Role role, const std::string& id = "user") {
    auto kc = authority_->ca().IssueKeyAndCertificate({id, role, "c1"}, {absl::Hours(1), {}},
                                                      absl::Now());
    EXPECT_TRUE(kc.ok()) << kc.status();
    return kc->cert_pem;
  }
  HttpRequest WithCookie(const std::string& value) {
    HttpRequest req;
    req.headers = {{"Cookie", absl::StrCat("theme=dark; __Host-warren-session=", value, "; x=y")}};
    return req;
  }

  std::unique_ptr<security::ClusterAuthority> authority_;
  std::shared_ptr<const DashboardKeys> keys_;
  std::shared_ptr<security::RevocationList> revoked_;
  DashboardAccessConfig access_;
};

TEST_F(AuthenticateRequestTest, ASessionCookieGivesItsRoleUntilItExpires) {
  const absl::Time now = absl::Now();
  const std::string session =
      *keys_->IssueSession(DashboardRole::kReadOnly, now + absl::Minutes(1));
  auto grant = AuthenticateRequest(WithCookie(session), access_, now);
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->role, DashboardRole::kReadOnly);
  auto expired = AuthenticateRequest(WithCookie(session), access_, now + absl::Minutes(1));
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(), HasSubstr("session expired"));
  auto none = AuthenticateRequest(HttpRequest{}, access_, now);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.status().message(), HasSubstr("log in first"));
  // A login token is not a session.
  const std::string token = *keys_->IssueToken(DashboardRole::kAdmin, now + absl::Minutes(1));
  EXPECT_FALSE(AuthenticateRequest(WithCookie(token), access_, now).ok());
}

TEST_F(AuthenticateRequestTest, AClientCertificateOfAUserOfTheClusterLogsIn) {
  const absl::Time now = absl::Now();
  HttpRequest req;
  req.tls = true;
  req.peer_cert_pem = Cert(security::Role::kAdmin);
  auto admin = AuthenticateRequest(req, access_, now);
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->role, DashboardRole::kAdmin);
  req.peer_cert_pem = Cert(security::Role::kReadOnly);
  EXPECT_EQ(AuthenticateRequest(req, access_, now)->role, DashboardRole::kReadOnly);
  // A node is not a user.
  req.peer_cert_pem = Cert(security::Role::kWorker);
  EXPECT_EQ(AuthenticateRequest(req, access_, now).status().code(),
            absl::StatusCode::kPermissionDenied);
  // Another cluster's CA.
  auto other = security::ClusterAuthority::Create("c2", now);
  ASSERT_TRUE(other.ok());
  req.peer_cert_pem =
      other->ca()
          .IssueKeyAndCertificate({"user", security::Role::kAdmin, "c2"}, {absl::Hours(1), {}}, now)
          ->cert_pem;
  EXPECT_EQ(AuthenticateRequest(req, access_, now).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A removed user.
  req.peer_cert_pem = Cert(security::Role::kAdmin, "gone");
  revoked_->RevokeNode("gone", now, now + absl::Hours(1));
  auto revoked = AuthenticateRequest(req, access_, now);
  EXPECT_EQ(revoked.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(revoked.status().message(), HasSubstr("client certificate is refused"));
  // A valid session wins over the certificate.
  req.headers = {{"Cookie", absl::StrCat("__Host-warren-session=",
                                         *keys_->IssueSession(DashboardRole::kReadOnly,
                                                              now + absl::Minutes(1)))}};
  EXPECT_EQ(AuthenticateRequest(req, access_, now)->role, DashboardRole::kReadOnly);
}

TEST(DashboardCheckTest, UnderTlsAnyHostButTheOriginMustBeHttpsOfIt) {
  HttpRequest get;
  get.method = "GET";
  get.headers = {{"Host", "manager.example:9471"}};
  EXPECT_EQ(CheckRequest(get, /*tls=*/true), "");
  EXPECT_THAT(CheckRequest(get, /*tls=*/false), HasSubstr("loopback host"));
  get.headers = {};
  EXPECT_THAT(CheckRequest(get, /*tls=*/true), HasSubstr("Host"));

  HttpRequest post;
  post.method = "POST";
  post.headers = {{"Host", "manager.example:9471"},
                  {"X-Warren-Dashboard", "1"},
                  {"Origin", "https://manager.example:9471"},
                  {"Sec-Fetch-Site", "same-origin"}};
  EXPECT_EQ(CheckRequest(post, /*tls=*/true), "");
  post.headers[2].second = "http://manager.example:9471";
  EXPECT_THAT(CheckRequest(post, /*tls=*/true),
              HasSubstr("own origin https://manager.example:9471"));
  post.headers = {{"Host", "manager.example:9471"}, {"Origin", "https://manager.example:9471"}};
  EXPECT_THAT(CheckRequest(post, /*tls=*/true), HasSubstr("X-Warren-Dashboard"));
}

}  // namespace
}  // namespace warren::ui
