// Runs the real warren-testapp binary on a free loopback port.

#include <signal.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "test_http_client.h"
#include "test_subprocess.h"

namespace warren {
namespace {

using test::HttpConnection;
using test::HttpGet;
using test::Subprocess;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(10);

struct App {
  std::unique_ptr<Subprocess> process;
  int port = 0;
};

std::unique_ptr<Subprocess> Spawn(std::map<std::string, std::string> env,
                                  std::vector<std::string> args = {}) {
  env.emplace("WARREN_TASK_IP", "127.0.0.1");
  env.emplace("WARREN_TASK_PORT", "0");  // the app logs the port it got
  std::vector<std::string> argv = {WARREN_TESTAPP_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Subprocess::Start(argv, env);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

absl::StatusOr<App> StartApp(std::map<std::string, std::string> env) {
  App app;
  app.process = Spawn(std::move(env));
  if (!app.process) return absl::InternalError("spawn failed");
  auto line = app.process->WaitForStdoutLine("listening on 127.0.0.1:", kTimeout);
  if (!line.ok()) return line.status();
  std::string port = line->substr(line->rfind(':') + 1);
  if (!absl::SimpleAtoi(port, &app.port)) {
    return absl::InternalError(absl::StrCat("bad start line: ", *line));
  }
  return app;
}

TEST(TestAppTest, ServesIdentityAndEndpoints) {
  auto app = StartApp({{"VERSION", "v2"},
                       {"WARREN_TASK_ID", "abc123"},
                       {"WARREN_REVISION", "3"},
                       {"WARREN_SERVICE", "web"}});
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_THAT(app->process->Stdout(), HasSubstr("warren-testapp version=v2 task=abc123"));

  auto root = HttpGet("127.0.0.1", app->port, "/");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->status, 200);
  EXPECT_EQ(root->body, "version=v2 task=abc123 revision=3\n");
  EXPECT_EQ(root->Header("X-Version"), "v2");
  EXPECT_EQ(root->Header("X-Task-Id"), "abc123");

  auto json = HttpGet("127.0.0.1", app->port, "/?format=json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->Header("Content-Type"), "application/json");
  nlohmann::json parsed = nlohmann::json::parse(json->body);
  EXPECT_EQ(parsed["version"], "v2");
  EXPECT_EQ(parsed["task"], "abc123");
  EXPECT_EQ(parsed["revision"], "3");
  EXPECT_EQ(parsed["service"], "web");

  auto health = HttpGet("127.0.0.1", app->port, "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok");

  auto echo = test::HttpDo("127.0.0.1", app->port, "POST", "/echo", "ping\n",
                           {{"Content-Type", "text/x-test"}});
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(echo->body, "ping\n");
  EXPECT_EQ(echo->Header("Content-Type"), "text/x-test");

  auto slow = HttpGet("127.0.0.1", app->port, "/slow?ms=5");
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(slow->status, 200);
  auto bad_slow = HttpGet("127.0.0.1", app->port, "/slow?ms=soon");
  ASSERT_TRUE(bad_slow.ok());
  EXPECT_EQ(bad_slow->status, 400);
  auto missing = HttpGet("127.0.0.1", app->port, "/missing");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);

  auto metrics = HttpGet("127.0.0.1", app->port, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("testapp_requests_total{path=\"/\",code=\"200\"} 2\n"));

  app->process->Signal(SIGTERM);
  auto code = app->process->Wait(kTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(TestAppTest, FailHealth) {
  auto app = StartApp({{"FAIL_HEALTH", "1"}});
  ASSERT_TRUE(app.ok()) << app.status();
  auto health = HttpGet("127.0.0.1", app->port, "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 500);
  auto root = HttpGet("127.0.0.1", app->port, "/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->status, 200);
  EXPECT_EQ(root->Header("X-Task-Id"), "local");
}

// Status codes of n requests to / on one keep-alive connection.
std::vector<int> Statuses(int port, int n) {
  std::vector<int> out;
  auto conn = HttpConnection::Connect("127.0.0.1", port, kTimeout);
  if (!conn.ok()) return out;
  for (int i = 0; i < n; ++i) {
    auto resp = (*conn)->Request("GET", "/");
    if (!resp.ok()) break;
    out.push_back(resp->status);
  }
  return out;
}

TEST(TestAppTest, ErrorRateIsAboutTheFractionAndSeeded) {
  auto app = StartApp({{"ERROR_RATE", "0.3"}, {"SEED", "7"}});
  ASSERT_TRUE(app.ok()) << app.status();
  std::vector<int> statuses = Statuses(app->port, 400);
  ASSERT_EQ(statuses.size(), 400u);
  int errors = 0;
  for (int s : statuses) {
    EXPECT_TRUE(s == 200 || s == 500) << s;
    errors += s == 500;
  }
  // Binomial(400, 0.3): mean 120, sd 9.2; this bound is more than 4 sd wide.
  EXPECT_GE(errors, 80);
  EXPECT_LE(errors, 160);

  // The same seed gives the same sequence.
  auto again = StartApp({{"ERROR_RATE", "0.3"}, {"SEED", "7"}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Statuses(again->port, 400), statuses);

  auto always = StartApp({{"ERROR_RATE", "1"}});
  ASSERT_TRUE(always.ok()) << always.status();
  auto resp = HttpGet("127.0.0.1", always->port, "/");
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 500);
  EXPECT_EQ(resp->Header("X-Version"), "v1");
}

bool AwaitInflight(int port, int n) {
  std::string want = absl::StrCat("testapp_inflight_requests ", n, "\n");
  for (int i = 0; i < 1000; ++i) {
    auto metrics = HttpGet("127.0.0.1", port, "/metrics");
    if (metrics.ok() && metrics->body.find(want) != std::string::npos) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

TEST(TestAppTest, LatencyDoesNotBlockAndSigtermDrainsInFlight) {
  auto app = StartApp({{"LATENCY_MS", "700"}});
  ASSERT_TRUE(app.ok()) << app.status();
  absl::StatusOr<test::HttpClientResponse> slow;
  std::thread client([&] { slow = HttpGet("127.0.0.1", app->port, "/", kTimeout); });
  // /metrics answers on other connections while / waits out its latency.
  ASSERT_TRUE(AwaitInflight(app->port, 1));
  app->process->Signal(SIGTERM);
  client.join();
  ASSERT_TRUE(slow.ok()) << slow.status();
  EXPECT_EQ(slow->status, 200);
  EXPECT_EQ(slow->Header("Connection"), "close");
  auto code = app->process->Wait(kTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT(app->process->Stdout(), HasSubstr("draining"));
}

TEST(TestAppTest, CrashAfterExitsWithCode1) {
  auto app = StartApp({{"CRASH_AFTER", "200ms"}});
  ASSERT_TRUE(app.ok()) << app.status();
  auto code = app->process->Wait(kTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(app->process->Stdout(), HasSubstr("CRASH_AFTER=200ms"));
}

TEST(TestAppTest, StartupDelayThenServes) {
  auto app = StartApp({{"STARTUP_DELAY", "100ms"}});
  ASSERT_TRUE(app.ok()) << app.status();
  auto root = HttpGet("127.0.0.1", app->port, "/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->status, 200);
}

TEST(TestAppTest, SigtermDuringStartupDelayExits0) {
  auto process = Spawn({{"STARTUP_DELAY", "1h"}});
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(process->WaitForStdoutLine("waiting STARTUP_DELAY=1h", kTimeout).ok());
  process->Signal(SIGTERM);
  auto code = process->Wait(kTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(TestAppTest, FlagsOverrideTheEnvironment) {
  auto process = Spawn({{"WARREN_TASK_PORT", "1"}}, {"--addr", "127.0.0.1", "--port", "0"});
  ASSERT_NE(process, nullptr);
  EXPECT_TRUE(process->WaitForStdoutLine("listening on 127.0.0.1:", kTimeout).ok());
}

TEST(TestAppTest, BusyPortExits1) {
  auto busy = HttpServer::Start("127.0.0.1:0", [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_TRUE(busy.ok());
  auto process = Spawn({{"WARREN_TASK_PORT", absl::StrCat((*busy)->port())}});
  ASSERT_NE(process, nullptr);
  auto code = process->Wait(kTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(process->Stderr(), HasSubstr("address already in use"));
}

TEST(TestAppTest, InvalidSettingsExit2NamingTheVariable) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ERROR_RATE", "2"},    {"ERROR_RATE", "lots"},   {"LATENCY_MS", "-5"},
      {"LATENCY_MS", "1s"},   {"FAIL_HEALTH", "maybe"}, {"CRASH_AFTER", "soon"},
      {"CRASH_AFTER", "-1s"}, {"STARTUP_DELAY", "5"},   {"WARREN_TASK_PORT", "70000"},
      {"SEED", "-1"},
  };
  for (const auto& [name, value] : cases) {
    auto process = Spawn({{name, value}});
    ASSERT_NE(process, nullptr);
    auto code = process->Wait(kTimeout);
    ASSERT_TRUE(code.ok()) << name << "=" << value << ": " << code.status();
    EXPECT_EQ(*code, 2) << name << "=" << value;
    EXPECT_THAT(process->Stderr(), HasSubstr(name)) << name << "=" << value;
  }
  // The message names the variable and the value.
  auto process = Spawn({{"ERROR_RATE", "2"}});
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(process->Wait(kTimeout).ok());
  std::string err = process->Stderr();
  EXPECT_THAT(err, HasSubstr("ERROR_RATE: must be a fraction between 0 and 1, got \"2\""));

  auto bad_flag = Spawn({}, {"--port", "http"});
  ASSERT_NE(bad_flag, nullptr);
  auto code = bad_flag->Wait(kTimeout);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 2);
}

}  // namespace
}  // namespace warren
