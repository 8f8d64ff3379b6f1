#include "worker/health_prober.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/time_util.h"
#include "fd_exhaustion.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/process_driver.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(10);

template <typename F>
bool Eventually(F done) {
  absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return done();
}

void SetDuration(google::protobuf::Duration* d, absl::Duration value) {
  d->set_seconds(absl::ToInt64Seconds(value));
  d->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(value) % 1'000'000'000));
}

// ---------------------------------------------------------------------------------------------
// HealthTracker

struct Step {
  absl::Duration at;  // since the task started
  bool ok;
  v1::HealthState want;
  int want_failing;
  int want_passing;
};

struct TrackerCase {
  std::string name;
  int retries = 0;
  int success_threshold = 0;
  absl::Duration start_period = absl::ZeroDuration();
  std::vector<Step> steps;
};

void PrintTo(const TrackerCase& c, std::ostream* os) { *os << c.name; }

constexpr auto kStarting = v1::HEALTH_STATE_STARTING;
constexpr auto kHealthy = v1::HEALTH_STATE_HEALTHY;
constexpr auto kUnhealthy = v1::HEALTH_STATE_UNHEALTHY;

class HealthTrackerTableTest : public ::testing::TestWithParam<TrackerCase> {};

TEST_P(HealthTrackerTableTest, FollowsSteps) {
  const TrackerCase& c = GetParam();
  FakeClock clock;
  absl::Time start = clock.Now();
  v1::HealthCheck check;
  check.mutable_tcp();
  check.set_retries(c.retries);
  check.set_success_threshold(c.success_threshold);
  SetDuration(check.mutable_start_period(), c.start_period);
  HealthTracker tracker(check, start);
  EXPECT_EQ(tracker.health().state(), kStarting);
  v1::HealthState previous = kStarting;
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Step& s = c.steps[i];
    clock.Set(start + s.at);
    v1::ProbeResult result;
    result.set_ok(s.ok);
    result.set_output(s.ok ? "ok" : "fail");
    bool changed = tracker.Record(result, clock.Now());
    SCOPED_TRACE(absl::StrCat(c.name, " step ", i));
    EXPECT_EQ(tracker.health().state(), s.want);
    EXPECT_EQ(changed, s.want != previous);
    EXPECT_EQ(tracker.health().failing_streak(), s.want_failing);
    EXPECT_EQ(tracker.health().passing_streak(), s.want_passing);
    EXPECT_EQ(tracker.health().last_probe().output(), result.output());
    EXPECT_EQ(tracker.health().has_healthy_since(), s.want == kHealthy);
    EXPECT_EQ(tracker.NextProbeAt(), clock.Now() + absl::Seconds(5));
    previous = s.want;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HealthTrackerTableTest,
    ::testing::Values(TrackerCase{"defaults_one_success_is_healthy",
                                  0,
                                  0,
                                  absl::ZeroDuration(),
                                  {{absl::Seconds(5), true, kHealthy, 0, 1}}},
                      TrackerCase{"defaults_three_failures_are_unhealthy_then_recover",
                                  0,
                                  0,
                                  absl::ZeroDuration(),
                                  {{absl::Seconds(5), false, kStarting, 1, 0},
                                   {absl::Seconds(10), false, kStarting, 2, 0},
                                   {absl::Seconds(15), false, kUnhealthy, 3, 0},
                                   {absl::Seconds(20), false, kUnhealthy, 4, 0},
                                   {absl::Seconds(25), true, kHealthy, 0, 1}}},
                      TrackerCase{"healthy_tolerates_fewer_than_retries_failures",
                                  2,
                                  1,
                                  absl::ZeroDuration(),
                                  {{absl::Seconds(5), true, kHealthy, 0, 1},
                                   {absl::Seconds(10), false, kHealthy, 1, 0},
                                   {absl::Seconds(15), true, kHealthy, 0, 1},
                                   {absl::Seconds(20), false, kHealthy, 1, 0},
                                   {absl::Seconds(25), false, kUnhealthy, 2, 0}}},
                      TrackerCase{"start_period_failures_do_not_count",
                                  1,
                                  1,
                                  absl::Seconds(12),
                                  {{absl::Seconds(5), false, kStarting, 0, 0},
                                   {absl::Seconds(10), false, kStarting, 0, 0},
                                   {absl::Seconds(15), false, kUnhealthy, 1, 0}}},
                      TrackerCase{"success_in_start_period_ends_it",
                                  2,
                                  1,
                                  absl::Seconds(60),
                                  {{absl::Seconds(5), false, kStarting, 0, 0},
                                   {absl::Seconds(10), true, kHealthy, 0, 1},
                                   {absl::Seconds(15), false, kHealthy, 1, 0},
                                   {absl::Seconds(20), false, kUnhealthy, 2, 0}}},
                      TrackerCase{"success_threshold_for_healthy_and_for_recovery",
                                  1,
                                  3,
                                  absl::ZeroDuration(),
                                  {{absl::Seconds(5), true, kStarting, 0, 1},
                                   {absl::Seconds(10), true, kStarting, 0, 2},
                                   {absl::Seconds(15), true, kHealthy, 0, 3},
                                   {absl::Seconds(20), false, kUnhealthy, 1, 0},
                                   {absl::Seconds(25), true, kUnhealthy, 0, 1},
                                   {absl::Seconds(30), true, kUnhealthy, 0, 2},
                                   {absl::Seconds(35), false, kUnhealthy, 1, 0},
                                   {absl::Seconds(40), true, kUnhealthy, 0, 1},
                                   {absl::Seconds(45), true, kUnhealthy, 0, 2},
                                   {absl::Seconds(50), true, kHealthy, 0, 3}}},
                      TrackerCase{"a_success_resets_the_failing_streak",
                                  2,
                                  2,
                                  absl::ZeroDuration(),
                                  {{absl::Seconds(5), false, kStarting, 1, 0},
                                   {absl::Seconds(10), true, kStarting, 0, 1},
                                   {absl::Seconds(15), false, kStarting, 1, 0},
                                   {absl::Seconds(20), false, kUnhealthy, 2, 0}}}),
    [](const ::testing::TestParamInfo<TrackerCase>& info) { return info.param.name; });

TEST(HealthTrackerTest, DefaultsAndTiming) {
  v1::HealthCheck check;
  check.mutable_http();
  HealthCheckParams p = ResolveHealthCheck(check);
  EXPECT_EQ(p.interval, absl::Seconds(5));
  EXPECT_EQ(p.timeout, absl::Seconds(2));
  EXPECT_EQ(p.retries, 3);
  EXPECT_EQ(p.success_threshold, 1);
  EXPECT_EQ(p.start_period, kDefaultHealthStartPeriod);

  SetDuration(check.mutable_interval(), absl::Milliseconds(1500));
  SetDuration(check.mutable_timeout(), absl::Milliseconds(300));
  FakeClock clock;
  HealthTracker tracker(check, clock.Now());
  EXPECT_EQ(tracker.params().timeout, absl::Milliseconds(300));
  // The first probe comes a quarter interval after the start (startup probing).
  EXPECT_EQ(tracker.NextProbeAt(), clock.Now() + absl::Milliseconds(375));
  clock.Advance(absl::Seconds(2));
  v1::ProbeResult ok;
  ok.set_ok(true);
  EXPECT_TRUE(tracker.Record(ok, clock.Now()));
  EXPECT_EQ(tracker.health().healthy_since().seconds(), absl::ToUnixSeconds(clock.Now()));
  EXPECT_EQ(tracker.NextProbeAt(), clock.Now() + absl::Milliseconds(1500));
  // healthy_since stays at the moment it became healthy.
  clock.Advance(absl::Seconds(2));
  EXPECT_FALSE(tracker.Record(ok, clock.Now()));
  EXPECT_EQ(tracker.health().healthy_since().seconds(), absl::ToUnixSeconds(clock.Now()) - 2);
}

TEST(HealthTrackerTest, StartupProbesFindHealthEarlyAndTheirFailuresDoNotCount) {
  v1::HealthCheck check;
  check.mutable_tcp();
  check.set_retries(1);
  SetDuration(check.mutable_interval(), absl::Seconds(1));
  SetDuration(check.mutable_start_period(), absl::ZeroDuration());  // the first interval alone
  FakeClock clock;
  const absl::Time start = clock.Now();
  HealthTracker tracker(check, start);
  v1::ProbeResult fail, ok;
  ok.set_ok(true);
  // Three early probes fail (the task is still starting): not counted even with retries 1.
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(tracker.NextProbeAt(), start + absl::Milliseconds(250 * i));
    clock.Set(tracker.NextProbeAt());
    EXPECT_FALSE(tracker.Record(fail, clock.Now()));
    EXPECT_EQ(tracker.health().state(), v1::HEALTH_STATE_STARTING);
    EXPECT_EQ(tracker.health().failing_streak(), 0);
  }
  // The probe at the interval counts as before.
  EXPECT_EQ(tracker.NextProbeAt(), start + absl::Seconds(1));
  clock.Set(tracker.NextProbeAt());
  EXPECT_TRUE(tracker.Record(fail, clock.Now()));
  EXPECT_EQ(tracker.health().state(), v1::HEALTH_STATE_UNHEALTHY);
  EXPECT_EQ(tracker.NextProbeAt(), start + absl::Seconds(2));

  // A task serving at once is healthy at the first quarter, then probed once per interval.
  HealthTracker fast(check, start);
  clock.Set(fast.NextProbeAt());
  EXPECT_TRUE(fast.Record(ok, clock.Now()));
  EXPECT_EQ(fast.health().state(), v1::HEALTH_STATE_HEALTHY);
  EXPECT_EQ(fast.NextProbeAt(), start + absl::Milliseconds(1250));
}

// A new canary went unhealthy 0.6 s after its start under load (200 ms interval, 3 retries):
// the process was not listening yet, and only its first interval was a grace. Without a start
// period of its own a task gets the default one, in time rather than in intervals.
TEST(HealthTrackerTest, ANewTaskGetsTheDefaultStartPeriodToStartListening) {
  v1::HealthCheck check;
  check.mutable_http();
  SetDuration(check.mutable_interval(), absl::Milliseconds(200));
  EXPECT_EQ(ResolveHealthCheck(check).start_period, kDefaultHealthStartPeriod);
  FakeClock clock;
  const absl::Time start = clock.Now();
  v1::ProbeResult refused, ok;
  refused.set_output("connect 127.0.0.1:8080: Connection refused");
  ok.set_ok(true);
  // Slow to start: refused for 1.5 s, then serving. It never goes unhealthy on the way.
  HealthTracker slow(check, start);
  while (slow.NextProbeAt() < start + absl::Milliseconds(1500)) {
    clock.Set(slow.NextProbeAt());
    EXPECT_FALSE(slow.Record(refused, clock.Now())) << clock.Now() - start;
    EXPECT_EQ(slow.health().state(), kStarting);
    EXPECT_EQ(slow.health().failing_streak(), 0);
  }
  clock.Set(slow.NextProbeAt());
  EXPECT_TRUE(slow.Record(ok, clock.Now()));
  EXPECT_EQ(slow.health().state(), kHealthy);

  // Never listening: unhealthy once the start period is over and its retries have failed.
  HealthTracker never(check, start);
  absl::Time unhealthy_at = absl::InfiniteFuture();
  while (unhealthy_at == absl::InfiniteFuture() && never.NextProbeAt() < start + absl::Minutes(1)) {
    clock.Set(never.NextProbeAt());
    if (never.Record(refused, clock.Now())) unhealthy_at = clock.Now();
  }
  EXPECT_EQ(never.health().state(), kUnhealthy);
  EXPECT_GE(unhealthy_at - start, kDefaultHealthStartPeriod);
  EXPECT_LE(unhealthy_at - start, kDefaultHealthStartPeriod + 3 * absl::Milliseconds(200));

  // A start period of 0 given on purpose keeps only the first interval's grace.
  SetDuration(check.mutable_start_period(), absl::ZeroDuration());
  EXPECT_EQ(ResolveHealthCheck(check).start_period, absl::ZeroDuration());
  HealthTracker eager(check, start);
  for (int i = 0; i < 6; ++i) {
    clock.Set(eager.NextProbeAt());
    eager.Record(refused, clock.Now());
  }
  EXPECT_EQ(eager.health().state(), kUnhealthy);
  EXPECT_EQ(clock.Now() - start, absl::Milliseconds(600));
}

// Issue 17 D6: a worker restart reported every adopted task STARTING and, once probed,
// healthy since "now", which restarted min-ready for tasks that had served for minutes.
TEST(HealthTrackerTest, AdoptedTaskResumesItsHealthAndHealthySince) {
  v1::HealthCheck check;
  check.mutable_tcp();
  check.set_retries(2);
  SetDuration(check.mutable_interval(), absl::Seconds(1));
  FakeClock clock;
  const absl::Time started = clock.Now();
  clock.Advance(absl::Minutes(10));
  v1::TaskHealth before;
  before.set_state(kHealthy);
  *before.mutable_healthy_since() = ToProtoTime(started + absl::Seconds(1));
  before.set_passing_streak(500);
  before.mutable_last_probe()->set_ok(true);

  HealthTracker tracker(check, started, before);
  EXPECT_EQ(tracker.health().state(), kHealthy);
  EXPECT_EQ(tracker.NextProbeAt(), absl::InfinitePast()) << "checked again at once";
  v1::ProbeResult ok, fail;
  ok.set_ok(true);
  EXPECT_FALSE(tracker.Record(ok, clock.Now())) << "no change to report";
  EXPECT_EQ(tracker.health().healthy_since().seconds(), before.healthy_since().seconds());
  EXPECT_EQ(tracker.NextProbeAt(), clock.Now() + absl::Seconds(1));
  // Still held to its retries like any healthy task.
  clock.Advance(absl::Seconds(1));
  EXPECT_FALSE(tracker.Record(fail, clock.Now()));
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(tracker.Record(fail, clock.Now()));
  EXPECT_EQ(tracker.health().state(), kUnhealthy);

  // Nothing known (the manager never heard of its health): a new task's start.
  HealthTracker unknown(check, clock.Now(), v1::TaskHealth());
  EXPECT_EQ(unknown.health().state(), kStarting);
  EXPECT_EQ(unknown.NextProbeAt(), clock.Now() + absl::Milliseconds(250));
  // An unhealthy task counts its failures at once: its start is long over.
  v1::TaskHealth sick;
  sick.set_state(kUnhealthy);
  HealthTracker unhealthy(check, clock.Now(), sick);
  EXPECT_FALSE(unhealthy.Record(fail, clock.Now()));
  EXPECT_EQ(unhealthy.health().failing_streak(), 1);
  EXPECT_TRUE(unhealthy.Record(ok, clock.Now()));
  EXPECT_EQ(unhealthy.health().state(), kHealthy);
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/TCP server on 127.0.0.1:0. It answers each request with the configured status, or
// in silent mode reads the request and never answers.

class TestServer {
 public:
  TestServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 512), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) close(fd);
    close(fd_);
  }
  int port() const { return port_; }
  void set_status(int status) { status_ = status; }
  void set_silent(bool silent) { silent_ = silent; }
  int connections() const { return connections_; }
  std::vector<std::string> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd pfd = {fd_, POLLIN, 0};
      if (poll(&pfd, 1, 20) <= 0) continue;
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      ++connections_;
      std::string request;
      while (request.find("\r\n\r\n") == std::string::npos) {
        pollfd cp = {conn, POLLIN, 0};
        if (poll(&cp, 1, 2000) <= 0) break;
        char buf[1024];
        ssize_t n = read(conn, buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, n);
      }
      if (!request.empty()) {
        absl::MutexLock lock(&mu_);
        requests_.push_back(request);
      }
      if (silent_ || request.empty()) {
        if (silent_) {
          held_.push_back(conn);
          continue;
        }
        close(conn);
        continue;
      }
      std::string response = absl::StrCat(
          "HTTP/1.1 ", status_.load(), " Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      ssize_t ignored = write(conn, response.data(), response.size());
      (void)ignored;
      close(conn);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> status_{200};
  std::atomic<bool> silent_{false};
  std::atomic<int> connections_{0};
  std::vector<int> held_;
  absl::Mutex mu_;
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// A port nothing listens on.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(ProbeHttpTest, StatusRangeAndRequest) {
  TestServer server;
  v1::HttpProbe probe;
  probe.set_path("/healthz");
  (*probe.mutable_headers())["X-Probe"] = "yes";
  v1::ProbeResult result = ProbeHttp("127.0.0.1", server.port(), probe, absl::Seconds(5));
  EXPECT_TRUE(result.ok()) << result.output();
  EXPECT_EQ(result.output(), "HTTP/1.1 200 Status");
  EXPECT_GT(result.latency().seconds() * 1'000'000'000LL + result.latency().nanos(), 0);
  ASSERT_EQ(server.requests().size(), 1u);
  std::string request = server.requests()[0];
  EXPECT_THAT(request, StartsWith("GET /healthz HTTP/1.1\r\n"));
  EXPECT_THAT(request, HasSubstr(absl::StrCat("\r\nHost: 127.0.0.1:", server.port(), "\r\n")));
  EXPECT_THAT(request, HasSubstr("\r\nX-Probe: yes\r\n"));

  server.set_status(399);
  EXPECT_TRUE(ProbeHttp("127.0.0.1", server.port(), probe, absl::Seconds(5)).ok());
  server.set_status(404);
  result = ProbeHttp("127.0.0.1", server.port(), probe, absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.output(), "HTTP/1.1 404 Status");
  server.set_status(503);
  EXPECT_FALSE(ProbeHttp("127.0.0.1", server.port(), probe, absl::Seconds(5)).ok());

  // A custom range.
  probe.set_status_min(500);
  probe.set_status_max(503);
  EXPECT_TRUE(ProbeHttp("127.0.0.1", server.port(), probe, absl::Seconds(5)).ok());
  server.set_status(200);
  EXPECT_FALSE(ProbeHttp("127.0.0.1", server.port(), probe, absl::Seconds(5)).ok());
}

TEST(ProbeHttpTest, HostHeaderOverrideAndDefaultPath) {
  TestServer server;
  v1::HttpProbe probe;
  (*probe.mutable_headers())["host"] = "example.test";
  EXPECT_TRUE(ProbeHttp("", server.port(), probe, absl::Seconds(5)).ok());
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_THAT(server.requests()[0], StartsWith("GET / HTTP/1.1\r\nHost: example.test\r\n"));

  (*probe.mutable_headers())["X-Bad"] = "a\r\nInjected: 1";
  v1::ProbeResult result = ProbeHttp("", server.port(), probe, absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.output(), HasSubstr("http.headers[\"X-Bad\"]"));
}

TEST(ProbeHttpTest, TimesOutAgainstAServerThatNeverAnswers) {
  TestServer server;
  server.set_silent(true);
  v1::ProbeResult result =
      ProbeHttp("127.0.0.1", server.port(), v1::HttpProbe(), absl::Milliseconds(200));
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.output(), "timed out after 200ms");
}

TEST(ProbeHttpTest, ConnectionRefused) {
  v1::ProbeResult result =
      ProbeHttp("127.0.0.1", ClosedPort(), v1::HttpProbe(), absl::Milliseconds(500));
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.output(), HasSubstr("Connection refused"));
}

TEST(ProbeTcpTest, ConnectsOrFails) {
  TestServer server;
  v1::ProbeResult result = ProbeTcp("127.0.0.1", server.port(), absl::Seconds(5));
  EXPECT_TRUE(result.ok()) << result.output();
  result = ProbeTcp("127.0.0.1", ClosedPort(), absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.output(), HasSubstr("Connection refused"));
  result = ProbeTcp("127.0.0.1", 0, absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.output(), HasSubstr("port"));
}

class ProbeExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "warren-hp-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    driver_ = std::make_unique<ProcessDriver>(dir_);
    TaskRunSpec spec;
    spec.task_id = "t1";
    spec.spec.set_command("sleep");
    spec.spec.add_args("30");
    spec.env = {{"READY_FILE", dir_ + "/ready"}};
    ASSERT_TRUE(driver_->Start(spec).ok());
  }
  void TearDown() override {
    EXPECT_TRUE(driver_->Stop("t1", absl::Seconds(1)).ok());
    driver_.reset();
    fs::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<ProcessDriver> driver_;
};

TEST_F(ProbeExecTest, ExitCodeDecides) {
  v1::ExecProbe probe;
  probe.add_command("test -f \"$READY_FILE\" && echo ready");
  v1::ProbeResult result = ProbeExec(*driver_, "t1", probe, absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.output(), "exit code 1");
  std::ofstream(dir_ + "/ready") << "";
  result = ProbeExec(*driver_, "t1", probe, absl::Seconds(5));
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.output(), "exit code 0: ready");

  v1::ExecProbe slow;
  slow.add_command("sleep 5");
  result = ProbeExec(*driver_, "t1", slow, absl::Milliseconds(100));
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.output(), "timed out after 100ms");

  result = ProbeExec(*driver_, "unknown", probe, absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.output(), HasSubstr("NOT_FOUND"));
  result = ProbeExec(*driver_, "t1", v1::ExecProbe(), absl::Seconds(5));
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(result.output(), HasSubstr("exec.command"));
}

// ---------------------------------------------------------------------------------------------
// HealthProber

class Changes {
 public:
  HealthProber::Listener Listener() {
    return [this](const std::string& id, const v1::TaskHealth& health) {
      absl::MutexLock lock(&mu_);
      changes_.push_back({id, health.state()});
    };
  }
  bool WaitFor(const std::string& id, v1::HealthState state) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& [cid, s] : changes_) {
        if (cid == id && s == state) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), kWait);
  }
  size_t Count(v1::HealthState state) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const auto& [cid, s] : changes_) n += s == state;
    return n;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<std::string, v1::HealthState>> changes_ ABSL_GUARDED_BY(mu_);
};

// Exec is not used by these tests: a driver that knows no task.
class NoTaskDriver : public RuntimeDriver {
 public:
  std::string Name() const override { return "none"; }
  void SetListener(Listener) override {}
  absl::StatusOr<std::vector<std::string>> Recover() override { return std::vector<std::string>(); }
  absl::Status Start(const TaskRunSpec&) override { return absl::UnimplementedError("no"); }
  absl::Status Stop(std::string_view, absl::Duration) override { return absl::OkStatus(); }
  void Remove(std::string_view) override {}
  std::optional<TaskRuntimeState> Inspect(std::string_view) const override { return std::nullopt; }
  std::vector<std::string> List() const override { return {}; }
  absl::StatusOr<ExecResult> Exec(std::string_view, const std::vector<std::string>&,
                                  absl::Duration) override {
    return absl::NotFoundError("no such task");
  }
  std::string LogPath(std::string_view) const override { return ""; }
};

HealthProber::Options FastOptions() {
  HealthProber::Options options;
  options.max_wait = absl::Milliseconds(5);
  return options;
}

v1::HealthCheck HttpCheck(int retries) {
  v1::HealthCheck check;
  check.mutable_http()->set_path("/health");
  SetDuration(check.mutable_interval(), absl::Seconds(1));
  SetDuration(check.mutable_timeout(), absl::Seconds(5));
  check.set_retries(retries);
  return check;
}

TEST(HealthProberTest, ProbesOnTheClockAndReportsChanges) {
  TestServer server;
  FakeClock clock;
  NoTaskDriver driver;
  Changes changes;
  HealthProber prober(clock, driver, changes.Listener(), FastOptions());

  prober.Watch("t1", "127.0.0.1", server.port(), HttpCheck(2), clock.Now());
  ASSERT_TRUE(prober.Get("t1").has_value());
  EXPECT_EQ(prober.Get("t1")->state(), v1::HEALTH_STATE_STARTING);
  // Nothing is due before the first startup probe (a quarter interval) on the clock.
  EXPECT_EQ(server.connections(), 0);

  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(changes.WaitFor("t1", v1::HEALTH_STATE_HEALTHY));
  EXPECT_EQ(prober.Get("t1")->last_probe().output(), "HTTP/1.1 200 Status");
  EXPECT_EQ(prober.Get("t1")->last_probe().time().seconds(), absl::ToUnixSeconds(clock.Now()));

  server.set_status(500);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(Eventually([&] { return prober.Get("t1")->failing_streak() == 1; }));
  EXPECT_EQ(prober.Get("t1")->state(), v1::HEALTH_STATE_HEALTHY);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(changes.WaitFor("t1", v1::HEALTH_STATE_UNHEALTHY));
  EXPECT_FALSE(prober.Get("t1")->has_healthy_since());

  server.set_status(200);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(Eventually([&] { return changes.Count(v1::HEALTH_STATE_HEALTHY) == 2; }));

  prober.Unwatch("t1");
  EXPECT_FALSE(prober.Get("t1").has_value());
  EXPECT_EQ(prober.WatchedCount(), 0u);
}

// Issue 17 D4: out of descriptors every probe failed ("socket: Too many open files") and
// healthy tasks turned unhealthy. Such a probe says nothing about the task.
TEST(HealthProberTest, ProbesTheWorkerCannotRunChangeNoHealth) {
  TestServer server;
  const int code = testing_util::RunInChild([&] {
    {
      testing_util::FdExhaustion no_fds;
      bool inconclusive = false;
      v1::ProbeResult r = ProbeTcp("127.0.0.1", server.port(), absl::Seconds(1), &inconclusive);
      if (r.ok() || !inconclusive) return 1;
    }
    FakeClock clock;
    ProcessDriver driver(::testing::TempDir() + "/unused");
    std::atomic<int> changes{0};
    HealthProber prober(clock, driver,
                        [&](const std::string&, const v1::TaskHealth&) { changes++; });
    v1::HealthCheck check = HttpCheck(1);
    v1::TaskHealth healthy;
    healthy.set_state(kHealthy);
    *healthy.mutable_healthy_since() = ToProtoTime(clock.Now());
    prober.Resume("t1", "127.0.0.1", server.port(), check, clock.Now(), healthy);
    // The first probe after a resume is reported (it runs: descriptors are there).
    if (!Eventually([&] { return changes == 1; })) return 2;
    {
      testing_util::FdExhaustion no_fds;
      if (!Eventually([&] {
            clock.Advance(absl::Seconds(1));
            return prober.InconclusiveProbes() >= 3 || changes > 1;
          })) {
        return 3;
      }
    }
    if (prober.Get("t1")->state() != kHealthy || changes != 1) return 4;
    return 0;
  });
  EXPECT_EQ(code, 0) << "1: an EMFILE probe was taken for a result; 2: no first probe; 3: no "
                        "inconclusive probe counted; 4: the task's health changed";
}

TEST(HealthProberTest, TaskWithoutCheckIsNotWatched) {
  FakeClock clock;
  NoTaskDriver driver;
  HealthProber prober(clock, driver, nullptr, FastOptions());
  prober.Watch("t1", "127.0.0.1", 80, v1::HealthCheck(), clock.Now());
  EXPECT_FALSE(prober.Get("t1").has_value());
  EXPECT_EQ(prober.WatchedCount(), 0u);
}

TEST(HealthProberTest, ExecProbeFailuresMakeUnhealthy) {
  FakeClock clock;
  NoTaskDriver driver;
  Changes changes;
  HealthProber prober(clock, driver, changes.Listener(), FastOptions());
  v1::HealthCheck check;
  check.mutable_exec()->add_command("true");
  check.set_retries(1);
  prober.Watch("t1", "", 0, check, clock.Now());
  clock.Advance(absl::Seconds(5));
  ASSERT_TRUE(changes.WaitFor("t1", v1::HEALTH_STATE_UNHEALTHY));
  EXPECT_THAT(prober.Get("t1")->last_probe().output(), HasSubstr("no such task"));
}

TEST(HealthProberTest, ScalesToHundredsOfTasks) {
  TestServer server;
  FakeClock clock;
  NoTaskDriver driver;
  Changes changes;
  HealthProber prober(clock, driver, changes.Listener(), FastOptions());
  constexpr int kTasks = 300;
  v1::HealthCheck check;
  check.mutable_tcp();
  for (int i = 0; i < kTasks; ++i) {
    prober.Watch(absl::StrCat("t", i), "127.0.0.1", server.port(), check, clock.Now());
  }
  EXPECT_EQ(prober.WatchedCount(), static_cast<size_t>(kTasks));
  clock.Advance(absl::Seconds(5));
  ASSERT_TRUE(Eventually([&] { return changes.Count(v1::HEALTH_STATE_HEALTHY) == kTasks; }));
  // One probe per task per interval: the queue does not run a task twice.
  EXPECT_TRUE(Eventually([&] { return server.connections() == kTasks; }));
}

}  // namespace
}  // namespace warren
