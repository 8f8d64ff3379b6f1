#include "common/spec.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
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
       "replicas: must be 0 or more, got -1"},
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
       "template.healthCheck.interval: must be greater than 0, got 0"},
      {"zero timeout",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_timeout()->set_seconds(0);
       },
       "template.healthCheck.timeout: must be greater than 0"},
      {"negative start period",
       [](auto* s) {
         s->mutable_template_()->mutable_health_check()->mutable_start_period()->set_seconds(-1);
       },
       "template.healthCheck.startPeriod: must not be negative, got -1s"},
      {"retries", [](auto* s) { s->mutable_template_()->mutable_health_check()->set_retries(-2); },
       "template.healthCheck.retries: must be at least 1, got -2"},
      {"success threshold",
       [](auto* s) { s->mutable_template_()->mutable_health_check()->set_success_threshold(-1); },
       "template.healthCheck.successThreshold: must be at least 1"},
      {"restart condition",
       [](auto* s) {
         s->mutable_template_()->mutable_restart_policy()->set_condition("sometimes");
       },
       "template.restartPolicy.condition: must be always, on-failure or never, got \"sometimes\""},
      {"max attempts",
       [](auto* s) { s->mutable_template_()->mutable_restart_policy()->set_max_attempts(-1); },
       "template.restartPolicy.maxAttempts: must be 0 (unlimited) or more, got -1"},
      {"negative delay",
       [](auto* s) {
         s->mutable_template_()->mutable_restart_policy()->mutable_delay()->set_seconds(-1);
       },
       "template.restartPolicy.delay: must not be negative"},
      {"cpus", [](auto* s) { s->mutable_template_()->mutable_resources()->set_cpus(-0.5); },
       "template.resources.cpus: must be 0 or more, got -0.5"},
      {"memory", [](auto* s) { s->mutable_template_()->mutable_resources()->set_memory_bytes(-1); },
       "template.resources.memoryBytes: must be 0 or more, got -1"},
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
       "template.stopTimeout: must not be negative, got -3s"},
      {"label key", [](auto* s) { (*s->mutable_labels())[""] = "x"; },
       "labels: keys must not be empty"},
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
              HasSubstr("replicas: must be 0 or more, got -1"));
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
  std::string yaml = ToYaml(spec);
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
  EXPECT_THAT(json, ::testing::Not(HasSubstr("replicas")));
}

}  // namespace
}  // namespace warren
