// warren.v1.Ca over mutual TLS as the manager serves it (client certificates optional at the
// handshake, each call decides): bootstrap, join with a token, renewal, join tokens.
#include "manager/ca_service.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/cluster_identity.h"
#include "manager/server.h"
#include "security/tls_credentials.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using security::Role;
using ::testing::HasSubstr;
using testing_util::TempDir;

class CaServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SqliteStoreOptions opts;
    opts.parse = ParseStoredObject;
    auto store = SqliteStore::Open((tmp_.path() / "store.db").string(), opts);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto a = LoadOrCreateClusterAuthority(*store_, tmp_.path(), absl::Now());
    ASSERT_TRUE(a.ok()) << a.status();
    authority_ = std::make_unique<security::ClusterAuthority>(std::move(*a));
    revoked_ = std::make_shared<security::RevocationList>();
    auto authorizer = security::Authorizer::Create(security::AuthMode::kMutualTls, "127.0.0.1:0",
                                                   authority_->cluster_id(), revoked_);
    ASSERT_TRUE(authorizer.ok()) << authorizer.status();
    service_ = std::make_unique<CaService>(*authority_, *store_, tmp_.path(), revoked_,
                                           RealClock::Get(), *authorizer);

    // The manager's own certificate, as the server presents it.
    security::CredentialsDirectory dir((tmp_.path() / "tls").string());
    auto kc = authority_->ca().IssueKeyAndCertificate(
        {"manager-1", Role::kManager, authority_->cluster_id()}, {absl::Hours(1), {"127.0.0.1"}},
        absl::Now());
    ASSERT_TRUE(kc.ok()) << kc.status();
    ASSERT_TRUE(
        dir.Install({authority_->ca().cert_pem(), kc->cert_pem, kc->key_pem}, absl::Now()).ok());
    security::ServerTlsOptions tls;
    tls.client_certificates = security::ClientCertificates::kVerifyIfPresent;
    tls.clients = {authority_->cluster_id(), {}, "", revoked_};
    auto creds = security::MakeServerCredentials(dir.files(), tls);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  // A stub on a connection of its own, presenting `identity` (none: a joining node).
  std::unique_ptr<v1::Ca::Stub> Stub(
      const std::optional<security::KeyAndCertificate>& identity = std::nullopt) {
    security::PeerPolicy server{authority_->cluster_id(), {Role::kManager}, "", {}};
    auto creds =
        security::MakeStaticChannelCredentials(authority_->ca().cert_pem(), identity, server);
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return v1::Ca::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), *creds, args));
  }
  static void Deadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }
  std::string Token(Role role) { return std::string(authority_->tokens().Get(role)->reveal()); }
  // Joins with `token`: the new node's key and certificate.
  grpc::Status Join(const std::string& token, security::KeyAndCertificate* out,
                    v1::NodeCertificate* resp) {
    auto key = security::GeneratePrivateKey();
    auto csr = security::CreateCsr(*key);
    v1::JoinClusterRequest req;
    req.set_token(token);
    req.set_csr_pem(*csr);
    req.add_hosts("127.0.0.1");
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = Stub()->JoinCluster(&ctx, req, resp);
    if (out != nullptr) *out = {std::move(*key), resp->cert_pem()};
    return s;
  }
  grpc::Status GetToken(const std::optional<security::KeyAndCertificate>& who,
                        const std::string& role, bool rotate, std::string* token) {
    v1::GetJoinTokenRequest req;
    req.set_role(role);
    req.set_rotate(rotate);
    v1::GetJoinTokenResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = Stub(who)->GetJoinToken(&ctx, req, &resp);
    *token = resp.token();
    return s;
  }
  security::KeyAndCertificate Admin() {
    auto kc = authority_->ca().IssueKeyAndCertificate(
        {"admin", Role::kAdmin, authority_->cluster_id()}, {absl::Hours(1), {}}, absl::Now());
    EXPECT_TRUE(kc.ok()) << kc.status();
    return std::move(*kc);
  }

  TempDir tmp_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<security::ClusterAuthority> authority_;
  std::shared_ptr<security::RevocationList> revoked_;
  std::unique_ptr<CaService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(CaServiceTest, TheCaCertificateIsServedWithoutAClientCertificate) {
  auto stub = v1::Ca::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                                  security::MakeBootstrapChannelCredentials()));
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::GetCaCertificateResponse resp;
  ASSERT_TRUE(stub->GetCaCertificate(&ctx, {}, &resp).ok());
  EXPECT_EQ(resp.ca_cert_pem(), authority_->ca().cert_pem());
  EXPECT_EQ(resp.cluster_id(), authority_->cluster_id());
}

TEST_F(CaServiceTest, JoinIssuesTheTokensRoleToANodeIdTheCaChooses) {
  v1::NodeCertificate a, b, m;
  ASSERT_TRUE(Join(Token(Role::kWorker), nullptr, &a).ok());
  ASSERT_TRUE(Join(Token(Role::kWorker), nullptr, &b).ok());
  ASSERT_TRUE(Join(Token(Role::kManager), nullptr, &m).ok());
  EXPECT_EQ(a.role(), "worker");
  EXPECT_EQ(m.role(), "manager");
  EXPECT_FALSE(a.node_id().empty());
  EXPECT_NE(a.node_id(), b.node_id());
  EXPECT_EQ(a.ca_cert_pem(), authority_->ca().cert_pem());
  auto info = security::VerifyCertificate(a.ca_cert_pem(), a.cert_pem(), absl::Now());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->identity.node_id, a.node_id());
  EXPECT_EQ(info->identity.role, Role::kWorker);

  v1::NodeCertificate bad;
  grpc::Status s =
      Join(Token(Role::kWorker).substr(0, 60) + "0000000000000000000000000", nullptr, &bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_TRUE(bad.cert_pem().empty());
}

TEST_F(CaServiceTest, RenewKeepsTheIdentityAndNeedsAnUnrevokedCertificate) {
  security::KeyAndCertificate node;
  v1::NodeCertificate joined;
  ASSERT_TRUE(Join(Token(Role::kWorker), &node, &joined).ok());

  auto renew = [&](v1::Ca::Stub& stub, v1::NodeCertificate* resp) {
    auto key = security::GeneratePrivateKey();
    v1::RenewCertificateRequest req;
    req.set_csr_pem(*security::CreateCsr(*key));
    grpc::ClientContext ctx;
    Deadline(&ctx);
    return stub.Renew(&ctx, req, resp);
  };
  auto open = Stub(node);
  v1::NodeCertificate renewed;
  ASSERT_TRUE(renew(*open, &renewed).ok());
  EXPECT_EQ(renewed.node_id(), joined.node_id());
  EXPECT_EQ(renewed.role(), "worker");
  EXPECT_NE(renewed.cert_pem(), joined.cert_pem());

  v1::NodeCertificate none;
  grpc::Status s = renew(*Stub(), &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("renewal needs the node's current certificate"));

  // Revoked: refused on the connection that is already open, and at the next handshake.
  revoked_->RevokeNode(joined.node_id(), absl::Now(), absl::Now() + absl::Hours(1));
  s = renew(*open, &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_TRUE(none.cert_pem().empty());
  EXPECT_FALSE(renew(*Stub(node), &none).ok());
  EXPECT_TRUE(none.cert_pem().empty());
}

TEST_F(CaServiceTest, JoinTokensAreForAdminsAndARotationIsStored) {
  std::string token;
  security::KeyAndCertificate worker;
  v1::NodeCertificate joined;
  ASSERT_TRUE(Join(Token(Role::kWorker), &worker, &joined).ok());
  EXPECT_EQ(GetToken(worker, "worker", false, &token).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(GetToken(std::nullopt, "worker", false, &token).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status bad_role = GetToken(Admin(), "admin", false, &token);
  EXPECT_EQ(bad_role.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_role.error_message(), HasSubstr("must be worker or manager"));

  const std::string old_token = Token(Role::kWorker);
  ASSERT_TRUE(GetToken(Admin(), "worker", false, &token).ok());
  EXPECT_EQ(token, old_token);
  ASSERT_TRUE(GetToken(Admin(), "worker", true, &token).ok());
  EXPECT_NE(token, old_token);
  const std::string manager_token = Token(Role::kManager);

  v1::NodeCertificate refused, admitted;
  EXPECT_EQ(Join(old_token, nullptr, &refused).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Join(token, nullptr, &admitted).ok());
  // The node that joined with the old token keeps its certificate.
  std::string unused;
  EXPECT_EQ(GetToken(worker, "worker", false, &unused).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // A manager restart loads the rotated token, and the other role's is unchanged.
  auto reloaded = LoadOrCreateClusterAuthority(*store_, tmp_.path(), absl::Now());
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->tokens().Get(Role::kWorker)->reveal(), token);
  EXPECT_EQ(reloaded->tokens().Get(Role::kManager)->reveal(), manager_token);
}

TEST(JoinTokenCliTest, PrintsRotatesAndRefusesOtherRoles) {
  TempDir tmp;
  auto m = ManagerServer::Start(testing_util::TestManagerOptions((tmp.path() / "m").string()),
                                RealClock::Get());
  ASSERT_TRUE(m.ok()) << m.status();
  auto cli = [&](std::vector<std::string> args, std::string* out, std::string* err) {
    args.insert(args.begin(), {"warren", "--manager", (*m)->api_addr(), "cluster", "join-token"});
    std::ostringstream o, e;
    int code = RunCli(args, o, e);
    *out = o.str();
    *err = e.str();
    return code;
  };
  std::string out, err;
  ASSERT_EQ(cli({"worker", "-q"}, &out, &err), 0) << err;
  const std::string token(
      (*m)->authority()->tokens().Get(security::Role::kWorker).value().reveal());
  EXPECT_EQ(out, token + "\n");
  ASSERT_EQ(cli({"worker"}, &out, &err), 0) << err;
  EXPECT_THAT(out, HasSubstr("warren worker --manager " + (*m)->api_addr() + " --token " + token));
  ASSERT_EQ(cli({"worker", "--rotate", "-q"}, &out, &err), 0) << err;
  EXPECT_THAT(out, HasSubstr("SWMTKN-1-"));
  EXPECT_NE(out, token + "\n");
  EXPECT_NE(cli({"admin"}, &out, &err), 0);
  EXPECT_THAT(err, HasSubstr("admin"));
  (*m)->Shutdown();
}

}  // namespace
}  // namespace warren
