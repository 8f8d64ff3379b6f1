// Authorization of the manager's Control and Dispatcher services from the peer certificate:
// the method table, UNAUTHENTICATED without a certificate, roles, and the own-node rule.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "manager/manager_api.h"
#include "manager/secret_service.h"
#include "security/authz.h"
#include "security/cluster_authority.h"
#include "security/tls_credentials.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"
#include "warren/v1/dashboard.grpc.pb.h"
#include "warren/v1/security.grpc.pb.h"

namespace warren {
namespace {

using security::AuthMode;
using security::Authorizer;
using security::ClientCertificates;
using security::ClusterAuthority;
using security::Role;
using testing_util::TempDir;

absl::Time Now() { return absl::Now(); }

std::vector<std::string> MethodsOf(const std::string& name) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
  EXPECT_NE(service, nullptr) << name;
  std::vector<std::string> out;
  if (service == nullptr) return out;
  for (int i = 0; i < service->method_count(); ++i) {
    out.push_back(absl::StrCat("/", service->full_name(), "/", service->method(i)->name()));
  }
  return out;
}

std::vector<std::string> ManagerMethods() {
  std::vector<std::string> all = MethodsOf("warren.v1.Control");
  for (auto& m : MethodsOf("warren.v1.Dispatcher")) all.push_back(m);
  for (auto& m : MethodsOf("warren.v1.Secrets")) all.push_back(m);
  return all;
}

TEST(ApiAuthzTableTest, EveryMethodOfEveryServiceHasARule) {
  for (const char* service : {"warren.v1.Control", "warren.v1.Dispatcher", "warren.v1.WorkerAgent",
                              "warren.v1.ClusterAdmin", "warren.v1.Secrets", "warren.v1.Ingresses",
                              "warren.v1.DashboardAccess"}) {
    for (const std::string& m : MethodsOf(service)) {
      const security::MethodRule* rule = security::FindMethodRule(m);
      ASSERT_NE(rule, nullptr) << m << " has no entry in the authorization table";
      EXPECT_FALSE(rule->open) << m;
      // Admins may do everything but read the ingress's private keys.
      const bool admin =
          std::find(rule->roles.begin(), rule->roles.end(), Role::kAdmin) != rule->roles.end();
      EXPECT_EQ(admin, m != "/warren.v1.Dispatcher/GetIngressCertificates") << m;
    }
  }
  EXPECT_EQ(security::FindMethodRule("/warren.v1.Dispatcher/GetIngressCertificates")->roles,
            (std::vector<Role>{Role::kManager, Role::kWorker}));
  EXPECT_EQ(security::FindMethodRule("/warren.v1.Control/NoSuchMethod"), nullptr);
  EXPECT_TRUE(security::FindMethodRule("/grpc.health.v1.Health/Check")->open);
  // The CA: the bootstrap calls are open (a join is authorized by its token), renewal needs any
  // certificate of the cluster, join tokens an admin.
  for (const std::string& m : MethodsOf("warren.v1.Ca")) {
    const security::MethodRule* rule = security::FindMethodRule(m);
    ASSERT_NE(rule, nullptr) << m << " has no entry in the authorization table";
    const bool bootstrap =
        m == "/warren.v1.Ca/GetCaCertificate" || m == "/warren.v1.Ca/JoinCluster";
    EXPECT_EQ(rule->open, bootstrap) << m;
    if (!bootstrap) {
      EXPECT_NE(std::find(rule->roles.begin(), rule->roles.end(), Role::kAdmin), rule->roles.end())
          << m;
    }
  }
  EXPECT_EQ(security::FindMethodRule("/warren.v1.Ca/NoSuchMethod"), nullptr);
  EXPECT_EQ(security::FindMethodRule("/warren.v1.Ca/GetJoinToken")->roles,
            std::vector<Role>{Role::kAdmin});
  EXPECT_EQ(security::FindMethodRule("/warren.v1.Ca/Renew")->roles.size(), 4u);
  // The cluster's status is a read; its backup (every secret, sealed) is the admin's.
  EXPECT_EQ(security::FindMethodRule("/warren.v1.ClusterAdmin/Status")->roles,
            (std::vector<Role>{Role::kAdmin, Role::kReadOnly}));
  EXPECT_EQ(security::FindMethodRule("/warren.v1.ClusterAdmin/Backup")->roles,
            std::vector<Role>{Role::kAdmin});
  // A dashboard login token can carry the admin role: only an admin may create one.
  EXPECT_EQ(security::FindMethodRule(absl::StrCat("/", v1::DashboardAccess::service_full_name(),
                                                  "/CreateDashboardToken"))
                ->roles,
            std::vector<Role>{Role::kAdmin});
}

TEST(ApiAuthzTableTest, PlaintextIsOnlyLegalOnLoopback) {
  EXPECT_TRUE(Authorizer::Create(AuthMode::kPlaintextLoopback, "127.0.0.1:8080", "", nullptr).ok());
  EXPECT_TRUE(Authorizer::Create(AuthMode::kPlaintextLoopback, "127.9.0.1:0", "", nullptr).ok());
  EXPECT_TRUE(Authorizer::Create(AuthMode::kPlaintextLoopback, "[::1]:80", "", nullptr).ok());
  EXPECT_TRUE(Authorizer::Create(AuthMode::kPlaintextLoopback, "localhost:80", "", nullptr).ok());
  auto any = Authorizer::Create(AuthMode::kPlaintextLoopback, "0.0.0.0:8080", "", nullptr);
  ASSERT_FALSE(any.ok());
  EXPECT_EQ(any.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Authorizer::Create(AuthMode::kPlaintextLoopback, "10.0.0.1:1", "", nullptr).ok());
  EXPECT_FALSE(Authorizer::Create(AuthMode::kMutualTls, "0.0.0.0:1", "", nullptr).ok());
}

// A manager API over mutual TLS that requests but does not require client certificates, so a
// call without one reaches the RPC layer.
class ApiAuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto auth = ClusterAuthority::Create("c1", Now());
    ASSERT_TRUE(auth.ok()) << auth.status();
    auth_ = std::make_unique<ClusterAuthority>(std::move(*auth));
    revoked_ = std::make_shared<security::RevocationList>();
    auto store = SqliteStore::Open((tmp_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    events_ = std::make_unique<EventLog>(*store_, RealClock::Get());
    liveness_ = std::make_unique<NodeLiveness>(RealClock::Get());
    api_ =
        std::make_unique<ManagerApi>(*store_, RealClock::Get(), *events_, *liveness_, ApiOptions{});
    auto authorizer = Authorizer::Create(AuthMode::kMutualTls, "127.0.0.1:0", "c1", revoked_);
    ASSERT_TRUE(authorizer.ok()) << authorizer.status();
    api_->SetAuthorizer(*authorizer);
    secrets_ = std::make_unique<SecretService>(
        *store_, RealClock::Get(), *events_,
        [] {
          return absl::StatusOr<security::SecretBytes>(security::SecretBytes(std::string(32, 'k')));
        },
        [](const std::string&, const std::string&) { return absl::OkStatus(); });
    secrets_->SetAuthorizer(*authorizer);

    security::CredentialsDirectory dir((tmp_.path() / "server").string());
    auto kc = auth_->ca().IssueKeyAndCertificate({"m1", Role::kManager, "c1"},
                                                 {absl::Hours(1), {"127.0.0.1"}}, Now());
    ASSERT_TRUE(kc.ok()) << kc.status();
    ASSERT_TRUE(dir.Install({auth_->ca().cert_pem(), kc->cert_pem, kc->key_pem}, Now()).ok());
    security::ServerTlsOptions opts;
    opts.client_certificates = ClientCertificates::kVerifyIfPresent;
    opts.clients = {"c1", {}, "", revoked_};
    auto creds = security::MakeServerCredentials(dir.files(), opts);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(&api_->control());
    builder.RegisterService(&api_->dispatcher());
    builder.RegisterService(secrets_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (api_) api_->Shutdown();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // A channel presenting a certificate for `id`, or none.
  std::shared_ptr<grpc::Channel> Channel(std::optional<security::CertificateIdentity> id) {
    std::optional<security::KeyAndCertificate> kc;
    if (id) {
      auto issued = auth_->ca().IssueKeyAndCertificate(*id, {absl::Hours(1), {}}, Now());
      EXPECT_TRUE(issued.ok()) << issued.status();
      kc = std::move(*issued);
    }
    auto creds = security::MakeStaticChannelCredentials(auth_->ca().cert_pem(), kc, {"c1"});
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), *creds, args);
  }

  static void Deadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  // Calls `method` with an empty request (every request message parses from no bytes); a
  // server-streaming method answers the same way to a unary call when it fails up front.
  static grpc::Status RawCall(grpc::Channel* channel, const std::string& method) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::internal::RpcMethod rpc(method.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
    v1::GetVersionRequest req;
    v1::GetVersionRequest resp;
    return grpc::internal::BlockingUnaryCall<v1::GetVersionRequest, v1::GetVersionRequest>(
        channel, rpc, &ctx, req, &resp);
  }

  grpc::Status Register(grpc::Channel* channel, const std::string& name, const std::string& range,
                        const std::string& role = "", v1::Node* out = nullptr) {
    auto stub = v1::Dispatcher::NewStub(std::shared_ptr<grpc::Channel>(channel, [](auto*) {}));
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::RegisterNodeRequest req;
    req.set_name(name);
    req.set_address_range(range);
    req.set_role(role);
    v1::Node node;
    grpc::Status s = stub->RegisterNode(&ctx, req, &node);
    if (out != nullptr) *out = node;
    return s;
  }

  TempDir tmp_;
  std::unique_ptr<ClusterAuthority> auth_;
  std::shared_ptr<security::RevocationList> revoked_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<NodeLiveness> liveness_;
  std::unique_ptr<ManagerApi> api_;
  std::unique_ptr<SecretService> secrets_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(ApiAuthzTest, NoCertificateIsUnauthenticatedOnEveryRpc) {
  auto anon = Channel(std::nullopt);
  for (const std::string& m : ManagerMethods()) {
    grpc::Status s = RawCall(anon.get(), m);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << m << ": " << s.error_message();
  }
}

// The manager's own code calls handlers without a ServerContext (the dashboard, a secret update
// rolling its services): one rule for every service, the manager's authority. The same calls
// from the network without a certificate stay UNAUTHENTICATED.
TEST_F(ApiAuthzTest, InProcessCallsActWithTheManagersAuthorityAndRemoteOnesNeedACertificate) {
  v1::CreateServiceRequest create;
  create.mutable_spec()->set_name("web");
  create.mutable_spec()->set_replicas(1);
  create.mutable_spec()->mutable_template_()->set_command("app");
  v1::Service service;
  grpc::Status s = api_->control().CreateService(nullptr, &create, &service);
  EXPECT_TRUE(s.ok()) << s.error_message();
  v1::ListServicesRequest list_services;
  v1::ListServicesResponse services;
  s = api_->control().ListServices(nullptr, &list_services, &services);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(services.services_size(), 1);

  v1::CreateSecretRequest secret;
  secret.set_name("db-password");
  secret.set_value("hunter2");
  v1::Secret created;
  s = secrets_->CreateSecret(nullptr, &secret, &created);
  EXPECT_TRUE(s.ok()) << s.error_message();
  v1::ListSecretsRequest list_secrets;
  v1::ListSecretsResponse secrets;
  s = secrets_->ListSecrets(nullptr, &list_secrets, &secrets);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(secrets.secrets_size(), 1);

  auto anon = Channel(std::nullopt);
  for (const std::string& m :
       {"/warren.v1.Control/CreateService", "/warren.v1.Control/ListServices",
        "/warren.v1.Secrets/CreateSecret", "/warren.v1.Secrets/ListSecrets"}) {
    grpc::Status remote = RawCall(anon.get(), m);
    EXPECT_EQ(remote.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << m << ": " << remote.error_message();
  }
}

TEST_F(ApiAuthzTest, CertificateOfAnotherCaIsRefusedOnEveryRpc) {
  auto other = ClusterAuthority::Create("c1", Now());
  ASSERT_TRUE(other.ok());
  auto kc = other->ca().IssueKeyAndCertificate({"cli", Role::kAdmin, "c1"}, {}, Now());
  ASSERT_TRUE(kc.ok());
  auto creds = security::MakeStaticChannelCredentials(auth_->ca().cert_pem(), *kc, {"c1"});
  ASSERT_TRUE(creds.ok());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), *creds);
  for (const std::string& m : ManagerMethods()) {
    // Refused at the handshake today (the server verifies a certificate that is sent).
    EXPECT_FALSE(RawCall(channel.get(), m).ok()) << m;
  }
}

TEST_F(ApiAuthzTest, WorkerCannotCreateServicesAndReadOnlyCanListButNotCreate) {
  v1::CreateServiceRequest create;
  create.mutable_spec()->set_name("web");
  create.mutable_spec()->set_replicas(1);
  create.mutable_spec()->mutable_template_()->set_command("app");
  for (Role role : {Role::kWorker, Role::kReadOnly, Role::kManager}) {
    auto stub = v1::Control::NewStub(Channel({{"n1", role, "c1"}}));
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::Service out;
    grpc::Status s = stub->CreateService(&ctx, create, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << security::RoleName(role);
  }
  auto reader = v1::Control::NewStub(Channel({{"viewer", Role::kReadOnly, "c1"}}));
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ListServicesResponse list;
  EXPECT_TRUE(reader->ListServices(&ctx, {}, &list).ok());
  auto admin = v1::Control::NewStub(Channel({{"cli", Role::kAdmin, "c1"}}));
  grpc::ClientContext actx;
  Deadline(&actx);
  v1::Service out;
  grpc::Status s = admin->CreateService(&actx, create, &out);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ApiAuthzTest, OnlyAdminsWriteSecretsAndWorkersCannotListThem) {
  v1::CreateSecretRequest create;
  create.set_name("db-password");
  create.set_value("hunter2");
  for (Role role : {Role::kWorker, Role::kReadOnly, Role::kManager}) {
    auto stub = v1::Secrets::NewStub(Channel({{"n1", role, "c1"}}));
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::Secret out;
    EXPECT_EQ(stub->CreateSecret(&ctx, create, &out).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << security::RoleName(role);
  }
  auto worker = v1::Secrets::NewStub(Channel({{"n1", Role::kWorker, "c1"}}));
  grpc::ClientContext wctx;
  Deadline(&wctx);
  v1::ListSecretsResponse wlist;
  EXPECT_EQ(worker->ListSecrets(&wctx, {}, &wlist).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto admin = v1::Secrets::NewStub(Channel({{"cli", Role::kAdmin, "c1"}}));
  grpc::ClientContext actx;
  Deadline(&actx);
  v1::Secret created;
  grpc::Status s = admin->CreateSecret(&actx, create, &created);
  EXPECT_TRUE(s.ok()) << s.error_message();
  auto reader = v1::Secrets::NewStub(Channel({{"viewer", Role::kReadOnly, "c1"}}));
  grpc::ClientContext rctx;
  Deadline(&rctx);
  v1::ListSecretsResponse list;
  ASSERT_TRUE(reader->ListSecrets(&rctx, {}, &list).ok());
  ASSERT_EQ(list.secrets_size(), 1);
  EXPECT_EQ(list.secrets(0).name(), "db-password");
}

TEST_F(ApiAuthzTest, WorkerActsOnlyForItsOwnNode) {
  auto w1 = Channel({{"w1", Role::kWorker, "c1"}});
  auto w2 = Channel({{"w2", Role::kWorker, "c1"}});
  v1::Node n1;
  ASSERT_TRUE(Register(w1.get(), "host-a", "127.61.0.0/16", "", &n1).ok());
  EXPECT_EQ(n1.id(), "w1");
  EXPECT_EQ(n1.role(), "worker");
  ASSERT_TRUE(Register(w2.get(), "host-b", "127.62.0.0/16").ok());

  // Another node's name, a role the certificate does not carry, another address range.
  EXPECT_EQ(Register(w2.get(), "host-a", "127.63.0.0/16").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Register(w1.get(), "host-a", "127.61.0.0/16", "manager").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Register(w1.get(), "host-a", "127.64.0.0/16").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto stored = GetObject<v1::Node>(*store_, "w1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->role(), "worker");
  EXPECT_EQ(stored->address_range(), "127.61.0.0/16");
  // Registering again as itself is fine (a worker restart).
  EXPECT_TRUE(Register(w1.get(), "host-a", "127.61.0.0/16").ok());

  auto stub = v1::Dispatcher::NewStub(w2);
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::HeartbeatRequest req;
    req.set_node_id("w1");
    v1::HeartbeatResponse resp;
    EXPECT_EQ(stub->Heartbeat(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ReportTaskStatusRequest req;
    req.set_node_id("w1");
    v1::ReportTaskStatusResponse resp;
    EXPECT_EQ(stub->ReportTaskStatus(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::WatchAssignmentsRequest req;
    req.set_node_id("w1");
    auto reader = stub->WatchAssignments(&ctx, req);
    v1::Assignments a;
    EXPECT_FALSE(reader->Read(&a));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::HeartbeatRequest req;
    req.set_node_id("w2");
    v1::HeartbeatResponse resp;
    EXPECT_TRUE(stub->Heartbeat(&ctx, req, &resp).ok());
  }
}

// The ingress's private keys go to nodes only, each asking for itself.
TEST_F(ApiAuthzTest, IngressKeysGoToNodesOnlyNotToReadOnlyOrAdmin) {
  auto call = [&](std::optional<security::CertificateIdentity> id, const std::string& node) {
    auto stub = v1::Dispatcher::NewStub(Channel(id));
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetIngressCertificatesRequest req;
    req.set_node_id(node);
    v1::GetIngressCertificatesResponse resp;
    return stub->GetIngressCertificates(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(call({{"viewer", Role::kReadOnly, "c1"}}, "viewer"),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(call({{"cli", Role::kAdmin, "c1"}}, "cli"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(call(std::nullopt, "w1"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call({{"w2", Role::kWorker, "c1"}}, "w1"), grpc::StatusCode::PERMISSION_DENIED)
      << "a worker asks for itself only";
  EXPECT_EQ(call({{"w1", Role::kWorker, "c1"}}, "w1"), grpc::StatusCode::OK);
  EXPECT_EQ(call({{"m2", Role::kManager, "c1"}}, "m2"), grpc::StatusCode::OK);
}

TEST_F(ApiAuthzTest, RevokedNodeIsUnauthenticatedOnTheNextCall) {
  auto w1 = Channel({{"w1", Role::kWorker, "c1"}});
  ASSERT_TRUE(Register(w1.get(), "host-a", "127.61.0.0/16").ok());
  revoked_->RevokeNode("w1", Now(), Now() + absl::Hours(1));
  auto stub = v1::Dispatcher::NewStub(w1);
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::HeartbeatRequest req;
  req.set_node_id("w1");
  v1::HeartbeatResponse resp;
  EXPECT_EQ(stub->Heartbeat(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace warren
