// End-to-end blue/green and canary with real warren-testapp replicas under constant load
// through the published port: zero failed requests for blue/green and its rollback, exact
// canary traffic shares, and a bad canary pulled back automatically.
#include "canary_weights.h"
#include "e2e_fixture.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren::e2e {
namespace {

class ProgressiveE2eTest : public E2eTest {
 protected:
  int publish_port_ = FreePort();

  void CreateWeb(int replicas, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--env", "VERSION=v1", "--publish",
                                     "127.0.0.1:" + std::to_string(publish_port_) + ":8080"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = CreateTestapp("web", replicas, args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(
        WaitFor([&] { return HealthyTasks("web").size() == static_cast<size_t>(replicas); }));
    ASSERT_TRUE(WaitFor([&] {
      auto resp = HttpGet("127.0.0.1", publish_port_, "/");
      return resp && resp->first == 200;
    }));
  }

  nlohmann::json Rollout() {
    auto r = Cli({"service", "rollout", "status", "web", "-o", "json"});
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  // Requests the proxies counted per revision (cumulative).
  std::map<std::string, uint64_t> Counted() {
    std::map<std::string, uint64_t> out;
    auto j = nlohmann::json::parse(Cli({"service", "endpoints", "web", "-o", "json"}).out, nullptr,
                                   false);
    if (!j.is_object() || !j.contains("revisions")) return out;
    for (const auto& r : j["revisions"]) {
      if (!r.contains("total")) continue;
      out[r.value("revision", "")] = std::stoull(r["total"].value("requests", "0"));
    }
    return out;
  }
};

TEST_F(ProgressiveE2eTest, BlueGreenSwitchUnderLoadLosesNoRequest) {
  StartHybrid();
  CreateWeb(3);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--strategy", "blue-green",
                "--scale-down-delay", "3s"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("switched"), std::string::npos) << r.out;
  ASSERT_TRUE(
      WaitFor([&] { return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_SUCCEEDED"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // blue drains and goes
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_GT(load.v2(), 0);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  // The switch is visible in the proxies' per-revision counters (reported every second).
  ASSERT_TRUE(WaitFor([&] {
    auto c = Counted();
    return c["1"] > 0 && c["2"] > 0;
  })) << Cli({"service", "endpoints", "web"}).out;
  EXPECT_EQ(HealthyTasks("web").size(), 3u);
}

TEST_F(ProgressiveE2eTest, RollbackAfterBlueGreenSwitchLosesNoRequest) {
  StartHybrid();
  CreateWeb(2);
  ASSERT_EQ(Cli({"service", "update", "web", "--env", "VERSION=v2", "--strategy", "blue-green",
                 "--scale-down-delay", "5m", "--detach"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] { return Rollout().value("switched", false); }));
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->second.find("version=v2") != std::string::npos;
  }));
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Following the rollback ends when the flip back is done (it reuses the deployment).
  auto r = Cli({"service", "rollback", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->second.find("version=v1") != std::string::npos;
  }));
  ASSERT_TRUE(
      WaitFor([&] { return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_ROLLED_BACK"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  load.Stop();
  EXPECT_GT(load.v1(), 0);
  EXPECT_GT(load.v2(), 0);
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  EXPECT_EQ(Rollout().value("rollbackReason", ""), "manual");
}

// Green answers half its requests with 500 after the switch. Blue still runs (the scale-down
// delay) and is the proxies' fallback: users get blue's answer to every GET green failed, the
// post-switch analysis still sees green's errors and rolls back, and the retries are counted.
TEST_F(ProgressiveE2eTest, BlueGreenPostSwitchErrorsAreAnsweredFromBlue) {
  StartHybrid();
  CreateWeb(3);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--env", "ERROR_RATE=0.5",
                "--strategy", "blue-green", "--canary-window", "30s", "--min-requests", "50",
                "--scale-down-delay", "1m"});
  // The update returns once all traffic is on green; the post-switch analysis goes on after.
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all traffic on revision 2"), std::string::npos) << r.out;
  ASSERT_TRUE(WaitFor([&] {
    return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_ROLLED_BACK";
  })) << Rollout().dump();
  auto d = Rollout();
  EXPECT_EQ(d.value("rollbackReason", ""), "error_rate");
  EXPECT_NE(d.value("reason", "").find("post-switch analysis failed: error_rate"),
            std::string::npos)
      << d.dump();
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->second.find("version=v1") != std::string::npos;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  load.Stop();
  EXPECT_GT(load.v2(), 0) << "green answered some requests itself";
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  auto metrics = HttpGet("127.0.0.1", metrics_port_, "/metrics");
  ASSERT_TRUE(metrics.has_value());
  const std::string name = "warren_proxy_retried_total{service=\"web\"} ";
  const size_t at = metrics->second.find(name);
  ASSERT_NE(at, std::string::npos) << metrics->second;
  const double retried = std::stod(metrics->second.substr(at + name.size()));
  std::printf("post-switch: %d requests, %d answered by green, %.0f retried on blue\n", load.sent(),
              load.v2(), retried);
  EXPECT_GT(retried, 0);
}

TEST_F(ProgressiveE2eTest, BlueGreenPreviewAndManualPromote) {
  StartHybrid();
  CreateWeb(2);
  const int preview_port = FreePort();
  ASSERT_EQ(Cli({"service", "update", "web", "--env", "VERSION=v2", "--strategy", "blue-green",
                 "--no-auto-promote", "--preview-publish", std::to_string(preview_port),
                 "--scale-down-delay", "2s", "--detach"})
                .exit_code,
            0);
  // Green answers on the preview port only; production stays on blue.
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", preview_port, "/");
    return resp && resp->second.find("version=v2") != std::string::npos;
  }));
  for (int i = 0; i < 20; ++i) {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    ASSERT_TRUE(resp.has_value());
    EXPECT_NE(resp->second.find("version=v1"), std::string::npos);
  }
  EXPECT_FALSE(Rollout().value("switched", false));
  ASSERT_EQ(Cli({"service", "promote", "web"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->second.find("version=v2") != std::string::npos;
  }));
  ASSERT_TRUE(
      WaitFor([&] { return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_SUCCEEDED"; }));
}

TEST_F(ProgressiveE2eTest, CanaryTrafficSharesMatchTheWeights) {
  StartHybrid();
  CreateWeb(4);
  WeightTimeline timeline(ApiChannel(), "web");
  auto ms = [&] { return timeline.Ms(); };
  // Every answer is labelled with the millisecond it was sent in.
  Load load(publish_port_, ms);
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--strategy", "canary",
                "--canary-steps", "10,25,50,100", "--canary-window", "4s", "--min-requests", "20",
                "--scale-down-delay", "2s"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  load.Stop();
  timeline.Stop();
  EXPECT_EQ(load.failed(), 0) << load.last_error();
  std::map<int, std::pair<int, int>> by_weight = timeline.ByWeight(load.by_label());
  for (int w : {10, 25, 50}) {
    auto [v1, v2] = by_weight[w];
    ASSERT_GT(v1 + v2, 300) << "too few requests at weight " << w;
    double share = 100.0 * v2 / (v1 + v2);
    std::printf("canary weight %d%%: observed %.2f%% (%d of %d answers)\n", w, share, v2, v1 + v2);
    EXPECT_NEAR(share, w, 1.0) << "weight " << w << ": " << v2 << " of " << v1 + v2;
  }
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 4; }));
}

TEST_F(ProgressiveE2eTest, BadCanaryIsRolledBackAutomatically) {
  StartHybrid();
  CreateWeb(4);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--env", "ERROR_RATE=0.3",
                "--strategy", "canary", "--canary-steps", "10,50,100", "--canary-window", "30s",
                "--min-requests", "50"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("error_rate"), std::string::npos) << r.out;
  auto d = Rollout();
  EXPECT_EQ(d.value("phase", ""), "DEPLOYMENT_PHASE_ROLLED_BACK");
  EXPECT_EQ(d.value("rollbackReason", ""), "error_rate");
  ASSERT_TRUE(WaitFor([&] {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->second.find("version=v1") != std::string::npos && load.v2() > 0;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  load.Stop();
  // The canary's 500s were judged (the rollback reason) but users saw none: the proxy sent
  // each of those GETs once more, to the stable revision.
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
  ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 4; }));
}

// Issue 10 item 5: a rolling update (the default strategy) to a revision that answers half its
// requests with 500 passes its health checks but is rolled back by the rolling analysis, with
// the check as the reason. Prints how long the bad revision answered requests and how many
// requests failed meanwhile.
TEST_F(ProgressiveE2eTest, BadRollingUpdateIsRolledBackByItsAnalysis) {
  StartHybrid();
  CreateWeb(4);
  Load load(publish_port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--env", "ERROR_RATE=0.5",
                "--min-requests", "50"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("rolling analysis of revision 2 failed: error_rate"), std::string::npos)
      << r.out;
  auto d = Rollout();
  EXPECT_EQ(d.value("phase", ""), "DEPLOYMENT_PHASE_ROLLED_BACK") << d.dump();
  EXPECT_EQ(d.value("rollbackReason", ""), "error_rate");
  ASSERT_TRUE(WaitFor([&] {
    int running_v2 = 0;
    for (const auto& t : Tasks("web")) {
      if (t.value("desiredState", "") == "TASK_STATE_RUNNING" &&
          (t["revision"] == "2" || t["revision"] == 2)) {
        running_v2++;
      }
    }
    return HealthyTasks("web").size() == 4 && running_v2 == 0;
  }));
  const int v2_before = load.v2();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  load.Stop();
  EXPECT_EQ(load.v2(), v2_before) << "no request reaches revision 2 after its tasks are gone";
  const auto [first, last] = load.v2_span();
  ASSERT_GT(load.v2(), 0) << "the bad revision served before it was judged";
  std::printf(
      "rolling analysis: revision 2 answered requests for %.2f s; %d of %d requests "
      "failed\n",
      std::chrono::duration<double>(last - first).count(), load.failed(), load.sent());
  // Revision 1 kept a task until the verdict, and the proxies answered revision 2's 5xx
  // from it.
  EXPECT_EQ(load.failed(), 0) << "of " << load.sent() << "; last: " << load.last_error();
}

// Behaviour 1 under load: after a canary and a blue/green finished, while the previous
// revision is still warm, `service rollback` moves all traffic back at once (no step, no
// window, no new task) and no request fails.
TEST_F(ProgressiveE2eTest, RollbackAfterAFinishedRolloutSwitchesBackUnderLoad) {
  StartHybrid();
  CreateWeb(4);
  for (const std::string strategy : {"canary", "blue-green"}) {
    std::vector<std::string> update = {
        "service",    "update",          "web",    "--env",
        "VERSION=v2", "--strategy",      strategy, "--scale-down-delay",
        "5m",         "--canary-window", "1s",     "--min-requests",
        "1",          "--thin-traffic",  "pass"};
    if (strategy == "canary") {
      update.insert(update.end(), {"--canary-steps", "50,100"});
    }
    auto r = Cli(update);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("stays warm for"), std::string::npos) << r.out;
    ASSERT_TRUE(WaitFor([&] {
      return Rollout().value("phase", "") == "DEPLOYMENT_PHASE_SUCCEEDED";
    })) << strategy;
    const std::string finished = Rollout().value("id", "");
    Load load(publish_port_);
    ASSERT_TRUE(WaitFor([&] { return load.v2() > 50; }));
    r = Cli({"service", "rollback", "web"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(Rollout().value("id", ""), finished) << "switched back on the finished deployment";
    EXPECT_EQ(Rollout().value("phase", ""), "DEPLOYMENT_PHASE_ROLLED_BACK") << r.out;
    // All traffic is on v1 again: a run of answers from v1 only.
    const int v2_after = load.v2();
    const int v1_after = load.v1();
    ASSERT_TRUE(WaitFor([&] { return load.v1() > v1_after + 200; }));
    load.Stop();
    EXPECT_LE(load.v2() - v2_after, 5) << "requests in flight at the switch at most";
    EXPECT_EQ(load.failed(), 0) << strategy << " of " << load.sent()
                                << "; last: " << load.last_error();
    ASSERT_TRUE(WaitFor([&] { return HealthyTasks("web").size() == 4; })) << strategy;
    // The next round starts from revision 1 again.
  }
}

}  // namespace
}  // namespace warren::e2e
