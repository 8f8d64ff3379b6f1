#include "cli/cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cli/output.h"
#include "cli/service_flags.h"
#include "common/clock.h"
#include "common/spec.h"
#include "common/time_util.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

// Runs the CLI11 command the way `service create` registers it.
absl::StatusOr<v1::ServiceSpec> CreateFromArgs(std::vector<std::string> args) {
  CLI::App app{"test"};
  CreateFlags flags;
  app.add_option("NAME", flags.name)->required();
  AddTemplateFlags(&app, &flags.t);
  AddUpdateConfigFlags(&app, &flags.u);
  args.insert(args.begin(), "create");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(std::string("usage: ") + e.what());
  }
  RecordGivenFlags(app, &flags.t);
  RecordGivenFlags(app, &flags.u);
  return SpecFromCreateFlags(flags);
}

TEST(ServiceFlagsTest, CreateBuildsSpec) {
  auto spec = CreateFromArgs({"web",
                              "--command",
                              "/bin/app",
                              "--arg",
                              "-v",
                              "--arg",
                              "--x=1",
                              "--replicas",
                              "3",
                              "--env",
                              "PORT=8080",
                              "--env",
                              "EQ=a=b",
                              "--publish",
                              "9000:8080",
                              "-p",
                              "127.0.0.1:9001:8081/tcp",
                              "--health-http",
                              "/healthz",
                              "--health-port",
                              "8081",
                              "--health-interval",
                              "500ms",
                              "--health-timeout",
                              "1s",
                              "--health-retries",
                              "4",
                              "--health-start-period",
                              "1m30s",
                              "--health-success-threshold",
                              "2",
                              "--restart-condition",
                              "on-failure",
                              "--restart-max-attempts",
                              "5",
                              "--restart-delay",
                              "2s",
                              "--cpus",
                              "0.5",
                              "--memory",
                              "256M",
                              "--label",
                              "team=core",
                              "--constraint",
                              "node.labels.zone==eu",
                              "--stop-timeout",
                              "20s"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "web");
  EXPECT_EQ(spec->replicas(), 3);
  EXPECT_EQ(spec->mode(), "replicated");
  const v1::TaskTemplate& t = spec->template_();
  EXPECT_EQ(t.command(), "/bin/app");
  EXPECT_THAT(t.args(), ::testing::ElementsAre("-v", "--x=1"));
  EXPECT_EQ(t.env().at("PORT"), "8080");
  EXPECT_EQ(t.env().at("EQ"), "a=b");
  ASSERT_EQ(t.ports_size(), 2);
  EXPECT_EQ(t.ports(0).published(), 9000);
  EXPECT_EQ(t.ports(0).target(), 8080);
  EXPECT_EQ(t.ports(1).host_ip(), "127.0.0.1");
  EXPECT_EQ(t.health_check().http().path(), "/healthz");
  EXPECT_EQ(t.health_check().http().port(), 8081);
  EXPECT_EQ(t.health_check().interval().nanos(), 500'000'000);
  EXPECT_EQ(t.health_check().timeout().seconds(), 1);
  EXPECT_EQ(t.health_check().retries(), 4);
  EXPECT_EQ(t.health_check().start_period().seconds(), 90);
  EXPECT_EQ(t.health_check().success_threshold(), 2);
  EXPECT_EQ(t.restart_policy().condition(), "on-failure");
  EXPECT_EQ(t.restart_policy().max_attempts(), 5);
  EXPECT_EQ(t.restart_policy().delay().seconds(), 2);
  EXPECT_EQ(t.restart_policy().max_delay().seconds(), 30);  // default kept
  EXPECT_DOUBLE_EQ(t.resources().cpus(), 0.5);
  EXPECT_EQ(t.resources().memory_bytes(), 256LL << 20);
  EXPECT_EQ(spec->labels().at("team"), "core");
  EXPECT_EQ(t.constraints(0), "node.labels.zone==eu");
  EXPECT_EQ(t.stop_timeout().seconds(), 20);
}

TEST(ServiceFlagsTest, Defaults) {
  auto spec = CreateFromArgs({"web", "--command", "sleep"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->replicas(), 1);
  EXPECT_FALSE(spec->template_().has_health_check());
  EXPECT_EQ(spec->template_().stop_timeout().seconds(), 10);
  auto global = CreateFromArgs({"agent", "--command", "sleep", "--mode", "global"});
  ASSERT_TRUE(global.ok()) << global.status();
  EXPECT_EQ(global->replicas(), 0);
  auto tcp = CreateFromArgs({"db", "--command", "db", "--health-tcp", "5432"});
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->template_().health_check().tcp().port(), 5432);
  EXPECT_EQ(tcp->template_().health_check().interval().seconds(), 5);
  auto exec = CreateFromArgs({"db", "--command", "db", "--health-cmd", "pg_isready -q"});
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_THAT(exec->template_().health_check().exec().command(),
              ::testing::ElementsAre("pg_isready -q"));
}

TEST(ServiceFlagsTest, ErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"web"}, "--command: template.command: required (the process runtime runs a command)"},
           {{"Web_1", "--command", "x"}, "name: \"Web_1\" is not a DNS label"},
           {{"web", "--command", "x", "--replicas", "-1"},
            "--replicas: replicas: must be 0..10000, got -1"},
           {{"web", "--command", "x", "--publish", "70000"},
            "--publish: invalid port mapping \"70000\": target port must be 1..65535"},
           {{"web", "--command", "x", "--publish", "80/udp"}, "protocol must be tcp"},
           {{"web", "--command", "x", "--publish", "8080", "--publish", "8080"},
            "--publish: template.ports[1].published: port 8080 is already published"},
           {{"web", "--command", "x", "--health-http", "/h", "--health-interval", "5x"},
            "--health-interval: invalid duration \"5x\": use a number with a unit: 500ms, 10s, 5m, "
            "1h"},
           {{"web", "--command", "x", "--health-http", "/h", "--health-interval", "0"},
            "--health-interval: template.healthCheck.interval: must be greater than 0 and at most "
            "168h"},
           {{"web", "--command", "x", "--health-http", "h"},
            "--health-http: template.healthCheck.http.path: must start with '/'"},
           {{"web", "--command", "x", "--health-http", "/h", "--health-port", "99999"},
            "--health-port: template.healthCheck.http.port"},
           {{"web", "--command", "x", "--health-interval", "5s"},
            "--health-interval: needs a health check"},
           {{"web", "--command", "x", "--health-port", "80"}, "--health-port: needs an HTTP"},
           {{"web", "--command", "x", "--health-http", "/h", "--health-tcp", "80"},
            "usage: --health-http excludes --health-tcp"},
           {{"web", "--command", "x", "--restart-condition", "sometimes"},
            "usage: --restart-condition"},
           {{"web", "--command", "x", "--restart-delay", "soon"},
            "--restart-delay: invalid duration"},
           {{"web", "--command", "x", "--stop-timeout", "10"}, "--stop-timeout: invalid duration"},
           {{"web", "--command", "x", "--memory", "lots"}, "--memory: invalid size \"lots\""},
           {{"web", "--command", "x", "--cpus", "-1"}, "--cpus: template.resources.cpus"},
           {{"web", "--command", "x", "--env", "NOVALUE"},
            "--env: expected KEY=VALUE, got \"NOVALUE\""},
           {{"web", "--command", "x", "--env", "1A=b"},
            "--env: template.env: \"1A\" is not a valid"},
           {{"web", "--command", "x", "--label", "=v"}, "--label: expected KEY=VALUE"},
           {{"web", "--command", "x", "--constraint", "zone=eu"},
            "--constraint: template.constraints[0]: invalid constraint"},
           {{"web", "--command", "x", "--replicas", "many"}, "usage: "},
           {{"web", "--command", "x", "--mode", "global", "--replicas", "2"},
            "--replicas: replicas: must be unset in global mode"},
       }) {
    auto spec = CreateFromArgs(c.args);
    ASSERT_FALSE(spec.ok()) << c.want;
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(c.want));
  }
}

TEST(ServiceFlagsTest, ParsePublish) {
  struct Case {
    std::string text;
    int published, target;
    std::string host;
  };
  for (const Case& c : std::vector<Case>{{"8080", 8080, 8080, ""},
                                         {"9000:8080", 9000, 8080, ""},
                                         {"8080/tcp", 8080, 8080, ""},
                                         {"127.0.0.1:9000:8080/tcp", 9000, 8080, "127.0.0.1"},
                                         {"[::1]:9000:8080", 9000, 8080, "::1"}}) {
    absl::StatusOr<v1::Port> p = ParsePublish(c.text);
    ASSERT_TRUE(p.ok()) << c.text << ": " << p.status();
    EXPECT_EQ(p->published(), c.published) << c.text;
    EXPECT_EQ(p->target(), c.target) << c.text;
    EXPECT_EQ(p->host_ip(), c.host) << c.text;
  }
  for (const std::string bad : {"", "x", "0", "65536", ":8080", "9000:", "a:9000:8080",
                                ":9000:8080", "8080/udp", "1:2:3:4"}) {
    EXPECT_FALSE(ParsePublish(bad).ok()) << bad;
  }
}

TEST(ServiceFlagsTest, UpdateChangesOnlyGivenFields) {
  auto base =
      CreateFromArgs({"web", "--command", "/bin/app", "--replicas", "3", "--env", "A=1", "--env",
                      "B=2", "--publish", "8080", "--health-http", "/h", "--health-retries", "7"});
  ASSERT_TRUE(base.ok()) << base.status();

  CLI::App app{"test"};
  UpdateFlags flags;
  app.add_option("NAME", flags.name);
  AddTemplateFlags(&app, &flags.t);
  app.add_option("--env-rm", flags.env_rm);
  std::vector<const char*> argv = {
      "update", "web",        "--env", "C=3", "--env-rm", "A", "--health-interval",
      "9s",     "--replicas", "5"};
  app.parse(static_cast<int>(argv.size()), argv.data());
  RecordGivenFlags(app, &flags.t);

  v1::ServiceSpec spec = *base;
  ASSERT_TRUE(ApplyUpdateFlags(flags, &spec).ok());
  EXPECT_EQ(spec.replicas(), 5);
  EXPECT_EQ(spec.template_().command(), "/bin/app");
  EXPECT_EQ(spec.template_().env().count("A"), 0u);
  EXPECT_EQ(spec.template_().env().at("B"), "2");
  EXPECT_EQ(spec.template_().env().at("C"), "3");
  EXPECT_EQ(spec.template_().ports_size(), 1);
  EXPECT_EQ(spec.template_().health_check().http().path(), "/h");
  EXPECT_EQ(spec.template_().health_check().retries(), 7);
  EXPECT_EQ(spec.template_().health_check().interval().seconds(), 9);

  UpdateFlags rm_missing;
  rm_missing.env_rm = {"NOPE"};
  spec = *base;
  EXPECT_THAT(std::string(ApplyUpdateFlags(rm_missing, &spec).message()),
              HasSubstr("--env-rm: the service has no environment variable \"NOPE\""));
}

TEST(ServiceFlagsTest, UpdateConfigFlags) {
  auto spec = CreateFromArgs({"web",
                              "--command",
                              "x",
                              "--replicas",
                              "4",
                              "--strategy",
                              "rolling",
                              "--parallelism",
                              "2",
                              "--max-surge",
                              "25%",
                              "--max-unavailable",
                              "1",
                              "--update-order",
                              "stop-first",
                              "--delay",
                              "3s",
                              "--min-ready",
                              "500ms",
                              "--healthy-deadline",
                              "1m",
                              "--progress-deadline",
                              "2m",
                              "--failure-action",
                              "pause",
                              "--max-failure-ratio",
                              "0.25",
                              "--rollback-parallelism",
                              "0",
                              "--rollback-max-surge",
                              "50%",
                              "--rollback-max-unavailable",
                              "2",
                              "--rollback-order",
                              "start-first",
                              "--rollback-delay",
                              "0",
                              "--history-limit",
                              "5"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  const v1::UpdateConfig& u = spec->update_config();
  EXPECT_EQ(u.strategy(), "rolling");
  EXPECT_EQ(u.parallelism(), 2);
  EXPECT_EQ(u.max_surge(), "25%");
  EXPECT_EQ(u.max_unavailable(), "1");
  EXPECT_EQ(u.order(), "stop-first");
  EXPECT_EQ(u.delay().seconds(), 3);
  EXPECT_EQ(u.min_ready().nanos(), 500'000'000);
  EXPECT_EQ(u.healthy_deadline().seconds(), 60);
  EXPECT_EQ(u.progress_deadline().seconds(), 120);
  EXPECT_EQ(u.failure_action(), "pause");
  EXPECT_DOUBLE_EQ(u.max_failure_ratio(), 0.25);
  const v1::UpdateConfig& r = spec->rollback_config();
  ASSERT_TRUE(r.has_parallelism());
  EXPECT_EQ(r.parallelism(), 0);
  EXPECT_EQ(r.max_surge(), "50%");
  EXPECT_EQ(r.max_unavailable(), "2");
  EXPECT_EQ(r.order(), "start-first");
  EXPECT_TRUE(r.has_delay());
  EXPECT_EQ(r.delay().seconds(), 0);
  EXPECT_FALSE(r.has_min_ready());  // not settable by flag: inherited
  EXPECT_EQ(spec->history_limit(), 5);

  // --update-delay is the long name of --delay.
  auto alias = CreateFromArgs({"web", "--command", "x", "--update-delay", "7s"});
  ASSERT_TRUE(alias.ok()) << alias.status();
  EXPECT_EQ(alias->update_config().delay().seconds(), 7);
  // Without rollout flags: every default, and no rollbackConfig.
  auto plain = CreateFromArgs({"web", "--command", "x"});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->update_config().parallelism(), 1);
  EXPECT_EQ(plain->update_config().max_surge(), "1");
  EXPECT_EQ(plain->update_config().healthy_deadline().seconds(), 300);
  EXPECT_FALSE(plain->has_rollback_config());
  EXPECT_EQ(plain->history_limit(), 10);
}

TEST(ServiceFlagsTest, UpdateConfigErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"--strategy", "canary-ish"},
            "--strategy: updateConfig.strategy: must be rolling, blue-green or canary"},
           {{"--parallelism", "-1"}, "--parallelism: updateConfig.parallelism: must be 0"},
           {{"--parallelism", "two"}, "usage: "},
           {{"--max-surge", "lots"}, "--max-surge: updateConfig.maxSurge: must be a whole number"},
           {{"--max-unavailable", "120%"}, "--max-unavailable: updateConfig.maxUnavailable"},
           {{"--max-surge", "0"},
            "--max-surge, --max-unavailable: updateConfig: maxSurge and maxUnavailable cannot "
            "both be 0"},
           {{"--update-order", "random"},
            "--update-order: updateConfig.order: must be start-first or stop-first"},
           {{"--delay", "-1s"}, "--update-delay: updateConfig.delay: must be 0..168h"},
           {{"--delay", "5"}, "--update-delay: invalid duration \"5\""},
           {{"--min-ready", "soon"}, "--min-ready: invalid duration"},
           {{"--healthy-deadline", "-1m"}, "--healthy-deadline: updateConfig.healthyDeadline"},
           {{"--progress-deadline", "x"}, "--progress-deadline: invalid duration"},
           {{"--failure-action", "explode"},
            "--failure-action: updateConfig.failureAction: must be pause, rollback or continue"},
           {{"--max-failure-ratio", "1.5"},
            "--max-failure-ratio: updateConfig.maxFailureRatio: must be 0..1"},
           {{"--rollback-parallelism", "-3"}, "--rollback-parallelism: rollbackConfig.parallelism"},
           {{"--rollback-max-surge", "x"}, "--rollback-max-surge: rollbackConfig.maxSurge"},
           {{"--rollback-max-unavailable", "x"},
            "--rollback-max-unavailable: rollbackConfig.maxUnavailable"},
           {{"--rollback-max-surge", "0"},
            "--rollback-max-surge, --rollback-max-unavailable: rollbackConfig: maxSurge and "
            "maxUnavailable cannot both be 0"},
           {{"--rollback-order", "x"}, "--rollback-order: rollbackConfig.order"},
           {{"--rollback-delay", "-2s"}, "--rollback-delay: rollbackConfig.delay"},
           {{"--rollback-delay", "2"}, "--rollback-delay: invalid duration"},
           {{"--history-limit", "1"}, "--history-limit: historyLimit: must be 2..100"},
       }) {
    std::vector<std::string> args = {"web", "--command", "x"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto spec = CreateFromArgs(args);
    ASSERT_FALSE(spec.ok()) << c.want;
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(c.want));
  }
}

TEST(ServiceFlagsTest, StrategyFlags) {
  auto canary = CreateFromArgs({"web",
                                "--command",
                                "x",
                                "--publish",
                                "9000:8080",
                                "--strategy",
                                "canary",
                                "--canary-steps",
                                "5, 20,100",
                                "--canary-window",
                                "2m",
                                "--canary-keep-stable",
                                "--failure-threshold",
                                "2.5%",
                                "--max-error-rate-increase",
                                "1",
                                "--max-latency",
                                "300ms",
                                "--min-requests",
                                "200",
                                "--thin-traffic",
                                "fail",
                                "--analysis-query",
                                "sum(rate(x[1m]))",
                                "--analysis-threshold",
                                "0.5"});
  ASSERT_TRUE(canary.ok()) << canary.status();
  const v1::UpdateConfig& c = canary->update_config();
  EXPECT_EQ(c.strategy(), "canary");
  EXPECT_THAT(c.canary_steps(), ::testing::ElementsAre(5, 20, 100));
  EXPECT_EQ(c.canary_window().seconds(), 120);
  EXPECT_TRUE(c.canary_keep_stable());
  EXPECT_DOUBLE_EQ(c.failure_threshold(), 2.5);
  EXPECT_DOUBLE_EQ(c.max_error_rate_increase(), 1);
  EXPECT_EQ(c.max_latency().nanos(), 300'000'000);
  EXPECT_EQ(c.min_requests(), 200);
  EXPECT_EQ(c.thin_traffic(), "fail");
  EXPECT_EQ(c.analysis_query(), "sum(rate(x[1m]))");
  EXPECT_DOUBLE_EQ(c.analysis_threshold(), 0.5);
  EXPECT_TRUE(c.auto_promote());  // default

  auto bg = CreateFromArgs({"web", "--command", "x", "--publish", "9000:8080", "--strategy",
                            "blue-green", "--no-auto-promote", "--scale-down-delay", "10m",
                            "--preview-publish", "9001"});
  ASSERT_TRUE(bg.ok()) << bg.status();
  EXPECT_EQ(bg->update_config().strategy(), "blue-green");
  ASSERT_TRUE(bg->update_config().has_auto_promote());
  EXPECT_FALSE(bg->update_config().auto_promote());
  EXPECT_EQ(bg->update_config().scale_down_delay().seconds(), 600);
  EXPECT_EQ(bg->update_config().preview_published_port(), 9001);
  EXPECT_TRUE(bg->update_config().canary_steps().empty());
  auto explicit_false = CreateFromArgs({"web", "--command", "x", "--auto-promote=false"});
  ASSERT_TRUE(explicit_false.ok()) << explicit_false.status();
  EXPECT_FALSE(explicit_false->update_config().auto_promote());

  // Canary defaults.
  auto plain = CreateFromArgs({"web", "--command", "x", "--strategy", "canary"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_THAT(plain->update_config().canary_steps(), ::testing::ElementsAre(10, 25, 50, 100));
  EXPECT_EQ(plain->update_config().canary_window().seconds(), 300);
  EXPECT_EQ(plain->update_config().failure_threshold(), 10);

  // Rolling analysis flags.
  auto rolling =
      CreateFromArgs({"web", "--command", "x", "--no-rolling-analysis", "--rolling-window", "30s"});
  ASSERT_TRUE(rolling.ok()) << rolling.status();
  ASSERT_TRUE(rolling->update_config().has_rolling_analysis());
  EXPECT_FALSE(rolling->update_config().rolling_analysis());
  EXPECT_EQ(rolling->update_config().rolling_window().seconds(), 30);
  EXPECT_EQ(rolling->update_config().failure_threshold(), 5);
  auto on = CreateFromArgs({"web", "--command", "x", "--rolling-analysis"});
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->update_config().rolling_analysis());
  EXPECT_EQ(plain->update_config().min_requests(), 50);
  EXPECT_EQ(plain->update_config().thin_traffic(), "extend");
}

TEST(ServiceFlagsTest, StrategyFlagErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"--strategy", "linear"},
            "--strategy: updateConfig.strategy: must be rolling, blue-green or canary, got "
            "\"linear\""},
           {{"--canary-steps", "10,x,100"}, "--canary-steps: invalid steps \"10,x,100\""},
           {{"--canary-steps", ""}, "--canary-steps: invalid steps"},
           {{"--canary-steps", "10,5,100"},
            "--canary-steps: updateConfig.canarySteps[1]: must be greater than the step before "
            "(10), got 5"},
           {{"--canary-steps", "10,50"},
            "--canary-steps: updateConfig.canarySteps[1]: the last step must be 100"},
           {{"--canary-steps", "0,100"},
            "--canary-steps: updateConfig.canarySteps[0]: must be 1..100"},
           {{"--canary-window", "5"}, "--canary-window: invalid duration \"5\""},
           {{"--canary-window", "-1m"},
            "--canary-window: updateConfig.canaryWindow: must be 0..168h"},
           {{"--rolling-window", "0s"},
            "--rolling-window: updateConfig.rollingWindow: must be greater than 0"},
           {{"--scale-down-delay", "x"}, "--scale-down-delay: invalid duration"},
           {{"--max-latency", "-5ms"}, "--max-latency: updateConfig.maxLatency: must be 0..168h"},
           {{"--failure-threshold", "lots"}, "--failure-threshold: invalid percentage \"lots\""},
           {{"--failure-threshold", "150"},
            "--failure-threshold: updateConfig.failureThreshold: must be 0..100"},
           {{"--max-error-rate-increase", "-1"},
            "--max-error-rate-increase: updateConfig.maxErrorRateIncrease: must be 0..100"},
           {{"--min-requests", "-1"},
            "--min-requests: updateConfig.minRequests: must be 0..100000000"},
           {{"--min-requests", "many"}, "usage: "},
           {{"--thin-traffic", "skip"},
            "--thin-traffic: updateConfig.thinTraffic: must be extend, pass or fail"},
           {{"--preview-publish", "70000"},
            "--preview-publish: updateConfig.previewPublishedPort: must be 0 (no preview port) or "
            "1..65535"},
           {{"--publish", "9000:8080", "--preview-publish", "9000"},
            "--preview-publish: updateConfig.previewPublishedPort: port 9000 is already published"},
           {{"--analysis-query", "up"},
            "--analysis-threshold: updateConfig.analysisThreshold: required when analysisQuery"},
           {{"--analysis-threshold", "3"},
            "--analysis-query: updateConfig.analysisQuery: required when analysisThreshold"},
           {{"--auto-promote=maybe"}, "usage: "},
       }) {
    std::vector<std::string> args = {"web", "--command", "x"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto spec = CreateFromArgs(args);
    ASSERT_FALSE(spec.ok()) << c.want;
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(c.want));
  }
}

TEST(ServiceFlagsTest, UpdateChangesOnlyGivenStrategyFields) {
  auto base = CreateFromArgs({"web", "--command", "x", "--strategy", "canary", "--canary-steps",
                              "20,100", "--failure-threshold", "3", "--max-error-rate-increase",
                              "2", "--analysis-query", "q", "--analysis-threshold", "1",
                              "--no-auto-promote", "--canary-keep-stable"});
  ASSERT_TRUE(base.ok()) << base.status();
  auto update = [&](std::vector<const char*> argv) {
    CLI::App app{"test"};
    UpdateFlags flags;
    app.add_option("NAME", flags.name);
    AddTemplateFlags(&app, &flags.t);
    AddUpdateConfigFlags(&app, &flags.u);
    argv.insert(argv.begin(), {"update", "web"});
    app.parse(static_cast<int>(argv.size()), argv.data());
    RecordGivenFlags(app, &flags.t);
    RecordGivenFlags(app, &flags.u);
    v1::ServiceSpec spec = *base;
    absl::Status s = ApplyUpdateFlags(flags, &spec);
    EXPECT_TRUE(s.ok()) << s;
    return spec;
  };
  v1::ServiceSpec spec = update({"--canary-window", "1m"});
  EXPECT_EQ(spec.update_config().canary_window().seconds(), 60);
  EXPECT_THAT(spec.update_config().canary_steps(), ::testing::ElementsAre(20, 100));
  EXPECT_EQ(spec.update_config().failure_threshold(), 3);
  EXPECT_FALSE(spec.update_config().auto_promote());
  EXPECT_TRUE(spec.update_config().canary_keep_stable());
  EXPECT_EQ(spec.update_config().analysis_query(), "q");
  // Turning options off again.
  spec = update({"--auto-promote", "--canary-keep-stable=false", "--max-error-rate-increase", "off",
                 "--analysis-query", ""});
  EXPECT_TRUE(spec.update_config().auto_promote());
  EXPECT_FALSE(spec.update_config().canary_keep_stable());
  EXPECT_FALSE(spec.update_config().has_max_error_rate_increase());
  EXPECT_TRUE(spec.update_config().analysis_query().empty());
  EXPECT_FALSE(spec.update_config().has_analysis_threshold());
  // Switching strategy keeps the canary options (ignored by blue-green).
  spec = update({"--strategy", "blue-green"});
  EXPECT_EQ(spec.update_config().strategy(), "blue-green");
  EXPECT_THAT(spec.update_config().canary_steps(), ::testing::ElementsAre(20, 100));
  // A template-only update leaves them as they were.
  spec = update({"--env", "A=1"});
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(spec.update_config(),
                                                                 base->update_config()));
}

TEST(ServiceFlagsTest, UpdateChangesOnlyGivenRolloutFields) {
  auto base = CreateFromArgs({"web", "--command", "x", "--parallelism", "3", "--max-surge", "2",
                              "--failure-action", "pause", "--rollback-parallelism", "1",
                              "--history-limit", "4"});
  ASSERT_TRUE(base.ok()) << base.status();
  auto update = [&](std::vector<const char*> argv) {
    CLI::App app{"test"};
    UpdateFlags flags;
    app.add_option("NAME", flags.name);
    AddTemplateFlags(&app, &flags.t);
    AddUpdateConfigFlags(&app, &flags.u);
    argv.insert(argv.begin(), {"update", "web"});
    app.parse(static_cast<int>(argv.size()), argv.data());
    RecordGivenFlags(app, &flags.t);
    RecordGivenFlags(app, &flags.u);
    v1::ServiceSpec spec = *base;
    absl::Status s = ApplyUpdateFlags(flags, &spec);
    EXPECT_TRUE(s.ok()) << s;
    return spec;
  };
  v1::ServiceSpec spec = update({"--max-unavailable", "1", "--rollback-delay", "2s"});
  EXPECT_EQ(spec.update_config().parallelism(), 3);
  EXPECT_EQ(spec.update_config().max_surge(), "2");
  EXPECT_EQ(spec.update_config().max_unavailable(), "1");
  EXPECT_EQ(spec.update_config().failure_action(), "pause");
  EXPECT_EQ(spec.update_config().healthy_deadline().seconds(), 300);
  EXPECT_EQ(spec.rollback_config().parallelism(), 1);
  EXPECT_EQ(spec.rollback_config().delay().seconds(), 2);
  EXPECT_TRUE(spec.rollback_config().max_surge().empty());
  EXPECT_EQ(spec.history_limit(), 4);
  // Parallelism 0 (all at once) survives the defaults.
  spec = update({"--parallelism", "0", "--history-limit", "20"});
  EXPECT_TRUE(spec.update_config().has_parallelism());
  EXPECT_EQ(spec.update_config().parallelism(), 0);
  EXPECT_EQ(spec.update_config().max_surge(), "2");
  EXPECT_EQ(spec.history_limit(), 20);
  // A template-only update leaves the rollout config exactly as it was.
  spec = update({"--env", "A=1"});
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(spec.update_config(),
                                                                 base->update_config()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(spec.rollback_config(),
                                                                 base->rollback_config()));
}

TEST(OutputTest, TableIsAligned) {
  std::string table =
      RenderTable({"NAME", "REPLICAS", "X"}, {{"web", "1/3", "a"}, {"a-long-name", "10/10", ""}});
  EXPECT_EQ(table,
            "NAME          REPLICAS   X\n"
            "web           1/3        a\n"
            "a-long-name   10/10\n");
}

TEST(OutputTest, AgesAndStates) {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  auto ago = [&](int64_t s) {
    google::protobuf::Timestamp t;
    t.set_seconds(1'700'000'000 - s);
    return FormatAge(t, now);
  };
  EXPECT_EQ(ago(5), "5s");
  EXPECT_EQ(ago(200), "3m");
  EXPECT_EQ(ago(2 * 3600 + 5), "2h");
  EXPECT_EQ(ago(3 * 86400), "3d");
  EXPECT_EQ(ago(-10), "0s");
  EXPECT_EQ(FormatAge(google::protobuf::Timestamp(), now), "-");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_RUNNING), "running");
  EXPECT_EQ(HealthStateName(v1::HEALTH_STATE_HEALTHY), "healthy");
  EXPECT_EQ(NodeStateName(v1::NODE_STATE_DOWN), "down");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_UNSPECIFIED), "-");
  EXPECT_EQ(TaskLabel("web", 1, "abc123"), "web.1.abc123");
  EXPECT_EQ(TaskLabel("agent", 0, "abc123"), "agent.abc123");
}

v1::ListTasksResponse SampleTasks() {
  v1::ListTasksResponse resp;
  v1::Task* a = resp.add_tasks();
  a->set_id("t2");
  a->set_slot(2);
  a->set_node_id("n1");
  a->set_address("127.1.0.2");
  a->set_port(8080);
  a->set_desired_state(v1::TASK_STATE_RUNNING);
  a->mutable_status()->set_state(v1::TASK_STATE_FAILED);
  a->mutable_status()->set_has_exit_code(true);
  a->mutable_status()->set_exit_code(3);
  a->mutable_status()->set_error("exited with code 3");
  a->mutable_created_at()->set_seconds(1'700'000'000 - 120);
  v1::Task* b = resp.add_tasks();
  b->set_id("t1");
  b->set_slot(1);
  b->set_node_id("n1");
  b->set_desired_state(v1::TASK_STATE_RUNNING);
  b->mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  b->mutable_status()->mutable_health()->set_state(v1::HEALTH_STATE_HEALTHY);
  b->mutable_status()->mutable_health()->mutable_last_probe()->set_output("HTTP 200");
  b->mutable_created_at()->set_seconds(1'700'000'000 - 5);
  return resp;
}

TEST(OutputTest, TasksInEveryFormat) {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  std::string table = RenderTasks(SampleTasks(), {{"n1", "node-1"}}, OutputFormat::kTable, now);
  EXPECT_EQ(table,
            "TASK   SLOT   NODE     ADDRESS          STATE     HEALTH    EXIT   AGE   ERROR\n"
            "t1     1      node-1   -                running   healthy   -      5s\n"
            "t2     2      node-1   127.1.0.2:8080   failed    -         3      2m    exited with "
            "code 3\n");
  std::string json = RenderTasks(SampleTasks(), {}, OutputFormat::kJson, now);
  EXPECT_THAT(json, HasSubstr("\"error\": \"exited with code 3\""));
  EXPECT_THAT(json, HasSubstr("\"output\": \"HTTP 200\""));
  EXPECT_THAT(json, HasSubstr("\"state\": \"TASK_STATE_FAILED\""));
  std::string yaml = RenderTasks(SampleTasks(), {}, OutputFormat::kYaml, now);
  EXPECT_THAT(yaml, HasSubstr("error: exited with code 3"));
  EXPECT_THAT(yaml, HasSubstr("output: HTTP 200"));
}

TEST(OutputTest, ServicesAndNodesTables) {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  v1::ListServicesResponse services;
  v1::Service* s = services.add_services();
  s->set_id("s1");
  s->set_revision(2);
  s->mutable_created_at()->set_seconds(1'700'000'000 - 7200);
  s->mutable_spec()->set_name("web");
  s->mutable_spec()->set_mode("replicated");
  s->mutable_spec()->set_replicas(3);
  s->mutable_spec()->mutable_template_()->set_command("/bin/web");
  v1::Port* p = s->mutable_spec()->mutable_template_()->add_ports();
  p->set_target(8080);
  p->set_published(9000);
  p->set_protocol("tcp");
  EXPECT_EQ(RenderServices(services, {{"s1", 2}}, OutputFormat::kTable, now),
            "ID   NAME   MODE         REPLICAS   COMMAND/IMAGE   PORTS            REVISION   AGE\n"
            "s1   web    replicated   2/3        /bin/web        9000->8080/tcp   2          2h\n");
  EXPECT_THAT(RenderServices(services, {}, OutputFormat::kYaml, now), HasSubstr("- id: s1"));

  v1::ListNodesResponse nodes;
  v1::Node* n = nodes.add_nodes();
  n->set_id("n1");
  n->set_name("node-1");
  n->set_role("hybrid");
  n->set_state(v1::NODE_STATE_READY);
  n->set_runtime("process");
  n->mutable_capacity()->set_cpus(4);
  n->mutable_capacity()->set_memory_bytes(8LL << 30);
  n->set_address_range("127.1.0.0/16");
  n->set_advertise_addr("192.168.1.10");
  n->set_subnet("10.99.0.0/24");
  (*n->mutable_labels())["zone"] = "eu";
  n->mutable_last_heartbeat()->set_seconds(1'700'000'000 - 2);
  EXPECT_EQ(
      RenderNodes(nodes, OutputFormat::kTable, now),
      "ID   NAME     ROLE     STATE   AVAILABILITY   RUNTIME   CPUS   MEMORY   ADVERTISE      "
      "SUBNET         ADDRESSES      LABELS    HEARTBEAT\n"
      "n1   node-1   hybrid   ready   active         process   4      8G       192.168.1.10   "
      "10.99.0.0/24   127.1.0.0/16   zone=eu   2s\n");

  // The managers follow the nodes; '*' marks the one that answered.
  v1::ManagerInfo* m1 = nodes.add_managers();
  m1->set_id("m1");
  m1->set_name("host-a");
  m1->set_api_addr("10.0.0.1:8080");
  m1->set_leader(true);
  v1::ManagerInfo* m2 = nodes.add_managers();
  m2->set_id("m2");
  m2->set_name("host-b");
  m2->set_api_addr("10.0.0.2:8080");
  m2->set_answered(true);
  EXPECT_THAT(RenderNodes(nodes, OutputFormat::kTable, now),
              HasSubstr("zone=eu   2s\n"
                        "\n"
                        "MANAGERS\n"
                        "ID     NAME     API ADDRESS     STATUS\n"
                        "m1     host-a   10.0.0.1:8080   leader\n"
                        "m2 *   host-b   10.0.0.2:8080   follower\n"));
  EXPECT_THAT(RenderNodes(nodes, OutputFormat::kJson, now), HasSubstr("\"answered\": true"));
  EXPECT_THAT(RenderNodes(nodes, OutputFormat::kYaml, now), HasSubstr("leader: true"));
}

TEST(OutputTest, ClusterStatusShowsTheStoreAndTheManagers) {
  v1::ClusterStatus sqlite;
  sqlite.set_store("sqlite");
  sqlite.mutable_sqlite()->set_path("/var/lib/warren/store.db");
  sqlite.mutable_sqlite()->set_size_bytes(3 << 20);
  v1::ManagerInfo* m = sqlite.add_managers();
  m->set_id("m1");
  m->set_name("host-a");
  m->set_api_addr("127.0.0.1:8080");
  m->set_leader(true);
  m->set_answered(true);
  EXPECT_EQ(RenderClusterStatus(sqlite, OutputFormat::kTable),
            "STORE: sqlite, /var/lib/warren/store.db (3M)\n"
            "\n"
            "MANAGERS\n"
            "ID     NAME     API ADDRESS      STATUS\n"
            "m1 *   host-a   127.0.0.1:8080   leader\n");

  v1::ClusterStatus etcd;
  etcd.set_store("etcd");
  etcd.set_etcd_prefix("/warren/");
  v1::EtcdMemberStatus* up = etcd.add_etcd_members();
  up->set_endpoint("10.0.0.1:2379");
  up->set_healthy(true);
  up->set_member_id(0xabc);
  up->set_leader_id(0xabc);
  up->set_is_leader(true);
  up->set_version("3.4.30");
  up->set_db_size_bytes(20480);
  up->set_raft_term(2);
  up->set_raft_index(41);
  v1::EtcdMemberStatus* down = etcd.add_etcd_members();
  down->set_endpoint("10.0.0.2:2379");
  down->set_error("etcd 10.0.0.2:2379: cannot connect");
  etcd.set_managers_error("etcd 10.0.0.1:2379: no leader");
  EXPECT_EQ(
      RenderClusterStatus(etcd, OutputFormat::kTable),
      "STORE: etcd, prefix /warren/\n"
      "ENDPOINT        MEMBER   VERSION   DB SIZE   LEADER   RAFT TERM   RAFT INDEX   HEALTH\n"
      "10.0.0.1:2379   abc      3.4.30    20K       yes      2           41           healthy\n"
      "10.0.0.2:2379   -        -         -         -        -           -            "
      "unhealthy: etcd 10.0.0.2:2379: cannot connect\n"
      "\n"
      "MANAGERS: cannot be listed: etcd 10.0.0.1:2379: no leader\n");
  EXPECT_THAT(RenderClusterStatus(etcd, OutputFormat::kJson), HasSubstr("\"healthy\": true"));
}

TEST(OutputTest, UnifiedDiff) {
  EXPECT_EQ(UnifiedDiff("a", "x\ny\n", "b", "x\ny\n"), "");
  std::string diff = UnifiedDiff("web (current)", "name: web\nreplicas: 1\nmode: replicated\n",
                                 "web (file)", "name: web\nreplicas: 3\nmode: replicated\n");
  EXPECT_EQ(diff,
            "--- web (current)\n+++ web (file)\n@@ -1,3 +1,3 @@\n name: web\n-replicas: 1\n"
            "+replicas: 3\n mode: replicated\n");
  // Far-apart changes make two hunks.
  std::string a, b;
  for (int i = 0; i < 20; ++i) {
    a += absl::StrCat("l", i, "\n");
    b += (i == 1 || i == 18) ? absl::StrCat("L", i, "\n") : absl::StrCat("l", i, "\n");
  }
  std::string two = UnifiedDiff("a", a, "b", b);
  EXPECT_THAT(two, HasSubstr("@@ -1,5 +1,5 @@"));
  EXPECT_THAT(two, HasSubstr("@@ -16,5 +16,5 @@"));
}

v1::Deployment SampleDeployment() {
  v1::Deployment d;
  d.set_id("d2");
  d.set_service_id("id1");
  d.set_service_name("web");
  d.set_from_revision(1);
  d.set_to_revision(2);
  d.set_target_revision(2);
  d.set_strategy(v1::DEPLOYMENT_STRATEGY_ROLLING);
  d.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  d.set_updated(3);
  d.set_available(2);
  d.set_total(5);
  d.set_batch(2);
  d.mutable_created_at()->set_seconds(1'700'000'000 - 30);
  d.set_change_cause("warren service update web --env VERSION=v2");
  return d;
}

TEST(OutputTest, ProgressAndOutcome) {
  v1::Deployment d = SampleDeployment();
  EXPECT_EQ(RenderProgress(d), "[####++....] updated 3/5, available 2/5, batch 2");
  d.set_updated(5);
  d.set_available(5);
  EXPECT_EQ(RenderProgress(d), "[##########] updated 5/5, available 5/5, batch 2");
  d.set_total(0);
  d.set_updated(0);
  d.set_available(0);
  EXPECT_EQ(RenderProgress(d), "[..........] updated 0/0, available 0/0, batch 2");
  d = SampleDeployment();
  d.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
  EXPECT_THAT(RenderProgress(d), ::testing::EndsWith(", rolling back"));
  EXPECT_FALSE(OutcomeOf(d).done);
  EXPECT_EQ(PhaseName(v1::DEPLOYMENT_PHASE_ROLLED_BACK), "rolled-back");

  struct Case {
    v1::DeploymentPhase phase;
    bool by_user;
    int exit_code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {v1::DEPLOYMENT_PHASE_SUCCEEDED, false, 0, "rollout to revision 2 succeeded in 12s"},
           {v1::DEPLOYMENT_PHASE_ROLLED_BACK, false, 1,
            "rolled back to revision 1: task t3 unhealthy"},
           {v1::DEPLOYMENT_PHASE_FAILED, false, 1, "failed: task t3 unhealthy"},
           {v1::DEPLOYMENT_PHASE_PAUSED, false, 1,
            "paused: task t3 unhealthy (resume with `warren service resume web` or roll back "
            "with `warren service rollback web`)"},
           {v1::DEPLOYMENT_PHASE_PAUSED, true, 0,
            "paused by request at 3/5 updated; resume with `warren service resume web`"},
           {v1::DEPLOYMENT_PHASE_SUPERSEDED, false, 1,
            "rollout to revision 2 was superseded by a newer one: task t3 unhealthy"},
       }) {
    d = SampleDeployment();
    d.set_phase(c.phase);
    d.set_paused_by_user(c.by_user);
    d.set_reason("task t3 unhealthy");
    if (c.phase == v1::DEPLOYMENT_PHASE_SUCCEEDED) {
      d.clear_reason();
      *d.mutable_finished_at() = d.created_at();
      d.mutable_finished_at()->set_seconds(d.created_at().seconds() + 12);
      d.mutable_finished_at()->set_nanos(400'000'000);
    }
    RolloutOutcome o = OutcomeOf(d);
    EXPECT_TRUE(o.done) << c.message;
    EXPECT_EQ(o.exit_code, c.exit_code) << c.message;
    EXPECT_EQ(o.message, c.message);
  }
  d = SampleDeployment();
  d.set_rollback(true);
  d.set_phase(v1::DEPLOYMENT_PHASE_SUCCEEDED);
  EXPECT_EQ(OutcomeOf(d).message, "rollback to revision 2 succeeded");
}

TEST(OutputTest, RolloutStatus) {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  v1::Deployment d = SampleDeployment();
  EXPECT_EQ(RenderRolloutStatus(d, OutputFormat::kTable, now),
            "Service:        web\n"
            "Deployment:     d2\n"
            "Revision:       1 -> 2\n"
            "Strategy:       rolling\n"
            "Phase:          progressing\n"
            "Progress:       [####++....] updated 3/5, available 2/5, batch 2\n"
            "Started:        30s ago\n"
            "Change cause:   warren service update web --env VERSION=v2\n");
  d.set_phase(v1::DEPLOYMENT_PHASE_ROLLED_BACK);
  d.set_reason("health check failed on t3");
  d.set_rollback_reason(v1::ROLLBACK_REASON_HEALTH_CHECK);
  d.add_failed_task_ids("t3");
  d.mutable_finished_at()->set_seconds(1'700'000'000 - 10);
  std::string table = RenderRolloutStatus(d, OutputFormat::kTable, now);
  EXPECT_THAT(table, HasSubstr("Phase:             rolled-back\n"));
  EXPECT_THAT(table, HasSubstr("Reason:            health check failed on t3\n"));
  EXPECT_THAT(table, HasSubstr("Rollback reason:   health_check\n"));
  EXPECT_THAT(table, HasSubstr("Failed tasks:      t3\n"));
  EXPECT_THAT(table, HasSubstr("Finished:          10s ago (took 20s)\n"));
  EXPECT_THAT(RenderRolloutStatus(d, OutputFormat::kJson, now),
              HasSubstr("\"phase\": \"DEPLOYMENT_PHASE_ROLLED_BACK\""));
  EXPECT_THAT(RenderRolloutStatus(d, OutputFormat::kYaml, now), HasSubstr("toRevision: 2"));
}

v1::ListRevisionsResponse SampleRevisions() {
  v1::ListRevisionsResponse resp;
  auto add = [&](int64_t n, int64_t age, std::string cause, v1::DeploymentStrategy strategy,
                 v1::RevisionOutcome outcome) {
    v1::Revision* r = resp.add_revisions();
    r->set_id(absl::StrCat("r", n));
    r->set_number(n);
    r->mutable_created_at()->set_seconds(1'700'000'000 - age);
    r->set_change_cause(cause);
    r->set_strategy(strategy);
    r->set_outcome(outcome);
    r->mutable_template_()->set_command("/bin/web");
  };
  add(1, 7200, "warren service create web --command /bin/web", v1::DEPLOYMENT_STRATEGY_UNSPECIFIED,
      v1::REVISION_OUTCOME_CREATED);
  add(2, 600, "warren service update web --env VERSION=v2", v1::DEPLOYMENT_STRATEGY_ROLLING,
      v1::REVISION_OUTCOME_SUCCEEDED);
  add(3, 30, "bad release", v1::DEPLOYMENT_STRATEGY_ROLLING, v1::REVISION_OUTCOME_ROLLED_BACK);
  return resp;
}

TEST(OutputTest, History) {
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  EXPECT_EQ(
      RenderHistory(SampleRevisions(), 2, OutputFormat::kTable, now),
      "REVISION   CREATED   CHANGE-CAUSE                                   STRATEGY   OUTCOME\n"
      "1          2h        warren service create web --command /bin/web   -          created\n"
      "2*         10m       warren service update web --env VERSION=v2     rolling    succeeded\n"
      "3          30s       bad release                                    rolling    "
      "rolled-back\n");
  EXPECT_THAT(RenderHistory(SampleRevisions(), 2, OutputFormat::kJson, now),
              HasSubstr("\"changeCause\": \"bad release\""));
}

// An in-memory manager: enough of the API for the client commands.
class FakeWarren final : public v1::Control::Service {
 public:
  grpc::Status CreateService(grpc::ServerContext*, const v1::CreateServiceRequest* req,
                             v1::Service* resp) override {
    for (const auto& [id, s] : services_) {
      if (s.spec().name() == req->spec().name()) {
        return {grpc::StatusCode::ALREADY_EXISTS, "service \"" + s.spec().name() + "\" exists"};
      }
    }
    v1::Service s;
    s.set_id(absl::StrCat("id", next_id_ + 1));
    if (!req->dry_run()) ++next_id_;
    *s.mutable_spec() = req->spec();
    s.set_version(++version_);
    s.set_revision(1);
    if (!req->dry_run()) services_[s.id()] = s;
    *resp = s;
    return grpc::Status::OK;
  }
  grpc::Status GetService(grpc::ServerContext*, const v1::GetServiceRequest* req,
                          v1::Service* resp) override {
    v1::Service* s = Find(req->name_or_id());
    if (s == nullptr)
      return {grpc::StatusCode::NOT_FOUND, "service \"" + req->name_or_id() + "\" not found"};
    *resp = *s;
    return grpc::Status::OK;
  }
  grpc::Status ListServices(grpc::ServerContext*, const v1::ListServicesRequest*,
                            v1::ListServicesResponse* resp) override {
    for (const auto& [id, s] : services_) *resp->add_services() = s;
    return grpc::Status::OK;
  }
  grpc::Status UpdateService(grpc::ServerContext*, const v1::UpdateServiceRequest* req,
                             v1::Service* resp) override {
    v1::Service* s = Find(req->spec().name());
    if (s == nullptr) return {grpc::StatusCode::NOT_FOUND, "not found"};
    if (req->expected_version() != 0 && req->expected_version() != s->version()) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "version mismatch"};
    }
    v1::Service updated = *s;
    *updated.mutable_spec() = req->spec();
    updated.set_version(++version_);
    updated.set_revision(s->revision() + 1);
    if (!req->dry_run()) {
      *s = updated;
      causes.push_back(req->change_cause());
    }
    *resp = updated;
    return grpc::Status::OK;
  }
  grpc::Status ScaleService(grpc::ServerContext*, const v1::ScaleServiceRequest* req,
                            v1::Service* resp) override {
    v1::Service* s = Find(req->name_or_id());
    if (s == nullptr)
      return {grpc::StatusCode::NOT_FOUND, "service \"" + req->name_or_id() + "\" not found"};
    s->mutable_spec()->set_replicas(req->replicas());
    *resp = *s;
    return grpc::Status::OK;
  }
  grpc::Status DeleteService(grpc::ServerContext*, const v1::DeleteServiceRequest* req,
                             v1::DeleteServiceResponse* resp) override {
    v1::Service* s = Find(req->name_or_id());
    if (s == nullptr)
      return {grpc::StatusCode::NOT_FOUND, "service \"" + req->name_or_id() + "\" not found"};
    resp->set_id(s->id());
    services_.erase(s->id());
    return grpc::Status::OK;
  }
  grpc::Status ListTasks(grpc::ServerContext*, const v1::ListTasksRequest* req,
                         v1::ListTasksResponse* resp) override {
    for (const v1::Task& t : tasks) {
      if (req->service().empty() || t.service_id() == req->service()) *resp->add_tasks() = t;
    }
    return grpc::Status::OK;
  }
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse* resp) override {
    v1::Node* n = resp->add_nodes();
    n->set_id("n1");
    n->set_name("node-1");
    return grpc::Status::OK;
  }
  grpc::Status ServiceLogs(grpc::ServerContext*, const v1::ServiceLogsRequest* req,
                           grpc::ServerWriter<v1::LogLine>* writer) override {
    v1::LogLine line;
    line.set_task_id("t1");
    line.set_slot(1);
    line.set_line("hello");
    writer->Write(line);
    return grpc::Status::OK;
  }

  // GetRollout answers one state per call, then repeats the last; NOT_FOUND when empty.
  grpc::Status GetRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                          v1::Deployment* resp) override {
    absl::MutexLock lock(&mu_);
    ++rollout_calls;
    if (rollout_script.empty()) return {grpc::StatusCode::NOT_FOUND, "no rollouts"};
    *resp = rollout_script.front();
    if (rollout_script.size() > 1) rollout_script.erase(rollout_script.begin());
    return grpc::Status::OK;
  }
  grpc::Status PauseRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                            v1::Deployment* resp) override {
    return PauseOrResume(req, resp, v1::DEPLOYMENT_PHASE_PAUSED);
  }
  grpc::Status ResumeRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                             v1::Deployment* resp) override {
    return PauseOrResume(req, resp, v1::DEPLOYMENT_PHASE_PROGRESSING);
  }
  grpc::Status RollbackService(grpc::ServerContext*, const v1::RollbackServiceRequest* req,
                               v1::Service* resp) override {
    v1::Service* s = Find(req->name_or_id());
    if (s == nullptr) return {grpc::StatusCode::NOT_FOUND, "not found"};
    rollbacks.push_back(*req);
    s->set_revision(s->revision() + 1);
    *resp = *s;
    return grpc::Status::OK;
  }
  grpc::Status ListRevisions(grpc::ServerContext*, const v1::ListRevisionsRequest* req,
                             v1::ListRevisionsResponse* resp) override {
    *resp = revisions;
    return grpc::Status::OK;
  }
  grpc::Status GetRevision(grpc::ServerContext*, const v1::GetRevisionRequest* req,
                           v1::Revision* resp) override {
    for (const v1::Revision& r : revisions.revisions()) {
      if (r.number() == req->number()) {
        *resp = r;
        return grpc::Status::OK;
      }
    }
    return {grpc::StatusCode::NOT_FOUND, absl::StrCat("revision ", req->number(), " not found")};
  }
  // Promote and abort answer the current scripted deployment with the change applied the way
  // the controller would report it, and record the request.
  grpc::Status PromoteRollout(grpc::ServerContext*, const v1::PromoteRequest* req,
                              v1::Deployment* resp) override {
    absl::MutexLock lock(&mu_);
    promotions.push_back(*req);
    if (rollout_script.empty()) return {grpc::StatusCode::NOT_FOUND, "no rollout"};
    v1::Deployment& d = rollout_script.front();
    if (d.strategy() == v1::DEPLOYMENT_STRATEGY_ROLLING) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "a rolling update has nothing to promote"};
    }
    if (d.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY) {
      int last = d.config().canary_steps_size() - 1;
      d.set_step(req->full() ? last : std::min(d.step() + 1, last));
      d.set_weight(d.config().canary_steps(d.step()));
    } else {
      d.set_switched(true);
    }
    *resp = d;
    return grpc::Status::OK;
  }
  grpc::Status AbortRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                            v1::Deployment* resp) override {
    absl::MutexLock lock(&mu_);
    aborts.push_back(req->name_or_id());
    if (rollout_script.empty()) return {grpc::StatusCode::NOT_FOUND, "no rollout"};
    *resp = rollout_script.front();
    resp->set_weight(0);
    resp->set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
    return grpc::Status::OK;
  }
  grpc::Status GetEndpoints(grpc::ServerContext*, const v1::GetEndpointsRequest* req,
                            v1::ServiceEndpoints* resp) override {
    if (!endpoints.has_value()) return {grpc::StatusCode::UNIMPLEMENTED, "no endpoints"};
    *resp = *endpoints;
    return grpc::Status::OK;
  }
  // Writes `events` (those of the requested service) and ends the stream.
  grpc::Status WatchEvents(grpc::ServerContext*, const v1::WatchEventsRequest* req,
                           grpc::ServerWriter<v1::Event>* writer) override {
    for (const v1::Event& e : events) {
      if (e.object_name() == req->service() && e.id() > req->since_id()) writer->Write(e);
    }
    return grpc::Status::OK;
  }

  std::vector<v1::Task> tasks;
  std::vector<std::string> causes;
  std::vector<v1::Deployment> rollout_script;
  int rollout_calls = 0;
  std::vector<v1::RollbackServiceRequest> rollbacks;
  std::vector<v1::PromoteRequest> promotions;
  std::vector<std::string> aborts;
  std::optional<v1::ServiceEndpoints> endpoints;
  v1::ListRevisionsResponse revisions;
  std::vector<v1::Event> events;

 private:
  v1::Service* Find(const std::string& name_or_id) {
    for (auto& [id, s] : services_) {
      if (id == name_or_id || s.spec().name() == name_or_id) return &s;
    }
    return nullptr;
  }
  grpc::Status PauseOrResume(const v1::RolloutRequest* req, v1::Deployment* resp,
                             v1::DeploymentPhase phase) {
    absl::MutexLock lock(&mu_);
    if (rollout_script.empty()) return {grpc::StatusCode::NOT_FOUND, "no rollout"};
    *resp = rollout_script.front();
    resp->set_phase(phase);
    resp->set_paused_by_user(phase == v1::DEPLOYMENT_PHASE_PAUSED);
    return grpc::Status::OK;
  }

  absl::Mutex mu_;
  std::map<std::string, v1::Service> services_;
  int next_id_ = 0;
  uint64_t version_ = 0;
};

class CliServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    addr_ = absl::StrCat("127.0.0.1:", port_);
    dir_ = ::testing::TempDir() + "/cli_test_" + std::to_string(getpid());
    mkdir(dir_.c_str(), 0700);
  }
  void TearDown() override { server_->Shutdown(); }

  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    args.insert(args.begin(), {"warren", "--manager", addr_});
    return RunCli(args, out_, err_, env_);
  }

  // Sleeping advances the fake clock: a follow runs through its states at once.
  FollowEnv TestEnv() {
    FollowEnv env;
    env.now = [this] { return clock_.Now(); };
    env.sleep = [this](absl::Duration d) {
      ++sleeps_;
      clock_.Advance(d);
    };
    env.interrupted = [] { return false; };
    env.event_grace = absl::Seconds(5);  // the fake's event stream ends by itself
    return env;
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  FakeClock clock_;
  int sleeps_ = 0;
  FollowEnv env_ = TestEnv();
  FakeWarren fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string addr_;
  std::string dir_;
  std::ostringstream out_, err_;
};

// Every task carries its template (up to 1 MiB): the task list of a few replicas is larger than
// gRPC's default 4 MiB per response, which the CLI refused ("Received message larger than max").
TEST_F(CliServerTest, ReadsTaskListsLargerThanFourMiB) {
  ASSERT_EQ(Run({"service", "create", "shop-web", "--command", "/bin/web", "--label",
                 "com.docker.stack.namespace=shop"}),
            0)
      << err_.str();
  for (int i = 1; i <= 6; ++i) {
    v1::Task task;
    task.set_id(absl::StrCat("t", i));
    task.set_service_id("id1");
    task.set_slot(i);
    task.set_node_id("n1");
    for (int e = 0; e < 30; ++e) {
      (*task.mutable_spec()->mutable_env())[absl::StrCat("V", e)] = std::string(32000, 'x');
    }
    fake_.tasks.push_back(task);
  }
  size_t bytes = 0;
  for (const v1::Task& t : fake_.tasks) bytes += t.ByteSizeLong();
  ASSERT_GT(bytes, 5u << 20);
  ASSERT_EQ(Run({"service", "ps", "shop-web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("t6     6      node-1"));
  // `stack` commands build their own channel.
  ASSERT_EQ(Run({"stack", "ps", "shop"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("t6     6      node-1"));
}

TEST_F(CliServerTest, CreateListInspectScaleRemove) {
  ASSERT_EQ(Run({"service", "create", "web", "--command", "/bin/web", "--replicas", "2", "-p",
                 "9000:8080"}),
            0)
      << err_.str();
  EXPECT_EQ(out_.str(), "id1\n");
  EXPECT_EQ(Run({"service", "create", "web", "--command", "/bin/web"}), 1);
  EXPECT_EQ(err_.str(), "error: service \"web\" exists\n");

  v1::Task task;
  task.set_id("t1");
  task.set_service_id("id1");
  task.set_slot(1);
  task.set_node_id("n1");
  task.set_desired_state(v1::TASK_STATE_RUNNING);
  task.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  fake_.tasks.push_back(task);

  ASSERT_EQ(Run({"service", "ls"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("id1   web    replicated   1/2"));
  ASSERT_EQ(Run({"service", "ls", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"name\": \"web\""));
  ASSERT_EQ(Run({"service", "inspect", "web", "--output", "yaml"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr("published: 9000"));
  ASSERT_EQ(Run({"service", "ps", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("t1     1      node-1"));
  ASSERT_EQ(Run({"service", "logs", "web", "--tail", "5"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web.1.t1 | hello\n");

  ASSERT_EQ(Run({"service", "scale", "web=5"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web scaled to 5\n");
  EXPECT_EQ(Run({"service", "scale", "web"}), 2);
  EXPECT_EQ(Run({"service", "scale", "nope=1"}), 1);
  EXPECT_EQ(err_.str(), "error: service \"nope\" not found\n");

  ASSERT_EQ(Run({"service", "update", "web", "--env", "A=1", "--message", "add A", "--detach"}), 0)
      << err_.str();
  EXPECT_EQ(out_.str(), "web: updated (revision 2)\n");
  EXPECT_EQ(fake_.causes.back(), "add A");
  ASSERT_EQ(Run({"service", "update", "web", "--env", "A=1"}), 0);
  EXPECT_EQ(out_.str(), "web: unchanged\n");
  ASSERT_EQ(Run({"service", "update", "web", "--replicas", "1", "-d"}), 0);
  EXPECT_EQ(fake_.causes.back(),
            absl::StrCat("warren --manager ", addr_, " service update web --replicas 1 -d"));
  EXPECT_EQ(Run({"service", "update", "web"}), 2);
  EXPECT_EQ(Run({"service", "update", "web", "--message", "why", "--detach"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("nothing to change"));
  EXPECT_EQ(fake_.rollout_calls, 0);

  ASSERT_EQ(Run({"service", "rm", "web", "ghost"}), 1);
  EXPECT_EQ(out_.str(), "web\n");
  EXPECT_EQ(err_.str(), "error: service \"ghost\" not found\n");
}

// A deployment of web from revision 1 to 2 in `phase` with the given progress.
v1::Deployment Rollout(std::string id, v1::DeploymentPhase phase, int updated, int available,
                       int batch) {
  v1::Deployment d;
  d.set_id(id);
  d.set_service_id("id1");
  d.set_service_name("web");
  d.set_from_revision(1);
  d.set_to_revision(2);
  d.set_strategy(v1::DEPLOYMENT_STRATEGY_ROLLING);
  d.set_phase(phase);
  d.set_updated(updated);
  d.set_available(available);
  d.set_total(3);
  d.set_batch(batch);
  d.mutable_created_at()->set_seconds(1'700'000'000);
  d.mutable_config()->mutable_progress_deadline()->set_seconds(60);
  return d;
}

v1::Event ServiceEvent(uint64_t id, absl::Time t, std::string action, std::string message) {
  v1::Event e;
  e.set_id(id);
  e.mutable_time()->set_seconds(absl::ToUnixSeconds(t));
  e.set_kind("service");
  e.set_object_id("id1");
  e.set_object_name("web");
  e.set_service_id("id1");
  e.set_action(action);
  e.set_message(message);
  return e;
}

class FollowTest : public CliServerTest {
 protected:
  void SetUp() override {
    CliServerTest::SetUp();
    ASSERT_EQ(Run({"service", "create", "web", "--command", "/bin/web", "--replicas", "3"}), 0)
        << err_.str();
  }
};

TEST_F(FollowTest, UpdateFollowsToSuccess) {
  using P = v1::DeploymentPhase;
  v1::Deployment old = Rollout("d1", v1::DEPLOYMENT_PHASE_SUCCEEDED, 3, 3, 3);
  v1::Deployment done = Rollout("d2", v1::DEPLOYMENT_PHASE_SUCCEEDED, 3, 3, 3);
  done.mutable_finished_at()->set_seconds(1'700'000'012);
  fake_.rollout_script = {
      old,  // read before the update: the one to skip
      old,  // the controller has not picked the update up yet
      Rollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1),
      Rollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1),  // unchanged: not printed again
      Rollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 2, 1, 2),
      done,
  };
  fake_.events = {
      ServiceEvent(5, clock_.Now() - absl::Minutes(5), "created", "an old event"),
      ServiceEvent(9, clock_.Now() + absl::Seconds(1), "rollout-started", "revision 1 -> 2"),
      ServiceEvent(11, clock_.Now() + absl::Seconds(9), "rollout-succeeded", "revision 2"),
  };
  ASSERT_EQ(Run({"service", "update", "web", "--env", "VERSION=v2"}), 0) << err_.str();
  std::string out = out_.str();
  EXPECT_THAT(out, ::testing::StartsWith("web: updated (revision 2)\n"));
  size_t waiting = out.find("waiting for the rollout to start\n");
  // Events arrive on their own stream, so only the order of the progress lines is fixed.
  size_t first = out.find("[+++.......] updated 1/3, available 0/3, batch 1\n");
  size_t second = out.find("[###+++....] updated 2/3, available 1/3, batch 2\n");
  size_t last = out.find("[##########] updated 3/3, available 3/3, batch 3\n");
  ASSERT_NE(first, std::string::npos) << out;
  EXPECT_LT(waiting, first) << out;
  EXPECT_LT(first, second) << out;
  EXPECT_LT(second, last) << out;
  EXPECT_NE(last, std::string::npos) << out;
  EXPECT_EQ(out.find("[+++.......]", first + 1), std::string::npos) << "printed twice: " << out;
  EXPECT_THAT(out, ::testing::EndsWith("\nrollout to revision 2 succeeded in 12s\n"));
  EXPECT_THAT(out, HasSubstr("#9  service web rollout-started: revision 1 -> 2\n"));
  EXPECT_THAT(out, HasSubstr("#11  service web rollout-succeeded: revision 2\n"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("an old event")));
  EXPECT_EQ(fake_.causes.back(),
            absl::StrCat("warren --manager ", addr_, " service update web --env VERSION=v2"));
  // Five polls after the update, one sleep between each.
  EXPECT_EQ(sleeps_, 4);
}

TEST_F(FollowTest, UpdateFollowsToRollback) {
  using P = v1::DeploymentPhase;
  v1::Deployment rolled = Rollout("d2", P::DEPLOYMENT_PHASE_ROLLED_BACK, 3, 3, 2);
  rolled.set_reason("task t7 unhealthy: HTTP 500");
  fake_.rollout_script = {
      Rollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1),
      Rollout("d2", P::DEPLOYMENT_PHASE_ROLLING_BACK, 1, 1, 2),
      rolled,
  };
  // Before the update the service had no deployment: the first answer has no id.
  fake_.rollout_script.insert(fake_.rollout_script.begin(), v1::Deployment());
  ASSERT_EQ(Run({"service", "update", "web", "--env", "VERSION=bad"}), 1);
  std::string out = out_.str();
  EXPECT_THAT(out, HasSubstr("[+++.......] updated 1/3, available 0/3, batch 1\n"));
  EXPECT_THAT(out, HasSubstr("updated 1/3, available 1/3, batch 2, rolling back\n"));
  EXPECT_THAT(out, ::testing::EndsWith("rolled back to revision 1: task t7 unhealthy: HTTP 500\n"));
}

TEST_F(FollowTest, PausedByTheFailureActionExitsOne) {
  v1::Deployment paused = Rollout("d2", v1::DEPLOYMENT_PHASE_PAUSED, 2, 1, 2);
  paused.set_reason("1 of 2 new tasks failed (max failure ratio 0)");
  fake_.rollout_script = {v1::Deployment(), paused};
  ASSERT_EQ(Run({"service", "update", "web", "--image", "x:2", "--failure-action", "pause"}), 1);
  EXPECT_THAT(out_.str(), HasSubstr("paused: 1 of 2 new tasks failed (max failure ratio 0)"));
}

TEST_F(FollowTest, NoProgressWithinTheDeadlineStopsFollowing) {
  // Never ends: the follow gives up after the progress deadline (60s) plus the margin (30s).
  fake_.rollout_script = {Rollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1)};
  absl::Time start = clock_.Now();
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "--watch"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("error: no progress for 1m30s"));
  EXPECT_THAT(err_.str(), HasSubstr("warren service rollout status web --watch"));
  EXPECT_GT(clock_.Now() - start, absl::Seconds(90));
  EXPECT_LT(clock_.Now() - start, absl::Seconds(91));
}

TEST_F(FollowTest, CtrlCStopsFollowingOnly) {
  fake_.rollout_script = {Rollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1)};
  int polls = 0;
  env_.interrupted = [&] { return ++polls > 3; };
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "--watch"}), 130);
  EXPECT_THAT(out_.str(), HasSubstr("stopped following; the rollout goes on"));
}

TEST_F(FollowTest, TerminalRedrawsInPlace) {
  v1::Deployment done = Rollout("d2", v1::DEPLOYMENT_PHASE_SUCCEEDED, 3, 3, 3);
  fake_.rollout_script = {Rollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1), done};
  fake_.events = {ServiceEvent(3, clock_.Now(), "rollout-started", "go")};
  env_.tty = true;
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "-w"}), 0) << err_.str();
  std::string out = out_.str();
  EXPECT_THAT(out, HasSubstr("\r\033[K[+++.......] updated 1/3, available 0/3, batch 1"));
  EXPECT_THAT(out, HasSubstr("[##########] updated 3/3, available 3/3, batch 3\n"));
  EXPECT_THAT(out, ::testing::EndsWith("\nrollout to revision 2 succeeded\n"));
  EXPECT_THAT(out, HasSubstr("rollout-started: go\n"));
}

TEST_F(FollowTest, DetachAndReplicaOnlyChangesDoNotFollow) {
  ASSERT_EQ(Run({"service", "update", "web", "--env", "A=1", "--detach"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: updated (revision 2)\n");
  EXPECT_EQ(fake_.rollout_calls, 0);
}

TEST_F(FollowTest, RolloutStatusPauseResume) {
  fake_.rollout_script = {Rollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1)};
  ASSERT_EQ(Run({"service", "rollout", "status", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("Phase:        progressing\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Progress:     [+++.......] updated 1/3"));
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"phase\": \"DEPLOYMENT_PHASE_PROGRESSING\""));
  ASSERT_EQ(Run({"service", "pause", "web"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "web: rollout to revision 2 paused ([+++.......] updated 1/3, available 0/3, batch 1, "
            "paused)\n");
  ASSERT_EQ(Run({"service", "resume", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), ::testing::StartsWith("web: rollout to revision 2 resumed"));

  fake_.rollout_script.clear();
  EXPECT_EQ(Run({"service", "rollout", "status", "web"}), 1);
  EXPECT_EQ(err_.str(), "error: no rollouts\n");
  EXPECT_EQ(Run({"service", "pause", "web"}), 1);
}

TEST_F(FollowTest, RollbackFollows) {
  v1::Deployment back = Rollout("d3", v1::DEPLOYMENT_PHASE_SUCCEEDED, 3, 3, 3);
  back.set_rollback(true);
  back.set_from_revision(2);
  back.set_to_revision(1);
  fake_.rollout_script = {Rollout("d2", v1::DEPLOYMENT_PHASE_SUCCEEDED, 3, 3, 3), back};
  ASSERT_EQ(Run({"service", "rollback", "web", "--to-revision", "1", "--message", "v2 is slow"}), 0)
      << err_.str();
  EXPECT_THAT(out_.str(), ::testing::StartsWith("web: rolling back (revision 2)\n"));
  EXPECT_THAT(out_.str(), ::testing::EndsWith("rollback to revision 1 succeeded\n"));
  ASSERT_EQ(fake_.rollbacks.size(), 1u);
  EXPECT_EQ(fake_.rollbacks[0].to_revision(), 1);
  EXPECT_EQ(fake_.rollbacks[0].change_cause(), "v2 is slow");

  ASSERT_EQ(Run({"service", "rollback", "web", "--detach"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: rolling back (revision 3)\n");
  EXPECT_EQ(fake_.rollbacks[1].to_revision(), 0);
  EXPECT_EQ(fake_.rollbacks[1].change_cause(),
            absl::StrCat("warren --manager ", addr_, " service rollback web --detach"));
  EXPECT_EQ(Run({"service", "rollback", "ghost", "-d"}), 1);
  EXPECT_EQ(Run({"service", "rollback", "web", "--to-revision", "-1"}), 2);
}

TEST_F(FollowTest, HistoryAndInspectRevision) {
  fake_.revisions = SampleRevisions();
  ASSERT_EQ(Run({"service", "history", "web"}), 0) << err_.str();
  // The service is at revision 1 in the fake.
  EXPECT_THAT(out_.str(), HasSubstr("\n1*         "));
  EXPECT_THAT(out_.str(), HasSubstr("bad release"));
  ASSERT_EQ(Run({"service", "history", "web", "-o", "yaml"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("outcome: rolled-back"));
  ASSERT_EQ(Run({"service", "inspect", "web", "--revision", "3"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("changeCause: bad release"));
  EXPECT_THAT(out_.str(), HasSubstr("command: /bin/web"));
  EXPECT_EQ(Run({"service", "inspect", "web", "--revision", "9"}), 1);
  EXPECT_EQ(err_.str(), "error: revision 9 not found\n");
  EXPECT_EQ(Run({"service", "inspect", "web", "--revision", "0"}), 2);
}

TEST_F(FollowTest, InspectShowsUpdateConfig) {
  ASSERT_EQ(Run({"service", "update", "web", "--rollback-parallelism", "3", "-d"}), 0)
      << err_.str();
  ASSERT_EQ(Run({"service", "inspect", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("updateConfig:\n"));
  EXPECT_THAT(out_.str(), HasSubstr("maxSurge: \"1\"\n"));
  EXPECT_THAT(out_.str(), HasSubstr("healthyDeadline: 5m\n"));
  EXPECT_THAT(out_.str(), HasSubstr("rollbackConfig:\n    parallelism: 3\n"));
  EXPECT_THAT(out_.str(), HasSubstr("historyLimit: 10\n"));
}

// A canary of web from revision 1 to 2 at `step` (0-based) of 10,25,50,100.
v1::Deployment CanaryRollout(std::string id, v1::DeploymentPhase phase, int step) {
  v1::Deployment d = Rollout(std::move(id), phase, 1, 1, 1);
  d.set_strategy(v1::DEPLOYMENT_STRATEGY_CANARY);
  for (int w : {10, 25, 50, 100}) d.mutable_config()->add_canary_steps(w);
  d.mutable_config()->mutable_canary_window()->set_seconds(300);
  d.set_step(step);
  d.set_weight(d.config().canary_steps(step));
  return d;
}

v1::Deployment BlueGreenRollout(std::string id, v1::DeploymentPhase phase, bool auto_promote,
                                int available, bool switched) {
  v1::Deployment d = Rollout(std::move(id), phase, 3, available, 1);
  d.set_strategy(v1::DEPLOYMENT_STRATEGY_BLUE_GREEN);
  d.mutable_config()->set_auto_promote(auto_promote);
  d.mutable_config()->mutable_scale_down_delay()->set_seconds(300);
  d.mutable_config()->mutable_canary_window()->set_seconds(300);
  d.set_switched(switched);
  return d;
}

TEST(OutputTest, CanaryAndBlueGreenProgress) {
  v1::Deployment c = CanaryRollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 1);
  EXPECT_EQ(CanaryStepText(c), "step 2/4, weight 25%");
  EXPECT_EQ(RenderProgress(c),
            "[###.......] updated 1/3, available 1/3, batch 1, step 2/4, weight 25%");
  c.set_phase(v1::DEPLOYMENT_PHASE_PAUSED);
  EXPECT_THAT(RenderProgress(c), ::testing::EndsWith("step 2/4, weight 25%, paused"));
  v1::Deployment bg = BlueGreenRollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, true, 3, true);
  EXPECT_EQ(CanaryStepText(bg), "");
  EXPECT_THAT(RenderProgress(bg), ::testing::EndsWith("batch 1, switched"));
  bg.set_switched(false);
  EXPECT_THAT(RenderProgress(bg), ::testing::EndsWith("batch 1"));
  EXPECT_FALSE(OutcomeOf(bg).done);  // auto promote: the switch comes by itself

  // Manual promotion: a ready green set waits for a person.
  v1::Deployment manual = BlueGreenRollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, false, 2, false);
  EXPECT_FALSE(OutcomeOf(manual).done);  // not ready yet
  manual.set_available(3);
  RolloutOutcome o = OutcomeOf(manual);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_THAT(o.message, HasSubstr("green (revision 2) is ready"));
  EXPECT_THAT(o.message, HasSubstr("`warren service promote web`"));
  manual.set_switched(true);
  // Switched: the follower's question is answered (behaviour 10).
  EXPECT_TRUE(OutcomeOf(manual).done);
  EXPECT_THAT(OutcomeOf(manual).message, ::testing::StartsWith("all traffic on revision 2"));

  // The window: step start + canary window - now, never negative.
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  c.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  EXPECT_FALSE(WindowLeft(c, now).has_value());  // no step start yet
  c.mutable_step_started_at()->set_seconds(1'700'000'000 - 70);
  EXPECT_EQ(WindowLeft(c, now), absl::Seconds(230));
  EXPECT_EQ(WindowLeft(c, now + absl::Hours(1)), absl::ZeroDuration());
  c.set_phase(v1::DEPLOYMENT_PHASE_SUCCEEDED);
  EXPECT_FALSE(WindowLeft(c, now).has_value());
  bg.set_switched(true);
  bg.mutable_switched_at()->set_seconds(1'700'000'000 - 60);
  EXPECT_EQ(WindowLeft(bg, now), absl::Seconds(240));

  EXPECT_EQ(FormatCheckValue("error_rate", 2.5), "2.50%");
  EXPECT_EQ(FormatCheckValue("error_rate_increase", 0), "0.00%");
  EXPECT_EQ(FormatCheckValue("latency_p99", 0.25), "250.0ms");
  EXPECT_EQ(FormatCheckValue("requests", 49), "49");
  EXPECT_EQ(FormatCheckValue("query", 0.125), "0.125");
}

TEST(OutputTest, ReplicasByRevision) {
  std::vector<v1::Task> tasks(5);
  for (int i = 0; i < 5; ++i) {
    tasks[i].set_revision(i < 3 ? 1 : 2);
    tasks[i].set_desired_state(v1::TASK_STATE_RUNNING);
    tasks[i].mutable_status()->set_state(v1::TASK_STATE_RUNNING);
  }
  tasks[1].mutable_status()->set_state(v1::TASK_STATE_STARTING);  // live, not serving
  tasks[2].set_desired_state(v1::TASK_STATE_SHUTDOWN);            // being removed
  tasks[4].mutable_status()->set_state(v1::TASK_STATE_FAILED);    // ended
  auto counts = CountReplicasByRevision(tasks);
  EXPECT_EQ(counts[1].live, 2);
  EXPECT_EQ(counts[1].serving, 1);
  EXPECT_EQ(counts[2].live, 1);
  EXPECT_EQ(counts[2].serving, 1);
}

TEST_F(FollowTest, PromoteAndAbort) {
  fake_.rollout_script = {CanaryRollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 0)};
  ASSERT_EQ(Run({"service", "canary", "promote", "web"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: canary of revision 2 promoted (step 2/4, weight 25%)\n");
  ASSERT_EQ(Run({"service", "promote", "web"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: canary of revision 2 promoted (step 3/4, weight 50%)\n");
  ASSERT_EQ(Run({"service", "canary", "promote", "web", "--full"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: canary of revision 2 promoted (step 4/4, weight 100%)\n");
  ASSERT_EQ(fake_.promotions.size(), 3u);
  EXPECT_EQ(fake_.promotions[0].name_or_id(), "web");
  EXPECT_FALSE(fake_.promotions[0].full());
  EXPECT_FALSE(fake_.promotions[1].full());
  EXPECT_TRUE(fake_.promotions[2].full());

  ASSERT_EQ(Run({"service", "abort", "web"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "web: rollout to revision 2 aborted; traffic back on revision 1 (rolling-back)\n");
  EXPECT_EQ(fake_.aborts, std::vector<std::string>{"web"});

  fake_.rollout_script = {
      BlueGreenRollout("d3", v1::DEPLOYMENT_PHASE_PROGRESSING, false, 3, false)};
  ASSERT_EQ(Run({"service", "promote", "web"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: revision 2 promoted: production traffic switched to it\n");

  fake_.rollout_script = {Rollout("d4", v1::DEPLOYMENT_PHASE_PROGRESSING, 1, 0, 1)};
  EXPECT_EQ(Run({"service", "promote", "web"}), 1);
  EXPECT_EQ(err_.str(), "error: a rolling update has nothing to promote\n");
  fake_.rollout_script.clear();
  EXPECT_EQ(Run({"service", "abort", "web"}), 1);
  EXPECT_EQ(err_.str(), "error: no rollout\n");
  EXPECT_EQ(Run({"service", "abort"}), 2);
  EXPECT_EQ(Run({"service", "canary", "promote", "web", "--all"}), 2);
  EXPECT_EQ(Run({"service", "canary"}), 2);
}

// Behaviour 14: a request count still being collected is "waiting", not FAIL; a promotion
// prints the step and weight it moved to.
TEST(OutputTest, WaitingRequestsAndPromotionWeight) {
  v1::Deployment d;
  d.set_strategy(v1::DEPLOYMENT_STRATEGY_CANARY);
  d.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  v1::AnalysisResult requests;
  requests.set_check("requests");
  requests.set_value(12);
  requests.set_threshold(50);
  EXPECT_EQ(CheckResult(d, requests), "waiting");
  d.set_phase(v1::DEPLOYMENT_PHASE_ROLLED_BACK);
  EXPECT_EQ(CheckResult(d, requests), "FAIL");
  v1::AnalysisResult rate;
  rate.set_check("error_rate");
  d.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  EXPECT_EQ(CheckResult(d, rate), "FAIL");

  d.set_service_name("web");
  d.set_to_revision(2);
  for (int w : {10, 25, 50, 100}) d.mutable_config()->add_canary_steps(w);
  d.set_step(2);
  d.set_weight(25);  // the canary tasks of step 3 are still starting
  EXPECT_EQ(DescribePromotion(d, "web"),
            "web: canary of revision 2 promoted (step 3/4, weight 50%)\n");
  v1::DeploymentIntent* i = d.add_intents();
  i->set_sequence(1);
  i->set_action(v1::DEPLOYMENT_ACTION_PROMOTE);
  d.set_intent_sequence(1);
  EXPECT_THAT(DescribePromotion(d, "web"), HasSubstr("promotion requested"));
  i->set_applied(true);
  i->set_result("promoted to step 3/4: 50% of traffic on revision 2 once its tasks are ready");
  EXPECT_EQ(DescribePromotion(d, "web"),
            "web: promoted to step 3/4: 50% of traffic on revision 2 once its tasks are ready\n");
}

TEST_F(FollowTest, CanaryStatus) {
  v1::Deployment d = CanaryRollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 1);
  d.mutable_step_started_at()->set_seconds(absl::ToUnixSeconds(clock_.Now()) - 100);
  auto check = [&](std::string name, double value, double threshold, bool passed) {
    v1::AnalysisResult* a = d.add_analysis();
    a->set_check(name);
    a->set_value(value);
    a->set_threshold(threshold);
    a->set_passed(passed);
  };
  check("error_rate", 1.25, 10, true);
  check("latency_p99", 0.42, 0.3, false);
  d.mutable_analysis(1)->set_detail("p99 over 312 requests");
  fake_.rollout_script = {d};
  auto task = [&](std::string id, int64_t revision, v1::TaskState state) {
    v1::Task t;
    t.set_id(id);
    t.set_service_id("id1");
    t.set_revision(revision);
    t.set_desired_state(v1::TASK_STATE_RUNNING);
    t.mutable_status()->set_state(state);
    fake_.tasks.push_back(t);
  };
  task("a", 1, v1::TASK_STATE_RUNNING);
  task("b", 1, v1::TASK_STATE_RUNNING);
  task("c", 1, v1::TASK_STATE_SHUTDOWN);
  task("d", 2, v1::TASK_STATE_STARTING);
  v1::ServiceEndpoints eps;
  eps.set_service("web");
  eps.add_revisions()->set_revision(1);
  eps.mutable_revisions(0)->set_weight(75);
  eps.add_revisions()->set_revision(2);
  eps.mutable_revisions(1)->set_weight(25);
  fake_.endpoints = eps;

  ASSERT_EQ(Run({"service", "canary", "status", "web"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "Service:       web\n"
            "Deployment:    d2\n"
            "Strategy:      canary\n"
            "Phase:         progressing\n"
            "Revision:      1 -> 2\n"
            "Step:          step 2/4, weight 25%\n"
            "Window left:   3m20s\n"
            "\n"
            "REVISION   ROLE     WEIGHT   REPLICAS   SERVING\n"
            "1          stable   75%      2          2\n"
            "2          canary   25%      1          0\n"
            "\n"
            "CHECK         VALUE     THRESHOLD   RESULT   DETAIL\n"
            "error_rate    1.25%     10.00%      pass     -\n"
            "latency_p99   420.0ms   300.0ms     FAIL     p99 over 312 requests\n");

  ASSERT_EQ(Run({"service", "canary", "status", "web", "-o", "json"}), 0) << err_.str();
  nlohmann::json j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["strategy"], "canary");
  EXPECT_EQ(j["step"], 2);
  EXPECT_EQ(j["steps"], 4);
  EXPECT_EQ(j["weight"], 25);
  EXPECT_EQ(j["windowLeft"], "3m20s");
  EXPECT_EQ(j["revisions"][1]["role"], "canary");
  EXPECT_EQ(j["revisions"][1]["replicas"], 1);
  EXPECT_EQ(j["revisions"][0]["weight"], 75);
  EXPECT_EQ(j["analysis"][1]["check"], "latency_p99");
  EXPECT_EQ(j["analysis"][1]["passed"], false);
  ASSERT_EQ(Run({"service", "canary", "status", "web", "-o", "yaml"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("strategy: \"canary\"\n"));
  EXPECT_THAT(out_.str(), HasSubstr("windowLeft: \"3m20s\"\n"));
  EXPECT_THAT(out_.str(), HasSubstr("  - check: \"error_rate\"\n"));

  // Without endpoints the weights come from the deployment.
  fake_.endpoints.reset();
  ASSERT_EQ(Run({"service", "canary", "status", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("1          stable   75%"));
  EXPECT_THAT(out_.str(), HasSubstr("2          canary   25%"));

  // Blue/green: switched, and no step.
  v1::Deployment bg = BlueGreenRollout("d3", v1::DEPLOYMENT_PHASE_PROGRESSING, true, 3, true);
  bg.mutable_switched_at()->set_seconds(absl::ToUnixSeconds(clock_.Now()) - 60);
  fake_.rollout_script = {bg};
  ASSERT_EQ(Run({"service", "canary", "status", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("Switched:        yes, 1m ago\n"));
  EXPECT_THAT(out_.str(), HasSubstr("Analysis left:   4m\n"));
  EXPECT_THAT(out_.str(), HasSubstr("1          blue    0%"));
  EXPECT_THAT(out_.str(), HasSubstr("2          green   100%"));
  EXPECT_THAT(out_.str(), HasSubstr("No analysis results yet.\n"));
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("Step:")));

  fake_.rollout_script.clear();
  EXPECT_EQ(Run({"service", "canary", "status", "web"}), 1);
  EXPECT_EQ(err_.str(), "error: no rollouts\n");
}

TEST_F(FollowTest, UpdateFollowsCanarySteps) {
  using P = v1::DeploymentPhase;
  v1::Deployment done = CanaryRollout("d2", P::DEPLOYMENT_PHASE_SUCCEEDED, 3);
  done.set_updated(3);
  done.set_available(3);
  fake_.rollout_script = {
      v1::Deployment(),
      CanaryRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 0),
      CanaryRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 1),
      done,
  };
  ASSERT_EQ(Run({"service", "update", "web", "--env", "V=2", "--strategy", "canary"}), 0)
      << err_.str();
  std::string out = out_.str();
  size_t first = out.find("batch 1, step 1/4, weight 10%\n");
  size_t second = out.find("batch 1, step 2/4, weight 25%\n");
  size_t last = out.find("batch 1, step 4/4, weight 100%\n");
  ASSERT_NE(first, std::string::npos) << out;
  ASSERT_NE(second, std::string::npos) << out;
  ASSERT_NE(last, std::string::npos) << out;
  EXPECT_LT(first, second);
  EXPECT_LT(second, last);
  EXPECT_THAT(out, ::testing::EndsWith("rollout to revision 2 succeeded\n"));
}

TEST_F(FollowTest, CanaryWindowLongerThanTheProgressDeadlineKeepsFollowing) {
  // The step does not change for 3 minutes (a 30m window); the progress deadline is 60s, so a
  // rolling update would have been given up after 90s.
  v1::Deployment slow = CanaryRollout("d2", v1::DEPLOYMENT_PHASE_PROGRESSING, 0);
  slow.mutable_config()->mutable_canary_window()->set_seconds(30 * 60);
  std::vector<v1::Deployment> script(3 * 60 * 5, slow);  // 5 polls a second
  script.push_back(CanaryRollout("d2", v1::DEPLOYMENT_PHASE_SUCCEEDED, 3));
  fake_.rollout_script = script;
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "--watch"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), ::testing::EndsWith("rollout to revision 2 succeeded\n"));
}

TEST_F(FollowTest, BlueGreenFollowStopsWhenGreenAwaitsPromotion) {
  using P = v1::DeploymentPhase;
  fake_.rollout_script = {
      v1::Deployment(),
      BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, false, 1, false),
      BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, false, 3, false),
  };
  ASSERT_EQ(Run({"service", "update", "web", "--env", "V=2", "--strategy", "blue-green",
                 "--no-auto-promote"}),
            0)
      << err_.str();
  EXPECT_THAT(out_.str(),
              ::testing::EndsWith("green (revision 2) is ready and gets no production traffic yet; "
                                  "switch with `warren service promote web`\n"));
  fake_.rollout_script = {
      BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, true, 3, false),
      BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, true, 3, true),
      BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_SUCCEEDED, true, 3, true),
  };
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "-w"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("available 3/3, batch 1\n"));
  EXPECT_THAT(out_.str(), HasSubstr("available 3/3, batch 1, switched\n"));
}

// Behaviour 10: following a blue/green or canary update returns once all traffic is on the new
// revision, saying how long the old one stays warm and how to roll back, not after the delay.
TEST_F(FollowTest, CanaryFollowReturnsOnceAllTrafficIsOnTheNewRevision) {
  using P = v1::DeploymentPhase;
  v1::Deployment full = CanaryRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 3);
  *full.mutable_created_at() = ToProtoTime(clock_.Now() - absl::Seconds(40));
  *full.mutable_full_traffic_at() = ToProtoTime(clock_.Now());
  *full.mutable_warm_until() = ToProtoTime(clock_.Now() + absl::Seconds(30));
  // Never succeeds within the script: the last window would still run for minutes.
  fake_.rollout_script = {v1::Deployment(), CanaryRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 2),
                          full};
  ASSERT_EQ(Run({"service", "update", "web", "--env", "V=2", "--strategy", "canary"}), 0)
      << err_.str();
  EXPECT_THAT(out_.str(),
              HasSubstr("all traffic on revision 2 after 40s; revision 1 stays warm for 29s: roll "
                        "back at once with `warren service rollback web`\n"));
}

// `service update` names `rollout status --watch` for the analysis that goes on after all traffic
// moved: that one follows the rollout to its end.
TEST_F(FollowTest, WatchFollowsTheAnalysisAfterAllTrafficMoved) {
  using P = v1::DeploymentPhase;
  v1::Deployment full = CanaryRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, 3);
  *full.mutable_full_traffic_at() = ToProtoTime(clock_.Now());
  *full.mutable_warm_until() = ToProtoTime(clock_.Now() + absl::Seconds(30));
  v1::Deployment done = full;
  done.set_phase(P::DEPLOYMENT_PHASE_SUCCEEDED);
  fake_.rollout_script = {full, full, full, done};
  ASSERT_EQ(Run({"service", "rollout", "status", "web", "--watch"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("all traffic on revision 2")));
  EXPECT_THAT(out_.str(), HasSubstr("rollout to revision 2 succeeded"));
  EXPECT_THAT(out_.str(), HasSubstr("revision 1 stays warm for 29s"));
}

TEST_F(FollowTest, BlueGreenFollowReturnsAtTheSwitch) {
  using P = v1::DeploymentPhase;
  v1::Deployment switched = BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, true, 3, true);
  *switched.mutable_created_at() = ToProtoTime(clock_.Now() - absl::Seconds(5));
  *switched.mutable_full_traffic_at() = ToProtoTime(clock_.Now());
  *switched.mutable_warm_until() = ToProtoTime(clock_.Now() + absl::Minutes(5));
  fake_.rollout_script = {v1::Deployment(),
                          BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_PROGRESSING, true, 3, false),
                          switched};
  ASSERT_EQ(Run({"service", "update", "web", "--env", "V=2", "--strategy", "blue-green"}), 0)
      << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("all traffic on revision 2 after 5s; revision 1 stays warm "
                                    "for 4m59s: roll back at once"));
  // A rollback that switched back is followed to its end as before.
  v1::Deployment back = BlueGreenRollout("d2", P::DEPLOYMENT_PHASE_ROLLED_BACK, true, 3, false);
  back.set_rollback_reason(v1::ROLLBACK_REASON_MANUAL);
  back.set_reopened(true);
  EXPECT_TRUE(OutcomeOf(back, clock_.Now()).done);
  EXPECT_EQ(OutcomeOf(back, clock_.Now()).exit_code, 0);
}

constexpr char kApplyV1[] = R"(name: web
replicas: 2
template:
  command: /bin/web
  healthCheck:
    http: {path: /healthz}
---
name: api
template:
  command: /bin/api
)";

TEST_F(CliServerTest, ApplyCreatesUpdatesAndDiffs) {
  std::string v1 = WriteFile("v1.yaml", kApplyV1);
  ASSERT_EQ(Run({"apply", "-f", v1, "--dry-run"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: create\napi: create\n");
  ASSERT_EQ(Run({"service", "ls", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("web")));

  ASSERT_EQ(Run({"apply", "-f", v1}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: created (id1)\napi: created (id2)\n");
  ASSERT_EQ(Run({"apply", "-f", v1}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: unchanged\napi: unchanged\n");

  std::string v2 = WriteFile(
      "v2.yaml",
      std::string(kApplyV1).replace(std::string(kApplyV1).find("replicas: 2"), 11, "replicas: 4"));
  ASSERT_EQ(Run({"apply", "-f", v2, "--dry-run"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("web: update\n--- web (current)\n+++ web (" + v2 + ")\n"));
  EXPECT_THAT(out_.str(), HasSubstr("-replicas: 2\n+replicas: 4\n"));
  EXPECT_THAT(out_.str(), HasSubstr("api: unchanged\n"));
  ASSERT_EQ(Run({"apply", "-f", v2}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: updated (revision 2)\napi: unchanged\n");
  EXPECT_EQ(fake_.causes.back(), "warren apply -f " + v2);
}

// D2: `apply --dry-run` used to say "create" for replicas 2147483647.
TEST_F(CliServerTest, ApplyRefusesSizesOverTheLimits) {
  std::string huge =
      WriteFile("huge.yaml", "name: web\nreplicas: 2147483647\ntemplate: {command: x}\n");
  EXPECT_EQ(Run({"apply", "-f", huge, "--dry-run"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("service 1 (web): replicas: must be 0..10000, got 2147483647"));
  EXPECT_EQ(out_.str(), "");
  std::string nul = WriteFile("nul.yaml", "name: web\ntemplate: {command: x, args: [\"a\\0b\"]}\n");
  EXPECT_EQ(Run({"apply", "-f", nul}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("template.args[0]: must not contain a NUL byte"));
  ASSERT_EQ(Run({"service", "ls", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("web")));
}

TEST_F(CliServerTest, ApplyChangesNothingWhenAnyDocumentIsInvalid) {
  std::string bad = WriteFile(
      "bad.yaml", std::string(kApplyV1) + "---\nname: db\nreplicas: -1\ntemplate: {command: x}\n");
  EXPECT_EQ(Run({"apply", "-f", bad}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("service 3 (db): replicas: must be 0..10000, got -1"));
  EXPECT_EQ(out_.str(), "");
  ASSERT_EQ(Run({"service", "ls", "-o", "json"}), 0);
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("web")));

  std::string unknown = WriteFile("unknown.yaml", "name: a\n---\nname: b\nreplicaz: 3\n");
  EXPECT_EQ(Run({"apply", "-f", unknown}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("document 2: unknown field \"replicaz\""));
  EXPECT_EQ(Run({"apply", "-f", dir_ + "/missing.yaml"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("cannot read"));
  EXPECT_EQ(Run({"apply"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--file"));
}

TEST(CliTest, UnreachableManager) {
  std::ostringstream out, err;
  std::string addr = absl::StrCat("127.0.0.1:", testing_util::FreePort());
  EXPECT_EQ(RunCli({"warren", "--manager", addr, "service", "ls"}, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("error: cannot reach the manager at " + addr +
                                   " (set --manager or WARREN_MANAGER): "));
}

TEST(CliTest, UsageErrors) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"warren"}, "'warren' needs a command: "},
           {{"warren", "service", "create"}, "NAME is required"},
           {{"warren", "service", "ls", "-o", "xml"}, "--output"},
           {{"warren", "service", "ls", "--bogus"}, "--bogus"},
           {{"warren", "service", "create", "web", "--command", "x", "--health-interval", "5x",
             "--health-http", "/h"},
            "--health-interval: invalid duration \"5x\""},
           {{"warren", "manager", "--node-timeout", "soon"}, "--node-timeout: invalid duration"},
           {{"warren", "worker", "--memory", "lots"}, "--memory: invalid size"},
           {{"warren", "worker", "--runtime", "docker"}, "--runtime"},
           {{"warren", "cluster", "init", "--label", "novalue"}, "--label: expected KEY=VALUE"},
           // D11: a value taken for an option is named, not only the missing NAME.
           {{"warren", "service", "create", "-web"},
            "\"-web\" is not an option of this command, and a value cannot start with '-' "
            "(NAME is required)"},
           {{"warren", "events", "--since", "-5"},
            "--since: must be an event id (a whole number, 0 or more, as `warren events` shows "
            "them), got \"-5\""},
           {{"warren", "events", "--since", "5m"}, "--since: must be an event id"},
           {{"warren", "service", "logs", "web", "--tail", "-5"},
            "--tail: must be 0 (all lines)..1000000, got -5"},
           {{"warren", "service", "scale", "web=2147483647"},
            "web=2147483647: replicas: must be 0..10000, got 2147483647"},
           {{"warren", "service", "create", "web", "--command", "x", "--replicas", "2147483647"},
            "--replicas: replicas: must be 0..10000, got 2147483647"},
           {{"warren", "worker", "--cpus", "nan"}, "--cpus: must be 0 (detect)..4096, got nan"},
           {{"warren", "worker", "--ingress-https", "no-port"}, "--ingress-https: "},
           {{"warren", "cluster", "init", "--ingress-https", "no-port"},
            "(HOST:PORT, e.g. :443; empty disables)"},
           {{"warren", "manager", "--tls", "--insecure-plaintext"},
            "--tls excludes --insecure-plaintext"},
           {{"warren", "manager", "--tls=false"}, "tls was given a disallowed flag override"},
           {{"warren", "manager", "--node-timeout", "9999h"},
            "--node-timeout: must be greater than 0 and at most 24h, got 9999h"},
           {{"warren", "worker", "--advertise-addr", "0.0.0.0"},
            "--advertise-addr: 0.0.0.0 is the unspecified address; give the address other "
            "nodes reach this node at"},
           {{"warren", "worker", "--advertise-addr", "node1.example:7946"},
            "--advertise-addr: \"node1.example:7946\" is not an IP address"},
           {{"warren", "cluster", "init", "--advertise-addr", "ff02::1"},
            "--advertise-addr: ff02::1 is a multicast address"},
           {{"warren", "cluster", "init", "--cluster-cidr", "10.99.0.0/24"},
            "--cluster-cidr: \"10.99.0.0/24\" has a /24 prefix; it must be /8 to /23"},
           {{"warren", "manager", "--cluster-cidr", "fd00::/48"},
            "--cluster-cidr: \"fd00::/48\" is IPv6; the cluster CIDR must be IPv4"},
           {{"warren", "manager", "--cluster-cidr", "10.99.1.0/16"},
            "--cluster-cidr: \"10.99.1.0/16\" has host bits set; did you mean 10.99.0.0/16?"},
           {{"warren", "worker", "--network", "flannel"},
            "--network: \"flannel\" is not a network mode; use local (task addresses of this "
            "host only), host-gw (routes between nodes on one L2 network), vxlan (an overlay "
            "between the nodes) or wireguard"},
           {{"warren", "worker", "--network", "local", "--encrypt"},
            "--encrypt: not with --network local"},
           {{"warren", "worker", "--network", "vxlan", "--address-range", "127.5.0.0/16"},
            "--address-range: not with --network vxlan (task addresses come from the node's "
            "subnet of the cluster CIDR)"},
           {{"warren", "worker", "--network", "host-gw", "--runtime", "cri", "--cni-subnet",
             "10.88.0.0/16"},
            "--cni-subnet: not with --network host-gw (the pods' addresses come from the node's "
            "subnet of the cluster CIDR)"},
       }) {
    std::ostringstream out, err;
    EXPECT_EQ(RunCli(c.args, out, err), 2) << c.want;
    EXPECT_THAT(err.str(), HasSubstr(c.want));
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"warren", "--version"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("warren "));
  EXPECT_EQ(RunCli({"warren", "service", "create", "--help"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("--health-start-period"));
}

}  // namespace
}  // namespace warren
