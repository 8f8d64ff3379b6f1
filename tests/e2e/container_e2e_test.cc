// End-to-end tests on real containers: the cri runtime over containerd (CRI v1), pods on a CNI
// bridge of the test's own, the warren-testapp image from the local registry. Rolling update,
// blue/green switch and failing canaries (unhealthy; 5xx) under load through the proxy with zero
// failed requests, plus what reaches the
// container (limits, labels, env, logs, exec health checks) and adoption after a worker crash.
//
// Needs containerd and the registry started by scripts/containers.sh and the images pushed by
// scripts/build-images.sh (scripts/test.sh does both). Where containers cannot run, test.sh
// sets WARREN_CRI_UNAVAILABLE to the reason and these tests report skipped with it.
#include <crypt.h>
#include <grpcpp/grpcpp.h>
#include <sys/statfs.h>

#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "cri/v1/api.grpc.pb.h"
#include "e2e_fixture.h"

namespace warren::e2e {
namespace {

namespace cri = runtime::v1;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

class ContainerE2eTest : public E2eTest {
 protected:
  void SetUp() override {
    if (const char* why = std::getenv("WARREN_CRI_UNAVAILABLE"); why && *why) {
      GTEST_SKIP() << "containers cannot run here: " << why;
    }
    E2eTest::SetUp();
    socket_ = EnvOr("WARREN_CRI_SOCKET", "/run/containerd/containerd.sock");
    image_ = EnvOr("WARREN_TESTAPP_IMAGE", "127.0.0.1:5000/warren/testapp:1");
    auto channel = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
    runtime_ = cri::RuntimeService::NewStub(channel);
    node_ = "e2e-" + std::to_string(range_octet_);
    // A subnet, bridge and network of the test's own.
    subnet_prefix_ = "10.213." + std::to_string(range_octet_) + ".";
    conflist_ = "/etc/cni/net.d/10-warren-e2e.conflist";
    cri::VersionRequest req;
    cri::VersionResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status s = runtime_->Version(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << "containerd is not answering on " << socket_ << " (" << s.error_message()
                        << "); scripts/containers.sh starts it";
  }

  void TearDown() override {
    if (runtime_ == nullptr) return;  // skipped
    E2eTest::TearDown();
    // Whatever a failed test left behind: every pod of this test's node.
    for (const auto& p : Pods()) {
      grpc::ClientContext c1, c2;
      cri::StopPodSandboxRequest sreq;
      sreq.set_pod_sandbox_id(p.id());
      cri::StopPodSandboxResponse sresp;
      runtime_->StopPodSandbox(&c1, sreq, &sresp);
      cri::RemovePodSandboxRequest rreq;
      rreq.set_pod_sandbox_id(p.id());
      cri::RemovePodSandboxResponse rresp;
      runtime_->RemovePodSandbox(&c2, rreq, &rresp);
    }
    std::error_code ec;
    std::filesystem::remove(conflist_, ec);
  }

  Process& StartCri(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--runtime",  "cri",          "--cri-socket", socket_,        "--cni-network",
        "warren-e2e", "--cni-bridge", "we2e0",        "--cni-subnet", subnet_prefix_ + "0/24"};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartNode(node_, args);
  }

  CommandResult CreateWeb(int replicas, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"service",
                                     "create",
                                     "web",
                                     "--image",
                                     image_,
                                     "--replicas",
                                     std::to_string(replicas),
                                     "--publish",
                                     "127.0.0.1:" + std::to_string(publish_port_) + ":8080",
                                     "--health-http",
                                     "/healthz",
                                     "--health-interval",
                                     "200ms",
                                     "--env",
                                     "VERSION=v1",
                                     "--stop-timeout",
                                     "2s",
                                     "--drain-timeout",
                                     "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  }

  void WaitServing(size_t replicas) {
    ASSERT_TRUE(
        WaitFor([&] { return HealthyTasks("web").size() == replicas; }, std::chrono::seconds(60)))
        << Cli({"service", "ps", "web"}).out << processes_.back()->Log();
    ASSERT_TRUE(WaitFor([&] {
      auto resp = HttpGet("127.0.0.1", publish_port_, "/");
      return resp && resp->first == 200;
    }));
  }

  nlohmann::json Rollout() {
    auto r = Cli({"service", "rollout", "status", "web", "-o", "json"});
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  std::vector<cri::PodSandbox> Pods() {
    cri::ListPodSandboxRequest req;
    (*req.mutable_filter()->mutable_label_selector())["io.warren.worker"] = node_;
    cri::ListPodSandboxResponse resp;
    grpc::ClientContext ctx;
    runtime_->ListPodSandbox(&ctx, req, &resp);
    return {resp.items().begin(), resp.items().end()};
  }

  std::vector<cri::Container> Containers() {
    cri::ListContainersRequest req;
    (*req.mutable_filter()->mutable_label_selector())["io.warren.worker"] = node_;
    cri::ListContainersResponse resp;
    grpc::ClientContext ctx;
    runtime_->ListContainers(&ctx, req, &resp);
    return {resp.containers().begin(), resp.containers().end()};
  }

  // The error of the service's first failed task; empty while none failed.
  std::string FailedError(const std::string& service) {
    for (const auto& t : Tasks(service)) {
      if (t["status"].value("state", "") == "TASK_STATE_FAILED") {
        return t["status"].value("error", "");
      }
    }
    return std::string();
  }

  // docker-registry on 127.0.0.1:`port` with storage in the test dir; with `htpasswd`, every
  // request needs a password. Returns once it answers.
  Process* StartRegistry(int port, const std::string& htpasswd = "") {
    std::ofstream config(dir_ / "registry.yml");
    config << "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
           << (dir_ / "registry").string() << "\nhttp:\n  addr: 127.0.0.1:" << port << "\n";
    if (!htpasswd.empty()) {
      config << "auth:\n  htpasswd:\n    realm: warren-e2e\n    path: " << htpasswd << "\n";
    }
    config.close();
    processes_.push_back(
        std::make_unique<Process>(std::vector<std::string>{"/usr/bin/docker-registry", "serve",
                                                           (dir_ / "registry.yml").string()},
                                  (dir_ / "registry.log").string()));
    Process* reg = processes_.back().get();
    EXPECT_TRUE(WaitFor([&] {
      auto r = HttpGet("127.0.0.1", port, "/v2/");
      return r && r->first == (htpasswd.empty() ? 200 : 401);
    })) << reg->Log();
    return reg;
  }

  // Copies the test image to `dest` (a reference on a loopback registry) with skopeo.
  CommandResult CopyImage(const std::string& dest, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"/usr/bin/skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                     "--dest-tls-verify=false"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("docker://" + image_);
    args.push_back("docker://" + dest);
    return e2e::Run(args);
  }

  std::string socket_;
  std::string image_;
  std::string node_;
  std::string subnet_prefix_;
  std::string conflist_;
  int publish_port_ = FreePort();
  std::unique_ptr<cri::RuntimeService::Stub> runtime_;
};

TEST_F(ContainerE2eTest, RollingUpdateUnderLoadLosesNoRequest) {
  StartCri();
  ASSERT_EQ(CreateWeb(3).exit_code, 0);
  WaitServing(3);
  // Task addresses are pod IPs from the test's subnet, one pod per task.
  for (const auto& t : HealthyTasks("web")) {
    EXPECT_EQ(t.value("address", "").rfind(subnet_prefix_, 0), 0u) << t.dump();
  }
  EXPECT_EQ(Pods().size(), 3u);

  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--max-unavailable", "0"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // old pods drain and go
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_GT(load.v2(), 0);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  // The replaced pods are removed, not just stopped.
  ASSERT_TRUE(WaitFor([&] { return Pods().size() == 3u; })) << Pods().size();
}

TEST_F(ContainerE2eTest, BlueGreenSwitchUnderLoadLosesNoRequest) {
  StartCri();
  ASSERT_EQ(CreateWeb(2).exit_code, 0);
  WaitServing(2);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--strategy", "blue-green",
                "--scale-down-delay", "2s"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("switched"), std::string::npos) << r.out;
  ASSERT_TRUE(
      WaitFor([&] { return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_SUCCEEDED"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // blue drains and goes
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_GT(load.v2(), 0);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  ASSERT_TRUE(WaitFor([&] { return Pods().size() == 2u; })) << Pods().size();
}

TEST_F(ContainerE2eTest, FailingCanaryRollsBackUnderLoadLosingNoRequest) {
  StartCri();
  ASSERT_EQ(CreateWeb(2).exit_code, 0);
  WaitServing(2);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // v2 never passes its health check: the canary gets no traffic and fails.
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--env", "FAIL_HEALTH=1",
                "--strategy", "canary", "--canary-steps", "20,100", "--canary-window", "5s",
                "--health-retries", "2"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;  // the followed update ends in a rollback
  ASSERT_TRUE(WaitFor([&] {
    return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_ROLLED_BACK";
  })) << Rollout().dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_EQ(load.v2(), 0);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  EXPECT_EQ(HealthyTasks("web").size(), 2u);
  ASSERT_TRUE(WaitFor([&] { return Pods().size() == 2u; })) << Pods().size();
}

TEST_F(ContainerE2eTest, ErrorRateCanaryRollsBackUnderLoadLosingNoRequest) {
  StartCri();
  ASSERT_EQ(CreateWeb(3).exit_code, 0);
  WaitServing(3);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // v2 answers 30% of its requests with 500: the analysis of the first step sees it.
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--env", "ERROR_RATE=0.3",
                "--strategy", "canary", "--canary-steps", "20,100", "--canary-window", "30s",
                "--min-requests", "50"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(Rollout().value("rollbackReason", ""), "error_rate") << Rollout().dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  load.Stop();
  EXPECT_GT(load.v2(), 0) << "the canary served";
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  ASSERT_TRUE(WaitFor([&] { return Pods().size() == 3u; })) << Pods().size();
}

TEST_F(ContainerE2eTest, TemplateReachesTheContainer) {
  StartCri();
  ASSERT_EQ(CreateWeb(1, {"--cpus", "0.5", "--memory", "64M", "--container-label", "team=edge",
                          "--arg", "--port", "--arg", "8080"})
                .exit_code,
            0);
  WaitServing(1);
  auto containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  const cri::Container& c = containers[0];
  EXPECT_EQ(c.labels().at("team"), "edge");
  EXPECT_EQ(c.labels().at("io.warren.service"), "web");
  EXPECT_EQ(c.image().image(), image_);

  cri::ContainerStatusRequest req;
  req.set_container_id(c.id());
  req.set_verbose(true);
  cri::ContainerStatusResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runtime_->ContainerStatus(&ctx, req, &resp).ok());
  auto info = nlohmann::json::parse(resp.info().at("info"));
  const auto& spec = info["runtimeSpec"];
  EXPECT_EQ(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
  EXPECT_EQ(spec["linux"]["resources"]["cpu"]["quota"], 50000);
  EXPECT_EQ(spec["linux"]["resources"]["cpu"]["period"], 100000);
  std::vector<std::string> args = spec["process"]["args"];
  EXPECT_EQ(args, (std::vector<std::string>{"/usr/local/bin/warren-testapp", "--port", "8080"}));
  bool has_version = false, has_ip = false;
  for (const auto& j : spec["process"]["env"]) {
    const std::string e = j.get<std::string>();
    has_version |= e == "VERSION=v1";
    has_ip |= e.rfind("WARREN_TASK_IP=" + subnet_prefix_, 0) == 0;
  }
  EXPECT_TRUE(has_version);
  EXPECT_TRUE(has_ip);

  // The CRI log file, decoded.
  ASSERT_TRUE(WaitFor([&] {
    auto logs = Cli({"service", "logs", "web"});
    return logs.out.find("listening on " + subnet_prefix_) != std::string::npos;
  })) << Cli({"service", "logs", "web"}).out;
}

TEST_F(ContainerE2eTest, PodsResolveServicesByName) {
  StartCri();
  ASSERT_EQ(CreateWeb(2).exit_code, 0);
  WaitServing(2);
  std::set<std::string> ips;
  for (const auto& t : HealthyTasks("web")) ips.insert(t.value("address", ""));
  // Inside a pod, through the system resolver: the worker's DNS on the pods' gateway.
  for (const std::string name : {"web", "web.warren"}) {
    std::set<std::string> answered;
    ASSERT_TRUE(WaitFor([&] {
      auto r = HttpGet("127.0.0.1", publish_port_, "/lookup?name=" + name);
      if (!r || r->first != 200) return false;
      answered.clear();
      for (absl::string_view line : absl::StrSplit(r->second, '\n', absl::SkipEmpty())) {
        answered.insert(std::string(line));
      }
      return answered == ips;
    })) << name
        << ": " << HttpGet("127.0.0.1", publish_port_, "/lookup?name=" + name)->second;
  }
}

// A registry that wants a password: the pull fails with a clear error without credentials and
// works with a Docker config.json given as --registry-auth.
TEST_F(ContainerE2eTest, PrivateRegistryNeedsAndTakesCredentials) {
  const int port = FreePort();
  const std::string registry = "127.0.0.1:" + std::to_string(port);
  char salt[64];
  ASSERT_NE(crypt_gensalt_rn("$2b$", 5, nullptr, 0, salt, sizeof(salt)), nullptr);
  crypt_data data{};
  const char* hash = crypt_r("s3cret", salt, &data);
  ASSERT_NE(hash, nullptr);
  std::ofstream(dir_ / "htpasswd") << "edge:" << hash << "\n";
  StartRegistry(port, (dir_ / "htpasswd").string());
  const std::string image = registry + "/warren/testapp:private";
  auto copy = CopyImage(image, {"--dest-creds", "edge:s3cret"});
  ASSERT_EQ(copy.exit_code, 0) << copy.out << copy.err;

  StartCri();
  ASSERT_EQ(Cli({"service", "create", "denied", "--image", image, "--restart-condition", "never"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] { return !FailedError("denied").empty(); }, std::chrono::seconds(60)));
  EXPECT_NE(FailedError("denied").find("refused access"), std::string::npos)
      << FailedError("denied");

  processes_.back()->Kill(SIGTERM, std::chrono::seconds(20));
  const std::string auth = (dir_ / "auth.json").string();
  std::ofstream(auth) << R"({"auths": {")" << registry << R"(": {"auth": ")"
                      << absl::Base64Escape("edge:s3cret") << R"("}}})";
  StartCri({"--registry-auth", auth});
  ASSERT_EQ(Cli({"service", "create", "private", "--image", image, "--health-http", "/healthz",
                 "--health-interval", "200ms"})
                .exit_code,
            0);
  ASSERT_TRUE(
      WaitFor([&] { return HealthyTasks("private").size() == 1; }, std::chrono::seconds(60)))
      << Cli({"service", "ps", "private", "-o", "json"}).out;
}

// Pull policies against a registry that goes away: ":latest" pulls at every start (and fails
// once the registry is gone); "never" runs what the node has and names the policy otherwise.
TEST_F(ContainerE2eTest, PullPolicies) {
  const int port = FreePort();
  const std::string registry = "127.0.0.1:" + std::to_string(port);
  Process* reg = StartRegistry(port);
  const std::string latest = registry + "/warren/testapp:latest";
  auto copy = CopyImage(latest);
  ASSERT_EQ(copy.exit_code, 0) << copy.out << copy.err;

  StartCri();
  ASSERT_EQ(Cli({"service", "create", "latest", "--image", latest, "--health-http", "/healthz",
                 "--health-interval", "200ms", "--restart-condition", "never"})
                .exit_code,
            0);
  ASSERT_TRUE(
      WaitFor([&] { return HealthyTasks("latest").size() == 1; }, std::chrono::seconds(60)));
  ASSERT_EQ(Cli({"service", "create", "absent", "--image", registry + "/warren/nope:1", "--pull",
                 "never", "--restart-condition", "never"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] { return !FailedError("absent").empty(); }));
  EXPECT_NE(FailedError("absent").find("pull policy is never"), std::string::npos)
      << FailedError("absent");

  reg->Kill(SIGTERM, std::chrono::seconds(10));
  // Starts within 10 s of a pull share it; after that ":latest" asks the registry again.
  std::this_thread::sleep_for(std::chrono::milliseconds(10500));
  ASSERT_EQ(Cli({"service", "scale", "latest=2"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return !FailedError("latest").empty(); }, std::chrono::seconds(60)));
  EXPECT_NE(FailedError("latest").find("registry unreachable"), std::string::npos)
      << FailedError("latest");
  // "never" runs the copy the node has, registry or not.
  ASSERT_EQ(Cli({"service", "create", "offline", "--image", latest, "--pull", "never",
                 "--health-http", "/healthz", "--health-interval", "200ms"})
                .exit_code,
            0);
  ASSERT_TRUE(
      WaitFor([&] { return HealthyTasks("offline").size() == 1; }, std::chrono::seconds(60)))
      << Cli({"service", "ps", "offline"}).out;
}

TEST_F(ContainerE2eTest, SecretIsReadOnlyAtRunSecretsOnATmpfsThatGoesWithTheContainer) {
  StartCri();
  std::ofstream(dir_ / "value") << "container-secret-value";
  ASSERT_EQ(Cli({"secret", "create", "db-pw", "-f", (dir_ / "value").string()}).exit_code, 0);
  // The app reads the file before it listens: healthy means the container could read it.
  ASSERT_EQ(
      CreateWeb(1, {"--secret", "db-pw", "--arg", "--require-file", "--arg", "/run/secrets/db-pw"})
          .exit_code,
      0);
  WaitServing(1);
  EXPECT_TRUE(WaitFor([&] {
    return Cli({"service", "logs", "web"}).out.find("read 22 bytes from /run/secrets/db-pw") !=
           std::string::npos;
  })) << Cli({"service", "logs", "web"}).out;

  auto containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  cri::ContainerStatusRequest req;
  req.set_container_id(containers[0].id());
  req.set_verbose(true);
  cri::ContainerStatusResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runtime_->ContainerStatus(&ctx, req, &resp).ok());
  std::string host_path;
  for (const auto& m : resp.status().mounts()) {
    if (m.container_path() == "/run/secrets") {
      EXPECT_TRUE(m.readonly());
      host_path = m.host_path();
    }
  }
  ASSERT_FALSE(host_path.empty()) << resp.DebugString();
  struct statfs st;
  ASSERT_EQ(statfs(host_path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<long>(st.f_type), 0x01021994L);  // tmpfs

  ASSERT_EQ(Cli({"service", "rm", "web"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(host_path); })) << host_path;
}

TEST_F(ContainerE2eTest, ExecHealthChecksRunInTheContainer) {
  StartCri();
  // Plain words run without a shell (the image has none).
  ASSERT_EQ(Cli({"service", "create", "good", "--image", image_, "--health-cmd",
                 "/usr/local/bin/warren-testapp --help", "--health-interval", "200ms"})
                .exit_code,
            0);
  ASSERT_EQ(
      Cli({"service", "create", "bad", "--image", image_, "--health-cmd", "/no/such/binary",
           "--health-interval", "200ms", "--health-retries", "1", "--restart-condition", "never"})
          .exit_code,
      0);
  auto health = [&](const std::string& svc) {
    for (const auto& t : Tasks(svc)) {
      if (t["status"].contains("health")) return t["status"]["health"].value("state", "");
    }
    return std::string();
  };
  ASSERT_TRUE(
      WaitFor([&] { return health("good") == "HEALTH_STATE_HEALTHY"; }, std::chrono::seconds(30)))
      << Cli({"service", "ps", "good"}).out;
  ASSERT_TRUE(
      WaitFor([&] { return health("bad") == "HEALTH_STATE_UNHEALTHY"; }, std::chrono::seconds(30)))
      << Cli({"service", "ps", "bad"}).out;
}

TEST_F(ContainerE2eTest, MissingImageAndUnreachableRegistryAreClearErrors) {
  StartCri();
  ASSERT_EQ(Cli({"service", "create", "missing", "--image", "127.0.0.1:5000/warren/nope:1",
                 "--restart-condition", "never"})
                .exit_code,
            0);
  const int closed = FreePort();
  ASSERT_EQ(Cli({"service", "create", "unreachable", "--image",
                 "127.0.0.1:" + std::to_string(closed) + "/x:1", "--restart-condition", "never"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] { return !FailedError("missing").empty(); }, std::chrono::seconds(60)));
  EXPECT_NE(FailedError("missing").find("not found in its registry"), std::string::npos)
      << FailedError("missing");
  ASSERT_TRUE(
      WaitFor([&] { return !FailedError("unreachable").empty(); }, std::chrono::seconds(60)));
  EXPECT_NE(FailedError("unreachable").find("registry unreachable"), std::string::npos)
      << FailedError("unreachable");
  EXPECT_TRUE(Pods().empty());
  // A command-only service is not sent to a container node.
  ASSERT_EQ(Cli({"service", "create", "cmd", "--command", "/bin/true"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    auto ts = Tasks("cmd");
    return !ts.empty() &&
           ts[0]["status"].value("message", "").find("runs commands") != std::string::npos;
  })) << Cli({"service", "ps", "cmd", "-o", "json"}).out;
}

TEST_F(ContainerE2eTest, WorkerCrashAdoptsPodsAndRemovesOrphans) {
  StartCri();
  ASSERT_EQ(CreateWeb(2).exit_code, 0);
  WaitServing(2);
  std::set<std::string> before;
  for (const auto& t : HealthyTasks("web")) before.insert(t.value("id", ""));

  processes_.back()->Kill(SIGKILL);
  // An orphan the dead worker could have left: a pod of this node with no container.
  cri::RunPodSandboxRequest req;
  auto* config = req.mutable_config();
  config->mutable_metadata()->set_name("orphan-" + node_);
  config->mutable_metadata()->set_uid("orphan-" + node_);
  config->mutable_metadata()->set_namespace_("warren");
  (*config->mutable_labels())["io.warren.worker"] = node_;
  (*config->mutable_labels())["io.warren.task-id"] = "orphan" + std::to_string(range_octet_);
  cri::RunPodSandboxResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runtime_->RunPodSandbox(&ctx, req, &resp).ok());
  const std::string orphan = resp.pod_sandbox_id();
  EXPECT_EQ(Pods().size(), 3u);

  // Traffic keeps flowing through the restarted worker to the same pods.
  StartCri();
  ASSERT_TRUE(WaitFor([&] { return Pods().size() == 2u; })) << Pods().size();
  for (const auto& p : Pods()) EXPECT_NE(p.id(), orphan);
  WaitServing(2);
  std::set<std::string> after;
  for (const auto& t : HealthyTasks("web")) after.insert(t.value("id", ""));
  EXPECT_EQ(before, after) << "the same tasks, adopted, not replaced";
  // Their logs are found where the runtime writes them.
  auto logs = Cli({"service", "logs", "web"});
  for (const auto& id : after) {
    EXPECT_NE(logs.out.find("task=" + id), std::string::npos) << logs.out << logs.err;
  }
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_EQ(load.failed(), 0) << load.last_error();
}

// Issue 17 D7: containerd 1.6 never rotates container.log. The worker renames it past
// --log-max-size and has containerd reopen it (CRI ReopenContainerLog): the runtime then writes
// into a new file, and `service logs` reads both.
TEST_F(ContainerE2eTest, ContainerLogIsRotatedAndTheRuntimeReopensIt) {
  StartCri({"--log-max-size", "4K", "--log-max-files", "2"});
  ASSERT_EQ(CreateWeb(1).exit_code, 0);
  WaitServing(1);
  auto containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  cri::ContainerStatusRequest req;
  req.set_container_id(containers[0].id());
  cri::ContainerStatusResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(runtime_->ContainerStatus(&ctx, req, &resp).ok());
  const std::string log = resp.status().log_path();
  ASSERT_FALSE(log.empty());
  ASSERT_TRUE(WaitFor([&] { return ReadFile(log).find("listening on") != std::string::npos; }));
  // Output enough to pass the cap (written beside the runtime, in its format).
  {
    std::ofstream out(log, std::ios::app);
    for (int i = 0; i < 100; ++i) {
      out << "2024-05-01T10:00:00.000000000Z stdout F filler line " << i
          << " with some more text to make it longer\n";
    }
  }
  ASSERT_TRUE(WaitFor([&] {
    return std::filesystem::exists(log + ".1") && std::filesystem::exists(log);
  })) << "not rotated, or the runtime did not reopen the log";
  EXPECT_NE(ReadFile(log + ".1").find("filler line 99"), std::string::npos);
  auto logs = Cli({"service", "logs", "web"});
  EXPECT_NE(logs.out.find("listening on"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("filler line 99"), std::string::npos) << logs.out;
  // What the container prints now lands in the new file.
  ASSERT_EQ(Cli({"service", "scale", "web=0"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(log).find("draining") != std::string::npos; }))
      << "the runtime still writes into the rotated file: " << ReadFile(log + ".1");
}

}  // namespace
}  // namespace warren::e2e
