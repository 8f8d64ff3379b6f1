#include "common/spec.h"

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

TEST(ParseDurationTest, AcceptsUnits) {
  struct Case {
    std::string text;
    absl::Duration want;
  };
  for (const Case& c : std::vector<Case>{
           {"500ms", absl::Milliseconds(500)},
           {"10s", absl::Seconds(10)},
           {"5m", absl::Minutes(5)},
           {"1h", absl::Hours(1)},
           {"1m30s", absl::Seconds(90)},
           {"0", absl::ZeroDuration()},
           {"1.5s", absl::Milliseconds(1500)},
           {" 2s ", absl::Seconds(2)},
       }) {
    absl::StatusOr<absl::Duration> d = ParseDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.want) << c.text;
  }
}

TEST(ParseDurationTest, RejectsBadInput) {
  for (const std::string text : {"10x", "10", "", "abc", "inf", "5 m s", "1.2.3s"}) {
    absl::StatusOr<absl::Duration> d = ParseDuration(text);
    ASSERT_FALSE(d.ok()) << text;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(d.status().message(), HasSubstr("use a number with a unit: 500ms, 10s, 5m, 1h"));
  }
  EXPECT_EQ(ParseDuration("10x").status().message(),
            "invalid duration \"10x\": use a number with a unit: 500ms, 10s, 5m, 1h");
}

TEST(FormatDurationTest, ShortestFormRoundTrips) {
  struct Case {
    absl::Duration d;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{{absl::Milliseconds(500), "500ms"},
                                         {absl::Seconds(10), "10s"},
                                         {absl::Minutes(5), "5m"},
                                         {absl::Seconds(90), "1m30s"},
                                         {absl::ZeroDuration(), "0"}}) {
    EXPECT_EQ(warren::FormatDuration(c.d), c.want);
    EXPECT_EQ(*ParseDuration(warren::FormatDuration(c.d)), c.d);
  }
}

TEST(ParseByteSizeTest, Units) {
  struct Case {
    std::string text;
    int64_t want;
  };
  for (const Case& c : std::vector<Case>{{"512", 512},
                                         {"256K", 256 * 1024},
                                         {"256M", 256LL << 20},
                                         {"1G", 1LL << 30},
                                         {"1Gi", 1LL << 30},
                                         {"2MB", 2LL << 20},
                                         {"64Ki", 64 * 1024},
                                         {"1.5K", 1536},
                                         {"0", 0}}) {
    absl::StatusOr<int64_t> n = ParseByteSize(c.text);
    ASSERT_TRUE(n.ok()) << c.text << ": " << n.status();
    EXPECT_EQ(*n, c.want) << c.text;
  }
  for (const std::string text : {"", "M", "-1", "12Q", "1e3", "99999999999G"}) {
    absl::StatusOr<int64_t> n = ParseByteSize(text);
    ASSERT_FALSE(n.ok()) << text;
    EXPECT_THAT(n.status().message(), HasSubstr("256M")) << text;
  }
}

v1::ServiceSpec ValidSpec() {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.set_replicas(2);
  spec.mutable_template_()->set_command("/bin/app");
  v1::Port* port = spec.mutable_template_()->add_ports();
  port->set_target(8080);
  port->set_published(9000);
  spec.mutable_template_()->mutable_health_check()->mutable_http()->set_path("/healthz");
  ApplySpecDefaults(&spec);
  return spec;
}

// D2: every size a client controls has a limit. Each case sets a size to `n`: the limit
// itself passes, one more is refused with the field and the allowed range in the message.
TEST(SpecLimitsTest, EachLimitAtTheEdge) {
  struct Case {
    std::string name;
    int64_t max;
    std::function<void(v1::ServiceSpec*, int64_t n)> set;
    std::string want;  // the whole message at max + 1
  };
  auto* T = +[](v1::ServiceSpec* s) { return s->mutable_template_(); };
  auto* U = +[](v1::ServiceSpec* s) { return s->mutable_update_config(); };
  auto* H = +[](v1::ServiceSpec* s) { return s->mutable_template_()->mutable_health_check(); };
  auto str = [](int64_t n, char c = 'a') { return std::string(static_cast<size_t>(n), c); };
  auto seconds = [](int64_t n) {
    google::protobuf::Duration d;
    d.set_seconds(n);
    return d;
  };
  const int64_t week = 7 * 24 * 3600;
  const std::vector<Case> cases = {
      {"replicas", 10000, [](auto* s, int64_t n) { s->set_replicas(static_cast<int>(n)); },
       "replicas: must be 0..10000, got 10001"},
      {"env entries", 1024,
       [&](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) (*T(s)->mutable_env())[absl::StrCat("V", i)] = "x";
       },
       "template.env: must have at most 1024 entries, got 1025"},
      {"env value", 32 << 10, [&](auto* s, int64_t n) { (*T(s)->mutable_env())["BIG"] = str(n); },
       "template.env.BIG: must be at most 32768 bytes, got 32769"},
      {"env name", 256, [&](auto* s, int64_t n) { (*T(s)->mutable_env())[str(n, 'A')] = "1"; },
       "template.env: key \"" + str(32, 'A') + "...\" must be at most 256 bytes, got 257"},
      {"args", 1024,
       [&](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) T(s)->add_args("-v");
       },
       "template.args: must have at most 1024 entries, got 1025"},
      {"arg size", 32 << 10, [&](auto* s, int64_t n) { T(s)->add_args(str(n)); },
       "template.args[0]: must be at most 32768 bytes, got 32769"},
      {"command", 4096, [&](auto* s, int64_t n) { T(s)->set_command("/" + str(n - 1)); },
       "template.command: must be at most 4096 bytes, got 4097"},
      {"image", 1024, [&](auto* s, int64_t n) { T(s)->set_image(str(n)); },
       "template.image: must be at most 1024 bytes, got 1025"},
      {"service labels", 256,
       [](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) (*s->mutable_labels())[absl::StrCat("k", i)] = "v";
       },
       "labels: must have at most 256 entries, got 257"},
      {"label key", 253, [&](auto* s, int64_t n) { (*s->mutable_labels())[str(n)] = "v"; },
       "labels: key \"" + str(32) + "...\" must be at most 253 bytes, got 254"},
      {"label value", 4096, [&](auto* s, int64_t n) { (*s->mutable_labels())["team"] = str(n); },
       "labels.team: must be at most 4096 bytes, got 4097"},
      {"container labels", 256,
       [&](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) (*T(s)->mutable_labels())[absl::StrCat("k", i)] = "v";
       },
       "template.labels: must have at most 256 entries, got 257"},
      {"constraints", 64,
       [&](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) T(s)->add_constraints("node.role==worker");
       },
       "template.constraints: must have at most 64 entries, got 65"},
      {"constraint size", 512,
       [&](auto* s, int64_t n) { T(s)->add_constraints("node.name==" + str(n - 11)); },
       "template.constraints[0]: must be at most 512 bytes, got 513"},
      {"ports", 128,
       [&](auto* s, int64_t n) {
         T(s)->clear_ports();
         for (int64_t i = 0; i < n; ++i) {
           v1::Port* p = T(s)->add_ports();
           p->set_target(static_cast<int>(1000 + i));
           p->set_protocol("tcp");
           p->set_name(absl::StrCat("p", i));
         }
       },
       "template.ports: must have at most 128 entries, got 129"},
      {"port name", 63, [&](auto* s, int64_t n) { T(s)->mutable_ports(0)->set_name(str(n)); },
       "template.ports[0].name: must be at most 63 bytes, got 64"},
      {"health path", 2048,
       [&](auto* s, int64_t n) { H(s)->mutable_http()->set_path("/" + str(n - 1)); },
       "template.healthCheck.http.path: must be at most 2048 bytes, got 2049"},
      {"health headers", 32,
       [&](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) {
           (*H(s)->mutable_http()->mutable_headers())[absl::StrCat("X-", i)] = "1";
         }
       },
       "template.healthCheck.http.headers: must have at most 32 entries, got 33"},
      {"health header value", 4096,
       [&](auto* s, int64_t n) { (*H(s)->mutable_http()->mutable_headers())["Host"] = str(n); },
       "template.healthCheck.http.headers.Host: must be at most 4096 bytes, got 4097"},
      {"exec probe argv", 1024,
       [&](auto* s, int64_t n) {
         for (int64_t i = 0; i < n; ++i) H(s)->mutable_exec()->add_command("true");
       },
       "template.healthCheck.exec.command: must have at most 1024 entries, got 1025"},
      {"health retries", 1000, [&](auto* s, int64_t n) { H(s)->set_retries(n); },
       "template.healthCheck.retries: must be 1..1000, got 1001"},
      {"health success threshold", 1000,
       [&](auto* s, int64_t n) { H(s)->set_success_threshold(n); },
       "template.healthCheck.successThreshold: must be 1..1000, got 1001"},
      {"health interval", week, [&](auto* s, int64_t n) { *H(s)->mutable_interval() = seconds(n); },
       "template.healthCheck.interval: must be greater than 0 and at most 168h, got 168h1s"},
      {"restart attempts", 1000000,
       [&](auto* s, int64_t n) { T(s)->mutable_restart_policy()->set_max_attempts(n); },
       "template.restartPolicy.maxAttempts: must be 0 (unlimited)..1000000, got 1000001"},
      {"restart max delay", week,
       [&](auto* s, int64_t n) {
         *T(s)->mutable_restart_policy()->mutable_max_delay() = seconds(n);
       },
       "template.restartPolicy.maxDelay: must be 0..168h, got 168h1s"},
      {"stop timeout", week,
       [&](auto* s, int64_t n) { *T(s)->mutable_stop_timeout() = seconds(n); },
       "template.stopTimeout: must be 0..168h, got 168h1s"},
      {"cpus", 4096, [&](auto* s, int64_t n) { T(s)->mutable_resources()->set_cpus(n); },
       "template.resources.cpus: must be 0..4096, got 4097"},
      {"memory", int64_t{1} << 50,
       [&](auto* s, int64_t n) { T(s)->mutable_resources()->set_memory_bytes(n); },
       "template.resources.memoryBytes: must be 0..1125899906842624 (1 PiB), got "
       "1125899906842625"},
      {"parallelism", 10000, [&](auto* s, int64_t n) { U(s)->set_parallelism(n); },
       "updateConfig.parallelism: must be 0 (all at once)..10000, got 10001"},
      {"max surge", 10000, [&](auto* s, int64_t n) { U(s)->set_max_surge(absl::StrCat(n)); },
       "updateConfig.maxSurge: must be a whole number 0..10000 or a whole percent 0%..100%, got "
       "\"10001\""},
      {"rollback max unavailable", 10000,
       [](auto* s, int64_t n) {
         s->mutable_rollback_config()->set_max_unavailable(absl::StrCat(n));
       },
       "rollbackConfig.maxUnavailable: must be a whole number 0..10000 or a whole percent "
       "0%..100%, got \"10001\""},
      {"progress deadline", week,
       [&](auto* s, int64_t n) { *U(s)->mutable_progress_deadline() = seconds(n); },
       "updateConfig.progressDeadline: must be 0..168h, got 168h1s"},
      {"canary window", week,
       [&](auto* s, int64_t n) { *U(s)->mutable_canary_window() = seconds(n); },
       "updateConfig.canaryWindow: must be 0..168h, got 168h1s"},
      {"canary steps", 100,
       [&](auto* s, int64_t n) {
         for (int64_t i = 1; i <= n; ++i) U(s)->add_canary_steps(std::min<int64_t>(i, 100));
       },
       "updateConfig.canarySteps: must have at most 100 entries, got 101"},
      {"min requests", 100000000, [&](auto* s, int64_t n) { U(s)->set_min_requests(n); },
       "updateConfig.minRequests: must be 0..100000000, got 100000001"},
      {"analysis query", 4096,
       [&](auto* s, int64_t n) {
         U(s)->set_analysis_query(str(n, 'q'));
         U(s)->set_analysis_threshold(1);
       },
       "updateConfig.analysisQuery: must be at most 4096 bytes, got 4097"},
      {"history limit", 100, [](auto* s, int64_t n) { s->set_history_limit(n); },
       "historyLimit: must be 2..100 (0 means the default, 10), got 101"},
  };
  for (const Case& c : cases) {
    v1::ServiceSpec at_max = ValidSpec();
    c.set(&at_max, c.max);
    EXPECT_TRUE(ValidateServiceSpec(at_max).ok()) << c.name << ": " << ValidateServiceSpec(at_max);
    v1::ServiceSpec over = ValidSpec();
    c.set(&over, c.max + 1);
    absl::Status s = ValidateServiceSpec(over);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(std::string(s.message()), c.want) << c.name;
  }
}

// The whole spec: fields each within their own limit still add up to at most 1 MiB encoded.
TEST(SpecLimitsTest, WholeSpecSize) {
  auto sized = [](size_t target) {
    v1::ServiceSpec spec = ValidSpec();
    for (int i = 0; spec.ByteSizeLong() + (32 << 10) < target; ++i) {
      (*spec.mutable_template_()->mutable_env())[absl::StrCat("V", i)] = std::string(30000, 'x');
    }
    // Grow one value byte by byte up to the target (the map entry's length prefix may grow too).
    std::string& pad = (*spec.mutable_template_()->mutable_env())["PAD"];
    while (spec.ByteSizeLong() < target) pad.push_back('p');
    return spec;
  };
  v1::ServiceSpec at_max = sized(1 << 20);
  ASSERT_EQ(at_max.ByteSizeLong(), 1u << 20);
  EXPECT_TRUE(ValidateServiceSpec(at_max).ok()) << ValidateServiceSpec(at_max);
  v1::ServiceSpec over = sized((1 << 20) + 1);
  ASSERT_EQ(over.ByteSizeLong(), (1u << 20) + 1);
  EXPECT_EQ(ValidateServiceSpec(over).message(),
            "spec: must be at most 1048576 bytes (1 MiB) encoded, got 1048577");
}

TEST(SpecLimitsTest, RefusesNulBytes) {
  const std::string nul("a\0b", 3);
  struct Case {
    std::function<void(v1::ServiceSpec*)> set;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {[&](auto* s) { s->mutable_template_()->set_command("/bin/" + nul); },
            "template.command: must not contain a NUL byte"},
           {[&](auto* s) { s->mutable_template_()->add_args(nul); },
            "template.args[0]: must not contain a NUL byte"},
           {[&](auto* s) { (*s->mutable_template_()->mutable_env())["X"] = nul; },
            "template.env.X: must not contain a NUL byte"},
           {[&](auto* s) { (*s->mutable_template_()->mutable_env())[nul] = "1"; },
            "template.env key \"a\\x00\\x62\": must not contain a NUL byte"},
           {[&](auto* s) { (*s->mutable_labels())[nul] = "1"; },
            "labels key \"a\\x00\\x62\": must not contain a NUL byte"},
           {[&](auto* s) { (*s->mutable_template_()->mutable_labels())["team"] = nul; },
            "template.labels.team: must not contain a NUL byte"},
           {[&](auto* s) { s->mutable_template_()->add_constraints("node.name==" + nul); },
            "template.constraints[0]: must not contain a NUL byte"},
           {[&](auto* s) {
              s->mutable_template_()->mutable_health_check()->mutable_http()->set_path("/" + nul);
            },
            "template.healthCheck.http.path: must not contain a NUL byte"},
           {[&](auto* s) { s->set_name("web" + nul); },
            "name: \"weba\\x00\\x62\" is not a DNS label"},
       }) {
    v1::ServiceSpec spec = ValidSpec();
    c.set(&spec);
    EXPECT_THAT(std::string(ValidateServiceSpec(spec).message()), HasSubstr(c.want)) << c.want;
  }
}

TEST(SpecLimitsTest, ReplicasForScale) {
  EXPECT_TRUE(ValidateReplicas(0).ok());
  EXPECT_TRUE(ValidateReplicas(10000).ok());
  EXPECT_EQ(ValidateReplicas(2147483647).message(), "replicas: must be 0..10000, got 2147483647");
  EXPECT_EQ(ValidateReplicas(-1).message(), "replicas: must be 0..10000, got -1");
}

// Spec files are bounded before yaml-cpp sees them: size and nesting; aliases cannot expand a
// small file into a huge spec.
TEST(ParseServicesYamlTest, BoundsInputBeforeParsing) {
  std::string big = "name: a\n# " + std::string(4 << 20, 'x') + "\n";
  EXPECT_THAT(std::string(ParseServicesYaml(big).status().message()),
              HasSubstr("at most 4194304 (4 MiB) are read"));
  // Flow nesting: 64 levels parse (and fail on the schema), 65 are refused before parsing.
  auto flow = [](int depth) {
    return "name: a\ntemplate:\n  args: " + std::string(depth, '[') + std::string(depth, ']') +
           "\n";
  };
  EXPECT_THAT(std::string(ParseServicesYaml(flow(64)).status().message()),
              HasSubstr("template.args[0]: expected a single value, got a list"));
  EXPECT_EQ(ParseServicesYaml(flow(65)).status().message(),
            "invalid YAML at line 3: nested deeper than 64 levels");
  // Brackets inside quotes and comments are not nesting.
  auto quoted = ParseServicesYaml("name: a # [[[[\ntemplate:\n  args: [\"" + std::string(100, '[') +
                                  "\", '" + std::string(100, '{') + "']\n");
  ASSERT_TRUE(quoted.ok()) << quoted.status();
  EXPECT_EQ((*quoted)[0].template_().args(0), std::string(100, '['));
  // Block nesting is yaml-cpp's own depth guard: an error, not a stack overflow.
  std::string block = "name: a\ntemplate:\n  args:\n";
  for (int i = 0; i < 5000; ++i) block += std::string(4 + 2 * i, ' ') + "-\n";
  EXPECT_FALSE(ParseServicesYaml(block).ok());
}

TEST(ParseServicesYamlTest, AliasesCannotAmplify) {
  // 1 KiB named once, repeated 5,000 times by 4-byte aliases: a 20 KB file, a 5 MB spec.
  std::string yaml =
      "name: a\ntemplate:\n  command: &x " + std::string(1024, 'x') + "\n  args: [*x";
  for (int i = 1; i < 5000; ++i) yaml += ", *x";
  yaml += "]\n";
  ASSERT_LT(yaml.size(), 30000u);
  EXPECT_THAT(std::string(ParseServicesYaml(yaml).status().message()),
              HasSubstr("document 1: larger than 2097152 bytes once aliases are expanded"));
  // A few aliases are fine.
  auto few = ParseServicesYaml("name: a\ntemplate:\n  command: &x app\n  args: [*x, *x]\n");
  ASSERT_TRUE(few.ok()) << few.status();
  EXPECT_EQ((*few)[0].template_().args_size(), 2);
}

TEST(ApplySpecDefaultsTest, FillsDocumentedDefaults) {
  v1::ServiceSpec spec = ValidSpec();
  EXPECT_EQ(spec.mode(), "replicated");
  const v1::TaskTemplate& t = spec.template_();
  EXPECT_EQ(t.restart_policy().condition(), "always");
  EXPECT_EQ(t.restart_policy().delay().nanos(), 100'000'000);
  EXPECT_EQ(t.restart_policy().max_delay().seconds(), 30);
  EXPECT_EQ(t.health_check().interval().seconds(), 5);
  EXPECT_EQ(t.health_check().timeout().seconds(), 2);
  EXPECT_EQ(t.health_check().retries(), 3);
  EXPECT_EQ(t.health_check().success_threshold(), 1);
  EXPECT_EQ(t.health_check().http().status_min(), 200);
  EXPECT_EQ(t.health_check().http().status_max(), 399);
  EXPECT_EQ(t.stop_timeout().seconds(), 10);
  EXPECT_EQ(t.ports(0).protocol(), "tcp");
  EXPECT_EQ(t.ports(0).name(), "p8080");
  EXPECT_TRUE(ValidateServiceSpec(spec).ok()) << ValidateServiceSpec(spec);
}

TEST(ApplySpecDefaultsTest, KeepsSetValuesAndAddsNoHealthCheck) {
  v1::ServiceSpec spec;
  spec.set_mode("global");
  spec.mutable_template_()->mutable_stop_timeout()->set_seconds(3);
  spec.mutable_template_()->mutable_restart_policy()->set_condition("never");
  ApplySpecDefaults(&spec);
  EXPECT_EQ(spec.mode(), "global");
  EXPECT_EQ(spec.template_().stop_timeout().seconds(), 3);
  EXPECT_EQ(spec.template_().restart_policy().condition(), "never");
  EXPECT_FALSE(spec.template_().has_health_check());
}

TEST(ValidateServiceSpecTest, RejectsBadSpecs) {
  struct Case {
    std::string name;
    std::function<void(v1::ServiceSpec*)> mutate;
    std::string want;
  };
  std::vector<Case> cases = {
      {"empty name", [](auto* s) { s->set_name(""); }, "name: required"},
      {"non-DNS name", [](auto* s) { s->set_name("Web_1"); },
       "name: \"Web_1\" is not a DNS label (lower-case letters, digits and '-', 1..63 characters, "
       "starting and ending with a letter or digit)"},
      {"trailing dash", [](auto* s) { s->set_name("web-"); }, "is not a DNS label"},
      {"too long", [](auto* s) { s->set_name(std::string(64, 'a')); }, "is not a DNS label"},
      {"negative replicas", [](auto* s) { s->set_replicas(-1); },
       "replicas: must be 0..10000, got -1"},
      {"global with replicas", [](auto* s) { s->set_mode("global"); },
       "replicas: must be unset in global mode"},
      {"bad mode", [](auto* s) { s->set_mode("batch"); },
       "mode: must be replicated or global, got \"batch\""},
      {"missing command", [](auto* s) { s->mutable_template_()->clear_command(); },
       "template.command: required (the process runtime runs a command)"},
      {"target out of range",
       [](auto* s) { s->mutable_template_()->mutable_ports(0)->set_target(70000); },
       "template.ports[0].target: must be 1..65535, got 70000"},
      {"target zero", [](auto* s) { s->mutable_template_()->mutable_ports(0)->set_target(0); },
       "template.ports[0].target: must be 1..65535, got 0"},
      {"published out of range",
       [](auto* s) { s->mutable_template_()->mutable_ports(0)->set_published(-5); },
       "template.ports[0].published: must be 1..65535, got -5"},
      {"duplicate published",
       [](auto* s) {
         auto* p = s->mutable_template_()->add_ports();
         p->set_target(8081);
         p->set_published(9000);
         p->set_protocol("tcp");
       },
       "template.ports[1].published: port 9000 is already published by ports[0]"},
      {"udp", [](auto* s) { s->mutable_template_()->mutable_ports(0)->set_protocol("udp"); },
       "template.ports[0].protocol: must be \"tcp\""},
      {"no probe", [](auto* s) { s->mutable_template_()->mutable_health_check()->clear_http(); },
       "template.healthCheck: set exactly one probe"},
      {"http path",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_http()->set_path("healthz");
       },
       "template.healthCheck.http.path: must start with '/'"},
      {"http port",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_http()->set_port(65536);
       },
       "template.healthCheck.http.port: must be 0 (the task's port) or 1..65535, got 65536"},
      {"status range",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_http()->set_status_min(500);
         s->mutable_template_()->mutable_health_check()->mutable_http()->set_status_max(400);
       },
       "template.healthCheck.http.statusMin: must not be greater than statusMax"},
      {"status bounds",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_http()->set_status_max(600);
       },
       "template.healthCheck.http.statusMax: must be 100..599, got 600"},
      {"tcp port",
       [](auto* s) { s->mutable_template_()->mutable_health_check()->mutable_tcp()->set_port(-1); },
       "template.healthCheck.tcp.port"},
      {"empty exec",
       [](auto* s) { s->mutable_template_()->mutable_health_check()->mutable_exec(); },
       "template.healthCheck.exec.command: required"},
      {"zero interval",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_interval()->set_seconds(0);
       },
       "template.healthCheck.interval: must be greater than 0 and at most 168h, got 0"},
      {"zero timeout",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_timeout()->set_seconds(0);
       },
       "template.healthCheck.timeout: must be greater than 0 and at most 168h"},
      {"negative start period",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_start_period()->set_seconds(-1);
       },
       "template.healthCheck.startPeriod: must be 0..168h, got -1s"},
      {"retries", [](auto* s) { s->mutable_template_()->mutable_health_check()->set_retries(-2); },
       "template.healthCheck.retries: must be 1..1000, got -2"},
      {"success threshold",
       [](auto* s) { s->mutable_template_()->mutable_health_check()->set_success_threshold(-1); },
       "template.healthCheck.successThreshold: must be 1..1000"},
      {"restart condition",
       [](auto* s) {
         s->mutable_template_()->mutable_restart_policy()->set_condition("sometimes");
       },
       "template.restartPolicy.condition: must be always, on-failure or never, got \"sometimes\""},
      {"max attempts",
       [](auto* s) { s->mutable_template_()->mutable_restart_policy()->set_max_attempts(-1); },
       "template.restartPolicy.maxAttempts: must be 0 (unlimited)..1000000, got -1"},
      {"negative delay",
       [](auto* s) {
         s->mutable_template_()->mutable_restart_policy()->mutable_delay()->set_seconds(-1);
       },
       "template.restartPolicy.delay: must be 0..168h"},
      {"cpus", [](auto* s) { s->mutable_template_()->mutable_resources()->set_cpus(-0.5); },
       "template.resources.cpus: must be 0..4096, got -0.5"},
      {"memory", [](auto* s) { s->mutable_template_()->mutable_resources()->set_memory_bytes(-1); },
       "template.resources.memoryBytes: must be 0..1125899906842624 (1 PiB), got -1"},
      {"constraint", [](auto* s) { s->mutable_template_()->add_constraints("node.zone==a"); },
       "template.constraints[0]: invalid constraint \"node.zone==a\""},
      {"constraint no op", [](auto* s) { s->mutable_template_()->add_constraints("node.name"); },
       "template.constraints[0]"},
      {"env key", [](auto* s) { (*s->mutable_template_()->mutable_env())["1FOO"] = "x"; },
       "template.env: \"1FOO\" is not a valid variable name"},
      {"env key dash", [](auto* s) { (*s->mutable_template_()->mutable_env())["A-B"] = "x"; },
       "template.env: \"A-B\""},
      {"stop timeout",
       [](auto* s) { s->mutable_template_()->mutable_stop_timeout()->set_seconds(-3); },
       "template.stopTimeout: must be 0..168h, got -3s"},
      {"label key", [](auto* s) { (*s->mutable_labels())[""] = "x"; },
       "labels: keys must not be empty"},
      {"container label reserved",
       [](auto* s) { (*s->mutable_template_()->mutable_labels())["io.warren.task-id"] = "x"; },
       "template.labels: \"io.warren.task-id\""},
      {"image with space", [](auto* s) { s->mutable_template_()->set_image("web 2"); },
       "template.image: \"web 2\" is not an image reference"},
      {"pull policy", [](auto* s) { s->mutable_template_()->set_image_pull_policy("sometimes"); },
       "template.imagePullPolicy: must be always, missing or never, got \"sometimes\""},
  };
  for (const Case& c : cases) {
    v1::ServiceSpec spec = ValidSpec();
    c.mutate(&spec);
    absl::Status s = ValidateServiceSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.want)) << c.name;
  }
}

TEST(ValidateServiceSpecTest, AcceptsVariants) {
  std::vector<std::function<void(v1::ServiceSpec*)>> ok = {
      [](auto* s) { s->set_replicas(0); },
      [](auto* s) {
        s->set_mode("global");
        s->set_replicas(0);
      },
      [](auto* s) {
        s->mutable_template_()->clear_command();
        s->mutable_template_()->set_image("nginx:1.25");
      },
      [](auto* s) { s->mutable_template_()->add_constraints("node.labels.zone==eu-1"); },
      [](auto* s) { s->mutable_template_()->add_constraints("node.role != worker"); },
      [](auto* s) { (*s->mutable_template_()->mutable_env())["_PORT_2"] = "1"; },
      [](auto* s) { s->mutable_template_()->mutable_ports(0)->set_published(0); },
      [](auto* s) { s->set_name(std::string(63, 'a')); },
  };
  for (size_t i = 0; i < ok.size(); ++i) {
    v1::ServiceSpec spec = ValidSpec();
    ok[i](&spec);
    EXPECT_TRUE(ValidateServiceSpec(spec).ok()) << i << ": " << ValidateServiceSpec(spec);
  }
}

TEST(UpdateConfigDefaultsTest, FillsEveryField) {
  v1::ServiceSpec spec = ValidSpec();
  const v1::UpdateConfig& u = spec.update_config();
  EXPECT_EQ(u.strategy(), "rolling");
  ASSERT_TRUE(u.has_parallelism());
  EXPECT_EQ(u.parallelism(), 1);
  EXPECT_EQ(u.max_surge(), "1");
  EXPECT_EQ(u.max_unavailable(), "0");
  EXPECT_EQ(u.order(), "start-first");
  EXPECT_TRUE(u.has_delay());
  EXPECT_EQ(u.delay().seconds(), 0);
  EXPECT_TRUE(u.has_min_ready());
  EXPECT_EQ(u.healthy_deadline().seconds(), 300);
  EXPECT_EQ(u.progress_deadline().seconds(), 600);
  EXPECT_EQ(u.failure_action(), "rollback");
  EXPECT_TRUE(u.has_max_failure_ratio());
  EXPECT_EQ(u.max_failure_ratio(), 0);
  EXPECT_EQ(spec.history_limit(), 10);
  // rollbackConfig stays as written: unset fields inherit.
  EXPECT_FALSE(spec.has_rollback_config());
}

TEST(UpdateConfigDefaultsTest, KeepsSetValuesIncludingZeroParallelism) {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.mutable_template_()->set_command("x");
  v1::UpdateConfig* u = spec.mutable_update_config();
  u->set_parallelism(0);
  u->set_max_surge("25%");
  u->set_order("stop-first");
  u->mutable_healthy_deadline()->set_seconds(30);
  u->set_failure_action("pause");
  u->set_max_failure_ratio(0.5);
  spec.set_history_limit(3);
  ApplySpecDefaults(&spec);
  EXPECT_EQ(spec.update_config().parallelism(), 0);
  EXPECT_EQ(spec.update_config().max_surge(), "25%");
  EXPECT_EQ(spec.update_config().max_unavailable(), "0");
  EXPECT_EQ(spec.update_config().order(), "stop-first");
  EXPECT_EQ(spec.update_config().healthy_deadline().seconds(), 30);
  EXPECT_EQ(spec.update_config().progress_deadline().seconds(), 600);
  EXPECT_EQ(spec.update_config().failure_action(), "pause");
  EXPECT_EQ(spec.update_config().max_failure_ratio(), 0.5);
  EXPECT_EQ(spec.history_limit(), 3);
  EXPECT_TRUE(ValidateServiceSpec(spec).ok()) << ValidateServiceSpec(spec);
}

TEST(EffectiveRollbackConfigTest, InheritsUnsetFields) {
  v1::ServiceSpec spec = ValidSpec();
  spec.mutable_update_config()->set_parallelism(3);
  spec.mutable_update_config()->mutable_delay()->set_seconds(5);
  spec.mutable_update_config()->set_max_failure_ratio(0.2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(EffectiveRollbackConfig(spec),
                                                                 spec.update_config()));
  v1::UpdateConfig* r = spec.mutable_rollback_config();
  r->set_parallelism(0);
  r->mutable_delay()->set_seconds(0);  // an explicit 0 overrides 5s
  r->set_max_unavailable("50%");
  r->set_max_failure_ratio(0);
  v1::UpdateConfig eff = EffectiveRollbackConfig(spec);
  EXPECT_EQ(eff.parallelism(), 0);
  EXPECT_EQ(eff.delay().seconds(), 0);
  EXPECT_EQ(eff.max_unavailable(), "50%");
  EXPECT_EQ(eff.max_failure_ratio(), 0);
  EXPECT_EQ(eff.max_surge(), "1");
  EXPECT_EQ(eff.order(), "start-first");
  EXPECT_EQ(eff.failure_action(), "rollback");
  // Defaults are applied even when the spec was not defaulted.
  v1::ServiceSpec bare;
  EXPECT_EQ(EffectiveRollbackConfig(bare).parallelism(), 1);
  EXPECT_EQ(EffectiveRollbackConfig(bare).progress_deadline().seconds(), 600);
}

TEST(ValidateServiceSpecTest, RejectsBadUpdateConfigs) {
  struct Case {
    std::string name;
    std::function<void(v1::ServiceSpec*)> mutate;
    std::string want;
  };
  auto u = [](v1::ServiceSpec* s) { return s->mutable_update_config(); };
  auto r = [](v1::ServiceSpec* s) { return s->mutable_rollback_config(); };
  std::vector<Case> cases = {
      {"strategy", [&](auto* s) { u(s)->set_strategy("linear"); },
       "updateConfig.strategy: must be rolling, blue-green or canary, got \"linear\""},
      {"parallelism", [&](auto* s) { u(s)->set_parallelism(-1); },
       "updateConfig.parallelism: must be 0 (all at once)..10000, got -1"},
      {"surge word", [&](auto* s) { u(s)->set_max_surge("two"); },
       "updateConfig.maxSurge: must be a whole number (0 or more) or a whole percent 0%..100%, "
       "got \"two\""},
      {"surge negative", [&](auto* s) { u(s)->set_max_surge("-1"); },
       "updateConfig.maxSurge: must be a whole number"},
      {"surge percent over", [&](auto* s) { u(s)->set_max_surge("150%"); },
       "updateConfig.maxSurge: must be"},
      {"surge fraction", [&](auto* s) { u(s)->set_max_surge("1.5"); },
       "updateConfig.maxSurge: must be"},
      {"surge bare percent", [&](auto* s) { u(s)->set_max_surge("%"); },
       "updateConfig.maxSurge: must be"},
      {"unavailable", [&](auto* s) { u(s)->set_max_unavailable("x%"); },
       "updateConfig.maxUnavailable: must be a whole number"},
      {"both zero",
       [&](auto* s) {
         u(s)->set_max_surge("0");
         u(s)->set_max_unavailable("0%");
       },
       "updateConfig: maxSurge and maxUnavailable cannot both be 0"},
      {"order", [&](auto* s) { u(s)->set_order("random"); },
       "updateConfig.order: must be start-first or stop-first, got \"random\""},
      {"delay", [&](auto* s) { u(s)->mutable_delay()->set_seconds(-1); },
       "updateConfig.delay: must be 0..168h, got -1s"},
      {"min ready", [&](auto* s) { u(s)->mutable_min_ready()->set_seconds(-1); },
       "updateConfig.minReady: must be 0..168h"},
      {"healthy deadline", [&](auto* s) { u(s)->mutable_healthy_deadline()->set_seconds(-1); },
       "updateConfig.healthyDeadline: must be 0..168h"},
      {"progress deadline", [&](auto* s) { u(s)->mutable_progress_deadline()->set_seconds(-1); },
       "updateConfig.progressDeadline: must be 0..168h"},
      {"failure action", [&](auto* s) { u(s)->set_failure_action("explode"); },
       "updateConfig.failureAction: must be pause, rollback or continue, got \"explode\""},
      {"ratio high", [&](auto* s) { u(s)->set_max_failure_ratio(1.5); },
       "updateConfig.maxFailureRatio: must be 0..1, got 1.5"},
      {"ratio negative", [&](auto* s) { u(s)->set_max_failure_ratio(-0.1); },
       "updateConfig.maxFailureRatio: must be 0..1"},
      {"ratio nan", [&](auto* s) { u(s)->set_max_failure_ratio(std::nan("")); },
       "updateConfig.maxFailureRatio: must be 0..1"},
      {"rollback parallelism", [&](auto* s) { r(s)->set_parallelism(-2); },
       "rollbackConfig.parallelism: must be 0 (all at once)..10000, got -2"},
      {"rollback surge", [&](auto* s) { r(s)->set_max_surge("lots"); },
       "rollbackConfig.maxSurge: must be"},
      {"rollback both zero", [&](auto* s) { r(s)->set_max_surge("0"); },
       "rollbackConfig: maxSurge and maxUnavailable cannot both be 0"},
      {"rollback order", [&](auto* s) { r(s)->set_order("x"); }, "rollbackConfig.order: must be"},
      {"rollback delay", [&](auto* s) { r(s)->mutable_delay()->set_seconds(-4); },
       "rollbackConfig.delay: must be 0..168h"},
      {"rollback strategy", [&](auto* s) { r(s)->set_strategy("bluegreen"); },
       "rollbackConfig.strategy: must be rolling, blue-green or canary"},
      {"rollback failure action", [&](auto* s) { r(s)->set_failure_action("x"); },
       "rollbackConfig.failureAction"},
      {"rollback ratio", [&](auto* s) { r(s)->set_max_failure_ratio(2); },
       "rollbackConfig.maxFailureRatio"},
      {"history limit", [](auto* s) { s->set_history_limit(1); },
       "historyLimit: must be 2..100 (0 means the default, 10), got 1"},
      {"history limit negative", [](auto* s) { s->set_history_limit(-5); },
       "historyLimit: must be 2..100"},
  };
  for (const Case& c : cases) {
    v1::ServiceSpec spec = ValidSpec();
    c.mutate(&spec);
    absl::Status s = ValidateServiceSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.want)) << c.name;
  }
}

TEST(ValidateServiceSpecTest, AcceptsUpdateConfigVariants) {
  std::vector<std::function<void(v1::ServiceSpec*)>> ok = {
      [](auto* s) { s->mutable_update_config()->set_parallelism(0); },
      [](auto* s) {
        s->mutable_update_config()->set_max_surge("0");
        s->mutable_update_config()->set_max_unavailable("1");
      },
      [](auto* s) {
        s->mutable_update_config()->set_max_surge("100%");
        s->mutable_update_config()->set_max_unavailable("0%");
      },
      [](auto* s) { s->mutable_update_config()->set_order("stop-first"); },
      [](auto* s) { s->mutable_update_config()->set_failure_action("continue"); },
      [](auto* s) { s->mutable_update_config()->set_max_failure_ratio(1); },
      [](auto* s) { s->mutable_rollback_config()->set_parallelism(0); },
      [](auto* s) { s->set_history_limit(2); },
  };
  for (size_t i = 0; i < ok.size(); ++i) {
    v1::ServiceSpec spec = ValidSpec();
    ok[i](&spec);
    EXPECT_TRUE(ValidateServiceSpec(spec).ok()) << i << ": " << ValidateServiceSpec(spec);
  }
}

TEST(UpdateConfigDefaultsTest, StrategyOptions) {
  v1::ServiceSpec spec = ValidSpec();
  const v1::UpdateConfig& u = spec.update_config();
  ASSERT_TRUE(u.has_auto_promote());
  EXPECT_TRUE(u.auto_promote());
  EXPECT_EQ(u.scale_down_delay().seconds(), 30);
  EXPECT_TRUE(u.canary_steps().empty());  // only for canary
  EXPECT_EQ(u.canary_window().seconds(), 300);
  EXPECT_FALSE(u.canary_keep_stable());
  ASSERT_TRUE(u.has_failure_threshold());
  EXPECT_EQ(u.failure_threshold(), 5) << "rolling: stricter than a canary's 10";
  EXPECT_EQ(u.rolling_window().seconds(), 10);
  // Decided per deployment from the service's published ports, never stored as a default.
  EXPECT_FALSE(u.has_rolling_analysis());
  EXPECT_FALSE(u.has_max_error_rate_increase());
  EXPECT_FALSE(u.has_max_latency());
  EXPECT_EQ(u.min_requests(), 50);
  EXPECT_EQ(u.thin_traffic(), "extend");
  EXPECT_EQ(u.preview_published_port(), 0);
  EXPECT_TRUE(u.analysis_query().empty());
  EXPECT_FALSE(u.has_analysis_threshold());

  v1::UpdateConfig canary;
  canary.set_strategy("canary");
  ApplyUpdateConfigDefaults(&canary);
  EXPECT_THAT(canary.canary_steps(), ::testing::ElementsAre(10, 25, 50, 100));

  // Set values survive, including false and 0.
  v1::UpdateConfig set;
  set.set_strategy("canary");
  set.add_canary_steps(50);
  set.add_canary_steps(100);
  set.set_auto_promote(false);
  set.mutable_scale_down_delay()->set_seconds(0);
  set.mutable_canary_window()->set_seconds(30);
  set.set_failure_threshold(0);
  set.set_min_requests(5);
  set.set_thin_traffic("fail");
  ApplyUpdateConfigDefaults(&set);
  EXPECT_THAT(set.canary_steps(), ::testing::ElementsAre(50, 100));
  EXPECT_FALSE(set.auto_promote());
  EXPECT_TRUE(set.has_scale_down_delay());
  EXPECT_EQ(set.scale_down_delay().seconds(), 0);
  EXPECT_EQ(set.canary_window().seconds(), 30);
  EXPECT_EQ(set.failure_threshold(), 0);
  EXPECT_EQ(set.min_requests(), 5);
  EXPECT_EQ(set.thin_traffic(), "fail");
}

TEST(EffectiveRollbackConfigTest, InheritsStrategyOptions) {
  v1::ServiceSpec spec = ValidSpec();
  v1::UpdateConfig* u = spec.mutable_update_config();
  u->set_strategy("canary");
  u->set_failure_threshold(5);
  u->mutable_max_latency()->set_nanos(300'000'000);
  ApplySpecDefaults(&spec);
  v1::UpdateConfig eff = EffectiveRollbackConfig(spec);
  EXPECT_EQ(eff.strategy(), "canary");
  EXPECT_THAT(eff.canary_steps(), ::testing::ElementsAre(10, 25, 50, 100));
  EXPECT_EQ(eff.failure_threshold(), 5);
  EXPECT_EQ(eff.max_latency().nanos(), 300'000'000);
  v1::UpdateConfig* r = spec.mutable_rollback_config();
  r->set_strategy("rolling");
  r->set_failure_threshold(0);
  r->set_auto_promote(false);
  r->mutable_canary_window()->set_seconds(0);
  r->set_thin_traffic("pass");
  eff = EffectiveRollbackConfig(spec);
  EXPECT_EQ(eff.strategy(), "rolling");
  EXPECT_EQ(eff.failure_threshold(), 0);
  EXPECT_FALSE(eff.auto_promote());
  EXPECT_TRUE(eff.has_canary_window());
  EXPECT_EQ(eff.canary_window().seconds(), 0);
  EXPECT_EQ(eff.thin_traffic(), "pass");
  EXPECT_EQ(eff.min_requests(), 50);
}

TEST(ValidateServiceSpecTest, RejectsBadStrategyOptions) {
  struct Case {
    std::string name;
    std::function<void(v1::ServiceSpec*)> mutate;
    std::string want;
  };
  auto u = [](v1::ServiceSpec* s) { return s->mutable_update_config(); };
  auto steps = [&](v1::ServiceSpec* s, std::vector<int> w) {
    u(s)->set_strategy("canary");
    u(s)->clear_canary_steps();
    for (int x : w) u(s)->add_canary_steps(x);
  };
  std::vector<Case> cases = {
      {"step zero",
       [&](auto* s) {
         steps(s, {0, 100});
       },
       "updateConfig.canarySteps[0]: must be 1..100 (percent), got 0"},
      {"step over",
       [&](auto* s) {
         steps(s, {10, 101});
       },
       "updateConfig.canarySteps[1]: must be 1..100 (percent), got 101"},
      {"not increasing",
       [&](auto* s) {
         steps(s, {10, 25, 25, 100});
       },
       "updateConfig.canarySteps[2]: must be greater than the step before (25), got 25"},
      {"decreasing",
       [&](auto* s) {
         steps(s, {50, 10, 100});
       },
       "updateConfig.canarySteps[1]: must be greater than the step before (50), got 10"},
      {"not ending at 100",
       [&](auto* s) {
         steps(s, {10, 50});
       },
       "updateConfig.canarySteps[1]: the last step must be 100, got 50"},
      {"failure threshold", [&](auto* s) { u(s)->set_failure_threshold(101); },
       "updateConfig.failureThreshold: must be 0..100 (percent), got 101"},
      {"failure threshold negative", [&](auto* s) { u(s)->set_failure_threshold(-1); },
       "updateConfig.failureThreshold: must be 0..100"},
      {"error rate increase", [&](auto* s) { u(s)->set_max_error_rate_increase(-0.5); },
       "updateConfig.maxErrorRateIncrease: must be 0..100 (percent), got -0.5"},
      {"error rate increase nan", [&](auto* s) { u(s)->set_max_error_rate_increase(std::nan("")); },
       "updateConfig.maxErrorRateIncrease: must be 0..100"},
      {"min requests", [&](auto* s) { u(s)->set_min_requests(-1); },
       "updateConfig.minRequests: must be 0..100000000, got -1"},
      {"thin traffic", [&](auto* s) { u(s)->set_thin_traffic("ignore"); },
       "updateConfig.thinTraffic: must be extend, pass or fail, got \"ignore\""},
      {"preview port range", [&](auto* s) { u(s)->set_preview_published_port(70000); },
       "updateConfig.previewPublishedPort: must be 0 (no preview port) or 1..65535, got 70000"},
      {"preview port negative", [&](auto* s) { u(s)->set_preview_published_port(-1); },
       "updateConfig.previewPublishedPort: must be 0"},
      {"preview port taken",
       [&](auto* s) { u(s)->set_preview_published_port(9000); },  // ValidSpec publishes 9000
       "updateConfig.previewPublishedPort: port 9000 is already published by template.ports[0]"},
      {"scale down delay", [&](auto* s) { u(s)->mutable_scale_down_delay()->set_seconds(-1); },
       "updateConfig.scaleDownDelay: must be 0..168h"},
      {"canary window", [&](auto* s) { u(s)->mutable_canary_window()->set_seconds(-1); },
       "updateConfig.canaryWindow: must be 0..168h"},
      {"rolling window zero", [&](auto* s) { u(s)->mutable_rolling_window()->set_seconds(0); },
       "updateConfig.rollingWindow: must be greater than 0 and at most 168h, got 0"},
      {"max latency", [&](auto* s) { u(s)->mutable_max_latency()->set_seconds(-1); },
       "updateConfig.maxLatency: must be 0..168h"},
      {"query without threshold", [&](auto* s) { u(s)->set_analysis_query("sum(x)"); },
       "updateConfig.analysisThreshold: required when analysisQuery is set"},
      {"threshold without query", [&](auto* s) { u(s)->set_analysis_threshold(1); },
       "updateConfig.analysisQuery: required when analysisThreshold is set"},
      {"rollback steps", [&](auto* s) { s->mutable_rollback_config()->add_canary_steps(50); },
       "rollbackConfig.canarySteps[0]: the last step must be 100, got 50"},
  };
  for (const Case& c : cases) {
    v1::ServiceSpec spec = ValidSpec();
    c.mutate(&spec);
    absl::Status s = ValidateServiceSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.want)) << c.name;
  }
}

TEST(ValidateServiceSpecTest, AcceptsStrategyOptions) {
  std::vector<std::function<void(v1::UpdateConfig*)>> ok = {
      [](auto* u) { u->set_strategy("blue-green"); },
      [](auto* u) {
        u->set_strategy("canary");
        u->add_canary_steps(100);  // straight to 100: one step
      },
      [](auto* u) {
        u->set_strategy("canary");
        for (int w : {1, 2, 99, 100}) u->add_canary_steps(w);
        u->set_canary_keep_stable(true);
        u->set_failure_threshold(0);
        u->set_max_error_rate_increase(100);
        u->mutable_max_latency()->set_nanos(250'000'000);
        u->set_min_requests(0);
        u->set_thin_traffic("pass");
        u->set_analysis_query("sum(rate(errors[1m]))");
        u->set_analysis_threshold(0.5);
      },
      [](auto* u) {
        u->set_strategy("blue-green");
        u->set_auto_promote(false);
        u->set_preview_published_port(9100);
        u->mutable_scale_down_delay()->set_seconds(0);
      },
      // Options of another strategy are ignored, not rejected.
      [](auto* u) {
        u->set_strategy("rolling");
        for (int w : {20, 100}) u->add_canary_steps(w);
        u->set_preview_published_port(9100);
        u->set_auto_promote(false);
      },
  };
  for (size_t i = 0; i < ok.size(); ++i) {
    v1::ServiceSpec spec = ValidSpec();
    ok[i](spec.mutable_update_config());
    ApplySpecDefaults(&spec);
    EXPECT_TRUE(ValidateServiceSpec(spec).ok()) << i << ": " << ValidateServiceSpec(spec);
  }
}

TEST(ParseServicesYamlTest, StrategyOptions) {
  auto specs = ParseServicesYaml(R"(name: web
template: {command: x}
updateConfig:
  strategy: canary
  canarySteps: [5, 50, 100]
  canaryWindow: 2m
  canaryKeepStable: true
  failureThreshold: 2.5
  maxErrorRateIncrease: 1
  maxLatency: 300ms
  minRequests: 200
  thinTraffic: fail
  analysisQuery: sum(x)
  analysisThreshold: 3
  autoPromote: false
  scaleDownDelay: 1m
  previewPublishedPort: 9100
)");
  ASSERT_TRUE(specs.ok()) << specs.status();
  v1::ServiceSpec spec = (*specs)[0];
  ApplySpecDefaults(&spec);
  ASSERT_TRUE(ValidateServiceSpec(spec).ok()) << ValidateServiceSpec(spec);
  const v1::UpdateConfig& u = spec.update_config();
  EXPECT_THAT(u.canary_steps(), ::testing::ElementsAre(5, 50, 100));
  EXPECT_EQ(u.canary_window().seconds(), 120);
  EXPECT_TRUE(u.canary_keep_stable());
  EXPECT_EQ(u.failure_threshold(), 2.5);
  EXPECT_EQ(u.max_error_rate_increase(), 1);
  EXPECT_EQ(u.max_latency().nanos(), 300'000'000);
  EXPECT_EQ(u.min_requests(), 200);
  EXPECT_EQ(u.thin_traffic(), "fail");
  EXPECT_EQ(u.analysis_query(), "sum(x)");
  EXPECT_EQ(u.analysis_threshold(), 3);
  EXPECT_FALSE(u.auto_promote());
  EXPECT_EQ(u.scale_down_delay().seconds(), 60);
  EXPECT_EQ(u.preview_published_port(), 9100);
}

TEST(ResolveBudgetTest, KubernetesRounding) {
  struct Case {
    std::string value;
    int replicas;
    int surge;        // rounded up
    int unavailable;  // rounded down
  };
  for (const Case& c : std::vector<Case>{
           {"0", 1, 0, 0},     {"0", 10, 0, 0},      {"1", 1, 1, 1},    {"2", 3, 2, 2},
           {"5", 1, 5, 5},     {"0%", 1, 0, 0},      {"0%", 10, 0, 0},  {"100%", 1, 1, 1},
           {"100%", 3, 3, 3},  {"100%", 10, 10, 10}, {"25%", 1, 1, 0},  {"25%", 3, 1, 0},
           {"25%", 10, 3, 2},  {"50%", 1, 1, 0},     {"50%", 3, 2, 1},  {"50%", 10, 5, 5},
           {"34%", 3, 2, 1},   {"33%", 3, 1, 0},     {"10%", 10, 1, 1}, {"1%", 10, 1, 0},
           {"99%", 10, 10, 9}, {"20%", 0, 0, 0},
       }) {
    absl::StatusOr<int> up = ResolveBudget(c.value, c.replicas, true);
    absl::StatusOr<int> down = ResolveBudget(c.value, c.replicas, false);
    ASSERT_TRUE(up.ok() && down.ok()) << c.value;
    EXPECT_EQ(*up, c.surge) << c.value << " of " << c.replicas << " rounded up";
    EXPECT_EQ(*down, c.unavailable) << c.value << " of " << c.replicas << " rounded down";
  }
  for (const std::string bad :
       {"", "-1", "1.5", "101%", "%", "x", " 1", "1 ", "+1", "10%%", "99999999999"}) {
    absl::StatusOr<int> n = ResolveBudget(bad, 10, true);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(n.status().message()), HasSubstr("whole percent 0%..100%")) << bad;
  }
}

TEST(ResolveBudgetTest, RollingBudgetNeverStuck) {
  v1::UpdateConfig u;
  u.set_max_surge("25%");
  u.set_max_unavailable("25%");
  auto b = ResolveRollingBudget(u, 10);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->max_surge, 3);
  EXPECT_EQ(b->max_unavailable, 2);
  u.set_max_surge("0");
  u.set_max_unavailable("10%");
  b = ResolveRollingBudget(u, 3);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->max_surge, 0);
  EXPECT_EQ(b->max_unavailable, 1);
  u.set_max_surge("bad");
  EXPECT_THAT(std::string(ResolveRollingBudget(u, 3).status().message()), HasSubstr("maxSurge"));
}

TEST(ParseServicesYamlTest, UpdateAndRollbackConfig) {
  auto specs = ParseServicesYaml(R"(name: web
template: {command: x}
historyLimit: 4
updateConfig:
  parallelism: 0
  maxSurge: 25%
  maxUnavailable: 0
  order: stop-first
  delay: 2s
  minReady: 500ms
  healthyDeadline: 1m
  progressDeadline: 3m
  failureAction: pause
  maxFailureRatio: 0.25
rollbackConfig:
  parallelism: 5
  delay: 0
)");
  ASSERT_TRUE(specs.ok()) << specs.status();
  v1::ServiceSpec spec = (*specs)[0];
  ApplySpecDefaults(&spec);
  ASSERT_TRUE(ValidateServiceSpec(spec).ok()) << ValidateServiceSpec(spec);
  const v1::UpdateConfig& u = spec.update_config();
  EXPECT_TRUE(u.has_parallelism());
  EXPECT_EQ(u.parallelism(), 0);
  EXPECT_EQ(u.max_surge(), "25%");
  EXPECT_EQ(u.max_unavailable(), "0");
  EXPECT_EQ(u.order(), "stop-first");
  EXPECT_EQ(u.delay().seconds(), 2);
  EXPECT_EQ(u.min_ready().nanos(), 500'000'000);
  EXPECT_EQ(u.healthy_deadline().seconds(), 60);
  EXPECT_EQ(u.progress_deadline().seconds(), 180);
  EXPECT_EQ(u.failure_action(), "pause");
  EXPECT_DOUBLE_EQ(u.max_failure_ratio(), 0.25);
  EXPECT_EQ(spec.history_limit(), 4);
  EXPECT_EQ(spec.rollback_config().parallelism(), 5);
  EXPECT_TRUE(spec.rollback_config().has_delay());
  EXPECT_FALSE(spec.rollback_config().has_max_failure_ratio());
  v1::UpdateConfig eff = EffectiveRollbackConfig(spec);
  EXPECT_EQ(eff.parallelism(), 5);
  EXPECT_EQ(eff.delay().seconds(), 0);
  EXPECT_EQ(eff.order(), "stop-first");

  // The YAML form shows the update config and reads back to the same spec.
  std::string yaml = ToYaml(spec);
  EXPECT_THAT(yaml, HasSubstr("updateConfig:"));
  EXPECT_THAT(yaml, HasSubstr("maxSurge: 25%"));
  EXPECT_THAT(yaml, HasSubstr("parallelism: 0"));
  EXPECT_THAT(yaml, HasSubstr("rollbackConfig:"));
  auto again = ParseServicesYaml(yaml);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*again)[0], spec)) << yaml;

  auto bad = ParseServicesYaml("name: web\nupdateConfig: {maxSurje: 1}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("updateConfig.maxSurje"));
}

TEST(MatchConstraintTest, Matches) {
  v1::Node node;
  node.set_name("n1");
  node.set_role("hybrid");
  (*node.mutable_labels())["zone"] = "eu";
  struct Case {
    std::string expr;
    bool want;
  };
  for (const Case& c : std::vector<Case>{{"node.name==n1", true},
                                         {"node.name!=n1", false},
                                         {"node.role==hybrid", true},
                                         {"node.role==worker", false},
                                         {"node.labels.zone==eu", true},
                                         {"node.labels.zone!=eu", false},
                                         {"node.labels.zone == us", false},
                                         {"node.labels.disk==ssd", false},
                                         {"node.labels.disk!=ssd", true}}) {
    absl::StatusOr<bool> m = MatchConstraint(c.expr, node);
    ASSERT_TRUE(m.ok()) << c.expr << ": " << m.status();
    EXPECT_EQ(*m, c.want) << c.expr;
  }
  for (const std::string bad : {"node.zone==x", "node.name", "node.name==", "node.labels.==x",
                                "node.name=x", "node.name==a==b"}) {
    EXPECT_FALSE(MatchConstraint(bad, node).ok()) << bad;
  }
}

TEST(TaskPortTest, Order) {
  v1::TaskTemplate t;
  EXPECT_EQ(TaskPort(t), 8080);
  t.mutable_health_check()->mutable_tcp()->set_port(7000);
  EXPECT_EQ(TaskPort(t), 7000);
  t.add_ports()->set_target(3000);
  EXPECT_EQ(TaskPort(t), 3000);
}

constexpr char kTwoServices[] = R"(
name: web
replicas: 3
template:
  command: /usr/bin/web
  args: ["--port", "8080"]
  env:
    PORT: 8080
    DEBUG: true
  ports:
    - target: 8080
      published: 9000
  healthCheck:
    http:
      path: /healthz
    interval: 500ms
    timeout: 1m30s
    retries: 5
  resources:
    cpus: 0.5
    memoryBytes: 256M
  stop_timeout: 5s
labels:
  team: core
---
---
name: worker
template:
  command: /usr/bin/worker
)";

TEST(ParseServicesYamlTest, ParsesDocuments) {
  absl::StatusOr<std::vector<v1::ServiceSpec>> specs = ParseServicesYaml(kTwoServices);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  const v1::ServiceSpec& web = (*specs)[0];
  EXPECT_EQ(web.name(), "web");
  EXPECT_EQ(web.replicas(), 3);
  EXPECT_EQ(web.template_().args_size(), 2);
  EXPECT_EQ(web.template_().env().at("PORT"), "8080");
  EXPECT_EQ(web.template_().env().at("DEBUG"), "true");
  EXPECT_EQ(web.template_().ports(0).published(), 9000);
  EXPECT_EQ(web.template_().health_check().interval().nanos(), 500'000'000);
  EXPECT_EQ(web.template_().health_check().timeout().seconds(), 90);
  EXPECT_EQ(web.template_().health_check().retries(), 5);
  EXPECT_DOUBLE_EQ(web.template_().resources().cpus(), 0.5);
  EXPECT_EQ(web.template_().resources().memory_bytes(), 256LL << 20);
  EXPECT_EQ(web.template_().stop_timeout().seconds(), 5);
  EXPECT_EQ(web.labels().at("team"), "core");
  // Missing replicas means 1.
  EXPECT_EQ((*specs)[1].name(), "worker");
  EXPECT_EQ((*specs)[1].replicas(), 1);
}

TEST(ParseServicesYamlTest, GlobalModeKeepsReplicasUnset) {
  auto specs = ParseServicesYaml("name: agent\nmode: global\ntemplate: {command: /bin/a}\n");
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].replicas(), 0);
}

TEST(ParseServicesYamlTest, Errors) {
  struct Case {
    std::string yaml;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {"name: a\n---\nname: b\nreplicaz: 3\n", "document 2: unknown field \"replicaz\""},
           {"name: a\ntemplate:\n  comand: x\n", "document 1: unknown field \"template.comand\""},
           {"name: a\ntemplate:\n  healthCheck:\n    interval: 10x\n",
            "document 1: template.healthCheck.interval: invalid duration \"10x\": use a number "
            "with a unit: 500ms, 10s, 5m, 1h"},
           {"name: a\ntemplate:\n  stopTimeout: 10\n", "template.stopTimeout: invalid duration"},
           {"name: a\nreplicas: many\n",
            "document 1: replicas: expected a whole number, got \"many\""},
           {"name: a\nreplicas: 99999999999\n", "replicas: expected a whole number"},
           {"name: a\ntemplate:\n  resources:\n    memoryBytes: 12Q\n",
            "template.resources.memoryBytes: invalid size \"12Q\""},
           {"name: a\ntemplate:\n  args: x\n", "template.args: expected a list"},
           {"name: a\ntemplate:\n  env: [a]\n", "template.env: expected a mapping"},
           {"- a\n- b\n", "document 1: document: expected a mapping"},
           {"name: [a\n", "invalid YAML at line"},
           // Found by the spec fuzzer: yaml-cpp 0.7 never returned on these.
           {",", "invalid YAML at line 1, column 1: a document cannot start with ','"},
           {"name: a\n---\n  , {}\n", "invalid YAML at line 3, column 3: a document cannot"},
           {"- a\n,\n", "a document cannot start with ','"},
           {"name: a\n---\nname: a\n",
            "document 2: service \"a\" is already defined in document 1"},
           {"name: a\nreplicas: 1\nreplicas: 2\n", "document 1: field \"replicas\" is given twice"},
       }) {
    auto specs = ParseServicesYaml(c.yaml);
    ASSERT_FALSE(specs.ok()) << c.yaml;
    EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(specs.status().message()), HasSubstr(c.want)) << c.yaml;
  }
}

TEST(ParseServicesYamlTest, InvalidSpecsParseButFailValidation) {
  auto specs =
      ParseServicesYaml("name: Web_1\nreplicas: -1\ntemplate:\n  ports: [{target: 70000}]\n");
  ASSERT_TRUE(specs.ok()) << specs.status();
  v1::ServiceSpec spec = (*specs)[0];
  ApplySpecDefaults(&spec);
  EXPECT_THAT(std::string(ValidateServiceSpec(spec).message()), HasSubstr("not a DNS label"));
  spec.set_name("web");
  EXPECT_THAT(std::string(ValidateServiceSpec(spec).message()),
              HasSubstr("replicas: must be 0..10000, got -1"));
  spec.set_replicas(1);
  EXPECT_THAT(std::string(ValidateServiceSpec(spec).message()),
              HasSubstr("template.command: required"));
  spec.mutable_template_()->set_command("x");
  EXPECT_EQ(std::string(ValidateServiceSpec(spec).message()),
            "template.ports[0].target: must be 1..65535, got 70000");
}

TEST(ParseServicesYamlTest, EmptyInputHasNoServices) {
  auto specs = ParseServicesYaml("");
  ASSERT_TRUE(specs.ok());
  EXPECT_TRUE(specs->empty());
  specs = ParseServicesYaml("---\n# nothing\n---\n");
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_TRUE(specs->empty());
}

TEST(ToYamlTest, RoundTripsThroughParser) {
  v1::ServiceSpec spec = ValidSpec();
  (*spec.mutable_template_()->mutable_env())["PORT"] = "8080";
  (*spec.mutable_template_()->mutable_env())["FLAG"] = "true";
  spec.mutable_template_()->mutable_resources()->set_memory_bytes(1LL << 30);
  spec.mutable_template_()->add_args("--x");
  // An explicit "off" must stay off (unset means "on when a port is published").
  spec.mutable_update_config()->set_rolling_analysis(false);
  spec.mutable_update_config()->mutable_rolling_window()->set_seconds(30);
  std::string yaml = ToYaml(spec);
  EXPECT_THAT(yaml, HasSubstr("rollingAnalysis: false"));
  EXPECT_THAT(yaml, HasSubstr("rollingWindow: 30s"));
  EXPECT_THAT(yaml, HasSubstr("interval: 5s"));
  EXPECT_THAT(yaml, HasSubstr("delay: 100ms"));
  EXPECT_THAT(yaml, HasSubstr("PORT: \"8080\""));
  EXPECT_THAT(yaml, HasSubstr("memoryBytes: 1073741824"));
  EXPECT_THAT(yaml, HasSubstr("healthCheck:"));
  auto parsed = ParseServicesYaml(yaml);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << yaml;
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*parsed)[0], spec)) << yaml;
}

TEST(ToJsonTest, LowerCamelCaseWithoutDefaults) {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.mutable_template_()->mutable_stop_timeout()->set_seconds(10);
  std::string json = ToJson(spec);
  EXPECT_THAT(json, HasSubstr("\"stopTimeout\": \"10s\""));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("historyLimit")));
  // Except replicas: a file without it means 1, so a printed 0 must stay 0 when applied.
  EXPECT_THAT(json, HasSubstr("\"replicas\": 0"));
  spec.set_mode("global");
  EXPECT_THAT(ToJson(spec), ::testing::Not(HasSubstr("replicas")));
}

// Found by the spec fuzzer: `inspect -o yaml` of a service scaled to 0, applied again, scaled
// it to 1.
TEST(ToYamlTest, ZeroReplicasRoundTrip) {
  v1::Service svc;
  svc.mutable_spec()->set_name("web");
  svc.mutable_spec()->mutable_template_()->set_command("x");
  auto specs = ParseServicesYaml(ToYaml(svc.spec()));
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].replicas(), 0);
  EXPECT_THAT(ToYaml(svc), HasSubstr("  replicas: 0\n"));
}

// Found by the spec fuzzer: a command ending in a carriage return (a bare \r at the end of the
// file) was printed as a plain scalar, whose line break swallowed the \r when applied again.
// Strings with line breaks, control characters or surrounding white space are quoted.
TEST(ToYamlTest, ControlCharactersAndEdgeWhiteSpaceRoundTrip) {
  for (const std::string value :
       {"/bin/app\r", "a\rb", "tab\t", "\tlead", "x\ny", "bell\x07", "del\x7f", "trail\n"}) {
    v1::ServiceSpec spec = ValidSpec();
    spec.mutable_template_()->set_command(value);
    spec.mutable_template_()->add_args(value);
    (*spec.mutable_template_()->mutable_env())["V"] = value;
    auto parsed = ParseServicesYaml(ToYaml(spec));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->size(), 1u);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*parsed)[0], spec))
        << absl::CEscape(value) << ":\n"
        << ToYaml(spec);
  }
  // The fuzzer's input: a plain scalar that ends the file with a \r.
  auto specs = ParseServicesYaml("name: web\ntemplate:\n  command: /usr/bin/web\r");
  ASSERT_TRUE(specs.ok()) << specs.status();
  auto again = ParseServicesYaml(ToYaml((*specs)[0]));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[0].template_().command(), (*specs)[0].template_().command());
}

// Found by the spec fuzzer: brackets in plain strings count towards the YAML depth limit, so
// a command and an argument with 40 '{' each were valid but their YAML was refused.
TEST(ToYamlTest, StringsWithManyBracketsRoundTrip) {
  v1::ServiceSpec spec = ValidSpec();
  const std::string braces = "/bin/app" + std::string(40, '{') + std::string(10, '[');
  spec.mutable_template_()->set_command(braces);
  spec.mutable_template_()->add_args(braces);
  ASSERT_TRUE(ValidateServiceSpec(spec).ok());
  const std::string yaml = ToYaml(spec);
  auto parsed = ParseServicesYaml(yaml);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << yaml;
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*parsed)[0], spec)) << yaml;
}

}  // namespace
}  // namespace warren
