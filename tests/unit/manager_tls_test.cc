// The manager's API under mutual TLS (ManagerOptions::tls): its own certificate, the admin
// client bundle and the CLI presenting it, the hybrid node's worker over mTLS.
#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "security/client_bundle.h"
#include "security/tls_credentials.h"
#include "store/typed_store.h"
#include "store_test_util.h"
#include "test_subprocess.h"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"
#include "warren/v1/security.grpc.pb.h"
#include "worker/agent.h"
#include "worker/fake_driver.h"
#include "worker/join.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
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

  // A worker of this manager, joining with the worker token when it has no certificate yet.
  WorkerOptions JoiningWorker(const std::string& name, const std::string& range) {
    WorkerOptions wo;
    wo.manager_addr = m_->api_addr();
    wo.node_name = name;
    wo.data_dir = (tmp_.path() / name).string();
    wo.address_range = range;
    wo.dns.addr = "";
    wo.join_token = std::string(m_->authority()->tokens().Get(security::Role::kWorker)->reveal());
    return wo;
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

// Sets an environment variable for one test and puts the old value back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// TLS is the default: a CLI call that finds no bundle is not told "cannot reach" but where it
// looked and what to pass.
TEST_F(ManagerTlsTest, ACliCallWithoutABundleSaysWhereItLookedAndWhatToPass) {
  const fs::path home = tmp_.path() / "empty-home";
  fs::create_directories(home);
  ScopedEnv no_dir("WARREN_TLS_DIR", nullptr);
  ScopedEnv empty_home("HOME", home.c_str());
  std::string out, err;
  EXPECT_EQ(Cli({"service", "ls"}, &out, &err), 1);
  EXPECT_THAT(err, HasSubstr("the manager at " + m_->api_addr() +
                             " serves mutual TLS and this command has no admin client bundle"));
  EXPECT_THAT(err, HasSubstr("--tls-dir and WARREN_TLS_DIR are not set, and there is no " +
                             (home / ".warren" / "current").string()));
  EXPECT_THAT(err, HasSubstr("pass --tls-dir DIR or set WARREN_TLS_DIR"));
  EXPECT_THAT(err, Not(HasSubstr("cannot reach")));
}

// systemd gives a system service without User= no HOME: the bundle still goes to the user's
// home, where that user's CLI looks.
TEST(ClientBundleTest, WithoutHomeTheDefaultRootIsTheUsersHomeFromPasswd) {
  ScopedEnv no_home("HOME", nullptr);
  const passwd* pw = getpwuid(geteuid());
  ASSERT_NE(pw, nullptr);
  EXPECT_EQ(security::DefaultTlsRoot(), (fs::path(pw->pw_dir) / ".warren").string());
}

TEST_F(ManagerTlsTest, AWorkerWithoutATokenIsToldHowToGetOne) {
  WorkerOptions wo = JoiningWorker("w1", "127.1.0.0/16");
  wo.join_token.clear();
  absl::Status s = CheckPlaintextManager(wo);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("serves mutual TLS"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--token TOKEN"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("`warren cluster join-token worker -q`"));
}

TEST(ManagerTlsOptionsTest, AWorkerOfAnInsecurePlaintextManagerNeedsNoToken) {
  TempDir tmp;
  auto m = ManagerServer::Start(testing_util::TestManagerOptions((tmp.path() / "m").string()),
                                RealClock::Get());
  ASSERT_TRUE(m.ok()) << m.status();
  WorkerOptions wo;
  wo.manager_addr = (*m)->api_addr();
  wo.data_dir = (tmp.path() / "w").string();
  EXPECT_TRUE(CheckPlaintextManager(wo).ok());
  (*m)->Shutdown();
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
  WorkerOptions wo = JoiningWorker("w1", "127.72.0.0/16");
  WorkerOptions base = wo;
  base.join_token.clear();
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

// A runtime whose every task writes the same log file.
class LoggingFakeDriver : public FakeDriver {
 public:
  explicit LoggingFakeDriver(std::string log) : log_(std::move(log)) {}
  std::string LogPath(std::string_view) const override { return log_; }

 private:
  const std::string log_;
};

// The node's log service under --tls: only a manager (or admin) certificate of the cluster
// reads logs; the manager reads them with its own certificate and wants the task's node.
class WorkerLogsTlsTest : public ManagerTlsTest {
 protected:
  void StartWorker(const Clock* renewal_clock = nullptr) {
    std::ofstream(tmp_.path() / "task.log") << "hello from the task\n";
    WorkerOptions wo = JoiningWorker("w1", "127.73.0.0/16");
    wo.renewal_seed = 42;
    wo.renewal_clock = renewal_clock;
    ASSERT_TRUE(PrepareNodeCertificate(&wo, absl::Now()).ok());
    auto cert = security::ParseNodeCertificate(
        security::CredentialsDirectory((fs::path(wo.data_dir) / "tls").string()).Read()->cert_pem);
    ASSERT_TRUE(cert.ok()) << cert.status();
    node_id_ = cert->identity.node_id;
    agent_ = std::make_unique<WorkerAgent>(
        wo, std::make_unique<LoggingFakeDriver>((tmp_.path() / "task.log").string()),
        RealClock::Get());
    ASSERT_TRUE(agent_->Start().ok());
  }
  void TearDown() override {
    if (agent_) agent_->Stop();
    ManagerTlsTest::TearDown();
  }

  // TaskLogs of any task over `creds`: the lines, or the error.
  absl::StatusOr<std::string> TaskLogs(std::shared_ptr<grpc::ChannelCredentials> creds) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub =
        v1::WorkerAgent::NewStub(grpc::CreateCustomChannel(agent_->agent_addr(), creds, args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::TaskLogsRequest req;
    req.set_task_id("t1");
    auto reader = stub->TaskLogs(&ctx, req);
    std::string got;
    v1::LogLine line;
    while (reader->Read(&line)) got += line.line();
    grpc::Status s = reader->Finish();
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return got;
  }
  // Static credentials presenting a new certificate of `role` (none when nullopt), wanting the
  // server to be node `server_node`.
  std::shared_ptr<grpc::ChannelCredentials> Creds(std::optional<security::Role> role,
                                                  const std::string& server_node) {
    const security::ClusterAuthority& ca = *m_->authority();
    std::optional<security::KeyAndCertificate> kc;
    if (role) {
      auto issued = ca.ca().IssueKeyAndCertificate({"someone", *role, ca.cluster_id()},
                                                   {absl::Hours(1), {}}, absl::Now());
      EXPECT_TRUE(issued.ok()) << issued.status();
      kc = std::move(*issued);
    }
    auto creds = security::MakeStaticChannelCredentials(
        ca.ca().cert_pem(), kc, {ca.cluster_id(), {}, server_node, nullptr});
    EXPECT_TRUE(creds.ok()) << creds.status();
    return *creds;
  }

  bool RunsATask() {
    for (const auto& t : ListObjects<v1::Task>(m_->store())) {
      if (t.node_id() == node_id_ && t.status().state() == v1::TASK_STATE_RUNNING) return true;
    }
    return false;
  }

  std::unique_ptr<WorkerAgent> agent_;
  std::string node_id_;
};

TEST_F(WorkerLogsTlsTest, OnlyAManagerCertificateReadsANodesLogs) {
  StartWorker();
  auto manager = TaskLogs(Creds(security::Role::kManager, node_id_));
  ASSERT_TRUE(manager.ok()) << manager.status();
  EXPECT_EQ(*manager, "hello from the task");
  EXPECT_FALSE(TaskLogs(Creds(security::Role::kWorker, node_id_)).ok());
  EXPECT_FALSE(TaskLogs(Creds(security::Role::kReadOnly, node_id_)).ok());
  EXPECT_FALSE(TaskLogs(Creds(std::nullopt, node_id_)).ok());
  EXPECT_FALSE(TaskLogs(grpc::InsecureChannelCredentials()).ok());
  // The caller knows the node by its certificate: another node id is not the one it wants.
  EXPECT_FALSE(TaskLogs(Creds(security::Role::kManager, "another-node")).ok());
}

TEST_F(WorkerLogsTlsTest, ServiceLogsWorkUnderTls) {
  StartWorker();
  std::string out, err;
  const std::string tls_dir = m_->admin_bundle_dir();
  ASSERT_EQ(Cli({"--tls-dir", tls_dir, "service", "create", "web", "--command", "app"}, &out, &err),
            0)
      << err;
  ASSERT_TRUE(WaitFor([&] { return RunsATask(); }));
  ASSERT_EQ(Cli({"--tls-dir", tls_dir, "service", "logs", "web"}, &out, &err), 0) << err;
  EXPECT_THAT(out, HasSubstr("| hello from the task"));
}

// The worker's renewal clock runs ahead to the renewal point (the CA and the TLS layers keep real
// time): it renews through warren.v1.Ca/Renew over its mutual-TLS channel, keeps its node id, stays
// registered and keeps receiving assignments; its log service serves the new certificate.
TEST_F(WorkerLogsTlsTest, AWorkerRenewsThroughTheCaAndKeepsItsNode) {
  FakeClock clock(absl::Now());
  StartWorker(&clock);
  ASSERT_TRUE(WaitFor([&] { return GetObject<v1::Node>(m_->store(), node_id_).has_value(); }));
  security::CredentialsDirectory dir((tmp_.path() / "w1" / "tls").string());
  auto first = security::ParseNodeCertificate(dir.Read()->cert_pem);
  ASSERT_TRUE(first.ok()) << first.status();

  clock.Set(first->not_before + (first->not_after - first->not_before) * 81 / 100);
  ASSERT_TRUE(WaitFor([&] {
    auto now = security::ParseNodeCertificate(dir.Read()->cert_pem);
    return now.ok() && now->serial != first->serial;
  }));
  auto second = security::ParseNodeCertificate(dir.Read()->cert_pem);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->identity.node_id, node_id_);
  EXPECT_EQ(second->identity.role, security::Role::kWorker);

  // The same node still gets work over its open assignment stream.
  std::string out, err;
  ASSERT_EQ(
      Cli({"--tls-dir", m_->admin_bundle_dir(), "service", "create", "web", "--command", "app"},
          &out, &err),
      0)
      << err;
  ASSERT_TRUE(WaitFor([&] { return RunsATask(); }));
  EXPECT_EQ(ListObjects<v1::Node>(m_->store()).size(), 1u);
  // New handshakes present the renewed certificate (the file watcher re-reads it within its
  // refresh interval).
  auto logs = TaskLogs(Creds(security::Role::kManager, node_id_));
  EXPECT_TRUE(logs.ok()) << logs.status();
}

// node rm under --tls: the removed node's certificate is refused on its open connections (its
// streams end at their next wake-up) and at every new handshake, its renewal too; the other
// nodes go on.
class NodeRemovalTlsTest : public ManagerTlsTest {
 protected:
  struct JoinedNode {
    std::string id;
    std::string tls_dir;
    std::unique_ptr<WorkerAgent> agent;
  };

  // Watches a node's assignments on `channel` in a thread until the stream ends.
  class AssignmentWatch {
   public:
    AssignmentWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& node_id)
        : stub_(v1::Dispatcher::NewStub(channel)) {
      v1::WatchAssignmentsRequest req;
      req.set_node_id(node_id);
      reader_ = stub_->WatchAssignments(&ctx_, req);
      thread_ = std::thread([this] {
        v1::Assignments a;
        while (reader_->Read(&a)) received_++;
        grpc::Status s = reader_->Finish();
        absl::MutexLock lock(&mu_);
        status_ = s;
        ended_at_ = absl::Now();
      });
    }
    ~AssignmentWatch() {
      ctx_.TryCancel();
      thread_.join();
    }
    int received() const { return received_; }
    // The stream's final status once it ended.
    std::optional<grpc::Status> status() const {
      absl::MutexLock lock(&mu_);
      return status_;
    }
    absl::Time ended_at() const {
      absl::MutexLock lock(&mu_);
      return ended_at_;
    }

   private:
    std::unique_ptr<v1::Dispatcher::Stub> stub_;
    grpc::ClientContext ctx_;
    std::unique_ptr<grpc::ClientReader<v1::Assignments>> reader_;
    std::atomic<int> received_{0};
    mutable absl::Mutex mu_;
    std::optional<grpc::Status> status_ ABSL_GUARDED_BY(mu_);
    absl::Time ended_at_ ABSL_GUARDED_BY(mu_);
    std::thread thread_;
  };

  void SetUp() override {
    ManagerTlsTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(Join("w1", "127.74.0.0/16", &w1_));
    ASSERT_NO_FATAL_FAILURE(Join("w2", "127.75.0.0/16", &w2_));
  }
  void TearDown() override {
    for (JoinedNode* n : {&w1_, &w2_}) {
      if (n->agent) n->agent->Stop();
    }
    ManagerTlsTest::TearDown();
  }

  void Join(const std::string& name, const std::string& range, JoinedNode* n) {
    WorkerOptions wo = JoiningWorker(name, range);
    ASSERT_TRUE(PrepareNodeCertificate(&wo, absl::Now()).ok());
    n->tls_dir = (fs::path(wo.data_dir) / "tls").string();
    auto cert =
        security::ParseNodeCertificate(security::CredentialsDirectory(n->tls_dir).Read()->cert_pem);
    ASSERT_TRUE(cert.ok()) << cert.status();
    n->id = cert->identity.node_id;
    n->agent = std::make_unique<WorkerAgent>(wo, std::make_unique<FakeDriver>(), RealClock::Get());
    ASSERT_TRUE(n->agent->Start().ok());
    ASSERT_TRUE(WaitFor([&] {
      auto node = GetObject<v1::Node>(m_->store(), n->id);
      return node && node->state() == v1::NODE_STATE_READY;
    }));
  }

  // A new connection to the manager presenting node `n`'s certificate.
  std::shared_ptr<grpc::Channel> ChannelAs(const JoinedNode& n) {
    auto material = security::CredentialsDirectory(n.tls_dir).Read();
    EXPECT_TRUE(material.ok()) << material.status();
    auto creds = security::MakeStaticChannelCredentials(
        material->ca_cert_pem, security::KeyAndCertificate{material->key_pem, material->cert_pem},
        {m_->authority()->cluster_id(), {security::Role::kManager}, "", nullptr});
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(m_->api_addr(), *creds, args);
  }

  static grpc::Status Heartbeat(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& node_id) {
    auto stub = v1::Dispatcher::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::HeartbeatRequest req;
    req.set_node_id(node_id);
    v1::HeartbeatResponse resp;
    return stub->Heartbeat(&ctx, req, &resp);
  }

  static grpc::Status Renew(const std::shared_ptr<grpc::Channel>& channel) {
    auto key = security::GeneratePrivateKey();
    EXPECT_TRUE(key.ok());
    auto csr = security::CreateCsr(*key);
    EXPECT_TRUE(csr.ok());
    auto stub = v1::Ca::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::RenewCertificateRequest req;
    req.set_csr_pem(*csr);
    v1::NodeCertificate resp;
    return stub->Renew(&ctx, req, &resp);
  }

  void RemoveNode(const std::string& name) {
    std::string out, err;
    ASSERT_EQ(Cli({"--tls-dir", m_->admin_bundle_dir(), "node", "rm", "--force", name}, &out, &err),
              0)
        << err;
  }

  JoinedNode w1_, w2_;
};

TEST_F(NodeRemovalTlsTest,
       ARemovedWorkerIsRefusedOnItsOpenConnectionItsStreamsEndAndNewHandshakes) {
  std::shared_ptr<grpc::Channel> open = ChannelAs(w1_);
  ASSERT_TRUE(Heartbeat(open, w1_.id).ok());
  auto watch = std::make_unique<AssignmentWatch>(open, w1_.id);
  ASSERT_TRUE(WaitFor([&] { return watch->received() > 0; }));

  ASSERT_NO_FATAL_FAILURE(RemoveNode("w1"));
  const absl::Time removed = absl::Now();
  // The very next call on the connection opened before is refused: node rm returns after the
  // revocation is in force, so there is nothing to wait for.
  grpc::Status s = Heartbeat(open, w1_.id);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("removed from the cluster"));
  s = Renew(open);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();

  // The open stream ends at its next wake-up (at most 500 ms after node rm's commit).
  ASSERT_TRUE(WaitFor([&] { return watch->status().has_value(); }));
  EXPECT_EQ(watch->status()->error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << watch->status()->error_message();
  std::cerr << "stream ended " << absl::FormatDuration(watch->ended_at() - removed)
            << " after node rm returned\n";

  // A new connection is refused at the handshake.
  EXPECT_FALSE(Heartbeat(ChannelAs(w1_), w1_.id).ok());
  EXPECT_FALSE(Renew(ChannelAs(w1_)).ok());
  // The worker's own agent cannot register again: its node stays gone.
  EXPECT_FALSE(GetObject<v1::Node>(m_->store(), w1_.id).has_value());

  // The revocation is stored: a restarted manager refuses the node too.
  watch.reset();
  open.reset();
  w1_.agent->Stop();
  w1_.agent.reset();
  m_->Shutdown();
  m_.reset();
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_FALSE(Heartbeat(ChannelAs(w1_), w1_.id).ok());
  EXPECT_FALSE(Renew(ChannelAs(w1_)).ok());
}

// Issue 12: the manager's refusal of a removed node carries a stable reason, and the worker's
// agent stops talking to the manager on it instead of retrying forever.
TEST_F(NodeRemovalTlsTest, TheRemovedWorkersAgentLearnsItWasRemovedAndStopsRetrying) {
  // A connection opened before: a new one is refused at the handshake, which carries no reason.
  std::shared_ptr<grpc::Channel> open = ChannelAs(w1_);
  ASSERT_TRUE(Heartbeat(open, w1_.id).ok());
  EXPECT_FALSE(w1_.agent->WaitUntilRemoved(absl::ZeroDuration()));
  ASSERT_NO_FATAL_FAILURE(RemoveNode("w1"));
  grpc::Status s = Heartbeat(open, w1_.id);
  EXPECT_TRUE(security::IsNodeRemoved(s)) << s.error_code() << " " << s.error_message();
  // Bounded by the stream's wake-up (500 ms) or the next heartbeat, far below this.
  EXPECT_TRUE(w1_.agent->WaitUntilRemoved(absl::Seconds(30)));
  EXPECT_FALSE(w2_.agent->WaitUntilRemoved(absl::ZeroDuration()));
  EXPECT_TRUE(Heartbeat(ChannelAs(w2_), w2_.id).ok());
  w1_.agent->Stop();
  w1_.agent.reset();
}

TEST_F(NodeRemovalTlsTest, TheOtherNodesAreUnaffected) {
  std::shared_ptr<grpc::Channel> open = ChannelAs(w2_);
  AssignmentWatch watch(open, w2_.id);
  ASSERT_TRUE(WaitFor([&] { return watch.received() > 0; }));

  ASSERT_NO_FATAL_FAILURE(RemoveNode("w1"));
  EXPECT_TRUE(Heartbeat(open, w2_.id).ok());
  EXPECT_TRUE(Heartbeat(ChannelAs(w2_), w2_.id).ok());
  EXPECT_TRUE(Renew(ChannelAs(w2_)).ok());

  // Its stream goes on and brings new work; w2's agent runs it.
  const int before = watch.received();
  std::string out, err;
  ASSERT_EQ(
      Cli({"--tls-dir", m_->admin_bundle_dir(), "service", "create", "web", "--command", "app"},
          &out, &err),
      0)
      << err;
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : ListObjects<v1::Task>(m_->store())) {
      if (t.node_id() == w2_.id && t.status().state() == v1::TASK_STATE_RUNNING) return true;
    }
    return false;
  }));
  EXPECT_GT(watch.received(), before);
  EXPECT_FALSE(watch.status().has_value());
  auto node = GetObject<v1::Node>(m_->store(), w2_.id);
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(node->state(), v1::NODE_STATE_READY);
}

TEST(ManagerTlsOptionsTest, CertValiditySetsTheLifetimeOfIssuedCertificatesAndIsStored) {
  TempDir tmp;
  ManagerOptions o = testing_util::TestManagerOptions((tmp.path() / "m").string());
  o.tls = true;
  o.tls_root = (tmp.path() / "home").string();
  o.cert_validity = absl::Minutes(2);
  for (absl::Duration validity : {absl::Minutes(2), absl::Minutes(5)}) {
    o.cert_validity = validity;
    auto m = ManagerServer::Start(o, RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ((*m)->authority()->node_cert_validity(), validity);
    auto cert = security::ParseNodeCertificate(
        security::CredentialsDirectory((tmp.path() / "m" / "tls").string()).Read()->cert_pem);
    ASSERT_TRUE(cert.ok()) << cert.status();
    // Backdated by a tenth of the life for clock skew.
    EXPECT_EQ(cert->not_after - cert->not_before, validity + validity / 10);
    (*m)->Shutdown();
  }
  // Not given: the stored lifetime stays.
  o.cert_validity = absl::ZeroDuration();
  auto m = ManagerServer::Start(o, RealClock::Get());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->authority()->node_cert_validity(), absl::Minutes(5));
  (*m)->Shutdown();
  o.cert_validity = absl::Seconds(30);
  EXPECT_FALSE(ManagerServer::Start(o, RealClock::Get()).ok());
}

// The admin bundle was issued with the manager's certificate and is renewed with it, so the
// CLI on the manager's host outlives a short --cert-validity.
TEST(ManagerTlsOptionsTest, TheManagerRenewsTheAdminBundleWithItsOwnCertificate) {
  TempDir tmp;
  ManagerOptions o = testing_util::TestManagerOptions((tmp.path() / "m").string());
  o.tls = true;
  o.tls_root = (tmp.path() / "home").string();
  o.cert_validity = absl::Hours(1);
  FakeClock clock(absl::Now());
  auto m = ManagerServer::Start(o, clock);
  ASSERT_TRUE(m.ok()) << m.status();
  auto admin = [&] {
    return security::ParseNodeCertificate(
        security::CredentialsDirectory((tmp.path() / "home" / "current").string())
            .Read()
            ->cert_pem);
  };
  auto first = admin();
  ASSERT_TRUE(first.ok()) << first.status();
  // Past 80 % of the manager certificate's life: it renews, and the bundle with it.
  clock.Advance(absl::Minutes(49));
  ASSERT_TRUE(WaitFor([&] {
    auto now = admin();
    return now.ok() && now->serial != first->serial;
  }));
  auto renewed = admin();
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->identity.role, security::Role::kAdmin);
  EXPECT_GT(renewed->not_after, first->not_after + absl::Minutes(45));
  (*m)->Shutdown();
}

TEST(ManagerTlsOptionsTest, MutualTlsIsTheDefault) {
  EXPECT_TRUE(ManagerOptions{}.tls);
  // The binary: no flag gives mutual TLS and the admin bundle under --tls-root.
  TempDir tmp;
  auto manager =
      test::Subprocess::Start({WARREN_BINARY, "manager", "--data-dir", (tmp.path() / "m").string(),
                               "--api-addr", "127.0.0.1:0", "--metrics-addr", "", "--dns-addr", "",
                               "--tls-root", (tmp.path() / "home").string()},
                              {});
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto line = (*manager)->WaitForStdoutLine("mutual TLS on the API", absl::Seconds(30));
  ASSERT_TRUE(line.ok()) << line.status() << (*manager)->Stderr();
  EXPECT_TRUE(fs::exists(tmp.path() / "home" / "current" / "current" / "cert.pem"));
}

TEST(ManagerTlsOptionsTest, InsecurePlaintextIsRefusedOffLoopback) {
  TempDir tmp;
  auto manager = test::Subprocess::Start(
      {WARREN_BINARY, "manager", "--insecure-plaintext", "--data-dir", (tmp.path() / "m").string(),
       "--api-addr", "0.0.0.0:0", "--metrics-addr", "", "--dns-addr", ""},
      {});
  ASSERT_TRUE(manager.ok()) << manager.status();
  auto code = (*manager)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1);
  EXPECT_THAT((*manager)->Stdout() + (*manager)->Stderr(), HasSubstr("only listen on loopback"));
}

TEST(ManagerTlsOptionsTest, PlaintextIsRefusedOffLoopback) {
  TempDir tmp;
  ManagerOptions o = testing_util::TestManagerOptions((tmp.path() / "m").string());
  o.api_addr = "0.0.0.0:0";
  auto m = ManagerServer::Start(o, RealClock::Get());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("only listen on loopback"));
  // Refused before anything is written: no CA key, no store, no lock file.
  EXPECT_FALSE(std::filesystem::exists(tmp.path() / "m"));
}

}  // namespace
}  // namespace warren
