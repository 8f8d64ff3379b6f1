// Compose files to Warren services: every supported key mapped, every unsupported key named
// (errors for what Warren cannot honour, warnings for what changes nothing here).
#include "common/compose.h"

#include <map>
#include <string>
#include <vector>

#include "common/spec.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

struct Case {
  const char* name;
  const char* compose;
  // The expected services in Warren's own YAML (docs/service-spec.md); "" when an error is.
  const char* warren;
  // Substrings of the error, or of the warnings.
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

const std::map<std::string, std::string> kFiles = {
    {"web.env", "# comment\nA=from-file\nexport B=\"quoted value\"\n\nC='single'\n"},
    {"bad.env", "NOEQUALS\n"},
};
const std::map<std::string, std::string> kEnv = {{"TAG", "2.1"}, {"FROM_SHELL", "shell"}};

ComposeInput Input(const std::string& yaml) {
  ComposeInput in;
  in.stack = "shop";
  in.yaml = yaml;
  in.read_file = [](const std::string& path) -> absl::StatusOr<std::string> {
    auto it = kFiles.find(path);
    if (it == kFiles.end()) return absl::NotFoundError("cannot read \"" + path + "\"");
    return it->second;
  };
  in.getenv = [](const std::string& name) -> std::optional<std::string> {
    auto it = kEnv.find(name);
    if (it == kEnv.end()) return std::nullopt;
    return it->second;
  };
  return in;
}

const Case kCases[] = {
    {"minimal image service",
     R"(
services:
  web:
    image: nginx:1.25
)",
     R"(
name: shop-web
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {image: "nginx:1.25"}
)",
     {},
     {}},
    {"process runtime: command without image",
     R"(
version: "3.8"
services:
  api:
    command: /usr/bin/warren-testapp --port 8080
)",
     R"(
name: shop-api
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {command: /usr/bin/warren-testapp, args: ["--port", "8080"]}
)",
     {},
     {}},
    {"entrypoint and command with an image, shell quoting",
     R"(
services:
  web:
    image: app:${TAG}
    entrypoint: ["/bin/app", "serve"]
    command: --name 'two words' "a \"q\"" plain\ space
)",
     R"(
name: shop-web
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: "app:2.1"
  command: /bin/app
  args: ["serve", "--name", "two words", "a \"q\"", "plain space"]
)",
     {},
     {}},
    {"command list with an image overrides only the arguments",
     R"(
services:
  web:
    image: app
    command: ["run", "--fast"]
)",
     R"(
name: shop-web
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {image: app, args: ["run", "--fast"]}
)",
     {},
     {}},
    {"environment list and map, env_file, interpolation",
     R"(
services:
  a:
    image: app
    env_file: web.env
    environment:
      - A=override
      - FROM_SHELL
      - D=${MISSING:-dflt}
      - E=$${NOT_INTERPOLATED}
  b:
    image: app
    environment:
      X: 1
      Y: "two"
      FROM_SHELL:
      ABSENT:
)",
     R"(
name: shop-a
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: app
  env: {A: override, B: quoted value, C: single, FROM_SHELL: shell, D: dflt,
        E: "${NOT_INTERPOLATED}"}
---
name: shop-b
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: app
  env: {X: "1", Y: two, FROM_SHELL: shell}
)",
     {},
     {"services.b.environment.ABSENT: ABSENT has no value and is not set here"}},
    {"ports: short and long syntax",
     R"(
services:
  web:
    image: app
    ports:
      - "9000:8080"
      - 127.0.0.1:9443:8443/tcp
      - 7000-7001:6000-6001
      - 5000
      - target: 4000
        published: 4001
        host_ip: 127.0.0.2
        mode: ingress
)",
     R"(
name: shop-web
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: app
  ports:
    - {target: 8080, published: 9000, protocol: tcp}
    - {target: 8443, published: 9443, hostIp: 127.0.0.1, protocol: tcp}
    - {target: 6000, published: 7000, protocol: tcp}
    - {target: 6001, published: 7001, protocol: tcp}
    - {target: 5000, protocol: tcp}
    - {target: 4000, published: 4001, hostIp: 127.0.0.2, protocol: tcp}
)",
     {},
     {"services.web.ports[3]: \"5000\" publishes no port"}},
    {"healthcheck: CMD, CMD-SHELL, string, NONE and timings",
     R"(
services:
  a:
    image: app
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost/healthz"]
      interval: 10s
      timeout: 2s
      retries: 5
      start_period: 1m30s
  b:
    image: app
    healthcheck:
      test: ["CMD-SHELL", "curl -f localhost || exit 1"]
  c:
    image: app
    healthcheck:
      test: wget -q -O- localhost
  d:
    image: app
    healthcheck:
      test: ["NONE"]
  e:
    image: app
    healthcheck:
      test: ["CMD", "true"]
      disable: true
)",
     R"(
name: shop-a
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: app
  healthCheck:
    exec: {command: [curl, -f, "http://localhost/healthz"]}
    interval: 10s
    timeout: 2s
    retries: 5
    startPeriod: 90s
---
name: shop-b
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: app
  healthCheck: {exec: {command: ["curl -f localhost || exit 1"]}}
---
name: shop-c
labels: {com.docker.stack.namespace: shop}
replicas: 1
template:
  image: app
  healthCheck: {exec: {command: ["wget -q -O- localhost"]}}
---
name: shop-d
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {image: app}
---
name: shop-e
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {image: app}
)",
     {},
     {}},
    {"deploy: replicas, rollout settings, restart policy, resources, placement, labels",
     R"(
services:
  web:
    image: app
    labels: [tier=front]
    stop_grace_period: 20s
    deploy:
      replicas: 4
      labels: {team: shop}
      update_config:
        parallelism: 2
        delay: 5s
        failure_action: rollback
        monitor: 10s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config:
        parallelism: 0
        order: stop-first
      restart_policy:
        condition: on-failure
        delay: 2s
        max_attempts: 3
      resources:
        limits: {cpus: "0.5", memory: 256m}
        reservations: {cpus: "0.5", memory: 256M}
      placement:
        constraints:
          - node.labels.zone == eu
          - node.hostname != edge-1
          - node.role==worker
)",
     R"(
name: shop-web
labels: {com.docker.stack.namespace: shop, team: shop}
replicas: 4
template:
  image: app
  labels: {tier: front}
  stopTimeout: 20s
  restartPolicy: {condition: on-failure, delay: 2s, maxAttempts: 3}
  resources: {cpus: 0.5, memoryBytes: 268435456}
  constraints: ["node.labels.zone==eu", "node.name!=edge-1", "node.role==worker"]
updateConfig:
  parallelism: 2
  delay: 5s
  failureAction: rollback
  minReady: 10s
  maxFailureRatio: 0.25
  order: start-first
rollbackConfig: {parallelism: 0, order: stop-first}
)",
     {},
     {}},
    {"global mode, and limits without reservations",
     R"(
services:
  agent:
    image: agent
    deploy:
      mode: global
      resources:
        limits: {memory: 1gb}
        reservations: {memory: 512m}
)",
     R"(
name: shop-agent
labels: {com.docker.stack.namespace: shop}
mode: global
replicas: 0
template: {image: agent, resources: {memoryBytes: 1073741824}}
)",
     {},
     {"services.agent.deploy.resources.reservations.memory: ignored"}},
    {"keys that change nothing here are warnings",
     R"(
x-common: &common
  restart: always
networks: {front: {}}
services:
  web:
    <<: *common
    image: app
    networks: [front]
    depends_on: [db]
    container_name: web1
    logging: {driver: json-file}
    x-note: ignored silently
  db:
    image: db
    expose: ["5432"]
)",
     R"(
name: shop-db
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {image: db}
---
name: shop-web
labels: {com.docker.stack.namespace: shop}
replicas: 1
template: {image: app}
)",
     {},
     {"networks: ignored", "services.web.networks: ignored: every service reaches every other",
      "services.web.depends_on: ignored",
      "services.web.restart: ignored: use deploy.restart_policy",
      "services.web.container_name: ignored", "services.web.logging: ignored",
      "services.db.expose: ignored"}},
    {"keys Warren cannot honour are all named in one error",
     R"(
services:
  web:
    build: .
    image: app
    volumes: ["/srv/data:/data"]
    privileged: true
    deploy:
      placement:
        constraints: [node.platform.os == linux]
  db:
    image: db
    secrets: [pw]
    frobnicate: 1
)",
     "",
     {"6 problems:", "services.web.build: not supported: Warren does not build images",
      "services.web.volumes: not supported: Warren has no volumes",
      "services.web.privileged: not supported",
      "services.web.deploy.placement.constraints[0]: \"node.platform.os\" is not supported",
      "services.db.secrets: not supported", "services.db.frobnicate: unknown key"},
     {}},
    {"bad values name the key and what is allowed",
     R"(
services:
  web:
    image: app
    ports: ["8080:80/udp", "99999:80"]
    env_file: [bad.env, missing.env]
    healthcheck: {test: ["CMD"], interval: soon}
    deploy:
      mode: daemon
      replicas: -1
      update_config: {order: random, max_failure_ratio: 2}
      restart_policy: {condition: sometimes}
    environment: ["X=${REQUIRED:?set REQUIRED first}"]
)",
     "",
     {"services.web.ports[0]: protocol \"udp\" is not supported (allowed: tcp)",
      "services.web.ports[1]: invalid port \"99999:80\": ports are 1..65535",
      "services.web.env_file (bad.env line 1): expected KEY=VALUE",
      "services.web.env_file: cannot read \"missing.env\"",
      "services.web.healthcheck.test: expected [\"CMD\", ARG...]",
      "services.web.healthcheck.interval: invalid duration \"soon\"",
      "services.web.deploy.mode: \"daemon\" is not allowed (allowed: global, replicated)",
      "services.web.deploy.replicas: expected a whole number from 0 to 100000, got \"-1\"",
      "services.web.deploy.update_config.order: \"random\" is not allowed",
      "services.web.deploy.update_config.max_failure_ratio: expected a number from 0 to 1",
      "services.web.deploy.restart_policy.condition: \"sometimes\" is not allowed (allowed: any, "
      "none, on-failure)",
      "services.web.environment[0]: variable REQUIRED is not set: set REQUIRED first"},
     {}},
    {"a service needs an image or a command",
     "services:\n  web:\n    environment: [A=1]\n",
     "",
     {"services.web: needs an `image` (container runtime) or a `command`"},
     {}},
    {"service names must make DNS labels",
     "services:\n  My_App:\n    image: app\n",
     "",
     {"services.My_App: the Warren service name \"shop-My_App\" must be a DNS label"},
     {}},
    {"not a compose file", "- a\n- b\n", "", {"a compose file is a map with `services`"}, {}},
    {"no services", "version: '3'\nservices: {}\n", "", {"services: no services"}, {}},
    {"invalid YAML", "services: [\n", "", {"invalid YAML at line"}, {}},
    {"unknown top-level key",
     "servics: {}\nservices: {web: {image: a}}\n",
     "",
     {"servics: unknown top-level key"},
     {}},
};

class ComposeTest : public testing::TestWithParam<Case> {};

TEST_P(ComposeTest, Converts) {
  const Case& c = GetParam();
  absl::StatusOr<ComposeResult> result = ConvertCompose(Input(c.compose));
  if (std::string(c.warren).empty()) {
    ASSERT_FALSE(result.ok()) << "expected an error";
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    for (const std::string& e : c.errors) {
      EXPECT_THAT(std::string(result.status().message()), HasSubstr(e));
    }
    return;
  }
  ASSERT_TRUE(result.ok()) << result.status();
  absl::StatusOr<std::vector<v1::ServiceSpec>> want = ParseServicesYaml(c.warren);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ(result->services.size(), want->size());
  for (size_t i = 0; i < want->size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer d;
    d.ReportDifferencesToString(&diff);
    EXPECT_TRUE(d.Compare((*want)[i], result->services[i]))
        << (*want)[i].name() << ": " << diff << "\ngot:\n"
        << ToYaml(result->services[i]);
    // What stack deploy sends is what the manager accepts.
    v1::ServiceSpec defaulted = result->services[i];
    ApplySpecDefaults(&defaulted);
    EXPECT_TRUE(ValidateServiceSpec(defaulted).ok())
        << result->services[i].name() << ": " << ValidateServiceSpec(defaulted);
  }
  std::string all_warnings;
  for (const std::string& w : result->warnings) all_warnings += w + "\n";
  for (const std::string& w : c.warnings) EXPECT_THAT(all_warnings, HasSubstr(w));
  if (c.warnings.empty()) EXPECT_EQ(all_warnings, "");
}

INSTANTIATE_TEST_SUITE_P(Cases, ComposeTest, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string name;
                           for (const char* p = info.param.name; *p; ++p) {
                             name += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                           }
                           return name;
                         });

TEST(ComposeStackTest, StackNameMustPrefixValidNames) {
  ComposeInput in = Input("services: {web: {image: a}}\n");
  for (const char* bad : {"", "Shop", "shop_1", "-shop", "shop-"}) {
    in.stack = bad;
    absl::StatusOr<ComposeResult> r = ConvertCompose(in);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("stack name")) << bad;
  }
}

TEST(ComposeStackTest, SameFileSameSpecs) {
  // Redeploys compare the converted specs with the stored ones: conversion must be stable.
  const Case& c = kCases[6];
  auto a = ConvertCompose(Input(c.compose));
  auto b = ConvertCompose(Input(c.compose));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->services.size(), b->services.size());
  for (size_t i = 0; i < a->services.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a->services[i], b->services[i]));
  }
}

}  // namespace
}  // namespace warren
