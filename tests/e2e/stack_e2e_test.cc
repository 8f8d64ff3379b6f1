// End-to-end: `warren stack deploy|ls|ps|rm` with a compose file on a real node: a redeploy
// updates only the service that changed, --prune removes what left the file.
#include <fstream>
#include <set>

#include "e2e_fixture.h"
#include "gtest/gtest.h"

namespace warren::e2e {
namespace {

class StackE2eTest : public E2eTest {
 protected:
  // Two testapp services; `web_version` goes into web's environment.
  std::string Compose(const std::string& web_version, bool with_api) {
    std::string yaml = "version: \"3.8\"\nservices:\n";
    yaml += "  web:\n    command: " + std::string(WARREN_TESTAPP_BINARY) +
            "\n    environment:\n      - VERSION=" + web_version + "\n      - " + marker_ +
            "\n    stop_grace_period: 2s\n    deploy:\n      replicas: 2\n      update_config:\n"
            "        parallelism: 2\n        order: start-first\n";
    if (with_api) {
      yaml +=
          "  api:\n    command: [\"" + std::string(WARREN_TESTAPP_BINARY) +
          "\"]\n    environment:\n      VERSION: a1\n      " +
          marker_.substr(0, marker_.find('=')) + ": " + marker_.substr(marker_.find('=') + 1) +
          "\n    networks: [default]\n    healthcheck:\n      test: [\"CMD-SHELL\", \"exit 0\"]\n"
          "      interval: 500ms\n";
    }
    const std::string path = (dir_ / ("compose-" + std::to_string(files_++) + ".yml")).string();
    std::ofstream(path) << yaml;
    return path;
  }
  std::map<std::string, std::string> Revisions() {
    std::map<std::string, std::string> out;
    for (const auto& s : JsonList(Cli({"service", "ls", "-o", "json"}).out, "services")) {
      out[s["spec"].value("name", "")] = s.value("revision", "");
    }
    return out;
  }
  bool Running(const std::string& service, size_t n) {
    size_t running = 0;
    for (const auto& t : Tasks(service)) {
      running += t.value("desiredState", "") == "TASK_STATE_RUNNING" &&
                 t["status"].value("state", "") == "TASK_STATE_RUNNING";
    }
    return running == n;
  }
  int files_ = 0;
};

TEST_F(StackE2eTest, DeployRedeployPruneAndRemove) {
  StartHybrid();
  auto deploy = Cli({"stack", "deploy", "-c", Compose("v1", true), "shop"});
  ASSERT_EQ(deploy.exit_code, 0) << deploy.err;
  EXPECT_NE(deploy.out.find("shop-api: created"), std::string::npos) << deploy.out;
  EXPECT_NE(deploy.out.find("shop-web: created"), std::string::npos) << deploy.out;
  EXPECT_NE(deploy.err.find("warning: services.api.networks: ignored"), std::string::npos)
      << deploy.err;
  ASSERT_TRUE(
      WaitFor([&] { return Running("shop-web", 2) && HealthyTasks("shop-api").size() == 1; },
              std::chrono::seconds(60)))
      << Cli({"stack", "ps", "shop"}).out;
  auto ls = Cli({"stack", "ls"});
  EXPECT_NE(ls.out.find("shop   2\n"), std::string::npos) << ls.out;
  auto inspect = Cli({"service", "inspect", "shop-web", "-o", "json"});
  EXPECT_NE(inspect.out.find("\"com.docker.stack.namespace\": \"shop\""), std::string::npos)
      << inspect.out;

  // The same file again changes nothing; a changed env updates only that service.
  auto same = Cli({"stack", "deploy", "-c", Compose("v1", true), "shop"});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.out.find("shop-web: unchanged"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("shop-api: unchanged"), std::string::npos) << same.out;
  auto redeploy = Cli({"stack", "deploy", "-c", Compose("v2", true), "shop"});
  ASSERT_EQ(redeploy.exit_code, 0) << redeploy.err;
  EXPECT_NE(redeploy.out.find("shop-web: updated (revision 2)"), std::string::npos) << redeploy.out;
  EXPECT_NE(redeploy.out.find("shop-api: unchanged"), std::string::npos) << redeploy.out;
  EXPECT_EQ(Revisions(),
            (std::map<std::string, std::string>{{"shop-api", "1"}, {"shop-web", "2"}}));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto tasks = Tasks("shop-web");
        size_t v2 = 0;
        for (const auto& t : tasks) {
          v2 += t.value("revision", "") == "2" &&
                t["status"].value("state", "") == "TASK_STATE_RUNNING" &&
                t.value("desiredState", "") == "TASK_STATE_RUNNING";
        }
        return v2 == 2;
      },
      std::chrono::seconds(60)))
      << Cli({"service", "ps", "shop-web"}).out;

  // A service of the same name outside the stack is never taken over.
  ASSERT_EQ(CreateTestapp("other-web", 1).exit_code, 0);
  const std::string other = (dir_ / "other.yml").string();
  std::ofstream(other) << "services:\n  web:\n    command: /bin/true\n";
  auto takeover = Cli({"stack", "deploy", "-c", other, "other"});
  EXPECT_EQ(takeover.exit_code, 1);
  EXPECT_NE(takeover.err.find("service other-web exists and is not part of stack other"),
            std::string::npos)
      << takeover.err;

  // --prune removes the stack's services that left the file, and only those.
  auto prune = Cli({"stack", "deploy", "-c", Compose("v2", false), "--prune", "shop"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  EXPECT_NE(prune.out.find("shop-api: removed"), std::string::npos) << prune.out;
  EXPECT_NE(prune.out.find("shop-web: unchanged"), std::string::npos) << prune.out;
  EXPECT_EQ(Revisions(),
            (std::map<std::string, std::string>{{"other-web", "1"}, {"shop-web", "2"}}));

  auto ps = Cli({"stack", "ps", "shop"});
  EXPECT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_NE(ps.out.find("shop-web\nTASK"), std::string::npos) << ps.out;

  auto rm = Cli({"stack", "rm", "shop"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(rm.out.find("removed shop-web"), std::string::npos) << rm.out;
  EXPECT_EQ(Revisions(), (std::map<std::string, std::string>{{"other-web", "1"}}));
  EXPECT_EQ(Cli({"stack", "ls"}).out.find("shop"), std::string::npos);
}

}  // namespace
}  // namespace warren::e2e
