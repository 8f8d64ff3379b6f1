// Mutual TLS end to end (issue 12 part B) with the real binary: joining with a token that pins
// the CA, token rotation, and `node rm` cutting a worker off.
#include <grpcpp/grpcpp.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "e2e_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "security/tls_credentials.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class TlsE2eTest : public E2eTest {
 protected:
  // `cluster init --tls`: the flag older scripts pass is still accepted (TLS is the default).
  Process& StartTlsCluster(std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), "--tls");
    return StartHybrid(extra);
  }

  // `warren worker` number `i` joining with `token`, to completion (it fails) within a bound.
  CommandResult JoinAndFail(int i, const std::string& token) {
    const std::string name = "w" + std::to_string(i);
    return e2e::Run(
        {WARREN_BINARY, "worker", "--manager", api_addr_, "--node-name", name, "--data-dir",
         (dir_ / name).string(), "--address-range", Range(i), "--dns-addr", "", "--token", token},
        {}, std::chrono::seconds(30));
  }

  std::vector<std::string> ReadyNodeNames() {
    std::vector<std::string> out;
    for (const auto& node : JsonList(Cli({"node", "ls", "-o", "json"}).out, "nodes")) {
      if (node.value("state", "") == "NODE_STATE_READY") out.push_back(node.value("name", ""));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // A Heartbeat to the manager over a new connection presenting worker `name`'s certificate
  // (the files it keeps in its data dir).
  grpc::Status HeartbeatAs(const std::string& name, const std::string& node_id) {
    security::CredentialsDirectory tls((dir_ / name / "tls").string());
    auto material = tls.Read();
    if (!material.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "no certificate");
    auto cert = security::ParseNodeCertificate(material->cert_pem);
    if (!cert.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "bad certificate");
    auto creds = security::MakeStaticChannelCredentials(
        material->ca_cert_pem, security::KeyAndCertificate{material->key_pem, material->cert_pem},
        {cert->identity.cluster_id, {security::Role::kManager}, "", nullptr});
    if (!creds.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, "credentials");
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = v1::Dispatcher::NewStub(grpc::CreateCustomChannel(api_addr_, *creds, args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::HeartbeatRequest req;
    req.set_node_id(node_id);
    v1::HeartbeatResponse resp;
    return stub->Heartbeat(&ctx, req, &resp);
  }

  std::string NodeId(const std::string& name) {
    for (const auto& node : JsonList(Cli({"node", "ls", "-o", "json"}).out, "nodes")) {
      if (node.value("name", "") == name) return node.value("id", "");
    }
    return "";
  }
};

TEST_F(TlsE2eTest, ATokenNamingAnotherCaIsRefusedBeforeTheTokenIsSent) {
  Process& node = StartTlsCluster();
  const std::string token = JoinToken();
  // SWMTKN-1-<50-character digest>-<secret>: one digit of the digest changed.
  const size_t last_digit = std::string("SWMTKN-1-").size() + 49;
  ASSERT_GT(token.size(), last_digit);
  std::string wrong = token;
  wrong[last_digit] = wrong[last_digit] == '0' ? '1' : '0';

  CommandResult r = JoinAndFail(1, wrong);
  EXPECT_NE(r.exit_code, 0);
  const std::string output = r.out + r.err;
  EXPECT_THAT(output, HasSubstr("not the one the join token names"));
  EXPECT_THAT(output, HasSubstr("nothing was sent"));
  // No join reached the CA (it logs every refused one), no node, no certificate kept.
  EXPECT_THAT(node.Log(), Not(HasSubstr("ca: join from")));
  EXPECT_EQ(ReadyNodeNames(), std::vector<std::string>{"node-1"});
  EXPECT_FALSE(fs::exists(dir_ / "w1" / "tls" / "current"));
}

// TLS is the default: a worker without a token or a certificate is told which token it needs
// instead of retrying a plaintext connection the manager refuses.
TEST_F(TlsE2eTest, AWorkerWithoutATokenFailsNamingTheJoinTokenCommand) {
  StartManager({"--dns-addr", ""});
  JoinToken();  // the manager answers
  CommandResult r =
      e2e::Run({WARREN_BINARY, "worker", "--manager", api_addr_, "--node-name", "w1", "--data-dir",
                (dir_ / "w1").string(), "--address-range", Range(1), "--dns-addr", ""},
               {}, std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out + r.err, HasSubstr("serves mutual TLS and this worker has no certificate"));
  EXPECT_THAT(r.out + r.err, HasSubstr("`warren cluster join-token worker -q`"));
  EXPECT_TRUE(ReadyNodeNames().empty());
}

TEST_F(TlsE2eTest, ARotatedTokenRefusesNewJoinsWhileTheJoinedNodeStaysReady) {
  Process& node = StartTlsCluster();
  const std::string old_token = JoinToken();
  StartWorker(1, {"--dns-addr", "", "--token", old_token});
  ASSERT_TRUE(WaitNodesReady(2)) << processes_.back()->Log();

  const std::string new_token = JoinToken(/*rotate=*/true);
  ASSERT_NE(new_token, old_token);
  CommandResult r = JoinAndFail(2, old_token);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.out + r.err, HasSubstr("join token"));
  EXPECT_THAT(node.Log(), HasSubstr("ca: join from"));
  EXPECT_FALSE(fs::exists(dir_ / "w2" / "tls" / "current"));

  // The node that joined with the old token keeps working: it stays ready and gets tasks.
  ASSERT_EQ(CreateTestapp("web", 4, {"--constraint", "node.name==w1"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 4; }));
  EXPECT_EQ(ReadyNodeNames(), (std::vector<std::string>{"node-1", "w1"}));

  // The new token admits.
  StartWorker(2, {"--dns-addr", "", "--token", new_token});
  ASSERT_TRUE(WaitNodesReady(3)) << processes_.back()->Log();
}

TEST_F(TlsE2eTest, NodeRmRefusesTheWorkerAtOnceAndEndsItsStreams) {
  StartTlsCluster();
  Process& worker = StartWorker(1, {"--dns-addr", "", "--token", JoinToken()});
  ASSERT_TRUE(WaitNodesReady(2)) << worker.Log();
  const std::string id = NodeId("w1");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(HeartbeatAs("w1", id).ok());
  ASSERT_EQ(CreateTestapp("web", 1, {"--constraint", "node.name==w1"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 1; }));
  const int task_pid = HealthyTasks("web")[0]["status"].value("pid", 0);
  ASSERT_GT(task_pid, 0);

  CommandResult rm = Cli({"node", "rm", "--force", "w1"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  // Refused from the moment node rm returns: nothing to wait for.
  EXPECT_FALSE(HeartbeatAs("w1", id).ok());
  // The worker learns it was removed from the next refusal on its open connection (a stream's
  // next wake-up or its next heartbeat) and exits instead of retrying forever: 30 s is far
  // above either.
  ASSERT_TRUE(WaitFor([&] { return !worker.Alive(); })) << worker.Log();
  EXPECT_EQ(worker.Kill(SIGTERM), 1);
  const std::string log = worker.Log();
  const std::string line = "this node was removed from the cluster by node rm";
  const size_t at = log.find(line);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_EQ(log.find(line, at + 1), std::string::npos) << log;
  // It is the only error, and the worker never retried a refused stream or registration.
  int errors = 0;  // lines "<time> error <message>"
  for (absl::string_view l : absl::StrSplit(log, '\n')) {
    errors += absl::StartsWith(l.substr(std::min(l.size(), l.find(' ') + 1)), "error ");
  }
  EXPECT_EQ(errors, 1) << log;
  EXPECT_THAT(log, Not(HasSubstr("stream ended"))) << log;
  EXPECT_THAT(log, Not(HasSubstr("cannot register"))) << log;
  // Its tasks were stopped with it (the manager placed their replacements elsewhere).
  EXPECT_TRUE(WaitFor([&] { return kill(task_pid, 0) != 0; })) << task_pid;
  EXPECT_EQ(ReadyNodeNames(), std::vector<std::string>{"node-1"});
}

// A hybrid node (`cluster init --tls`) removed with --force is the manager too: it is refused
// as a node but keeps serving the API.
TEST_F(TlsE2eTest, ARemovedHybridNodeKeepsRunning) {
  Process& node = StartTlsCluster();
  const std::string id = NodeId("node-1");
  ASSERT_FALSE(id.empty());
  CommandResult rm = Cli({"node", "rm", "--force", "node-1"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  // The refusal reached its agent...
  ASSERT_TRUE(WaitFor([&] {
    return node.Log().find("node " + id + " was removed from the cluster") != std::string::npos;
  })) << node.Log();
  // ...and the process went on: the API answers, and nothing said the node exits.
  EXPECT_EQ(Cli({"node", "ls"}).exit_code, 0);
  EXPECT_TRUE(node.Alive());
  EXPECT_THAT(node.Log(), Not(HasSubstr("this node was removed from the cluster by node rm")));
}

// Under --tls with 256 descriptors: a flood of connections on the API port runs the process out
// of them, and the API answers again once they are free. gRPC 1.51's own TLS listener, which
// accepted here before, never accepted again after its first EMFILE.
TEST_F(TlsE2eTest, DescriptorExhaustionNeverStopsTheTlsApiForGood) {
  command_prefix_ = {"/bin/sh", "-c", "ulimit -n 256 && exec \"$0\" \"$@\""};
  Process& node = StartTlsCluster({"--reserved-fds", "128"});
  const int api_port = std::stoi(api_addr_.substr(api_addr_.rfind(':') + 1));
  std::vector<int> flood;
  for (int i = 0; i < 300; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(api_port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    flood.push_back(fd);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0) << i;
  }
  EXPECT_TRUE(WaitFor([&] {
    return node.Log().find("gRPC listener " + api_addr_ +
                           ": accept failed (Too many open files)") != std::string::npos;
  })) << node.Log();
  for (int fd : flood) close(fd);
  // A new connection, a TLS handshake with the admin bundle, an answer.
  EXPECT_TRUE(WaitFor([&] { return Cli({"node", "ls"}).exit_code == 0; })) << node.Log();
  EXPECT_TRUE(node.Alive());
}

// Issue 12: certificates of the shortest life the CA allows (1 minute) renew at least twice
// each (the manager's own and the admin bundle in-process, the workers' through
// warren.v1.Ca/Renew) while rolling updates run back to back under load through both workers'
// proxies: no request fails, no task fails or is replaced outside the updates, and no worker's
// stream to the manager ends.
TEST_F(TlsE2eTest, CertificatesRenewDuringRollingUpdatesUnderLoadWithoutAFailedRequest) {
  Process& manager = StartManager({"--dns-addr", "", "--cert-validity", "1m"});
  ASSERT_TRUE(WaitFor([&] { return Cli({"node", "ls"}).exit_code == 0; })) << manager.Log();
  const std::string token = JoinToken();
  for (int i = 1; i <= 2; ++i) {
    StartWorker(i, {"--dns-addr", "", "--publish-ip", "127.0.0." + std::to_string(i), "--token",
                    token, "--stop-tasks-on-exit"});
  }
  ASSERT_TRUE(WaitNodesReady(2)) << manager.Log();
  const int port = FreePort();
  ASSERT_EQ(CreateTestapp("web", 4,
                          {"--env", "VERSION=v0", "--publish", std::to_string(port) + ":8080",
                           "--min-ready", "500ms", "--max-surge", "1", "--max-unavailable", "0",
                           "--update-order", "start-first"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] {
    auto a = HttpGet("127.0.0.1", port, "/");
    auto b = HttpGet("127.0.0.2", port, "/");
    return HealthyTasks("web").size() == 4 && a && a->first == 200 && b && b->first == 200;
  })) << Cli({"service", "ps", "web"}).out;

  // Every certificate each holder had, by serial.
  const std::map<std::string, fs::path> holders = {{"manager", dir_ / "m" / "tls"},
                                                   {"admin", tls_root() / "current"},
                                                   {"w1", dir_ / "w1" / "tls"},
                                                   {"w2", dir_ / "w2" / "tls"}};
  std::map<std::string, std::set<std::string>> serials;
  auto look = [&] {
    for (const auto& [who, dir] : holders) {
      auto material = security::CredentialsDirectory(dir.string()).Read();
      if (!material.ok()) continue;
      auto cert = security::ParseNodeCertificate(material->cert_pem);
      if (cert.ok()) serials[who].insert(cert->serial);
    }
  };
  auto renewed_twice = [&] {
    look();
    for (const auto& [who, dir] : holders) {
      if (serials[who].size() < 3) return false;
    }
    return true;
  };

  int updates = 0, sent = 0, failed = 0;
  std::string last_error;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(200);
  while (!renewed_twice() && std::chrono::steady_clock::now() < deadline) {
    Load through_w1(port, nullptr, "127.0.0.1");
    Load through_w2(port, nullptr, "127.0.0.2");
    ASSERT_TRUE(WaitFor([&] { return through_w1.sent() > 10 && through_w2.sent() > 10; }));
    ++updates;
    CommandResult r =
        Cli({"service", "update", "web", "--env", "VERSION=v" + std::to_string(updates)});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << Cli({"service", "ps", "web"}).out;
    look();
    through_w1.Stop();
    through_w2.Stop();
    for (Load* load : {&through_w1, &through_w2}) {
      sent += load->sent();
      failed += load->failed();
      if (load->failed() > 0) last_error = load->last_error();
    }
  }
  std::cout << "[ info ] " << updates << " rolling updates under load, " << sent << " requests, "
            << failed << " failed; certificates held:";
  for (const auto& [who, s] : serials) std::cout << " " << who << "=" << s.size();
  std::cout << "\n";
  for (const auto& [who, dir] : holders) {
    EXPECT_GE(serials[who].size(), 3u) << who << " renewed fewer than twice";
  }
  EXPECT_EQ(failed, 0) << "of " << sent << "; last error: " << last_error;
  EXPECT_GT(sent, 0);

  // Only the updates replaced tasks: none failed or was orphaned, and the last revision's four
  // serve.
  for (const auto& t : Tasks("web")) {
    const std::string state = t["status"].value("state", "");
    EXPECT_TRUE(state == "TASK_STATE_RUNNING" || state == "TASK_STATE_SHUTDOWN" ||
                state == "TASK_STATE_COMPLETE")
        << t.dump();
  }
  EXPECT_EQ(HealthyTasks("web").size(), 4u);
  // The workers' streams to the manager never ended and they never registered again.
  for (int i = 1; i <= 2; ++i) {
    const std::string log = processes_[i]->Log();
    EXPECT_EQ(log.find("stream ended"), std::string::npos) << log;
    EXPECT_EQ(log.find("cannot register"), std::string::npos) << log;
  }
}

}  // namespace
}  // namespace warren::e2e
