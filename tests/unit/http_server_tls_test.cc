// HTTPS and HTTP on one port (HttpServerOptions::tls_context), the verified client certificate
// in the request, and a renewed certificate used for the next connections
// (security::HttpsContextSource).
#include <boost/asio/ssl/context.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "security/certificates.h"
#include "security/cluster_authority.h"
#include "security/https_context.h"
#include "security/tls_credentials.h"
#include "test_http_client.h"
#include "test_https_client.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Says whether the request came over TLS and whose client certificate it carried.
HttpResponse Who(const HttpRequest& req) {
  std::string who = "-";
  if (!req.peer_cert_pem.empty()) {
    auto info = security::ParseNodeCertificate(req.peer_cert_pem);
    who = info.ok() ? info->identity.node_id : "unparsable";
  }
  return HttpResponse::Text(200, absl::StrCat("tls=", req.tls, " peer=", who));
}

class HttpServerTlsTest : public testing::Test {
 protected:
  void SetUp() override {
    auto authority = security::ClusterAuthority::Create("c1", absl::Now());
    ASSERT_TRUE(authority.ok()) << authority.status();
    authority_ = std::make_unique<security::ClusterAuthority>(std::move(*authority));
  }
  security::TlsMaterial Material(const std::vector<std::string>& hosts) {
    auto kc = authority_->ca().IssueKeyAndCertificate({"manager", security::Role::kManager, "c1"},
                                                      {absl::Hours(1), hosts}, absl::Now());
    EXPECT_TRUE(kc.ok()) << kc.status();
    return {authority_->ca().cert_pem(), kc->cert_pem, kc->key_pem};
  }
  test::HttpsClientOptions Client(const std::string& user = "") {
    test::HttpsClientOptions o;
    o.ca_pem = authority_->ca().cert_pem();
    o.timeout = absl::Seconds(10);
    if (!user.empty()) {
      auto kc = authority_->ca().IssueKeyAndCertificate({user, security::Role::kAdmin, "c1"},
                                                        {absl::Hours(1), {}}, absl::Now());
      EXPECT_TRUE(kc.ok()) << kc.status();
      o.client_cert_pem = kc->cert_pem;
      o.client_key_pem = std::string(kc->key_pem.reveal());
    }
    return o;
  }
  std::unique_ptr<security::ClusterAuthority> authority_;
};

TEST_F(HttpServerTlsTest, ServesHttpsAndPlainHttpOnOnePort) {
  auto ctx = security::MakeHttpsServerContext(Material({"127.0.0.1"}));
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  HttpServerOptions options;
  options.tls_context = [ctx = *ctx] { return ctx; };
  auto server = HttpServer::Start("127.0.0.1:0", Who, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();

  auto plain = test::HttpGet("127.0.0.1", port, "/", absl::Seconds(10));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->body, "tls=0 peer=-");
  auto https = test::HttpsDo(port, "GET", "/", "", {}, Client());
  ASSERT_TRUE(https.ok()) << https.status();
  EXPECT_EQ(https->body, "tls=1 peer=-");
  // A client certificate of the CA reaches the handler, verified.
  auto mutual = test::HttpsDo(port, "GET", "/", "", {}, Client("alice"));
  ASSERT_TRUE(mutual.ok()) << mutual.status();
  EXPECT_EQ(mutual->body, "tls=1 peer=alice");
  // One of another CA fails the handshake.
  auto other = security::ClusterAuthority::Create("c2", absl::Now());
  ASSERT_TRUE(other.ok());
  auto stranger = other->ca().IssueKeyAndCertificate({"eve", security::Role::kAdmin, "c2"},
                                                     {absl::Hours(1), {}}, absl::Now());
  ASSERT_TRUE(stranger.ok());
  test::HttpsClientOptions eve = Client();
  eve.client_cert_pem = stranger->cert_pem;
  eve.client_key_pem = std::string(stranger->key_pem.reveal());
  auto refused = test::HttpsDo(port, "GET", "/", "", {}, eve);
  EXPECT_FALSE(refused.ok() && refused->status == 200) << refused->body;
  // Plain HTTP still works after all that.
  plain = test::HttpGet("127.0.0.1", port, "/", absl::Seconds(10));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->body, "tls=0 peer=-");
}

TEST_F(HttpServerTlsTest, WithoutAContextTheConnectionIsClosed) {
  HttpServerOptions options;
  options.tls_context = [] { return std::shared_ptr<boost::asio::ssl::context>(); };
  auto server = HttpServer::Start("127.0.0.1:0", Who, options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE(test::HttpsDo((*server)->port(), "GET", "/", "", {}, Client()).ok());
  auto plain = test::HttpGet("127.0.0.1", (*server)->port(), "/", absl::Seconds(10));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->body, "tls=0 peer=-");
}

TEST_F(HttpServerTlsTest, ARenewedCertificateIsUsedForTheNextConnections) {
  testing_util::TempDir dir;
  security::CredentialsDirectory creds(dir.str());
  // First a certificate without the name the client checks, then one with it.
  ASSERT_TRUE(creds.Install(Material({"localhost"}), absl::Now()).ok());
  auto source = std::make_shared<security::HttpsContextSource>(creds);
  HttpServerOptions options;
  options.tls_context = [source] { return source->Get(); };
  auto server = HttpServer::Start("127.0.0.1:0", Who, options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto before = test::HttpsDo((*server)->port(), "GET", "/", "", {}, Client());
  ASSERT_FALSE(before.ok());
  EXPECT_THAT(before.status().message(), HasSubstr("handshake"));
  ASSERT_TRUE(creds.Install(Material({"127.0.0.1"}), absl::Now()).ok());
  auto after = test::HttpsDo((*server)->port(), "GET", "/", "", {}, Client());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(after->body, StartsWith("tls=1"));
}

// A browser resumes its TLS session on its next connections (Chromium loading a page's scripts
// in parallel). The server asks for client certificates, so OpenSSL refuses to resume unless
// the context names its sessions (SSL_R_SESSION_ID_CONTEXT_UNINITIALIZED: the browser saw
// ERR_SSL_PROTOCOL_ERROR on a page's second connection).
TEST_F(HttpServerTlsTest, ASessionIsResumedWithAndWithoutAClientCertificate) {
  testing_util::TempDir dir;
  security::CredentialsDirectory creds(dir.str());
  ASSERT_TRUE(creds.Install(Material({"127.0.0.1"}), absl::Now()).ok());
  auto source = std::make_shared<security::HttpsContextSource>(creds);
  HttpServerOptions options;
  options.tls_context = [source] { return source->Get(); };
  auto server = HttpServer::Start("127.0.0.1:0", Who, options);
  ASSERT_TRUE(server.ok()) << server.status();
  for (const std::string user : {"", "alice"}) {
    SCOPED_TRACE(user.empty() ? "no client certificate" : "a client certificate");
    test::HttpsSession session;
    test::HttpsClientOptions client = Client(user);
    client.session = &session;
    auto first = test::HttpsDo((*server)->port(), "GET", "/", "", {}, client);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(session.reused);
    ASSERT_TRUE(session.session);
    auto second = test::HttpsDo((*server)->port(), "GET", "/", "", {}, client);
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_TRUE(session.reused);
    // A resumed session still carries who the client is.
    EXPECT_EQ(second->body, first->body);
  }
}

}  // namespace
}  // namespace warren
