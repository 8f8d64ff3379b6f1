// End-to-end: the daemon's contract with its supervisor and with generic tools, on the real
// binary: sd_notify readiness (READY=1 only once the API answers, STOPPING=1, WATCHDOG=1),
// the standard gRPC health and reflection services on the API and on the worker's agent
// endpoint, and JSON log lines.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <regex>

#include "../unit/grpc_probe.h"
#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

// The names in `want` missing from `have`.
std::vector<std::string> Missing(const std::vector<std::string>& have,
                                 const std::vector<std::string>& want) {
  std::vector<std::string> out;
  for (const auto& w : want) {
    if (std::find(have.begin(), have.end(), w) == have.end()) out.push_back(w);
  }
  return out;
}

// The service manager's end of NOTIFY_SOCKET: a Unix datagram socket in the test's dir.
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path) : path_(path.string()) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> Next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, n);
  }
  // Reads datagrams until one contains `what` (returned) or `timeout` passes.
  std::optional<std::string> WaitFor(const std::string& what, std::chrono::seconds timeout,
                                     std::vector<std::string>* seen = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      auto m = Next(left);
      if (!m) return std::nullopt;
      if (seen != nullptr) seen->push_back(*m);
      if (m->find(what) != std::string::npos) return m;
    }
    return std::nullopt;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
};

constexpr int kServing = 1;

TEST_F(E2eTest, ManagerNotifiesReadyOnlyOnceTheApiAnswers) {
  NotifySocket notify(dir_ / "notify.sock");
  ASSERT_TRUE(notify.bound()) << strerror(errno);
  Process manager(
      {WARREN_BINARY, "manager", "--data-dir", (dir_ / "m").string(), "--api-addr", api_addr_,
       "--metrics-addr", "", "--dns-addr", "", "--tls-root", tls_root().string()},
      (dir_ / "manager.log").string(),
      {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "200000"}});
  auto ready = notify.WaitFor("READY=1", std::chrono::seconds(30));
  ASSERT_TRUE(ready.has_value()) << manager.Log();
  // At the moment READY=1 arrives the API already answers: a health check made right then
  // gets SERVING, and a real API call succeeds.
  testing_util::HealthAnswer health =
      testing_util::HealthCheck(api_addr_, "", std::chrono::seconds(5), ApiCredentials());
  EXPECT_TRUE(health.status.ok()) << health.status.error_message();
  EXPECT_EQ(health.serving_status, kServing);
  auto ls = Cli({"service", "ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ready->find("STATUS=manager serving on " + api_addr_), std::string::npos) << *ready;

  // WatchdogSec: pings at half the interval.
  EXPECT_TRUE(notify.WaitFor("WATCHDOG=1", std::chrono::seconds(10)).has_value());
  EXPECT_TRUE(notify.WaitFor("WATCHDOG=1", std::chrono::seconds(10)).has_value());

  kill(manager.pid(), SIGTERM);
  EXPECT_TRUE(notify.WaitFor("STOPPING=1", std::chrono::seconds(20)).has_value());
  EXPECT_EQ(manager.Kill(SIGTERM), 0);
}

// cluster init: READY=1 once the manager serves and the worker's agent is up.
TEST_F(E2eTest, HybridNotifiesReadyAndServesHealthAndReflectionOnBothEndpoints) {
  NotifySocket notify(dir_ / "notify.sock");
  ASSERT_TRUE(notify.bound()) << strerror(errno);
  processes_.push_back(std::make_unique<Process>(
      std::vector<std::string>{WARREN_BINARY, "cluster", "init", "--data-dir",
                               (dir_ / "data").string(), "--api-addr", api_addr_, "--metrics-addr",
                               "", "--dns-addr", "", "--node-name", "node-1", "--address-range",
                               Range(), "--log-format", "json", "--tls-root", tls_root().string()},
      (dir_ / "hybrid.log").string(),
      std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify.path()}}));
  Process& node = *processes_.back();
  auto ready = notify.WaitFor("READY=1", std::chrono::seconds(30));
  ASSERT_TRUE(ready.has_value()) << node.Log();
  EXPECT_EQ(testing_util::HealthCheck(api_addr_, "", std::chrono::seconds(5), ApiCredentials())
                .serving_status,
            kServing);
  EXPECT_EQ(testing_util::HealthCheck(api_addr_, "warren.v1.Control", std::chrono::seconds(5),
                                      ApiCredentials())
                .serving_status,
            kServing);

  std::string error;
  auto api_services = testing_util::ReflectionListServices(api_addr_, &error, ApiCredentials());
  ASSERT_TRUE(api_services.has_value()) << error;
  EXPECT_TRUE(
      Missing(*api_services, {"warren.v1.Control", "warren.v1.Dispatcher", "grpc.health.v1.Health",
                              "grpc.reflection.v1alpha.ServerReflection"})
          .empty());

  // The worker's agent endpoint, as the node reports it.
  std::string agent;
  ASSERT_TRUE(WaitFor([&] {
    auto nodes = JsonList(Cli({"node", "ls", "-o", "json"}).out, "nodes");
    if (nodes.empty()) return false;
    agent = nodes[0].value("agentAddr", "");
    return !agent.empty();
  })) << Cli({"node", "ls", "-o", "json"}).out;
  EXPECT_EQ(testing_util::HealthCheck(agent, "", std::chrono::seconds(5), ApiCredentials())
                .serving_status,
            kServing);
  auto agent_services = testing_util::ReflectionListServices(agent, &error, ApiCredentials());
  ASSERT_TRUE(agent_services.has_value()) << error;
  EXPECT_TRUE(Missing(*agent_services, {"warren.v1.WorkerAgent", "grpc.health.v1.Health",
                                        "grpc.reflection.v1alpha.ServerReflection"})
                  .empty());

  // --log-format json: every line of the daemon's output (gRPC's own messages included) is one
  // JSON object with a UTC time.
  EXPECT_EQ(node.Kill(SIGTERM), 0);
  const std::regex utc(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  int lines = 0;
  std::istringstream log(node.Log());
  for (std::string line; std::getline(log, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(std::regex_match(j.value("time", ""), utc)) << line;
    EXPECT_TRUE(j.contains("level") && j.contains("msg")) << line;
    ++lines;
  }
  EXPECT_GE(lines, 2) << node.Log();
}

}  // namespace
}  // namespace warren::e2e
