// The ingress listener (IngressProxy, ProxyManager::StartIngress): requests routed by Host and
// path to in-test HTTP backends on 127.0.0.x through the weighted balancer. The HTTPS ingress
// (StartIngressTls): SNI, TLS versions, certificate hot swap, the redirect from HTTP.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "ingress/ingress_tls.h"
#include "proxy/proxy.h"
#include "security/openssl_util.h"
#include "test_certs.h"
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

// A backend that answers with the request's X-Forwarded-* and Forwarded headers, one
// "name=value" line each (lower-case names, in order).
std::unique_ptr<TestBackend> ForwardedEcho(const std::string& ip) {
  HttpServerOptions so;
  so.threads = 1;
  auto s = HttpServer::Start(
      absl::StrCat(ip, ":0"),
      [](const HttpRequest& r) {
        std::string out;
        for (const auto& [k, v] : r.headers) {
          const std::string name = absl::AsciiStrToLower(k);
          if (name.rfind("x-forwarded-", 0) == 0 || name == "forwarded") {
            absl::StrAppend(&out, name, "=", v, "\n");
          }
        }
        return HttpResponse::Text(200, out);
      },
      so);
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

// The ingress is the edge: what a client claims about earlier hops is replaced, not appended to.
TEST(IngressProxyTest, ForwardedHeadersAreTheIngressesOwnNotTheClients) {
  auto echo = ForwardedEcho("127.0.0.73");
  ASSERT_TRUE(echo);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-echo", "echo", {{100, echo.get()}});
  *table.add_ingresses() = Rule("echo", "echo.example.com", "/", "svc-echo");
  ingress->Update(table);
  auto conn = HttpConnection::Connect("127.0.0.1", ingress->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto r = (*conn)->Request("GET", "/", "",
                            {{"Host", "Echo.Example.com:8080"},
                             {"X-Forwarded-For", "203.0.113.7"},
                             {"X-Forwarded-Proto", "https"},
                             {"X-Forwarded-Host", "bank.example.org"},
                             {"X-Forwarded-Port", "443"},
                             {"Forwarded", "for=203.0.113.7;proto=https"}},
                            kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body,
            "x-forwarded-for=127.0.0.1\n"
            "x-forwarded-proto=http\n"
            "x-forwarded-host=Echo.Example.com:8080\n");
  // The absolute form's host is the one forwarded.
  r = (*conn)->Request("GET", "http://echo.example.com/x", "", {{"Host", "other.org"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body,
            "x-forwarded-for=127.0.0.1\n"
            "x-forwarded-proto=http\n"
            "x-forwarded-host=echo.example.com\n");
  EXPECT_TRUE(ingress->Stop(kTimeout));
}

// Whether the registry's exposition has this exact sample line.
bool HasSample(const Registry& registry, const std::string& line) {
  return absl::StrContains(absl::StrCat("\n", registry.Render()), absl::StrCat("\n", line, "\n"));
}

TEST(IngressProxyTest, RequestsThroughARuleMoveItsSeries) {
  auto web = Backend("127.0.0.75", "web");
  ASSERT_TRUE(web);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-web", "web", {{100, web.get()}});
  *table.add_services() = Route("svc-empty", "empty", {{100, nullptr}});
  *table.add_ingresses() = Rule("shop", "shop.example.com", "/", "svc-web");
  *table.add_ingresses() = Rule("shop-api", "shop.example.com", "/api", "svc-empty");
  v1::IngressRoute tls = Rule("pay", "pay.example.com", "/", "svc-web");
  tls.set_tls(true);
  *table.add_ingresses() = tls;
  ingress->Update(table);
  // Before any request, each rule's series are there at 0.
  const std::string shop = R"(ingress="shop",host="shop.example.com",path="/")";
  const std::string api = R"(ingress="shop-api",host="shop.example.com",path="/api")";
  const std::string pay = R"(ingress="pay",host="pay.example.com",path="/")";
  EXPECT_TRUE(HasSample(registry,
                        absl::StrCat("warren_ingress_requests_total{", shop, R"(,class="2xx"} 0)")))
      << registry.Render();
  auto conn = HttpConnection::Connect("127.0.0.1", ingress->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(Get(**conn, "shop.example.com", "/a"), "200 web /a");
  EXPECT_EQ(Get(**conn, "shop.example.com", "/b"), "200 web /b");
  EXPECT_EQ(Get(**conn, "shop.example.com", "/api/x"), "503 no endpoints available\n");
  auto redirected = (*conn)->Request("GET", "/", "", {{"Host", "pay.example.com"}}, kTimeout);
  ASSERT_TRUE(redirected.ok()) << redirected.status();
  EXPECT_EQ(redirected->status, 308);
  EXPECT_EQ(Get(**conn, "nowhere.org", "/"), "404 no ingress rule for this host and path\n");

  for (const std::string& line : {
           absl::StrCat("warren_ingress_requests_total{", shop, R"(,class="2xx"} 2)"),
           absl::StrCat("warren_ingress_requests_total{", shop, R"(,class="5xx"} 0)"),
           absl::StrCat("warren_ingress_errors_total{", shop, "} 0"),
           absl::StrCat("warren_ingress_request_duration_seconds_count{", shop, "} 2"),
           absl::StrCat("warren_ingress_requests_total{", api, R"(,class="5xx"} 1)"),
           absl::StrCat("warren_ingress_errors_total{", api, "} 1"),
           absl::StrCat("warren_ingress_request_duration_seconds_count{", api, "} 1"),
           absl::StrCat("warren_ingress_requests_total{", pay, R"(,class="3xx"} 1)"),
           absl::StrCat("warren_ingress_errors_total{", pay, "} 0"),
       }) {
    EXPECT_TRUE(HasSample(registry, line)) << line << "\n" << registry.Render();
  }
  // A request no rule takes counts into no rule.
  EXPECT_FALSE(absl::StrContains(registry.Render(), "nowhere.org"));
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

// ---- HTTPS ---------------------------------------------------------------------------------

using testing_util::CertAndKey;
using testing_util::MakeCertificate;

// One blocking TLS client connection on loopback (keep-alive), without certificate checks: the
// tests look at the certificate the server chose.
class TlsClient {
 public:
  // `sni` empty: no server name is sent. The version range bounds what the client offers.
  static absl::StatusOr<std::unique_ptr<TlsClient>> Connect(int port, const std::string& sni,
                                                            int min_version = TLS1_VERSION,
                                                            int max_version = TLS1_3_VERSION) {
    auto c = std::unique_ptr<TlsClient>(new TlsClient());
    c->ctx_.reset(SSL_CTX_new(TLS_client_method()));
    // Security level 0 lets this client offer TLS 1.0 and 1.1 at all: the server must refuse.
    SSL_CTX_set_security_level(c->ctx_.get(), 0);
    SSL_CTX_set_min_proto_version(c->ctx_.get(), min_version);
    SSL_CTX_set_max_proto_version(c->ctx_.get(), max_version);
    c->fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};
    setsockopt(c->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(c->fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      return absl::UnavailableError("connect failed");
    }
    c->ssl_.reset(SSL_new(c->ctx_.get()));
    SSL_set_fd(c->ssl_.get(), c->fd_);
    if (!sni.empty()) SSL_set_tlsext_host_name(c->ssl_.get(), sni.c_str());
    if (SSL_connect(c->ssl_.get()) != 1) {
      return security::OpenSslError(absl::StatusCode::kUnavailable, "handshake");
    }
    return c;
  }
  ~TlsClient() {
    ssl_.reset();
    if (fd_ >= 0) close(fd_);
  }

  // The serial number of the certificate the server presented.
  std::string PeerSerial() const {
    security::X509Ptr cert(SSL_get1_peer_certificate(ssl_.get()));
    return cert ? security::SerialHex(cert.get()) : "";
  }
  int Version() const { return SSL_version(ssl_.get()); }

  // "<status> <body>" of a GET (the answer must carry a Content-Length).
  // `extra`: more header lines, each ending in CRLF.
  std::string Get(const std::string& host, const std::string& target,
                  const std::string& extra = "") {
    const std::string req =
        absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host, "\r\n", extra, "\r\n");
    if (SSL_write(ssl_.get(), req.data(), static_cast<int>(req.size())) <= 0) return "write failed";
    std::string in;
    size_t head_end = std::string::npos;
    size_t length = 0;
    for (;;) {
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        const std::string head = absl::AsciiStrToLower(in.substr(0, head_end));
        const size_t cl = head.find("content-length:");
        if (cl == std::string::npos) return "no content-length";
        length = std::stoul(head.substr(cl + 15));
        head_end += 4;
      }
      if (head_end != std::string::npos && in.size() >= head_end + length) break;
      char buf[4096];
      int n = SSL_read(ssl_.get(), buf, sizeof(buf));
      if (n <= 0) return "read failed";
      in.append(buf, static_cast<size_t>(n));
    }
    return absl::StrCat(in.substr(9, 3), " ", in.substr(head_end, length));
  }

 private:
  TlsClient() = default;
  std::unique_ptr<SSL_CTX, security::OpenSslDeleter<SSL_CTX_free>> ctx_;
  std::unique_ptr<SSL, security::OpenSslDeleter<SSL_free>> ssl_;
  int fd_ = -1;
};

v1::IngressKeyPair Pair(const std::string& name, const std::string& host, const CertAndKey& c) {
  v1::IngressKeyPair p;
  p.set_name(name);
  p.set_host(host);
  p.set_certificate_pem(c.cert_pem);
  p.set_key_pem(c.key_pem);
  p.set_certificate_sha256(CertificateSha256(c.cert_pem));
  return p;
}

v1::IngressRoute TlsRule(const std::string& name, const std::string& host,
                         const std::string& service_id) {
  v1::IngressRoute r = Rule(name, host, "/", service_id);
  r.set_tls(true);
  return r;
}

// The serial of the certificate a context holds ("" for none).
std::string SerialOf(const std::shared_ptr<SSL_CTX>& ctx) {
  if (!ctx) return "";
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  return cert ? security::SerialHex(cert) : "";
}

TEST(IngressTlsContextsTest, SniPicksTheExactHostThenTheLongestWildcardElseNothing) {
  IngressTlsContexts contexts;
  std::vector<v1::IngressKeyPair> pairs = {
      Pair("exact", "shop.example.com", MakeCertificate({"shop.example.com"}, 0x11)),
      Pair("wild", "*.example.com", MakeCertificate({"*.example.com"}, 0x12)),
      Pair("deeper", "*.eu.example.com", MakeCertificate({"*.eu.example.com"}, 0x13)),
      // A second rule of the same host (another path): the first one's certificate serves.
      Pair("exact-api", "shop.example.com", MakeCertificate({"shop.example.com"}, 0x14)),
  };
  ASSERT_TRUE(contexts.Update(pairs).ok());
  EXPECT_EQ(SerialOf(contexts.Select("shop.example.com")), "11");
  EXPECT_EQ(SerialOf(contexts.Select("blog.example.com")), "12");
  EXPECT_EQ(SerialOf(contexts.Select("a.b.example.com")), "12");
  EXPECT_EQ(SerialOf(contexts.Select("shop.eu.example.com")), "13");
  EXPECT_EQ(contexts.Select("example.com"), nullptr) << "a wildcard needs a label in front";
  EXPECT_EQ(contexts.Select("other.org"), nullptr);
  EXPECT_EQ(contexts.Select(""), nullptr);
  // The keys were wiped from the pairs once loaded; Given names every pair.
  for (const v1::IngressKeyPair& p : pairs) EXPECT_TRUE(p.key_pem().empty()) << p.name();
  EXPECT_EQ(contexts.Given().size(), 4u);
  EXPECT_EQ(contexts.Given().at("wild"), pairs[1].certificate_sha256());
}

TEST(IngressTlsContextsTest, APairThatDoesNotLoadIsNamedAndTheOthersApply) {
  IngressTlsContexts contexts;
  CertAndKey shop = MakeCertificate({"shop.example.com"}, 0x21);
  CertAndKey other = MakeCertificate({"blog.example.com"}, 0x22);
  v1::IngressKeyPair mismatched = Pair("blog", "blog.example.com", other);
  mismatched.set_key_pem(shop.key_pem);
  std::vector<v1::IngressKeyPair> pairs = {Pair("shop", "shop.example.com", shop), mismatched};
  absl::Status s = contexts.Update(pairs);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ingress blog.key"), std::string::npos) << s;
  EXPECT_EQ(SerialOf(contexts.Select("shop.example.com")), "21");
  EXPECT_EQ(contexts.Select("blog.example.com"), nullptr);
}

TEST(IngressTlsTest, RedirectUrlKeepsPathAndQueryAndLeavesOutPort443) {
  EXPECT_EQ(IngressHttpsUrl("shop.example.com", "/a/b?x=1&y=%2F", 443),
            "https://shop.example.com/a/b?x=1&y=%2F");
  EXPECT_EQ(IngressHttpsUrl("shop.example.com", "/", 8443), "https://shop.example.com:8443/");
  EXPECT_EQ(IngressHttpsUrl("shop.example.com", "", 443), "https://shop.example.com/");
  EXPECT_EQ(IngressHttpsUrl("shop.example.com", "?q", 443), "https://shop.example.com/?q");
  EXPECT_EQ(CertificateSha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

class IngressHttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    web_ = Backend("127.0.0.69", "web");
    ASSERT_TRUE(web_);
    ProxyManagerOptions o;
    o.proxy.registry = &registry_;
    manager_ = std::make_unique<ProxyManager>(o);
    EXPECT_EQ(manager_->IngressTlsPort(), -1) << "off until started";
    ASSERT_TRUE(manager_->StartIngressTls("127.0.0.1", 0).ok());
    ASSERT_TRUE(manager_->StartIngress("127.0.0.1", 0).ok());
    port_ = manager_->IngressTlsPort();
    ASSERT_GT(port_, 0);
    *table_.add_services() = Route("svc-web", "web", {{100, web_.get()}});
    *table_.add_ingresses() = TlsRule("shop", "shop.example.com", "svc-web");
    *table_.add_ingresses() = TlsRule("blog", "*.example.com", "svc-web");
    *table_.add_ingresses() = Rule("plain", "plain.test.org", "/", "svc-web");
    ASSERT_TRUE(manager_->Apply(table_).ok());
    Load(0x31, 0x32);
  }
  void TearDown() override {
    if (manager_) manager_->Stop();
  }
  void Load(long shop_serial, long blog_serial) {
    std::vector<v1::IngressKeyPair> pairs = {
        Pair("shop", "shop.example.com", MakeCertificate({"shop.example.com"}, shop_serial)),
        Pair("blog", "*.example.com", MakeCertificate({"*.example.com"}, blog_serial)),
    };
    ASSERT_TRUE(manager_->SetIngressCertificates(pairs).ok());
  }

  std::unique_ptr<TestBackend> web_;
  Registry registry_;
  std::unique_ptr<ProxyManager> manager_;
  v1::RoutingTable table_;
  int port_ = 0;
};

TEST_F(IngressHttpsTest, SniPicksTheCertificateAndRequestsAreRoutedOverKeepAlive) {
  auto shop = TlsClient::Connect(port_, "shop.example.com");
  ASSERT_TRUE(shop.ok()) << shop.status();
  EXPECT_EQ((*shop)->PeerSerial(), "31");
  EXPECT_EQ((*shop)->Get("shop.example.com", "/x?y=1"), "200 web /x?y=1");
  EXPECT_EQ((*shop)->Get("shop.example.com", "/again"), "200 web /again") << "keep-alive";
  EXPECT_EQ((*shop)->Get("nowhere.org", "/"), "404 no ingress rule for this host and path\n");
  auto blog = TlsClient::Connect(port_, "Blog.Example.com.");
  ASSERT_TRUE(blog.ok()) << blog.status();
  EXPECT_EQ((*blog)->PeerSerial(), "32");
  EXPECT_EQ((*blog)->Get("blog.example.com", "/"), "200 web /");
  // No rule for the name, or no name at all: the handshake is refused (no default certificate).
  for (const char* name : {"other.org", ""}) {
    auto refused = TlsClient::Connect(port_, name);
    ASSERT_FALSE(refused.ok()) << name;
    EXPECT_NE(refused.status().message().find("unrecognized name"), std::string::npos)
        << name << ": " << refused.status();
  }
  // Requests through the HTTPS listener count into the service like any other.
  std::vector<ProxyStats> stats = manager_->Snapshot();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].service_id, "svc-web");
}

TEST_F(IngressHttpsTest, RequestsOverHttpsAreForwardedWithProtoHttps) {
  auto echo = ForwardedEcho("127.0.0.74");
  ASSERT_TRUE(echo);
  *table_.add_services() = Route("svc-echo", "echo", {{100, echo.get()}});
  *table_.add_ingresses() = TlsRule("echo", "echo.example.com", "svc-echo");
  ASSERT_TRUE(manager_->Apply(table_).ok());
  auto c = TlsClient::Connect(port_, "echo.example.com");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->Get("echo.example.com", "/",
                      "X-Forwarded-Proto: http\r\nX-Forwarded-For: 10.1.2.3\r\n"
                      "X-Forwarded-For: 10.4.5.6\r\n"),
            "200 x-forwarded-for=127.0.0.1\n"
            "x-forwarded-proto=https\n"
            "x-forwarded-host=echo.example.com\n");
}

TEST_F(IngressHttpsTest, OnlyTls12And13AreAccepted) {
  // The server's protocol_version alert, not a client that could not offer the old versions.
  for (int old : {TLS1_1_VERSION, TLS1_VERSION}) {
    auto refused = TlsClient::Connect(port_, "shop.example.com", TLS1_VERSION, old);
    ASSERT_FALSE(refused.ok()) << old;
    EXPECT_NE(refused.status().message().find("alert protocol version"), std::string::npos)
        << refused.status();
  }
  auto v12 = TlsClient::Connect(port_, "shop.example.com", TLS1_2_VERSION, TLS1_2_VERSION);
  ASSERT_TRUE(v12.ok()) << v12.status();
  EXPECT_EQ((*v12)->Version(), TLS1_2_VERSION);
  EXPECT_EQ((*v12)->PeerSerial(), "31") << "SNI works in TLS 1.2 too";
  EXPECT_EQ((*v12)->Get("shop.example.com", "/"), "200 web /");
  auto v13 = TlsClient::Connect(port_, "shop.example.com");
  ASSERT_TRUE(v13.ok()) << v13.status();
  EXPECT_EQ((*v13)->Version(), TLS1_3_VERSION);
}

TEST_F(IngressHttpsTest, ANewCertificateServesNewHandshakesAndOpenConnectionsKeepWorking) {
  auto before = TlsClient::Connect(port_, "shop.example.com");
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ((*before)->PeerSerial(), "31");
  EXPECT_EQ((*before)->Get("shop.example.com", "/1"), "200 web /1");
  Load(0x41, 0x42);
  EXPECT_EQ((*before)->Get("shop.example.com", "/2"), "200 web /2")
      << "a keep-alive connection lives across the swap";
  auto after = TlsClient::Connect(port_, "shop.example.com");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ((*after)->PeerSerial(), "41");
  EXPECT_EQ((*after)->Get("shop.example.com", "/3"), "200 web /3");
  EXPECT_EQ((*before)->Get("shop.example.com", "/4"), "200 web /4");
  // A rule whose certificate is gone: its name is refused from then on.
  std::vector<v1::IngressKeyPair> only_blog = {
      Pair("blog", "*.example.com", MakeCertificate({"*.example.com"}, 0x43))};
  ASSERT_TRUE(manager_->SetIngressCertificates(only_blog).ok());
  auto shop = TlsClient::Connect(port_, "shop.example.com");
  ASSERT_TRUE(shop.ok()) << "the wildcard takes the name now";
  EXPECT_EQ((*shop)->PeerSerial(), "43");
  EXPECT_FALSE(TlsClient::Connect(port_, "example.com").ok());
}

TEST_F(IngressHttpsTest, HttpRequestsForATlsHostAreRedirectedToTheHttpsPort) {
  auto conn = HttpConnection::Connect("127.0.0.1", manager_->IngressPort(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto r =
      (*conn)->Request("GET", "/cart/1?x=1&y=2", "", {{"Host", "Shop.Example.com:80"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 308);
  EXPECT_EQ(r->Header("Location"),
            absl::StrCat("https://shop.example.com:", port_, "/cart/1?x=1&y=2"));
  // The same connection goes on (keep-alive): a host without TLS is served over HTTP.
  r = (*conn)->Request("GET", "/p", "", {{"Host", "plain.test.org"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "web /p");
  r = (*conn)->Request("GET", "/", "", {{"Host", "a.example.com"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 308);
  EXPECT_EQ(r->Header("Location"), absl::StrCat("https://a.example.com:", port_, "/"));
}

// ACME HTTP-01: the key authorization of a pending challenge is answered on HTTP for any host,
// before the rules (the name's own rule is TLS and would redirect).
TEST(IngressAcmeChallengeTest, APendingChallengeIsAnsweredBeforeTheRules) {
  auto web = Backend("127.0.0.76", "web");
  ASSERT_TRUE(web);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-web", "web", {{100, web.get()}});
  v1::IngressRoute acme = TlsRule("shop", "shop.example.com", "svc-web");
  v1::AcmeChallenge* c = acme.add_acme_challenges();
  c->set_token("tok_1-A");
  c->set_key_authorization("tok_1-A.thumbprint");
  *table.add_ingresses() = acme;
  ingress->Update(table);
  auto conn = HttpConnection::Connect("127.0.0.1", ingress->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(Get(**conn, "shop.example.com", "/.well-known/acme-challenge/tok_1-A"),
            "200 tok_1-A.thumbprint");
  EXPECT_EQ(Get(**conn, "other.org", "/.well-known/acme-challenge/tok_1-A"),
            "200 tok_1-A.thumbprint");
  // Any other token, or path, is the rules' (a redirect to HTTPS, or no rule).
  auto r = (*conn)->Request("GET", "/.well-known/acme-challenge/other", "",
                            {{"Host", "shop.example.com"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 308);
  EXPECT_EQ(Get(**conn, "other.org", "/.well-known/acme-challenge/"),
            "404 no ingress rule for this host and path\n");
  // Once the order is done, the table no longer carries it.
  table.mutable_ingresses(0)->clear_acme_challenges();
  ingress->Update(table);
  r = (*conn)->Request("GET", "/.well-known/acme-challenge/tok_1-A", "",
                       {{"Host", "shop.example.com"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 308);
  EXPECT_TRUE(ingress->Stop(kTimeout));
}

TEST(IngressHttpsRedirectTest, WithoutAnHttpsListenerTheRedirectGoesToPort443) {
  auto web = Backend("127.0.0.72", "web");
  ASSERT_TRUE(web);
  Registry registry;
  auto ingress = StartIngress(registry);
  ASSERT_NE(ingress, nullptr);
  v1::RoutingTable table;
  *table.add_services() = Route("svc-web", "web", {{100, web.get()}});
  *table.add_ingresses() = TlsRule("shop", "shop.example.com", "svc-web");
  ingress->Update(table);
  auto r = test::HttpDo("127.0.0.1", ingress->port(), "GET", "/a?b", "",
                        {{"Host", "shop.example.com"}}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 308);
  EXPECT_EQ(r->Header("Location"), "https://shop.example.com/a?b");
  EXPECT_TRUE(ingress->Stop(kTimeout));
}

}  // namespace
}  // namespace warren
