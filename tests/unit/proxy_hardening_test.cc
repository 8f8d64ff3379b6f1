// The proxy against hostile clients and backends: malformed and oversized messages, smuggling
// forms, slow and idle connections, connection limits. Each case must end with an error answer or
// a closed connection, never with a dead process.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "http/metrics.h"
#include "proxy/proxy.h"
#include "raw_socket.h"
#include "test_http_client.h"
#include "test_util.h"

namespace warren {
namespace {

using testing_util::WaitFor;

using test::AcceptWithin;
using test::ConnectTo;
using test::HttpConnection;
using test::Listen;
using test::ReadUntil;
using test::ReadUntilClosed;
using test::SendAll;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(10);

v1::ServiceRoute RouteTo(const std::string& ip, int port) {
  v1::ServiceRoute r;
  r.set_service_id("svc-web");
  r.set_name("web");
  auto* rev = r.add_revisions();
  rev->set_revision(1);
  rev->set_weight(100);
  auto* e = rev->add_endpoints();
  e->set_task_id("t1");
  e->set_address(ip);
  e->set_port(port);
  return r;
}

// An in-process backend that answers every request with "ok", the body size and the headers
// it received, and counts requests.
class EchoBackend {
 public:
  explicit EchoBackend(const std::string& ip) {
    auto s = HttpServer::Start(absl::StrCat(ip, ":0"), [this](const HttpRequest& r) {
      requests_++;
      std::string out = absl::StrCat("ok ", r.body.size(), "\n");
      for (const auto& [k, v] : r.headers) absl::StrAppend(&out, k, "=", v, "\n");
      return HttpResponse::Text(200, out);
    });
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) server_ = std::move(*s);
    ip_ = ip;
  }
  v1::ServiceRoute route() const { return RouteTo(ip_, server_ ? server_->port() : 1); }
  HttpServer& server() { return *server_; }
  int requests() const { return requests_; }

 private:
  std::atomic<int> requests_{0};
  std::string ip_;
  std::unique_ptr<HttpServer> server_;
};

std::unique_ptr<ServiceProxy> StartProxy(const v1::ServiceRoute& route, Registry& registry,
                                         ServiceProxyOptions o = {}) {
  o.host_ip = "127.0.0.1";
  o.port = 0;
  o.registry = &registry;
  auto p = ServiceProxy::Start(route, o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

// A backend thread that answers the requests on each connection it accepts with the raw
// responses given for that connection, one per request head, then waits for the proxy to close
// the connection. Declare it before the proxy: the proxy must close first.
class ScriptedBackend {
 public:
  ScriptedBackend(const std::string& ip, std::vector<std::vector<std::string>> connections)
      : ip_(ip), lfd_(Listen(ip, &port_)) {
    thread_ = std::thread([this, connections = std::move(connections)] {
      for (const auto& answers : connections) {
        int fd = AcceptWithin(lfd_, kTimeout);
        if (fd < 0) return;
        std::string in;
        for (const std::string& answer : answers) {
          if (!ReadUntil(fd, in,
                         [](const std::string& b) { return b.find("\r\n\r\n") != b.npos; })) {
            break;
          }
          in.erase(0, in.find("\r\n\r\n") + 4);
          SendAll(fd, answer);
        }
        std::string rest;
        ReadUntilClosed(fd, rest, kTimeout);
        close(fd);
      }
    });
  }
  ~ScriptedBackend() {
    thread_.join();
    close(lfd_);
  }
  v1::ServiceRoute route() const { return RouteTo(ip_, port_); }

 private:
  std::string ip_;
  int port_ = 0;
  int lfd_;
  std::thread thread_;
};

// A proxy in front of an EchoBackend.
struct EchoProxy {
  explicit EchoProxy(const std::string& ip, ServiceProxyOptions o = {}) : backend(ip) {
    proxy = StartProxy(backend.route(), registry, std::move(o));
  }
  EchoBackend backend;
  Registry registry;
  std::unique_ptr<ServiceProxy> proxy;
};

// The proxy still answers a plain request on a new connection.
void ExpectServes(ServiceProxy& proxy) {
  auto r = test::HttpDo("127.0.0.1", proxy.port(), "GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

std::string ChunkedPost(const std::string& trailer) {
  return absl::StrCat("POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                      "5\r\nhello\r\n0\r\n", trailer, "\r\n");
}

// --- D1: a 64 KiB trailer field made Beast throw std::length_error on an io thread, and the
// process died in std::terminate. ----------------------------------------------------------------

TEST(ProxyHardeningTest, RequestTrailerOf64KiBIsRefusedAndTheProxyServesOn) {
  EchoProxy echo("127.0.0.61");
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  for (size_t size : {size_t{65535}, size_t{70000}}) {
    SCOPED_TRACE(size);
    auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)
                    ->SendRaw(ChunkedPost(absl::StrCat("X-Big: ", std::string(size, 'a'), "\r\n")),
                              kTimeout)
                    .ok());
    auto r = (*conn)->ReadResponse(kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 431);
    EXPECT_TRUE((*conn)->WaitClosed(kTimeout));
    ExpectServes(*proxy);
  }
}

// With a header limit above 64 KiB the field fits in the read buffer and reaches Beast's
// basic_fields, which throws: the exception must end only this request.
TEST(ProxyHardeningTest, FieldsTooLargeForBeastAreRefusedWithALargeHeaderLimit) {
  ServiceProxyOptions o;
  o.max_header_bytes = 1 << 20;
  EchoProxy echo("127.0.0.61", o);
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  const std::string big(70000, 'a');
  for (const std::string& request :
       {ChunkedPost(absl::StrCat("X-Big: ", big, "\r\n")),
        absl::StrCat("GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", big, "\r\n\r\n")}) {
    auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->SendRaw(request, kTimeout).ok());
    auto r = (*conn)->ReadResponse(kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 431);
    ExpectServes(*proxy);
  }
}

// Beast 1.74 parses the header fields of its first read and its header_limit bounds only what is
// buffered after that: a head of many small fields could exceed the limit by that first read.
TEST(ProxyHardeningTest, ARequestHeadOfManySmallFieldsIsBoundedTo64KiB) {
  EchoProxy echo("127.0.0.61");
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  const std::string head = test::HeadOfSmallFields((64 << 10) + 200);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  // The first read (512 bytes) takes a dozen fields, then the rest arrives.
  ASSERT_TRUE((*conn)->SendRaw(head.substr(0, 500), kTimeout).ok());
  absl::SleepFor(absl::Milliseconds(50));  // pacing
  ASSERT_TRUE((*conn)->SendRaw(head.substr(500), kTimeout).ok());
  auto r = (*conn)->ReadResponse(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(backend.requests(), 0);
  ExpectServes(*proxy);
}

TEST(ProxyHardeningTest, ManyTrailerFieldsAreBoundedLikeAHeader) {
  EchoProxy echo("127.0.0.61");
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  std::string trailer;
  for (int i = 0; i < 100; ++i)
    absl::StrAppend(&trailer, "X-T", i, ": ", std::string(2000, 'b'), "\r\n");
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->SendRaw(ChunkedPost(trailer), kTimeout).ok());
  auto r = (*conn)->ReadResponse(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 431);
  // A small trailer is still fine.
  auto ok = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(ok.ok());
  ASSERT_TRUE((*ok)->SendRaw(ChunkedPost("X-Checksum: abc\r\n"), kTimeout).ok());
  auto r2 = (*ok)->ReadResponse(kTimeout);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->status, 200);
  EXPECT_THAT(r2->body, ::testing::StartsWith("ok 5\n"));
}

// Beast adds a chunked body's trailer fields to the message's fields. A message read whole before
// its head went out carried them in the head: a trailer "Host" reached the backend as a second
// Host header (found by tests/fuzz/proxy_http_fuzz). Trailers are dropped, in both directions.
TEST(ProxyHardeningTest, ATrailerNeverBecomesAHeaderOfTheForwardedRequest) {
  EchoProxy echo("127.0.0.61");
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  // One write: the proxy reads the body and its trailer before it writes the head.
  ASSERT_TRUE((*conn)->SendRaw(ChunkedPost("Host: evil\r\nX-Smuggled: 1\r\n"), kTimeout).ok());
  auto r = (*conn)->ReadResponse(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->body, ::testing::StartsWith("ok 5\n"));
  EXPECT_THAT(r->body, HasSubstr("Host=h\n"));
  EXPECT_THAT(r->body, ::testing::Not(HasSubstr("evil")));
  EXPECT_THAT(r->body, ::testing::Not(HasSubstr("X-Smuggled")));
  EXPECT_EQ(backend.requests(), 1);
}

TEST(ProxyHardeningTest, ATrailerNeverBecomesAHeaderOfTheRelayedResponse) {
  ScriptedBackend backend(
      "127.0.0.62", {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                      "5\r\nhello\r\n0\r\nX-Smuggled: 1\r\nSet-Cookie: s=1\r\n\r\n"}});
  Registry registry;
  auto proxy = StartProxy(backend.route(), registry);
  ASSERT_NE(proxy, nullptr);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->SendRaw("GET / HTTP/1.1\r\nHost: h\r\n\r\n", kTimeout).ok());
  auto r = (*conn)->ReadResponse(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  for (const auto& [key, value] : r->headers) {
    EXPECT_NE(key, "X-Smuggled");
    EXPECT_NE(key, "Set-Cookie");
  }
  proxy->Stop(kTimeout);
}

TEST(ProxyHardeningTest, ResponseTrailerOf64KiBClosesTheClientAndTheProxyServesOn) {
  // First connection: a response whose trailer is too large; second: a normal answer.
  ScriptedBackend backend(
      "127.0.0.62",
      {{absl::StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                     "5\r\nhello\r\n0\r\nX-Big: ", std::string(65535, 'a'), "\r\n\r\n")},
       {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"}});
  Registry registry;
  auto proxy = StartProxy(backend.route(), registry);
  ASSERT_NE(proxy, nullptr);
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  std::string got;
  // The head and the first chunk went out before the trailer arrived; the body never ends.
  EXPECT_TRUE(ReadUntilClosed(c, got, kTimeout));
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(got, ::testing::Not(HasSubstr("\r\n0\r\n\r\n"))) << absl::CEscape(got);
  close(c);
  ExpectServes(*proxy);
}

// An HTTP/1.0 client sees the end of a body of unknown length only as the connection's end. When
// the task's answer breaks off, an orderly close made the cut body look whole (found by
// tests/fuzz/proxy_http_fuzz): the proxy resets the connection instead.
TEST(ProxyHardeningTest, ACutAnswerToAnHttp10ClientEndsInAReset) {
  int port = 0;
  int lfd = Listen("127.0.0.70", &port);
  std::thread backend([lfd] {
    int fd = AcceptWithin(lfd, kTimeout);
    if (fd < 0) return;
    std::string in;
    if (ReadUntil(fd, in, [](const std::string& b) { return b.find("\r\n\r\n") != b.npos; })) {
      SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    }
    close(fd);
  });
  Registry registry;
  auto proxy = StartProxy(RouteTo("127.0.0.70", port), registry);
  ASSERT_NE(proxy, nullptr);
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "GET / HTTP/1.0\r\nHost: h\r\n\r\n"));
  std::string got;
  int end = 0;  // 0 while reading, then the errno of the failed read (0 for an orderly end)
  const absl::Time deadline = absl::Now() + kTimeout;
  while (absl::Now() < deadline) {
    pollfd p{c, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    char tmp[4096];
    ssize_t n = recv(c, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n > 0) {
      got.append(tmp, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    end = n == 0 ? -1 : errno;
    break;
  }
  backend.join();
  close(c);
  close(lfd);
  EXPECT_THAT(got, HasSubstr("HTTP/1.0 200 OK"));
  EXPECT_EQ(end, ECONNRESET) << "the connection ended in order after " << absl::CEscape(got);
  proxy->Stop(kTimeout);
}

// A task's response head is bounded like a request's: one field of 64 KiB or more (which
// Beast's basic_fields throws on) and 80 KB of smaller fields (which passed) are both a 502.
TEST(ProxyHardeningTest, ResponseHeadOver64KiBIs502AndTheProxyServesOn) {
  std::string many_fields;
  for (int i = 0; i < 40; ++i)
    absl::StrAppend(&many_fields, "X-F", i, ": ", std::string(2000, 'f'), "\r\n");
  ScriptedBackend backend(
      "127.0.0.69",
      {{absl::StrCat("HTTP/1.1 200 OK\r\nX-Big: ", std::string(70000, 'a'),
                     "\r\nContent-Length: 2\r\n\r\nok")},
       {absl::StrCat("HTTP/1.1 200 OK\r\n", many_fields, "Content-Length: 2\r\n\r\nok")},
       {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"}});
  Registry registry;
  auto proxy = StartProxy(backend.route(), registry);
  ASSERT_NE(proxy, nullptr);
  for (int i = 0; i < 2; ++i) {
    auto r = test::HttpDo("127.0.0.1", proxy->port(), "GET", "/", "", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_EQ(r->status, 502) << i;
  }
  ExpectServes(*proxy);
}

// A response that has no body (to HEAD, 204, 304) but names a Transfer-Encoding was relayed
// with a last chunk "0\r\n\r\n", which the client read as the start of the next response
// (found by tests/fuzz/proxy_http_fuzz).
TEST(ProxyHardeningTest, BodylessResponsesNeverCarryAChunkedEnd) {
  ScriptedBackend backend("127.0.0.67",
                          {{
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",  // to HEAD
                              "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
                              "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
                              "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
                          }});
  Registry registry;
  auto proxy = StartProxy(backend.route(), registry);
  ASSERT_NE(proxy, nullptr);
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  const std::vector<std::pair<std::string, int>> requests = {
      {"HEAD", 200}, {"GET", 204}, {"GET", 304}, {"GET", 200}};
  for (const auto& [method, status] : requests) {
    ASSERT_TRUE(
        (*conn)->SendRaw(absl::StrCat(method, " / HTTP/1.1\r\nHost: h\r\n\r\n"), kTimeout).ok());
    auto r = (*conn)->ReadResponse(kTimeout, method == "HEAD");
    ASSERT_TRUE(r.ok()) << method << " " << status << ": " << r.status();
    EXPECT_EQ(r->status, status);
    EXPECT_FALSE(r->Header("Transfer-Encoding").has_value()) << status;
    if (status == 200 && method == "GET") {
      EXPECT_EQ(r->body, "last");
    }
  }
  conn->reset();
  proxy->Stop(kTimeout);
}

// The proxy re-frames response bodies; a transfer coding it does not decode cannot be re-framed
// faithfully (found by tests/fuzz/proxy_http_fuzz: a garbled coding list made the relay send a
// body without any framing on a kept-alive connection).
TEST(ProxyHardeningTest, ResponsesWithCodingsOtherThanChunkedAre502) {
  for (const std::string& te : {std::string("xchunked"), std::string("gzip, chunked"),
                                std::string("chunked, chunked"), std::string("chunk,d\r\n\tx")}) {
    SCOPED_TRACE(te);
    ScriptedBackend backend("127.0.0.68", {{absl::StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: ",
                                                         te, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n")}});
    Registry registry;
    auto proxy = StartProxy(backend.route(), registry);
    ASSERT_NE(proxy, nullptr);
    auto r = test::HttpDo("127.0.0.1", proxy->port(), "GET", "/", "", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 502);
    proxy->Stop(kTimeout);
  }
}

// --- D11: request smuggling. The proxy and the backend must agree on where a request ends, so
// every ambiguous framing is refused before anything reaches the backend (RFC 9112 6.1, 6.3).

struct Framing {
  const char* name;
  std::string request;
  int status;
};

void PrintTo(const Framing& f, std::ostream* os) { *os << f.name; }

class ProxyFramingTest : public testing::TestWithParam<Framing> {};

TEST_P(ProxyFramingTest, IsRefusedAndNeverForwarded) {
  const Framing& f = GetParam();
  EchoProxy echo("127.0.0.63");
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE((*conn)->SendRaw(f.request, kTimeout).ok());
  auto r = (*conn)->ReadResponse(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, f.status) << r->body;
  // The connection is closed: what follows the refused head cannot be framed.
  EXPECT_TRUE((*conn)->WaitClosed(kTimeout));
  EXPECT_EQ(backend.requests(), 0);
  ExpectServes(*proxy);
}

constexpr char kPost[] = "POST /x HTTP/1.1\r\nHost: h\r\n";

INSTANTIATE_TEST_SUITE_P(
    Smuggling, ProxyFramingTest,
    testing::Values(
        Framing{"UnknownCoding", absl::StrCat(kPost, "Transfer-Encoding: xchunked\r\n\r\n"), 400},
        Framing{
            "UnknownCodingWithLength",
            absl::StrCat(kPost, "Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello"),
            400},
        Framing{"ChunkedThenLength",
                absl::StrCat(kPost,
                             "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                             "5\r\nhello\r\n0\r\n\r\n"),
                400},
        Framing{"LengthThenChunked",
                absl::StrCat(kPost,
                             "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n0\r\n\r\n"),
                400},
        Framing{"ChunkedNotLast",
                absl::StrCat(kPost, "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), 400},
        Framing{"ChunkedTwiceInOneField",
                absl::StrCat(kPost, "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400},
        Framing{"ChunkedTwiceInTwoFields",
                absl::StrCat(kPost,
                             "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "0\r\n\r\n"),
                400},
        Framing{"OtherCodingBeforeChunked",
                absl::StrCat(kPost, "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501},
        Framing{"OtherCodingInASecondField",
                absl::StrCat(kPost,
                             "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "0\r\n\r\n"),
                501},
        Framing{"EmptyCoding", absl::StrCat(kPost, "Transfer-Encoding: \r\n\r\n"), 400},
        Framing{"ChunkedInHttp10",
                "POST /x HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        Framing{"SpaceBeforeColon",
                absl::StrCat(kPost, "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), 400},
        Framing{"TwoDifferentLengths",
                absl::StrCat(kPost, "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 400},
        Framing{"TwoDifferentLengthsInOneField",
                absl::StrCat(kPost, "Content-Length: 5, 6\r\n\r\nhello!"), 400},
        Framing{"SignedLength", absl::StrCat(kPost, "Content-Length: +5\r\n\r\nhello"), 400},
        Framing{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        Framing{"NoHostInHttp11", "GET / HTTP/1.1\r\n\r\n", 400},
        Framing{"BareLineFeeds", "GET / HTTP/1.1\nHost: h\n\n", 400},
        Framing{"BadChunkSize", absl::StrCat(kPost, "Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
                400},
        Framing{"ChunkSizeOverflow",
                absl::StrCat(kPost, "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n"),
                400},
        Framing{"BadChunkExtension",
                absl::StrCat(kPost, "Transfer-Encoding: chunked\r\n\r\n5;=\r\nhello\r\n0\r\n\r\n"),
                400},
        Framing{"HugeChunkExtension",
                absl::StrCat(kPost, "Transfer-Encoding: chunked\r\n\r\n5;x=",
                             std::string(70000, 'e'), "\r\nhello\r\n0\r\n\r\n"),
                431}),
    [](const testing::TestParamInfo<Framing>& info) { return std::string(info.param.name); });

// What RFC 9112 lets a proxy accept is forwarded in a form the backend cannot read differently.
TEST(ProxyHardeningTest, AcceptedFramingsReachTheBackendNormalized) {
  EchoProxy echo("127.0.0.63");
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  struct Case {
    std::string request;
    std::vector<std::string> body_has;
  };
  std::vector<Case> cases = {
      // The same length twice is one length; the backend gets it once.
      {absl::StrCat(kPost, "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
       {"ok 5\n", "Content-Length=5\n"}},
      {absl::StrCat(kPost, "Content-Length: 5, 5\r\n\r\nhello"), {"ok 5\n", "Content-Length=5\n"}},
      // Chunk extensions are valid and dropped when the body is re-chunked.
      {absl::StrCat(kPost,
                    "Transfer-Encoding: chunked\r\n\r\n5;name=\"v a\";x\r\nhello\r\n"
                    "0;last=1\r\n\r\n"),
       {"ok 5\n"}},
      // An obs-fold is replaced by a space before forwarding (RFC 9112 5.2).
      {absl::StrCat(kPost, "X-Folded: one\r\n two\r\nContent-Length: 0\r\n\r\n"),
       {"X-Folded=one two\n"}},
      {absl::StrCat(kPost, "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n"), {"ok 0\n"}},
      // Forwarded as HTTP/1.1, which needs a Host (found by tests/fuzz/proxy_http_fuzz).
      {"GET / HTTP/1.0\r\n\r\n", {"Host=\n"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::CEscape(c.request));
    auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->SendRaw(c.request, kTimeout).ok());
    auto r = (*conn)->ReadResponse(kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    for (const std::string& want : c.body_has) EXPECT_THAT(r->body, HasSubstr(want));
  }
}

// --- D4: connections held open by slow or idle clients are closed by time, and the connections
// of a published port are limited. --------------------------------------------------------------

double CounterValue(Registry& registry, const std::string& name) {
  return registry.AddCounter(name, "", {"service"}).WithLabels({"web"}).Value();
}

ServiceProxyOptions ShortTimeouts(absl::Duration header, absl::Duration idle) {
  ServiceProxyOptions o;
  o.header_timeout = header;
  o.idle_timeout = idle;
  return o;
}

TEST(ProxyTimeoutTest, AHeadSentByteByByteIsCutAtTheHeaderTimeoutWith408) {
  EchoProxy echo("127.0.0.64", ShortTimeouts(absl::Milliseconds(300), absl::Seconds(30)));
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  const absl::Time start = absl::Now();
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "GET / HTTP/1.1\r\nHost: h\r\n"));
  // Slowloris: a header line every 20 ms keeps the connection busy but never ends the head.
  std::string got;
  bool closed = false;
  for (int i = 0; i < 500 && !closed; ++i) {
    if (!SendAll(c, absl::StrCat("X-", i, ": x\r\n"))) break;
    closed = ReadUntilClosed(c, got, absl::Milliseconds(20));
  }
  EXPECT_TRUE(closed || ReadUntilClosed(c, got, kTimeout));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_THAT(got, HasSubstr("408 Request Timeout"));
  EXPECT_EQ(CounterValue(registry, "warren_proxy_connections_timed_out_total"), 1);
  close(c);
  EXPECT_EQ(backend.requests(), 0);
  ExpectServes(*proxy);
}

TEST(ProxyTimeoutTest, AConnectionThatSendsNothingIsClosedAtTheHeaderTimeout) {
  EchoProxy echo("127.0.0.64", ShortTimeouts(absl::Milliseconds(200), absl::Seconds(30)));
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  const absl::Time start = absl::Now();
  int c = ConnectTo(proxy->port());
  std::string got;
  EXPECT_TRUE(ReadUntilClosed(c, got, kTimeout));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_EQ(got, "");  // nothing was asked, nothing is answered
  close(c);
}

TEST(ProxyTimeoutTest, AnIdleKeepAliveConnectionIsClosedAtTheIdleTimeout) {
  EchoProxy echo("127.0.0.64", ShortTimeouts(absl::Seconds(30), absl::Milliseconds(300)));
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  // The proxy's idle timer starts when it has written the answer, before the client has read
  // it: the time from before the request is a bound the close can never beat.
  const absl::Time asked = absl::Now();
  auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE((*conn)->WaitClosed(kTimeout));
  EXPECT_GE(absl::Now() - asked, absl::Milliseconds(300));
}

// The header timeout of the first request counts from the accept; later requests on the same
// connection get their own.
TEST(ProxyTimeoutTest, ABusyKeepAliveConnectionOutlivesTheHeaderTimeout) {
  EchoProxy echo("127.0.0.64", ShortTimeouts(absl::Milliseconds(200), absl::Seconds(30)));
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(conn.ok());
  const absl::Time start = absl::Now();
  int requests = 0;
  while (absl::Now() - start < absl::Milliseconds(700)) {
    auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);
    ASSERT_TRUE(r.ok()) << r.status() << " after " << requests << " requests";
    ++requests;
    absl::SleepFor(absl::Milliseconds(50));  // pacing, well under the header timeout
  }
  EXPECT_EQ(backend.server().connection_count(), 1);
}

TEST(ProxyTimeoutTest, AStalledRequestBodyIsClosedAtTheIdleTimeout) {
  EchoProxy echo("127.0.0.64", ShortTimeouts(absl::Seconds(30), absl::Milliseconds(300)));
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello"));
  const absl::Time sent = absl::Now();
  std::string got;
  EXPECT_TRUE(ReadUntilClosed(c, got, kTimeout));
  EXPECT_GE(absl::Now() - sent, absl::Milliseconds(300));
  EXPECT_EQ(CounterValue(registry, "warren_proxy_connections_timed_out_total"), 1);
  close(c);
  ExpectServes(*proxy);
}

TEST(ProxyTimeoutTest, AClientThatStopsReadingIsClosedAtTheIdleTimeout) {
  auto big = HttpServer::Start("127.0.0.65:0", [](const HttpRequest&) {
    return HttpResponse::Text(200, std::string(32 << 20, 'z'));
  });
  ASSERT_TRUE(big.ok()) << big.status();
  Registry registry;
  auto proxy = StartProxy(RouteTo("127.0.0.65", (*big)->port()), registry,
                          ShortTimeouts(absl::Seconds(30), absl::Milliseconds(300)));
  ASSERT_NE(proxy, nullptr);
  int c = ConnectTo(proxy->port());
  ASSERT_TRUE(SendAll(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  // The proxy's writes stall on the full socket buffers and it gives up.
  EXPECT_TRUE(WaitFor(
      [&] { return CounterValue(registry, "warren_proxy_connections_timed_out_total") == 1; }));
  std::string got;
  EXPECT_TRUE(ReadUntilClosed(c, got, kTimeout)) << got.size();
  EXPECT_LT(got.size(), size_t{32} << 20);
  close(c);
}

TEST(ProxyLimitTest, ConnectionsOverThePortLimitGet503) {
  ServiceProxyOptions o;
  o.max_connections = 3;
  EchoProxy echo("127.0.0.66", o);
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  std::vector<std::unique_ptr<HttpConnection>> held;
  for (int i = 0; i < 3; ++i) {
    auto conn = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
    ASSERT_TRUE(conn.ok());
    auto r = (*conn)->Request("GET", "/", "", {}, kTimeout);  // accepted and served
    ASSERT_TRUE(r.ok()) << r.status();
    held.push_back(std::move(*conn));
  }
  auto over = test::HttpDo("127.0.0.1", proxy->port(), "GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(over->status, 503);
  EXPECT_EQ(over->body, "too many connections\n");
  EXPECT_EQ(CounterValue(registry, "warren_proxy_connections_refused_total"), 1);
  // A closed connection frees its place.
  held.pop_back();
  EXPECT_TRUE(WaitFor([&] {
    auto r = test::HttpDo("127.0.0.1", proxy->port(), "GET", "/", "", {}, kTimeout);
    return r.ok() && r->status == 200;
  }));
}

TEST(ProxyLimitTest, TheDescriptorBudgetCountsClientsUpstreamsAndThePool) {
  DescriptorBudget budget(5);
  ServiceProxyOptions o;
  o.budget = &budget;
  EchoProxy echo("127.0.0.66", o);
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  auto a = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->Request("GET", "/", "", {}, kTimeout).ok());
  // Client + its upstream; the upstream went to the pool with a unit of its own.
  EXPECT_TRUE(WaitFor([&] { return budget.in_use() == 3; })) << budget.in_use();
  auto b = HttpConnection::Connect("127.0.0.1", proxy->port(), kTimeout);
  ASSERT_TRUE(b.ok());
  auto rb = (*b)->Request("GET", "/", "", {}, kTimeout);  // takes the pooled upstream
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(rb->status, 200);
  auto c = test::HttpDo("127.0.0.1", proxy->port(), "GET", "/", "", {}, kTimeout);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->status, 503);  // 2 + 2 held, 1 pooled: no room for 2 more
  a->reset();
  b->reset();
  // Only the pooled upstream connection is left.
  EXPECT_TRUE(WaitFor([&] { return budget.in_use() == 1; })) << budget.in_use();
  EXPECT_LE(budget.in_use(), budget.limit());
}

// Running out of descriptors fails accept(2) until one is free; the accept loop waits it out
// and serves the connections that queued meanwhile.
TEST(ProxyLimitTest, TheAcceptLoopRecoversAfterEmfile) {
  DescriptorBudget budget;
  ServiceProxyOptions o;
  o.budget = &budget;
  EchoProxy echo("127.0.0.66", o);
  ASSERT_NE(echo.proxy, nullptr);
  auto& [backend, registry, proxy] = echo;
  // Warm the pool so the request needs no new upstream descriptor, and let that connection's
  // client side close: no descriptor may be freed while the process is out of them.
  ExpectServes(*proxy);
  ASSERT_TRUE(WaitFor([&] { return budget.in_use() == 1; })) << budget.in_use();
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  {
    test::DescriptorExhaustion exhausted;
    ASSERT_TRUE(exhausted.ok());
    ASSERT_TRUE(test::ConnectExisting(client, proxy->port()));
    ASSERT_TRUE(SendAll(client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    // The accept fails for a while (EMFILE): no answer yet.
    pollfd p{client, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 100), 0);
  }
  std::string got;
  timeval tv{10, 0};
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  EXPECT_TRUE(ReadUntil(client, got, [](const std::string& b) { return b.find("ok 0") != b.npos; }))
      << absl::CEscape(got);
  close(client);
}

}  // namespace
}  // namespace warren
