// ServiceProxy and ProxyManager end to end: real warren-testapp backends on 127.0.0.x, in-test
// backends where a test needs to see or shape the raw bytes.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "proxy/proxy.h"
#include "raw_socket.h"
#include "test_http_client.h"
#include "test_subprocess.h"

namespace warren {
namespace {

using test::AcceptWithin;
using test::ConnectTo;
using test::FreePort;
using test::HttpConnection;
using test::Listen;
using test::ReadUntil;
using test::SendAll;
using test::Subprocess;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(10);

struct App {
  std::unique_ptr<Subprocess> process;
  std::string ip;
  int port = 0;
  std::string task;
};

// A testapp on its own loopback address, like a task of the process runtime.
App StartApp(const std::string& ip, const std::string& task,
             std::map<std::string, std::string> env = {}) {
  App app;
  app.ip = ip;
  app.task = task;
  env["WARREN_TASK_IP"] = ip;
  env["WARREN_TASK_PORT"] = "0";
  env["WARREN_TASK_ID"] = task;
  auto p = Subprocess::Start({WARREN_TESTAPP_BINARY}, env);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return app;
  app.process = std::move(*p);
  auto line = app.process->WaitForStdoutLine("listening on ", kTimeout);
  EXPECT_TRUE(line.ok()) << line.status();
  if (line.ok()) {
    EXPECT_TRUE(absl::SimpleAtoi(line->substr(line->rfind(':') + 1), &app.port));
  }
  return app;
}

v1::Endpoint EndpointOf(const std::string& task, const std::string& ip, int port) {
  v1::Endpoint e;
  e.set_task_id(task);
  e.set_address(ip);
  e.set_port(port);
  return e;
}

v1::ServiceRoute RouteOf(const std::vector<std::pair<int, std::vector<v1::Endpoint>>>& revs,
                         const std::vector<int64_t>& numbers = {}) {
  v1::ServiceRoute r;
  r.set_service_id("svc-web");
  r.set_name("web");
  for (size_t i = 0; i < revs.size(); ++i) {
    auto* rr = r.add_revisions();
    rr->set_revision(numbers.empty() ? static_cast<int64_t>(i + 1) : numbers[i]);
    rr->set_weight(revs[i].first);
    for (const auto& e : revs[i].second) *rr->add_endpoints() = e;
  }
  return r;
}

v1::ServiceRoute RouteOfApps(const std::vector<const App*>& apps) {
  std::vector<v1::Endpoint> eps;
  for (const App* a : apps) eps.push_back(EndpointOf(a->task, a->ip, a->port));
  return RouteOf({{100, eps}});
}

std::unique_ptr<ServiceProxy> StartProxy(const v1::ServiceRoute& route, Registry& registry,
                                         ProxyMode mode = ProxyMode::kHttp) {
  ServiceProxyOptions o;
  o.mode = mode;
  o.host_ip = "127.0.0.1";
  o.port = 0;
  o.registry = &registry;
  auto p = ServiceProxy::Start(route, o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

// --- tests --------------------------------------------------------------------------------------

TEST(ServiceProxyTest, ForwardsWithKeepAliveAndPooledUpstream) {
  HttpServerOptions so;
  so.threads = 1;
  auto backend = HttpServer::Start(
      "127.0.0.21:0", [](const HttpRequest& r) { return HttpResponse::Text(200, "hi\n"); }, so);
  ASSERT_TRUE(backend.ok()) << backend.status();
  Registry registry;
  auto proxy =
      StartProxy(RouteOf({{100, {EndpointOf("t1", "127.0.0.21", (*backend)->port())}}}), registry);
  ASSERT_NE(proxy, nullptr);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  for (int i = 0; i < 20; ++i) {
    auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hi\n");
  }
  // One client connection, twenty requests: one upstream connection, reused.
  EXPECT_EQ((*backend)->connection_count(), 1);
  // Latency is recorded just after the last byte went out: wait (bounded) for the last one.
  ProxyStats stats;
  for (int i = 0; i < 1000; ++i) {
    stats = proxy->Snapshot();
    if (stats.revisions.size() == 1 && stats.revisions[0].latency_count == 20) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(stats.revisions.size(), 1u);
  EXPECT_EQ(stats.revisions[0].requests, 20u);
  EXPECT_EQ(stats.revisions[0].responses_2xx, 20u);
  EXPECT_EQ(stats.revisions[0].latency_count, 20u);
  // The latency histogram goes out per bucket, with the bounds once per service.
  ASSERT_EQ(stats.revisions[0].latency_buckets.size(), stats.latency_bounds.size() + 1);
  EXPECT_EQ(std::accumulate(stats.revisions[0].latency_buckets.begin(),
                            stats.revisions[0].latency_buckets.end(), uint64_t{0}),
            20u);
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("warren_proxy_requests_total{service=\"web\",revision=\"1\"} 20"));
  EXPECT_THAT(
      text,
      HasSubstr("warren_proxy_responses_total{service=\"web\",revision=\"1\",class=\"2xx\"} 20"));
  EXPECT_THAT(text, HasSubstr("warren_proxy_request_duration_seconds_count{service=\"web\","
                              "revision=\"1\"} 20"));
  EXPECT_TRUE(proxy->Stop(kTimeout));
}

TEST(ServiceProxyTest, HeadersForwardedForHostAndHopByHop) {
  auto backend = HttpServer::Start("127.0.0.22:0", [](const HttpRequest& r) {
    std::string out;
    for (const auto& [k, v] : r.headers)
      absl::StrAppend(&out, absl::AsciiStrToLower(k), "=", v, "\n");
    absl::StrAppend(&out, "body=", r.body, "\n");
    HttpResponse res = HttpResponse::Text(201, out);
    res.headers.emplace_back("Keep-Alive", "timeout=5");
    return res;
  });
  ASSERT_TRUE(backend.ok()) << backend.status();
  Registry registry;
  auto proxy =
      StartProxy(RouteOf({{100, {EndpointOf("t1", "127.0.0.22", (*backend)->port())}}}), registry);
  ASSERT_NE(proxy, nullptr);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)
                  ->SendRaw("POST /x HTTP/1.1\r\nHost: shop.example:8080\r\n"
                            "X-Forwarded-For: 203.0.113.7\r\nConnection: keep-alive, X-Secret\r\n"
                            "X-Secret: s\r\nKeep-Alive: timeout=9\r\nX-Custom: c\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n"
                            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                            kTimeout)
                  .ok());
  auto r = (*conn)->ReadResponse(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_THAT(r->body, HasSubstr("host=shop.example:8080\n"));
  EXPECT_THAT(r->body, HasSubstr("x-forwarded-for=203.0.113.7, 127.0.0.1\n"));
  EXPECT_THAT(r->body, HasSubstr("x-custom=c\n"));
  EXPECT_THAT(r->body, HasSubstr("body=hello world\n"));  // chunked request reassembled
  EXPECT_THAT(r->body, ::testing::Not(HasSubstr("x-secret")));
  EXPECT_THAT(r->body, ::testing::Not(HasSubstr("keep-alive=")));
  EXPECT_FALSE(r->Header("Keep-Alive").has_value());
  // The connection stays usable.
  auto again = (*conn)->Request("GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(again->body, HasSubstr("x-forwarded-for=127.0.0.1\n"));
}

// The last chunk of a chunked request arriving on its own must end the relayed body once: the
// serializer turned an empty final buffer into a second end ("0\r\n\r\n0\r\n\r\n"), which
// broke the next request on the pooled upstream connection.
TEST(ServiceProxyTest, LastChunkAloneEndsTheRelayedBodyOnce) {
  int backend_port = 0;
  int lfd = Listen("127.0.0.24", &backend_port);
  Registry registry;
  auto proxy =
      StartProxy(RouteOf({{100, {EndpointOf("t1", "127.0.0.24", backend_port)}}}), registry);
  ASSERT_NE(proxy, nullptr);
  int client = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(client,
                      "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n"));
  int up = AcceptWithin(lfd, kTimeout);
  ASSERT_GE(up, 0);
  std::string got;
  // The data chunk is relayed before the last chunk is even sent.
  ASSERT_TRUE(
      ReadUntil(up, got, [](const std::string& b) { return b.find("hello\r\n") != b.npos; }));
  ASSERT_TRUE(SendAll(client, "0\r\n\r\n"));
  ASSERT_TRUE(
      ReadUntil(up, got, [](const std::string& b) { return b.find("\r\n0\r\n\r\n") != b.npos; }));
  // Whatever else the proxy sent with it, in the same write or just after.
  pollfd pfd{up, POLLIN, 0};
  while (poll(&pfd, 1, 200) == 1) {
    char tmp[4096];
    ssize_t n = recv(up, tmp, sizeof(tmp), 0);
    if (n <= 0) break;
    got.append(tmp, static_cast<size_t>(n));
  }
  EXPECT_EQ(got.substr(got.find("\r\n\r\n") + 4), "5\r\nhello\r\n0\r\n\r\n") << absl::CEscape(got);
  ASSERT_TRUE(SendAll(up, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  std::string answer;
  ASSERT_TRUE(ReadUntil(client, answer,
                        [](const std::string& b) { return b.find("\r\n\r\nok") != b.npos; }));
  close(up);
  close(client);
  close(lfd);
}

// A backend thread that answers one request with a chunked, streamed response and reports how
// much request body it had seen at each step.
TEST(ServiceProxyTest, StreamsLargeBodiesBothWays) {
  constexpr size_t kTotal = 50u << 20;
  constexpr size_t kFirst = 1u << 20;
  int bport = 0;
  int lfd = Listen("127.0.0.23", &bport);
  absl::Notification backend_saw_first_part;
  absl::Notification client_saw_first_part;
  std::atomic<size_t> backend_total{0};
  std::thread backend([&] {
    int fd = AcceptWithin(lfd, kTimeout);
    if (fd < 0) return;
    std::string buf;
    // Header, then body bytes counted as they arrive.
    if (!ReadUntil(fd, buf,
                   [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; })) {
      close(fd);
      return;
    }
    size_t got = buf.size() - (buf.find("\r\n\r\n") + 4);
    char tmp[65536];
    while (got < kTotal) {
      if (got >= kFirst && !backend_saw_first_part.HasBeenNotified()) {
        backend_saw_first_part.Notify();
      }
      ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    backend_total = got;
    // Chunked response of kTotal bytes; the rest only after the client has seen the first MB.
    SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string chunk(kFirst, 'r');
    std::string framed = absl::StrCat(absl::Hex(chunk.size()), "\r\n", chunk, "\r\n");
    SendAll(fd, framed);
    client_saw_first_part.WaitForNotificationWithTimeout(kTimeout);
    for (size_t sent = kFirst; sent < kTotal; sent += kFirst) SendAll(fd, framed);
    SendAll(fd, "0\r\n\r\n");
    close(fd);
  });

  Registry registry;
  auto proxy = StartProxy(RouteOf({{100, {EndpointOf("t1", "127.0.0.23", bport)}}}), registry);
  ASSERT_NE(proxy, nullptr);
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(
      c, absl::StrCat("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ", kTotal, "\r\n\r\n")));
  std::string part(kFirst, 'q');
  ASSERT_TRUE(SendAll(c, part));
  // The backend sees the start of the body while most of it has not been sent yet.
  ASSERT_TRUE(backend_saw_first_part.WaitForNotificationWithTimeout(kTimeout));
  for (size_t sent = kFirst; sent < kTotal; sent += kFirst) ASSERT_TRUE(SendAll(c, part));
  // The response: its first megabyte arrives before the backend sends the rest.
  std::string buf;
  ASSERT_TRUE(ReadUntil(c, buf, [&](const std::string& b) {
    size_t h = b.find("\r\n\r\n");
    return h != std::string::npos && b.size() - h > kFirst;
  }));
  EXPECT_THAT(buf, HasSubstr("HTTP/1.1 200"));
  client_saw_first_part.Notify();
  ASSERT_TRUE(ReadUntil(c, buf, [](const std::string& b) {
    return b.size() >= 5 && b.compare(b.size() - 5, 5, "0\r\n\r\n") == 0;
  }));
  close(c);
  backend.join();
  close(lfd);
  EXPECT_EQ(backend_total.load(), kTotal);
  // De-chunk and count what the client got.
  size_t body = 0;
  size_t pos = buf.find("\r\n\r\n") + 4;
  for (;;) {
    size_t eol = buf.find("\r\n", pos);
    ASSERT_NE(eol, std::string::npos);
    size_t n = 0;
    ASSERT_TRUE(absl::SimpleHexAtoi(buf.substr(pos, eol - pos), &n));
    if (n == 0) break;
    body += n;
    pos = eol + 2 + n + 2;
  }
  EXPECT_EQ(body, kTotal);
}

// The proxy writes a response at once where the client socket takes it and continues
// asynchronously where it is full (relay::WriteNow): a client that reads late still gets every
// byte, in order, and a second response after it on the same connection.
TEST(ServiceProxyTest, ResponseLargerThanTheClientSocketTakesArrivesWhole) {
  // More than the socket buffers between the proxy and the client hold.
  constexpr size_t kBody = 32u << 20;
  std::string body(kBody, '\0');
  for (size_t i = 0; i < kBody; ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4099) % 26);
  int bport = 0;
  int lfd = Listen("127.0.0.25", &bport);
  std::thread backend([&] {
    int fd = AcceptWithin(lfd, kTimeout);
    if (fd < 0) return;
    std::string buf;
    for (int i = 0; i < 2; ++i) {
      if (!ReadUntil(fd, buf, [](const std::string& b) {
            return b.find("\r\n\r\n") != std::string::npos;
          })) {
        break;
      }
      buf.erase(0, buf.find("\r\n\r\n") + 4);
      const std::string& answer = i == 0 ? body : std::string("second");
      SendAll(fd, absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", answer.size(), "\r\n\r\n"));
      SendAll(fd, answer);
    }
    close(fd);
  });

  Registry registry;
  auto proxy = StartProxy(RouteOf({{100, {EndpointOf("t1", "127.0.0.25", bport)}}}), registry);
  ASSERT_NE(proxy, nullptr);
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Not read for a while: the proxy's writes fill the client's socket (not required for the
  // result, which must be the same either way).
  absl::SleepFor(absl::Milliseconds(200));
  std::string buf;
  auto whole = [&](const std::string& b) {
    size_t h = b.find("\r\n\r\n");
    return h != std::string::npos && b.size() - (h + 4) >= kBody;
  };
  ASSERT_TRUE(ReadUntil(c, buf, whole));
  const size_t h = buf.find("\r\n\r\n") + 4;
  EXPECT_THAT(buf.substr(0, h), HasSubstr(absl::StrCat("Content-Length: ", kBody)));
  EXPECT_EQ(buf.size() - h, kBody);
  EXPECT_TRUE(buf.compare(h, kBody, body) == 0) << "the body arrived altered";
  // The connection carries the next exchange.
  ASSERT_TRUE(SendAll(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string next;
  ASSERT_TRUE(ReadUntil(c, next, [](const std::string& b) {
    return b.size() >= 6 && b.compare(b.size() - 6, 6, "second") == 0;
  }));
  EXPECT_THAT(next, HasSubstr("HTTP/1.1 200"));
  close(c);
  backend.join();
  close(lfd);
}

TEST(ServiceProxyTest, TcpModeRelaysBytesAndHalfClose) {
  int bport = 0;
  int lfd = Listen("127.0.0.24", &bport);
  std::thread echo([&] {
    int fd = AcceptWithin(lfd, kTimeout);
    if (fd < 0) return;
    char tmp[4096];
    for (;;) {
      ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) break;
      SendAll(fd, std::string_view(tmp, static_cast<size_t>(n)));
    }
    SendAll(fd, "bye");
    close(fd);
  });
  Registry registry;
  auto proxy = StartProxy(RouteOf({{100, {EndpointOf("t1", "127.0.0.24", bport)}}}), registry,
                          ProxyMode::kTcp);
  ASSERT_NE(proxy, nullptr);
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "hello tcp"));
  std::string buf;
  ASSERT_TRUE(ReadUntil(c, buf, [](const std::string& b) { return b.size() >= 9; }));
  EXPECT_EQ(buf, "hello tcp");
  shutdown(c, SHUT_WR);  // the backend's answer after our EOF still arrives
  ReadUntil(c, buf, [](const std::string&) { return false; });
  EXPECT_EQ(buf, "hello tcpbye");
  close(c);
  echo.join();
  close(lfd);
  EXPECT_EQ(proxy->Snapshot().revisions[0].requests, 1u);
}

TEST(ServiceProxyTest, RetriesADeadEndpointWithoutFailingRequests) {
  App app = StartApp("127.0.0.31", "alive");
  ASSERT_GT(app.port, 0);
  int dead_port = FreePort();  // nothing listens there: connect is refused
  Registry registry;
  auto proxy = StartProxy(RouteOf({{100,
                                    {EndpointOf("dead", "127.0.0.1", dead_port),
                                     EndpointOf(app.task, app.ip, app.port)}}}),
                          registry);
  ASSERT_NE(proxy, nullptr);
  for (int i = 0; i < 50; ++i) {
    // A fresh client connection each time, so each request picks anew.
    auto r = test::HttpGet("127.0.0.1", proxy->port(), "/", kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->Header("X-Task-Id"), "alive");
  }
  ProxyStats stats = proxy->Snapshot();
  ASSERT_EQ(stats.revisions.size(), 1u);
  // Ejected after the first failure: one connect error, not one per request.
  EXPECT_EQ(stats.revisions[0].connect_errors, 1u);
  EXPECT_EQ(stats.revisions[0].responses_2xx, 50u);
  EXPECT_EQ(stats.revisions[0].responses_5xx, 0u);
}

TEST(ServiceProxyTest, A5xxDuringADeploymentIsRetriedOnAnotherRevision) {
  App stable = StartApp("127.0.0.51", "stable");
  App bad = StartApp("127.0.0.52", "bad", {{"ERROR_RATE", "1"}});
  ASSERT_GT(stable.port, 0);
  ASSERT_GT(bad.port, 0);
  Registry registry;
  auto proxy = StartProxy(RouteOf({{50, {EndpointOf(stable.task, stable.ip, stable.port)}},
                                   {50, {EndpointOf(bad.task, bad.ip, bad.port)}}}),
                          registry);
  ASSERT_NE(proxy, nullptr);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  for (int i = 0; i < 100; ++i) {
    auto r = (*conn)->Request(i % 2 ? "GET" : "HEAD", "/", "", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << i;
    EXPECT_EQ(r->Header("X-Task-Id"), "stable");
  }
  // The bad revision's answers still count against it: analysis sees its error rate.
  std::map<int64_t, RevisionStats> by_rev;
  for (const auto& r : proxy->Snapshot().revisions) by_rev[r.revision] = r;
  ASSERT_EQ(by_rev.size(), 2u);
  EXPECT_EQ(by_rev[1].responses_2xx, 100u);
  EXPECT_EQ(by_rev[2].responses_5xx, 50u);
  EXPECT_EQ(by_rev[2].responses_2xx, 0u);
  EXPECT_EQ(by_rev[2].requests, 50u);
  EXPECT_THAT(registry.Render(), HasSubstr("warren_proxy_retried_total{service=\"web\"} 50"));

  // A request with a body is not repeated: the client sees the 500.
  int failed_posts = 0;
  for (int i = 0; i < 10; ++i) {
    auto r = (*conn)->Request("POST", "/", "payload", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    failed_posts += r->status == 500 ? 1 : 0;
  }
  EXPECT_EQ(failed_posts, 5);

  // With one revision (no deployment) a 500 is the answer.
  proxy->Update(RouteOf({{100, {EndpointOf(bad.task, bad.ip, bad.port)}}}, {2}));
  auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500);
}

// After a blue/green switch blue has weight 0 but still runs (a fallback revision): a GET
// green answers with 500 is answered from blue, and counted as retried.
TEST(ServiceProxyTest, GreenAfterTheSwitchIsRetriedOnTheFallbackRevision) {
  App blue = StartApp("127.0.0.53", "blue");
  App green = StartApp("127.0.0.54", "green", {{"ERROR_RATE", "1"}});
  ASSERT_GT(blue.port, 0);
  ASSERT_GT(green.port, 0);
  Registry registry;
  v1::ServiceRoute route = RouteOf({{0, {EndpointOf(blue.task, blue.ip, blue.port)}},
                                    {100, {EndpointOf(green.task, green.ip, green.port)}}});
  route.mutable_revisions(0)->set_fallback(true);
  auto proxy = StartProxy(route, registry);
  ASSERT_NE(proxy, nullptr);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok()) << conn.status();
  for (int i = 0; i < 20; ++i) {
    auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << i;
    EXPECT_EQ(r->Header("X-Task-Id"), "blue");
  }
  std::map<int64_t, RevisionStats> by_rev;
  for (const auto& r : proxy->Snapshot().revisions) by_rev[r.revision] = r;
  EXPECT_EQ(by_rev[2].responses_5xx, 20u) << "green's errors still count for the analysis";
  EXPECT_EQ(by_rev[1].responses_2xx, 20u);
  EXPECT_THAT(registry.Render(), HasSubstr("warren_proxy_retried_total{service=\"web\"} 20"));

  // The fallback gets no request of its own, and without the flag nothing is retried.
  route.mutable_revisions(0)->set_fallback(false);
  proxy->Update(route);
  auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->Header("X-Task-Id"), "green");
}

TEST(ServiceProxyTest, NoEndpointIs503AndUnreachableIs502) {
  Registry registry;
  auto proxy = StartProxy(RouteOf({{100, {}}}), registry);
  ASSERT_NE(proxy, nullptr);
  auto r = test::HttpGet("127.0.0.1", proxy->port(), "/", kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 503);
  proxy->Update(RouteOf({{100, {EndpointOf("dead", "127.0.0.1", FreePort())}}}));
  r = test::HttpGet("127.0.0.1", proxy->port(), "/", kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(proxy->Snapshot().revisions[0].responses_5xx, 1u);
  EXPECT_EQ(proxy->Snapshot().revisions[0].connect_errors, 1u);
}

TEST(ServiceProxyTest, WeightsTenNinetyOverTenThousandRequests) {
  App v1 = StartApp("127.0.0.41", "v1-task");
  App v2 = StartApp("127.0.0.42", "v2-task");
  ASSERT_GT(v1.port, 0);
  ASSERT_GT(v2.port, 0);
  Registry registry;
  auto proxy = StartProxy(RouteOf({{10, {EndpointOf(v1.task, v1.ip, v1.port)}},
                                   {90, {EndpointOf(v2.task, v2.ip, v2.port)}}}),
                          registry);
  ASSERT_NE(proxy, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  std::atomic<int> to_v1{0}, to_v2{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
      if (!conn.ok()) {
        failed += kPerThread;
        return;
      }
      for (int i = 0; i < kPerThread; ++i) {
        auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
        if (!r.ok() || r->status != 200) {
          ++failed;
          continue;
        }
        auto task = r->Header("X-Task-Id");
        if (task == "v1-task") ++to_v1;
        if (task == "v2-task") ++to_v2;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(to_v1 + to_v2, 10000);
  // Within ±0.5 percentage points (smooth WRR makes it exact).
  EXPECT_NEAR(to_v1.load(), 1000, 50);
  ProxyStats stats = proxy->Snapshot();
  ASSERT_EQ(stats.revisions.size(), 2u);
  EXPECT_EQ(stats.revisions[0].requests + stats.revisions[1].requests, 10000u);
}

TEST(ServiceProxyTest, DrainingLetsInFlightFinishAndSendsNothingNew) {
  App a = StartApp("127.0.0.51", "old");
  App b = StartApp("127.0.0.52", "new");
  ASSERT_GT(a.port, 0);
  ASSERT_GT(b.port, 0);
  Registry registry;
  auto proxy = StartProxy(RouteOfApps({&a}), registry);
  ASSERT_NE(proxy, nullptr);
  absl::StatusOr<test::HttpClientResponse> slow;
  std::thread slow_client(
      [&] { slow = test::HttpGet("127.0.0.1", proxy->port(), "/slow?ms=500", kTimeout); });
  // Wait (bounded) until the slow request is in flight on the old task.
  bool in_flight = false;
  for (int i = 0; i < 500 && !in_flight; ++i) {
    auto m = test::HttpGet(a.ip, a.port, "/metrics", kTimeout);
    in_flight = m.ok() && m->body.find("testapp_inflight_requests 1") != std::string::npos;
    if (!in_flight) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(in_flight);
  proxy->Update(RouteOfApps({&b}));
  for (int i = 0; i < 20; ++i) {
    auto r = test::HttpGet("127.0.0.1", proxy->port(), "/", kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->Header("X-Task-Id"), "new");
  }
  slow_client.join();
  ASSERT_TRUE(slow.ok()) << slow.status();
  EXPECT_EQ(slow->status, 200);
  EXPECT_EQ(slow->Header("X-Task-Id"), "old");
}

TEST(ServiceProxyTest, ScaleFourToOneUnderLoadDropsNothing) {
  std::vector<App> apps;
  for (int i = 0; i < 4; ++i)
    apps.push_back(StartApp(absl::StrCat("127.0.0.", 61 + i), absl::StrCat("t", i)));
  for (const App& a : apps) ASSERT_GT(a.port, 0);
  Registry registry;
  auto proxy = StartProxy(RouteOfApps({&apps[0], &apps[1], &apps[2], &apps[3]}), registry);
  ASSERT_NE(proxy, nullptr);
  constexpr int kClients = 4;
  constexpr int kPerClient = 400;
  std::atomic<int> done{0}, failed{0};
  std::vector<std::string> errors(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::unique_ptr<HttpConnection> conn;
      for (int i = 0; i < kPerClient; ++i) {
        if (!conn) {
          auto cc = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
          if (!cc.ok()) {
            ++failed;
            continue;
          }
          conn = std::move(*cc);
        }
        auto r = conn->Request("GET", "/", "", {}, kTimeout);
        if (!r.ok() || r->status != 200) {
          ++failed;
          errors[c] = r.ok() ? absl::StrCat(r->status, " ", r->body) : r.status().ToString();
          conn.reset();
        } else if (r->Header("Connection") == "close") {
          conn.reset();
        }
        ++done;
      }
    });
  }
  // Scale down once the load is running: drop three endpoints, then stop those tasks the way
  // the worker does after the drain (SIGTERM; they finish what they received).
  for (int i = 0; i < 2000 && done.load() < kClients * kPerClient / 4; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  proxy->Update(RouteOfApps({&apps[0]}));
  for (int i = 1; i < 4; ++i) apps[i].process->Signal(SIGTERM);
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0) << errors[0] << errors[1] << errors[2] << errors[3];
  EXPECT_EQ(done.load(), kClients * kPerClient);
}

TEST(ServiceProxyTest, StopIsGraceful) {
  App a = StartApp("127.0.0.71", "t");
  ASSERT_GT(a.port, 0);
  Registry registry;
  auto proxy = StartProxy(RouteOfApps({&a}), registry);
  ASSERT_NE(proxy, nullptr);
  int port = proxy->port();
  absl::StatusOr<test::HttpClientResponse> slow;
  std::thread slow_client(
      [&] { slow = test::HttpGet("127.0.0.1", port, "/slow?ms=300", kTimeout); });
  bool in_flight = false;
  for (int i = 0; i < 500 && !in_flight; ++i) {
    auto m = test::HttpGet(a.ip, a.port, "/metrics", kTimeout);
    in_flight = m.ok() && m->body.find("testapp_inflight_requests 1") != std::string::npos;
    if (!in_flight) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(in_flight);
  EXPECT_TRUE(proxy->Stop(kTimeout));
  slow_client.join();
  ASSERT_TRUE(slow.ok()) << slow.status();
  EXPECT_EQ(slow->status, 200);
  EXPECT_FALSE(test::HttpGet("127.0.0.1", port, "/", absl::Seconds(1)).ok());
}

TEST(ProxyManagerTest, ReconcilesProxiesFromTheRoutingTable) {
  App a = StartApp("127.0.0.81", "t");
  ASSERT_GT(a.port, 0);
  Registry registry;
  ProxyManagerOptions o;
  o.proxy.registry = &registry;
  ProxyManager manager(o);
  const std::string host = test::UniqueLoopbackAddress();
  int p1 = FreePort(host);
  int p2 = FreePort(host);

  auto service = [&](const std::string& id, const std::string& name, int published) {
    v1::ServiceRoute r = RouteOfApps({&a});
    r.set_service_id(id);
    r.set_name(name);
    v1::Port* port = r.add_ports();
    port->set_target(a.port);
    port->set_published(published);
    port->set_host_ip(host);
    port->set_protocol("tcp");
    return r;
  };
  v1::RoutingTable table;
  *table.add_services() = service("s1", "web", p1);
  *table.add_services() = service("s2", "api", p2);
  ASSERT_TRUE(manager.Apply(table).ok());
  EXPECT_EQ(manager.size(), 2u);
  EXPECT_EQ(manager.BoundPort("s1", p1), p1);
  auto r = test::HttpGet(host, p2, "/", kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);

  // A second service on a taken port is refused by name; the rest still applies.
  v1::RoutingTable conflict = table;
  *conflict.add_services() = service("s3", "shop", p1);
  absl::Status s = manager.Apply(conflict);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("service shop port"));
  EXPECT_THAT(s.message(), HasSubstr("already published by service web"));
  EXPECT_EQ(manager.size(), 2u);

  std::vector<ProxyStats> stats = manager.Snapshot();
  ASSERT_EQ(stats.size(), 2u);

  // Removing a service stops its proxy.
  v1::RoutingTable smaller;
  *smaller.add_services() = service("s1", "web", p1);
  ASSERT_TRUE(manager.Apply(smaller).ok());
  EXPECT_EQ(manager.size(), 1u);
  EXPECT_EQ(manager.BoundPort("s2", p2), -1);
  EXPECT_FALSE(test::HttpGet(host, p2, "/", absl::Seconds(1)).ok());
  manager.Stop();
  EXPECT_EQ(manager.size(), 0u);
}

TEST(ProxyManagerTest, BindFailureNamesServiceAndPort) {
  int port = 0;
  int busy = Listen("127.0.0.1", &port);
  ProxyManager manager;
  v1::RoutingTable table;
  v1::ServiceRoute* r = table.add_services();
  r->set_service_id("s1");
  r->set_name("web");
  v1::Port* p = r->add_ports();
  p->set_target(8080);
  p->set_published(port);
  p->set_host_ip("127.0.0.1");
  absl::Status s = manager.Apply(table);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("service web port ", port)));
  close(busy);
}

}  // namespace
}  // namespace warren
