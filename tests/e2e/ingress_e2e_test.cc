// End-to-end ingress (issue 15, docs/ingress.md): the real binary listens on --ingress-http
// and routes by Host and path to warren-testapp services; a canary behind an ingress gets its
// weight.
#include "e2e_fixture.h"

namespace warren::e2e {
namespace {

class IngressE2eTest : public E2eTest {
 protected:
  int ingress_port_ = FreePort();

  std::vector<std::string> IngressFlags() {
    return {"--ingress-http", "127.0.0.1:" + std::to_string(ingress_port_)};
  }

  std::optional<std::pair<int, std::string>> Get(const std::string& host, const std::string& path) {
    return HttpGet("127.0.0.1", ingress_port_, path, host);
  }

  void CreateService(const std::string& name, const std::string& version, int replicas) {
    auto r = CreateTestapp(name, replicas, {"--env", "VERSION=" + version});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(
        WaitFor([&] { return HealthyTasks(name).size() == static_cast<size_t>(replicas); }));
  }

  void CreateIngress(const std::vector<std::string>& args) {
    std::vector<std::string> all = {"ingress", "create"};
    all.insert(all.end(), args.begin(), args.end());
    auto r = Cli(all);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  // Waits until `host` + `path` answers with `status` and a body holding `want`.
  bool Reaches(const std::string& host, const std::string& path, int status,
               const std::string& want) {
    return WaitFor([&] {
      auto r = Get(host, path);
      return r && r->first == status && r->second.find(want) != std::string::npos;
    });
  }
};

TEST_F(IngressE2eTest, TwoHostsAndTwoPathsReachTheRightServices) {
  StartHybrid(IngressFlags());
  CreateService("web", "web", 1);
  CreateService("api", "api", 1);
  CreateService("blog", "blog", 1);
  CreateIngress({"shop", "--host", "shop.example.com", "--service", "web"});
  CreateIngress({"shop-api", "--host", "shop.example.com", "--path", "/api", "--service", "api"});
  CreateIngress({"blog", "--host", "blog.example.com", "--service", "blog"});
  EXPECT_TRUE(Reaches("shop.example.com", "/", 200, "version=web"));
  EXPECT_TRUE(Reaches("Shop.Example.com:80", "/", 200, "version=web"));
  EXPECT_TRUE(Reaches("blog.example.com", "/", 200, "version=blog"));
  // The testapp answers an unknown path 404 naming itself: the path went on unchanged.
  EXPECT_TRUE(Reaches("shop.example.com", "/api/orders", 404, "/api/orders version=api"));
  EXPECT_TRUE(Reaches("shop.example.com", "/apiary", 404, "/apiary version=web"));
  EXPECT_TRUE(Reaches("blog.example.com", "/api/orders", 404, "/api/orders version=blog"));
  EXPECT_TRUE(Reaches("unknown.example.com", "/", 404, "no ingress rule"));

  // Removed, a rule stops routing; its path falls back to the host's "/" rule.
  auto r = Cli({"ingress", "rm", "shop-api"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Reaches("shop.example.com", "/api/orders", 404, "/api/orders version=web"));
}

TEST_F(IngressE2eTest, ACanaryBehindAnIngressGetsItsWeight) {
  StartHybrid(IngressFlags());
  CreateService("web", "v1", 2);
  CreateIngress({"shop", "--host", "shop.example.com", "--service", "web"});
  ASSERT_TRUE(Reaches("shop.example.com", "/", 200, "version=v1"));
  // The first step holds for the whole window: the weight stays 10 while requests run.
  auto r = Cli({"service", "update", "web", "--env", "VERSION=v2", "--strategy", "canary",
                "--canary-steps", "10,100", "--canary-window", "10m", "--detach"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(Reaches("shop.example.com", "/", 200, "version=v2")) << "the canary is routed";
  // A bounded loop on loopback, one request at a time.
  int v1 = 0, v2 = 0, failed = 0;
  for (int i = 0; i < 1000; ++i) {
    auto resp = Get("shop.example.com", "/");
    if (!resp || resp->first != 200) {
      ++failed;
      continue;
    }
    v1 += resp->second.find("version=v1") != std::string::npos;
    v2 += resp->second.find("version=v2") != std::string::npos;
  }
  EXPECT_EQ(failed, 0);
  ASSERT_EQ(v1 + v2, 1000 - failed);
  const double share = 100.0 * v2 / (v1 + v2);
  std::printf("canary weight 10%% behind the ingress: observed %.2f%% (%d of %d answers)\n", share,
              v2, v1 + v2);
  EXPECT_NEAR(share, 10, 1.0);
  auto status = nlohmann::json::parse(
      Cli({"service", "rollout", "status", "web", "-o", "json"}).out, nullptr, false);
  EXPECT_EQ(status.value("weight", 0), 10) << "the step held while the requests ran";
}

}  // namespace
}  // namespace warren::e2e
