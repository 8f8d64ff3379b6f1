// Mutual TLS through gRPC with the cluster CA: who may connect, what the server reads from the
// auth context, and certificate renewal under a running server and an open stream.
#include <sys/stat.h>

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "http/grpc_acceptor.h"
#include "raw_socket.h"
#include "security/authz.h"
#include "security/cluster_authority.h"
#include "security/tls_credentials.h"
#include "test_util.h"
#include "warren/testing/echo.grpc.pb.h"

namespace warren::security {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;
using testing_util::WaitFor;
using warren::testing::Echo;
using warren::testing::EchoRequest;
using warren::testing::EchoResponse;

// Answers with the peer identity read from the auth context; with `require_identity`, a call
// without a usable certificate gets AuthenticatePeer's status, as every Warren RPC will.
class EchoService final : public Echo::Service {
 public:
  EchoService(std::string cluster_id, std::shared_ptr<RevocationList> revoked)
      : cluster_id_(std::move(cluster_id)), revoked_(std::move(revoked)) {}
  void set_require_identity(bool v) { require_identity_ = v; }

  grpc::Status Unary(grpc::ServerContext* ctx, const EchoRequest* req,
                     EchoResponse* resp) override {
    return Answer(*ctx, *req, resp);
  }
  grpc::Status Stream(grpc::ServerContext* ctx,
                      grpc::ServerReaderWriter<EchoResponse, EchoRequest>* stream) override {
    EchoRequest req;
    while (stream->Read(&req)) {
      EchoResponse resp;
      grpc::Status s = Answer(*ctx, req, &resp);
      if (!s.ok()) return s;
      stream->Write(resp);
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status Answer(const grpc::ServerContext& ctx, const EchoRequest& req, EchoResponse* resp) {
    resp->set_text(req.text());
    auto peer = AuthenticatePeer(*ctx.auth_context(), cluster_id_, *revoked_);
    if (!peer.ok()) {
      if (require_identity_) {
        return grpc::Status(static_cast<grpc::StatusCode>(peer.status().code()),
                            std::string(peer.status().message()));
      }
      return grpc::Status::OK;
    }
    resp->set_peer_node_id(peer->identity.node_id);
    resp->set_peer_role(std::string(RoleName(peer->identity.role)));
    resp->set_peer_cluster_id(peer->identity.cluster_id);
    resp->set_peer_serial(peer->serial);
    return grpc::Status::OK;
  }

  const std::string cluster_id_;
  const std::shared_ptr<RevocationList> revoked_;
  bool require_identity_ = false;
};

// The serial of the certificate the other end presented on this call's connection.
std::string PeerSerial(const grpc::ClientContext& ctx) {
  auto auth = ctx.auth_context();
  if (!auth) return "";
  auto peer = PeerCertificate(*auth);
  return peer.ok() ? peer->serial : "";
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto auth = ClusterAuthority::Create("c1", Now(), {kDefaultCaValidity, absl::Hours(1)});
    ASSERT_TRUE(auth.ok()) << auth.status();
    auth_ = std::make_unique<ClusterAuthority>(std::move(*auth));
    revoked_ = std::make_shared<RevocationList>();
  }
  void TearDown() override {
    if (acceptor_) acceptor_->Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  static absl::Time Now() { return absl::Now(); }

  // Issues `id` a key and certificate into a credentials directory under the temp dir.
  CredentialsDirectory Install(const std::string& name, CertificateIdentity id,
                               const ClusterAuthority* ca = nullptr) {
    if (ca == nullptr) ca = auth_.get();
    CredentialsDirectory dir((tmp_.path() / name).string());
    auto kc = ca->ca().IssueKeyAndCertificate(id, {absl::Hours(1), {"127.0.0.1"}}, Now());
    EXPECT_TRUE(kc.ok()) << kc.status();
    EXPECT_TRUE(dir.Install({ca->ca().cert_pem(), kc->cert_pem, kc->key_pem}, Now()).ok());
    return dir;
  }

  void StartServer(const TlsFiles& files, ClientCertificates mode) {
    ServerTlsOptions opts;
    opts.client_certificates = mode;
    opts.clients = {"c1", {}, "", revoked_};
    opts.refresh_interval = absl::Seconds(1);
    auto creds = MakeServerCredentials(files, opts);
    ASSERT_TRUE(creds.ok()) << creds.status();
    service_ = std::make_unique<EchoService>("c1", revoked_);
    // Accepted as Warren's servers accept (GrpcAcceptor handing each connection to gRPC's TLS
    // handshake), so every test here also checks what reaches a call through it.
    auto acceptor = GrpcAcceptor::Listen("127.0.0.1:0");
    ASSERT_TRUE(acceptor.ok()) << acceptor.status();
    acceptor_ = std::move(*acceptor);
    grpc::ServerBuilder builder;
    ConfigureGrpcServer(builder);
    acceptor_->UseTls(builder, *creds);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    acceptor_->Start(server_.get());
    port_ = acceptor_->port();
    ASSERT_NE(port_, 0);
  }

  // A new channel (own subchannel pool: a new connection and handshake).
  std::unique_ptr<Echo::Stub> Stub(std::shared_ptr<grpc::ChannelCredentials> creds) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return Echo::NewStub(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), creds, args));
  }

  std::shared_ptr<grpc::ChannelCredentials> ClientCreds(const CredentialsDirectory& dir,
                                                        PeerPolicy server = {"c1", {}, "", {}}) {
    ChannelTlsOptions opts;
    opts.server = std::move(server);
    opts.refresh_interval = absl::Seconds(1);
    auto creds = MakeChannelCredentials(dir.files(), opts);
    EXPECT_TRUE(creds.ok()) << creds.status();
    return creds.ok() ? *creds : nullptr;
  }

  static grpc::Status Call(Echo::Stub& stub, EchoResponse* resp,
                           grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    if (ctx == nullptr) ctx = &local;
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    EchoRequest req;
    req.set_text("hi");
    return stub.Unary(ctx, req, resp);
  }

  TempDir tmp_;
  std::unique_ptr<ClusterAuthority> auth_;
  std::shared_ptr<RevocationList> revoked_;
  std::unique_ptr<EchoService> service_;
  std::unique_ptr<GrpcAcceptor> acceptor_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(TlsTest, CaSignedClientConnectsAndServerReadsItsIdentity) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  auto client_dir = Install("client", {"cli", Role::kAdmin, "c1"});
  auto stub = Stub(ClientCreds(client_dir, {"c1", {Role::kManager}, "", {}}));
  EchoResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = Call(*stub, &resp, &ctx);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.peer_node_id(), "cli");
  EXPECT_EQ(resp.peer_role(), "admin");
  EXPECT_EQ(resp.peer_cluster_id(), "c1");
  // And the client sees the server's identity.
  auto server_peer = PeerCertificate(*ctx.auth_context());
  ASSERT_TRUE(server_peer.ok()) << server_peer.status();
  EXPECT_EQ(server_peer->identity.node_id, "m1");
  EXPECT_EQ(server_peer->identity.role, Role::kManager);
}

TEST_F(TlsTest, ClientWithoutCertificateFailsTheHandshake) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  auto creds = MakeStaticChannelCredentials(auth_->ca().cert_pem(), std::nullopt, {"c1"});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EchoResponse resp;
  grpc::Status s = Call(*Stub(*creds), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsTest, ClientCertificateFromAnotherCaFailsTheHandshake) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  // Same cluster id, same node id and role: only the CA differs.
  auto other = ClusterAuthority::Create("c1", Now());
  ASSERT_TRUE(other.ok());
  auto kc = other->ca().IssueKeyAndCertificate({"cli", Role::kAdmin, "c1"}, {}, Now());
  ASSERT_TRUE(kc.ok());
  auto creds = MakeStaticChannelCredentials(auth_->ca().cert_pem(), *kc, {"c1"});
  ASSERT_TRUE(creds.ok()) << creds.status();
  EchoResponse resp;
  grpc::Status s = Call(*Stub(*creds), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsTest, ClientRefusesAServerOfAnotherCaOrRole) {
  auto other = ClusterAuthority::Create("c1", Now());
  ASSERT_TRUE(other.ok());
  auto impostor_dir = Install("impostor", {"m1", Role::kManager, "c1"}, &*other);
  StartServer(impostor_dir.files(), ClientCertificates::kVerifyIfPresent);
  auto client_dir = Install("client", {"cli", Role::kAdmin, "c1"});
  EchoResponse resp;
  grpc::Status s = Call(*Stub(ClientCreds(client_dir)), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsTest, ClientPolicyRefusesAServerOfTheWrongRoleOrNode) {
  auto server_dir = Install("server", {"w1", Role::kWorker, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  auto client_dir = Install("client", {"m1", Role::kManager, "c1"});
  EchoResponse resp;
  // A worker's certificate where a manager is expected.
  EXPECT_EQ(
      Call(*Stub(ClientCreds(client_dir, {"c1", {Role::kManager}, "", {}})), &resp).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  // Another node than the one the manager means to call.
  EXPECT_EQ(
      Call(*Stub(ClientCreds(client_dir, {"c1", {Role::kWorker}, "w2", {}})), &resp).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  // The right one.
  grpc::Status ok = Call(*Stub(ClientCreds(client_dir, {"c1", {Role::kWorker}, "w1", {}})), &resp);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

TEST_F(TlsTest, RevokedNodeIsRefusedOnTheOpenConnectionAndAtTheNextHandshake) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  service_->set_require_identity(true);
  auto client_dir = Install("client", {"w1", Role::kWorker, "c1"});
  auto stub = Stub(ClientCreds(client_dir));
  EchoResponse resp;
  ASSERT_TRUE(Call(*stub, &resp).ok());
  revoked_->RevokeNode("w1", Now(), Now() + absl::Hours(1));
  // Same channel, same connection: the per-call check refuses at once.
  grpc::Status s = Call(*stub, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "node w1 was removed from the cluster");
  // A new connection fails at the handshake (the server's verifier consults the list).
  EXPECT_EQ(Call(*Stub(ClientCreds(client_dir)), &resp).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, OptionalClientCertificateLeavesTheDecisionToEachCall) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kVerifyIfPresent);
  service_->set_require_identity(true);
  auto anon = MakeStaticChannelCredentials(auth_->ca().cert_pem(), std::nullopt, {"c1"});
  ASSERT_TRUE(anon.ok());
  EchoResponse resp;
  grpc::Status s = Call(*Stub(*anon), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  // A certificate that is sent must still verify: another CA's fails the handshake.
  auto other = ClusterAuthority::Create("c1", Now());
  auto kc = other->ca().IssueKeyAndCertificate({"cli", Role::kAdmin, "c1"}, {}, Now());
  auto foreign = MakeStaticChannelCredentials(auth_->ca().cert_pem(), *kc, {"c1"});
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(Call(*Stub(*foreign), &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  auto client_dir = Install("client", {"cli", Role::kAdmin, "c1"});
  s = Call(*Stub(ClientCreds(client_dir)), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.peer_node_id(), "cli");
}

TEST_F(TlsTest, BootstrapCredentialsReachAServerTheyCannotYetVerify) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kVerifyIfPresent);
  EchoResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = Call(*Stub(MakeBootstrapChannelCredentials()), &resp, &ctx);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.peer_node_id(), "");  // anonymous to the server
}

TEST_F(TlsTest, RenewedCertificatesAreUsedWithoutRestartAndOpenStreamsStay) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  auto client_dir = Install("client", {"w1", Role::kWorker, "c1"});
  auto client_creds = ClientCreds(client_dir);

  // An open stream on the first certificates.
  auto stream_stub = Stub(client_creds);
  grpc::ClientContext stream_ctx;
  auto stream = stream_stub->Stream(&stream_ctx);
  EchoRequest req;
  req.set_text("before");
  EchoResponse resp;
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  const std::string old_server_serial = PeerSerial(stream_ctx);
  const std::string old_client_serial = resp.peer_serial();
  ASSERT_FALSE(old_server_serial.empty());

  // Renew both sides (new keys too).
  auto server_renewed =
      auth_->ca().IssueKeyAndCertificate({"m1", Role::kManager, "c1"}, {absl::Hours(1), {}}, Now());
  auto client_renewed =
      auth_->ca().IssueKeyAndCertificate({"w1", Role::kWorker, "c1"}, {absl::Hours(1), {}}, Now());
  ASSERT_TRUE(
      server_dir
          .Install({auth_->ca().cert_pem(), server_renewed->cert_pem, server_renewed->key_pem},
                   Now())
          .ok());
  ASSERT_TRUE(
      client_dir
          .Install({auth_->ca().cert_pem(), client_renewed->cert_pem, client_renewed->key_pem},
                   Now())
          .ok());
  const std::string new_server_serial = ParseNodeCertificate(server_renewed->cert_pem)->serial;
  const std::string new_client_serial = ParseNodeCertificate(client_renewed->cert_pem)->serial;

  // New connections (same credentials objects) pick both renewals up within a refresh interval.
  std::string seen_server;
  std::string seen_client;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    EchoResponse r;
    if (!Call(*Stub(client_creds), &r, &ctx).ok()) return false;
    seen_server = PeerSerial(ctx);
    seen_client = r.peer_serial();
    return seen_server == new_server_serial && seen_client == new_client_serial;
  })) << "server presented "
      << seen_server << ", client " << seen_client;

  // The stream opened before the renewal still works, on its original connection.
  req.set_text("after");
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.text(), "after");
  EXPECT_EQ(resp.peer_serial(), old_client_serial);
  EXPECT_EQ(PeerSerial(stream_ctx), old_server_serial);
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// gRPC 1.51's own TLS listener (builder.AddListeningPort with TLS credentials) never accepted
// again after this: its accept loop gives up on the first EMFILE. Warren's accept loop pauses
// and goes on, and hands the connections to the TLS handshake as before.
TEST_F(TlsTest, TheTlsServerAcceptsAgainAfterTheProcessRanOutOfDescriptors) {
  auto server_dir = Install("server", {"m1", Role::kManager, "c1"});
  StartServer(server_dir.files(), ClientCertificates::kRequire);
  auto client_dir = Install("client", {"cli", Role::kAdmin, "c1"});
  auto creds = ClientCreds(client_dir, {"c1", {Role::kManager}, "", {}});
  EchoResponse resp;
  ASSERT_TRUE(Call(*Stub(creds), &resp).ok());
  // Raw clients while out of descriptors (a TLS client needs more than a socket).
  EXPECT_TRUE(test::RunOutOfDescriptorsUntilAnAcceptFails(
      port_, [&] { return acceptor_->accept_errors() > 0; }));
  // A new connection, a new handshake: the server still reads the client's identity.
  grpc::Status s;
  EXPECT_TRUE(WaitFor([&] {
    s = Call(*Stub(creds), &resp);
    return s.ok();
  })) << s.error_message();
  EXPECT_EQ(resp.peer_node_id(), "cli");
  EXPECT_EQ(resp.peer_role(), "admin");
}

TEST(CredentialsDirectoryTest, InstallSwitchesGenerationsAtomically) {
  TempDir tmp;
  const absl::Time now = absl::Now();
  auto auth = ClusterAuthority::Create("c1", now);
  ASSERT_TRUE(auth.ok());
  CredentialsDirectory dir((tmp.path() / "tls").string());
  EXPECT_FALSE(dir.HasCredentials());
  std::vector<std::string> serials;
  int64_t last_mtime = 0;
  for (int i = 0; i < 4; ++i) {
    auto kc = auth->ca().IssueKeyAndCertificate({"n1", Role::kWorker, "c1"}, {}, now);
    ASSERT_TRUE(kc.ok());
    ASSERT_TRUE(dir.Install({auth->ca().cert_pem(), kc->cert_pem, kc->key_pem}, now).ok());
    serials.push_back(ParseNodeCertificate(kc->cert_pem)->serial);
    auto read = dir.Read();
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(ParseNodeCertificate(read->cert_pem)->serial, serials.back());
    EXPECT_TRUE(*KeyMatchesCertificate(read->key_pem, read->cert_pem));
    // Installs within one second still get distinct whole-second modification times.
    struct stat st {};
    ASSERT_EQ(::stat(dir.files().cert.c_str(), &st), 0);
    EXPECT_GT(st.st_mtim.tv_sec, last_mtime);
    last_mtime = st.st_mtim.tv_sec;
    ASSERT_EQ(::stat(dir.files().key.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
  }
  EXPECT_TRUE(dir.HasCredentials());
  EXPECT_EQ(fs::read_symlink(tmp.path() / "tls" / "current"), "gen-4");
  // Only the current and the previous generation are kept.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(tmp.path() / "tls")) {
    entries.push_back(e.path().filename().string());
  }
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"current", "gen-3", "gen-4"}));
  struct stat st {};
  ASSERT_EQ(::stat((tmp.path() / "tls").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // Credentials without a cluster to check peers against are refused.
  EXPECT_EQ(MakeServerCredentials(dir.files(), {}).status().message(),
            "server TLS options: clients.cluster_id is required");
  EXPECT_EQ(MakeChannelCredentials(dir.files(), {}).status().message(),
            "channel TLS options: server.cluster_id is required");
}

TEST(CredentialsDirectoryTest, InstallRefusesMismatchedKeyAndForeignCertificate) {
  TempDir tmp;
  const absl::Time now = absl::Now();
  auto auth = ClusterAuthority::Create("c1", now);
  auto other = ClusterAuthority::Create("c1", now);
  CredentialsDirectory dir((tmp.path() / "tls").string());
  auto kc = auth->ca().IssueKeyAndCertificate({"n1", Role::kWorker, "c1"}, {}, now);
  auto kc2 = auth->ca().IssueKeyAndCertificate({"n1", Role::kWorker, "c1"}, {}, now);
  EXPECT_EQ(dir.Install({auth->ca().cert_pem(), kc->cert_pem, kc2->key_pem}, now).message(),
            "TLS key does not belong to the certificate");
  auto s = dir.Install({other->ca().cert_pem(), kc->cert_pem, kc->key_pem}, now);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("does not verify against the cluster CA"), std::string::npos);
  EXPECT_FALSE(dir.HasCredentials());
  auto creds = MakeServerCredentials(dir.files(), {});
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace warren::security
