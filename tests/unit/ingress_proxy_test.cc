// The ingress listener (IngressProxy, ProxyManager::StartIngress): requests routed by Host and
// path to in-test HTTP backends on 127.0.0.x through the weighted balancer.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "proxy/proxy.h"
#include "test_http_client.h"

namespace warren {
namespace {

using test::HttpConnection;

constexpr absl::Duration kTimeout = absl::Seconds(10);

struct TestBackend {
  std::unique_ptr<HttpServer> server;
  std::string ip;
  int port() const { return server->port(); }
};

// A backend that answers "<name> <target>".
std::unique_ptr<TestBackend> Backend(const std::string& ip, const std::string& name) {
  HttpServerOptions so;
  so.threads = 1;
  auto s = HttpServer::Start(
      absl::StrCat(ip, ":0"),
      [name](const HttpRequest& r) { return HttpResponse::Text(200, name + " " + r.target); }, so);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return nullptr;
  return std::make_unique<TestBackend>(TestBackend{std::move(*s), ip});
}

v1::ServiceRoute Route(const std::string& id, const std::string& name,
                       const std::vector<std::pair<int, const TestBackend*>>& revisions) {
  v1::ServiceRoute r;
  r.set_service_id(id);
  r.set_name(name);
  int64_t rev = 1;
  for (const auto& [weight, server] : revisions) {
    v1::RevisionRoute* rr = r.add_revisions();
    rr->set_revision(rev);
    rr->set_weight(weight);
    if (server != nullptr) {
      v1::Endpoint* e = rr->add_endpoints();
      e->set_task_id(absl::StrCat(id, "-task", rev));
      e->set_address(server->ip);
      e->set_port(server->port());
    }
    ++rev;
  }
  return r;
}

v1::IngressRoute Rule(const std::string& name, const std::string& host, const std::string& path,
                      const std::string& service_id, int port = 0) {
  v1::IngressRoute r;
  r.set_name(name);
  r.set_host(host);
  r.set_path(path);
  r.set_service_id(service_id);
  r.set_target_port(port);
  return r;
}

std::unique_ptr<IngressProxy> StartIngress(Registry& registry) {
  ServiceProxyOptions o;
  o.host_ip = "127.0.0.1";
  o.registry = &registry;
  auto p = IngressProxy::Start(o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

// "<status> <body>" of one request on `conn` with this Host.
std::string Get(HttpConnection& conn, const std::string& host, const std::string& target) {
  auto r = conn.Request("GET", target, "", {{"Host", host}}, kTimeout);
  if (!r.ok()) return std::string(r.status().message());
  return absl::StrCat(r->status, " ", r->body);
}

TEST(IngressProxyTest, RoutesByHostAndLongestPathPrefix) {
  auto web = Backend("127.0.0.61", "web");
  auto api = Backend("127.0.0.62", "api");
  auto blog = Backend("127.0.0.63", "blog");
  ASSERT_TRUE(web && api && blog);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-web", "web", {{100, web.get()}});
  // The api rule dials its own port: the route's endpoint port is a wrong one.
  v1::ServiceRoute api_route = Route("svc-api", "api", {{100, api.get()}});
  api_route.mutable_revisions(0)->mutable_endpoints(0)->set_port(1);
  *table.add_services() = api_route;
  *table.add_services() = Route("svc-blog", "blog", {{100, blog.get()}});
  *table.add_services() = Route("svc-empty", "empty", {{100, nullptr}});
  *table.add_ingresses() = Rule("shop", "shop.example.com", "/", "svc-web");
  *table.add_ingresses() = Rule("shop-api", "shop.example.com", "/api", "svc-api", api->port());
  *table.add_ingresses() = Rule("blog", "*.example.com", "/", "svc-blog");
  *table.add_ingresses() = Rule("empty", "empty.test.org", "/", "svc-empty");
  *table.add_ingresses() = Rule("gone", "gone.test.org", "/", "svc-removed");
  EXPECT_EQ(ingress->Update(table),
            (std::set<std::string>{"svc-api", "svc-blog", "svc-empty", "svc-web"}));

  auto conn = HttpConnection::Connect("127.0.0.1", ingress->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  HttpConnection& c = **conn;
  EXPECT_EQ(Get(c, "shop.example.com", "/"), "200 web /");
  EXPECT_EQ(Get(c, "Shop.Example.COM.:8080", "/cart?x=1"), "200 web /cart?x=1");
  EXPECT_EQ(Get(c, "shop.example.com", "/api"), "200 api /api");
  EXPECT_EQ(Get(c, "shop.example.com", "/api/v1?q=/x"), "200 api /api/v1?q=/x");
  EXPECT_EQ(Get(c, "shop.example.com", "/apiary"), "200 web /apiary") << "per segment";
  EXPECT_EQ(Get(c, "a.b.example.com", "/api"), "200 blog /api");
  // The absolute form names the host itself.
  EXPECT_EQ(Get(c, "ignored.org", "HTTP://shop.example.com/api/x?y"), "200 api /api/x?y");
  // One client connection carried all of these, the 404 and 503s below too (keep-alive).
  EXPECT_EQ(Get(c, "example.com", "/"), "404 no ingress rule for this host and path\n");
  EXPECT_EQ(Get(c, "other.org", "/api"), "404 no ingress rule for this host and path\n");
  EXPECT_EQ(Get(c, "empty.test.org", "/"), "503 no endpoints available\n");
  EXPECT_EQ(Get(c, "gone.test.org", "/"), "503 no endpoints available\n");
  EXPECT_EQ(Get(c, "shop.example.com", "/"), "200 web /");

  // A rule removed: its requests get 404 at once, on the same connection.
  table.mutable_ingresses()->DeleteSubrange(1, 1);
  ingress->Update(table);
  EXPECT_EQ(Get(c, "shop.example.com", "/api/v1"), "200 web /api/v1");
  EXPECT_TRUE(ingress->Stop(kTimeout));
}

TEST(IngressProxyTest, ACanaryBehindAnIngressGetsItsExactWeight) {
  auto stable = Backend("127.0.0.64", "stable");
  auto canary = Backend("127.0.0.65", "canary");
  ASSERT_TRUE(stable && canary);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-web", "web", {{90, stable.get()}, {10, canary.get()}});
  *table.add_ingresses() = Rule("shop", "shop.example.com", "/", "svc-web");
  ingress->Update(table);
  auto conn = HttpConnection::Connect("127.0.0.1", ingress->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  std::map<std::string, int> by_backend;
  for (int i = 0; i < 1000; ++i) {
    std::string r = Get(**conn, "shop.example.com", "/");
    by_backend[r.substr(0, r.find(' ', 4))]++;
  }
  // Smooth weighted round robin: exact over whole rounds of 100.
  EXPECT_EQ(by_backend["200 stable"], 900);
  EXPECT_EQ(by_backend["200 canary"], 100);
  // The weights move (the canary's next step): the same balancer carries on.
  table.mutable_services(0)->mutable_revisions(0)->set_weight(50);
  table.mutable_services(0)->mutable_revisions(1)->set_weight(50);
  ingress->Update(table);
  by_backend.clear();
  for (int i = 0; i < 100; ++i) {
    std::string r = Get(**conn, "shop.example.com", "/");
    by_backend[r.substr(0, r.find(' ', 4))]++;
  }
  EXPECT_EQ(by_backend["200 stable"], 50);
  EXPECT_EQ(by_backend["200 canary"], 50);
  // Counted per revision like a published port's requests.
  std::vector<ProxyStats> stats = ingress->Snapshot();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].service, "web");
  ASSERT_EQ(stats[0].revisions.size(), 2u);
  EXPECT_EQ(stats[0].revisions[0].requests + stats[0].revisions[1].requests, 1100u);
  EXPECT_TRUE(ingress->Stop(kTimeout));
}

TEST(IngressProxyTest, AFailedConnectIsRetriedOnAnotherEndpoint) {
  auto live = Backend("127.0.0.66", "live");
  ASSERT_TRUE(live);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  v1::ServiceRoute route = Route("svc-web", "web", {{100, live.get()}});
  // A dead endpoint first: nothing listens on 127.0.0.67 at the live one's port.
  v1::Endpoint* dead = route.mutable_revisions(0)->add_endpoints();
  dead->set_task_id("dead");
  dead->set_address("127.0.0.67");
  dead->set_port(live->port());
  *table.add_services() = route;
  *table.add_ingresses() = Rule("shop", "shop.example.com", "/", "svc-web");
  ingress->Update(table);
  auto conn = HttpConnection::Connect("127.0.0.1", ingress->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Get(**conn, "shop.example.com", "/"), "200 live /");
  EXPECT_TRUE(ingress->Stop(kTimeout));
}

TEST(ProxyManagerTest, TheIngressRoutesTheTablesIngresses) {
  auto web = Backend("127.0.0.68", "web");
  ASSERT_TRUE(web);
  Registry registry;
  ProxyManagerOptions o;
  o.proxy.registry = &registry;
  ProxyManager manager(o);
  EXPECT_EQ(manager.IngressPort(), -1) << "off until started";
  ASSERT_TRUE(manager.StartIngress("127.0.0.1", 0).ok());
  ASSERT_GT(manager.IngressPort(), 0);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-web", "web", {{100, web.get()}});
  *table.add_ingresses() = Rule("shop", "shop.example.com", "/", "svc-web");
  ASSERT_TRUE(manager.Apply(table).ok());
  auto r = test::HttpDo("127.0.0.1", manager.IngressPort(), "GET", "/x", "",
                        {{"Host", "shop.example.com"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "web /x");
  // No published port: the ingress's counters are the service's.
  std::vector<ProxyStats> stats = manager.Snapshot();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].service_id, "svc-web");
  // A second listener on the same address is refused with the address named.
  ProxyManager other(o);
  absl::Status s = other.StartIngress("127.0.0.1", manager.IngressPort());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(absl::StrCat("127.0.0.1:", manager.IngressPort())), std::string::npos)
      << s;
  manager.Stop();
}

}  // namespace
}  // namespace warren
