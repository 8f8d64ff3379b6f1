// The manager's API under mutual TLS (ManagerOptions::tls): its own certificate, the admin
// client bundle and the CLI presenting it, the hybrid node's worker over mTLS.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "security/client_bundle.h"
#include "security/tls_credentials.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/agent.h"
#include "worker/fake_driver.h"
#include "worker/join.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::TempDir;
using testing_util::WaitFor;

class ManagerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override {
    if (m_) m_->Shutdown();
  }
  void Start() {
    ManagerOptions o = testing_util::TestManagerOptions((tmp_.path() / "m").string());
    o.tls = true;
    o.tls_root = (tmp_.path() / "home").string();
    auto m = ManagerServer::Start(o, RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    m_ = std::move(*m);
  }
  int Cli(std::vector<std::string> args, std::string* out, std::string* err) {
    args.insert(args.begin(), {"warren", "--manager", m_->api_addr()});
    std::ostringstream o, e;
    int code = RunCli(args, o, e);
    *out = o.str();
    *err = e.str();
    return code;
  }

  TempDir tmp_;
  std::unique_ptr<ManagerServer> m_;
};

TEST_F(ManagerTlsTest, TheAdminBundleIsPerClusterAndTheCliPresentsIt) {
  const fs::path root = tmp_.path() / "home";
  const std::string cluster = m_->authority()->cluster_id();
  EXPECT_EQ(m_->admin_bundle_dir(), (root / cluster).string());
  EXPECT_EQ(fs::read_symlink(root / "current").string(), cluster);
  EXPECT_EQ(fs::status(root).permissions() & fs::perms::all, fs::perms::owner_all);

  std::string out, err;
  ASSERT_EQ(
      Cli({"--tls-dir", m_->admin_bundle_dir(), "service", "create", "web", "--command", "app"},
          &out, &err),
      0)
      << err;
  ASSERT_EQ(Cli({"--tls-dir", (root / "current").string(), "service", "ls"}, &out, &err), 0) << err;
  EXPECT_THAT(out, HasSubstr("web"));
  // The admin role may fetch join tokens.
  ASSERT_EQ(Cli({"--tls-dir", m_->admin_bundle_dir(), "cluster", "join-token", "worker", "-q"},
                &out, &err),
            0)
      << err;
  EXPECT_THAT(out, HasSubstr("SWMTKN-1-"));

  ASSERT_NE(Cli({"--tls-dir", (tmp_.path() / "none").string(), "service", "ls"}, &out, &err), 0);
  EXPECT_THAT(err, HasSubstr("tls-dir " + (tmp_.path() / "none").string()));
}

TEST_F(ManagerTlsTest, PlaintextAndOtherClustersBundlesAreRefused) {
  auto plain =
      v1::Control::NewStub(grpc::CreateChannel(m_->api_addr(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListServicesResponse resp;
  EXPECT_FALSE(plain->ListServices(&ctx, {}, &resp).ok());

  // Another cluster's admin bundle: the CLI refuses the manager (and the manager the CLI).
  auto other = security::ClusterAuthority::Create("other", absl::Now());
  ASSERT_TRUE(other.ok());
  auto dir = security::WriteAdminBundle((tmp_.path() / "other").string(), *other, absl::Hours(1),
                                        absl::Now());
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::string out, err;
  EXPECT_NE(Cli({"--tls-dir", *dir, "service", "ls"}, &out, &err), 0);
  EXPECT_THAT(err, HasSubstr("cannot reach the manager"));
}

TEST_F(ManagerTlsTest, ARestartKeepsTheCaSoTheOldBundleStillWorks) {
  const std::string bundle = m_->admin_bundle_dir();
  auto before = security::CredentialsDirectory(bundle).Read();
  ASSERT_TRUE(before.ok()) << before.status();
  m_->Shutdown();
  m_.reset();
  Start();
  ASSERT_NE(m_, nullptr);
  EXPECT_EQ(m_->admin_bundle_dir(), bundle);
  std::string out, err;
  EXPECT_EQ(Cli({"--tls-dir", bundle, "node", "ls"}, &out, &err), 0) << err;
  // The certificate the CLI held before the restart is of the same CA.
  auto info =
      security::VerifyCertificate(m_->authority()->ca().cert_pem(), before->cert_pem, absl::Now());
  EXPECT_TRUE(info.ok()) << info.status();
}

TEST_F(ManagerTlsTest, TheHybridWorkerRegistersOverMutualTlsUnderTheSameNodeIdAfterARestart) {
  WorkerOptions wo;
  wo.manager_addr = m_->api_addr();
  wo.node_name = "hybrid-node";
  wo.data_dir = (tmp_.path() / "m" / "worker").string();
  wo.address_range = "127.71.0.0/16";
  wo.role = "hybrid";
  wo.dns.addr = "";
  ASSERT_TRUE(m_->InstallHybridWorkerCertificate(&wo).ok());
  auto cert = security::ParseNodeCertificate(
      security::CredentialsDirectory((fs::path(wo.data_dir) / "tls").string()).Read()->cert_pem);
  ASSERT_TRUE(cert.ok()) << cert.status();
  const std::string node_id = cert->identity.node_id;
  {
    WorkerAgent agent(wo, std::make_unique<FakeDriver>(), RealClock::Get());
    ASSERT_TRUE(agent.Start().ok());
    ASSERT_TRUE(WaitFor([&] { return GetObject<v1::Node>(m_->store(), node_id).has_value(); }));
    EXPECT_EQ(GetObject<v1::Node>(m_->store(), node_id)->role(), "hybrid");
    agent.Stop();
  }
  WorkerOptions again = wo;
  ASSERT_TRUE(m_->InstallHybridWorkerCertificate(&again).ok());
  auto renewed = security::ParseNodeCertificate(
      security::CredentialsDirectory((fs::path(wo.data_dir) / "tls").string()).Read()->cert_pem);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->identity.node_id, node_id);
  EXPECT_NE(renewed->serial, cert->serial);
}

TEST_F(ManagerTlsTest, AWorkerJoinsWithTheTokenAndKeepsItsCertificateAcrossRestarts) {
  WorkerOptions base;
  base.manager_addr = m_->api_addr();
  base.node_name = "w1";
  base.data_dir = (tmp_.path() / "w1").string();
  base.address_range = "127.72.0.0/16";
  base.dns.addr = "";
  WorkerOptions wo = base;
  wo.join_token = std::string(m_->authority()->tokens().Get(security::Role::kWorker)->reveal());
  ASSERT_TRUE(PrepareNodeCertificate(&wo, absl::Now()).ok());
  auto cert = security::ParseNodeCertificate(
      security::CredentialsDirectory((fs::path(wo.data_dir) / "tls").string()).Read()->cert_pem);
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(cert->identity.role, security::Role::kWorker);
  EXPECT_EQ(wo.cluster_id, m_->authority()->cluster_id());
  {
    WorkerAgent agent(wo, std::make_unique<FakeDriver>(), RealClock::Get());
    ASSERT_TRUE(agent.Start().ok());
    ASSERT_TRUE(WaitFor(
        [&] { return GetObject<v1::Node>(m_->store(), cert->identity.node_id).has_value(); }));
    EXPECT_EQ(GetObject<v1::Node>(m_->store(), cert->identity.node_id)->role(), "worker");
    agent.Stop();
  }
  // A restart needs no token: the kept certificate is used again.
  WorkerOptions again = base;
  ASSERT_TRUE(HasNodeCertificate(again));
  ASSERT_TRUE(PrepareNodeCertificate(&again, absl::Now()).ok());
  EXPECT_EQ(again.tls_cert, wo.tls_cert);
  auto kept = security::ParseNodeCertificate(
      security::CredentialsDirectory((fs::path(wo.data_dir) / "tls").string()).Read()->cert_pem);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->serial, cert->serial);

  // A manager token does not make a worker.
  WorkerOptions manager_token = base;
  manager_token.data_dir = (tmp_.path() / "w2").string();
  manager_token.join_token =
      std::string(m_->authority()->tokens().Get(security::Role::kManager)->reveal());
  absl::Status s = PrepareNodeCertificate(&manager_token, absl::Now());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("a manager join token"));
}

TEST_F(ManagerTlsTest, AWorkerRefusesAManagerWhoseCaTheTokenDoesNotName) {
  auto other = security::ClusterAuthority::Create("other", absl::Now());
  ASSERT_TRUE(other.ok());
  WorkerOptions wo;
  wo.manager_addr = m_->api_addr();
  wo.data_dir = (tmp_.path() / "w1").string();
  wo.join_token = std::string(other->tokens().Get(security::Role::kWorker)->reveal());
  absl::Status s = PrepareNodeCertificate(&wo, absl::Now());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("nothing was sent"));
  EXPECT_FALSE(HasNodeCertificate(wo));
  EXPECT_TRUE(wo.tls_cert.empty());

  wo.join_token = "SWMTKN-1-short";
  s = PrepareNodeCertificate(&wo, absl::Now());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("--token"));
}

TEST(ManagerTlsOptionsTest, PlaintextIsRefusedOffLoopback) {
  TempDir tmp;
  ManagerOptions o = testing_util::TestManagerOptions((tmp.path() / "m").string());
  o.api_addr = "0.0.0.0:0";
  auto m = ManagerServer::Start(o, RealClock::Get());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("only listen on loopback"));
}

}  // namespace
}  // namespace warren
