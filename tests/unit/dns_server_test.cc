#include "dns/dns_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <boost/asio.hpp>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "dns/dns_message.h"
#include "dns/service_resolver.h"
#include "raw_socket.h"
#include "test_util.h"

namespace warren::dns {
namespace {

using testing_util::WaitFor;

namespace net = boost::asio;
using net::ip::tcp;
using net::ip::udp;

v1::RoutingTable Table() {
  v1::RoutingTable t;
  t.set_version(3);
  auto* web = t.add_services();
  web->set_name("web");
  auto* port = web->add_ports();
  port->set_name("http");
  port->set_target(8080);
  auto* rev = web->add_revisions();
  rev->set_revision(1);
  rev->set_weight(100);
  for (int i = 1; i <= 2; ++i) {
    auto* e = rev->add_endpoints();
    e->set_address("127.1.0." + std::to_string(i));
    e->set_port(8080);
    e->set_slot(i);
  }
  auto* big = t.add_services();
  big->set_name("big");
  auto* brev = big->add_revisions();
  brev->set_revision(1);
  brev->set_weight(100);
  for (int i = 0; i < 60; ++i) {
    auto* e = brev->add_endpoints();
    e->set_address("10.0.1." + std::to_string(i));
    e->set_slot(i);
  }
  return t;
}

std::vector<uint8_t> QueryWire(const std::string& name, uint16_t type, uint16_t id) {
  Message m;
  m.header.id = id;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  return *SerializeMessage(m);
}

void SetReceiveTimeout(int fd, int seconds) {
  timeval tv{seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

absl::StatusOr<Message> AskUdp(uint16_t port, const std::vector<uint8_t>& query) {
  net::io_context ioc;
  udp::socket s(ioc, udp::endpoint(udp::v4(), 0));
  SetReceiveTimeout(s.native_handle(), 5);
  s.send_to(net::buffer(query), udp::endpoint(net::ip::make_address("127.0.0.1"), port));
  std::array<uint8_t, 65535> buf;
  udp::endpoint from;
  boost::system::error_code ec;
  size_t n = s.receive_from(net::buffer(buf), from, 0, ec);
  if (ec) return absl::DeadlineExceededError("no UDP answer: " + ec.message());
  return ParseMessage(std::span<const uint8_t>(buf.data(), n));
}

absl::StatusOr<Message> ReadTcpAnswer(tcp::socket& s) {
  std::array<uint8_t, 2> len;
  boost::system::error_code ec;
  net::read(s, net::buffer(len), ec);
  if (ec) return absl::UnavailableError("tcp read: " + ec.message());
  std::vector<uint8_t> body((len[0] << 8) | len[1]);
  net::read(s, net::buffer(body), ec);
  if (ec) return absl::UnavailableError("tcp read: " + ec.message());
  return ParseMessage(body);
}

// A query as sent over TCP: its length, then the message (RFC 1035 4.2.2).
std::vector<uint8_t> Framed(const std::vector<uint8_t>& q) {
  std::vector<uint8_t> framed = {uint8_t(q.size() >> 8), uint8_t(q.size())};
  framed.insert(framed.end(), q.begin(), q.end());
  return framed;
}

void WriteTcpQuery(tcp::socket& s, const std::vector<uint8_t>& q) {
  net::write(s, net::buffer(Framed(q)));
}

class DnsServerTest : public ::testing::Test {
 protected:
  void Start(ResolverOptions ro, DnsServerOptions so = {}) {
    resolver_ = std::make_unique<ServiceResolver>(ro);
    ASSERT_TRUE(resolver_->Update(Table()).ok());
    so.address = "127.0.0.1";
    so.port = 0;
    so.threads = 2;
    server_ = std::make_unique<DnsServer>(so, *resolver_);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NE(server_->port(), 0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  std::unique_ptr<ServiceResolver> resolver_;
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerTest, AnswersOverUdp) {
  Start({});
  auto m = AskUdp(server_->port(), QueryWire("web.warren", kTypeA, 4242));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.id, 4242);
  EXPECT_EQ(m->answers.size(), 2u);
  auto big = AskUdp(server_->port(), QueryWire("big.warren", kTypeA, 1));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_TRUE(big->header.tc);
  // Garbage gets no answer but does not stop the server.
  net::io_context ioc;
  udp::socket s(ioc, udp::endpoint(udp::v4(), 0));
  s.send_to(net::buffer(std::string("xx")),
            udp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  EXPECT_TRUE(AskUdp(server_->port(), QueryWire("web", kTypeA, 2)).ok());
  // The garbage may land on the other SO_REUSEPORT socket, read by another thread: wait for
  // it to be counted (bounded), rather than racing that thread.
  for (int i = 0; i < 200 && server_->stats().udp_queries < 4u; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(server_->stats().udp_queries, 4u);
}

TEST_F(DnsServerTest, SeveralQueriesPerTcpConnection) {
  Start({});
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  SetReceiveTimeout(s.native_handle(), 5);
  // Two queries written back to back before reading either.
  WriteTcpQuery(s, QueryWire("web.warren", kTypeA, 10));
  WriteTcpQuery(s, QueryWire("big.warren", kTypeA, 11));
  auto a = ReadTcpAnswer(s);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->header.id, 10);
  EXPECT_EQ(a->answers.size(), 2u);
  auto b = ReadTcpAnswer(s);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->header.id, 11);
  EXPECT_FALSE(b->header.tc);
  EXPECT_EQ(b->answers.size(), 60u);
}

TEST_F(DnsServerTest, IdleTcpConnectionIsClosed) {
  DnsServerOptions so;
  so.tcp_idle_timeout = std::chrono::milliseconds(100);
  Start({}, so);
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  // The receive timeout only bounds the test; the server must close well before it.
  SetReceiveTimeout(s.native_handle(), 10);
  std::array<uint8_t, 1> buf;
  boost::system::error_code ec;
  s.read_some(net::buffer(buf), ec);
  EXPECT_EQ(ec, net::error::eof) << ec.message();
}

// A one-shot upstream resolver on loopback that answers every A query with 192.0.2.7.
class FakeUpstream {
 public:
  FakeUpstream() : socket_(ioc_, udp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    SetReceiveTimeout(socket_.native_handle(), 10);
    thread_ = std::thread([this] {
      std::array<uint8_t, 4096> buf;
      udp::endpoint from;
      boost::system::error_code ec;
      size_t n = socket_.receive_from(net::buffer(buf), from, 0, ec);
      if (ec) return;
      auto q = ParseMessage(std::span<const uint8_t>(buf.data(), n));
      if (!q.ok()) return;
      seen_id_ = q->header.id;
      Message r = MakeResponse(*q, 1232);
      r.header.ra = true;
      r.answers.push_back(MakeA(q->questions[0].name, 60, {192, 0, 2, 7}));
      auto wire = SerializeMessage(r);
      // A stray datagram with a wrong id first: the server must ignore it.
      auto stray = *wire;
      stray[0] ^= 0xFF;
      socket_.send_to(net::buffer(stray), from, 0, ec);
      socket_.send_to(net::buffer(*wire), from, 0, ec);
    });
  }
  ~FakeUpstream() { thread_.join(); }
  uint16_t port() const { return socket_.local_endpoint().port(); }
  int seen_id() const { return seen_id_; }

 private:
  net::io_context ioc_;
  udp::socket socket_;
  std::thread thread_;
  std::atomic<int> seen_id_{-1};
};

TEST_F(DnsServerTest, ForwardsOutsideNamesWithTheClientsId) {
  FakeUpstream upstream;
  ResolverOptions ro;
  ro.forward_outside = true;
  DnsServerOptions so;
  so.upstreams = {"127.0.0.1:" + std::to_string(upstream.port())};
  Start(ro, so);
  auto m = AskUdp(server_->port(), QueryWire("example.com", kTypeA, 999));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.id, 999);
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(std::get<AData>(m->answers[0].data).address, (std::array<uint8_t, 4>{192, 0, 2, 7}));
  EXPECT_EQ(server_->stats().forwarded, 1u);
  // Cluster names are still answered locally.
  EXPECT_EQ(AskUdp(server_->port(), QueryWire("web", kTypeA, 5))->answers.size(), 2u);
}

TEST_F(DnsServerTest, ForwardOverTcpClient) {
  FakeUpstream upstream;
  ResolverOptions ro;
  ro.forward_outside = true;
  DnsServerOptions so;
  so.upstreams = {"127.0.0.1:" + std::to_string(upstream.port())};
  Start(ro, so);
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  SetReceiveTimeout(s.native_handle(), 5);
  WriteTcpQuery(s, QueryWire("example.org", kTypeA, 321));
  auto m = ReadTcpAnswer(s);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.id, 321);
  EXPECT_EQ(m->answers.size(), 1u);
}

TEST_F(DnsServerTest, SilentUpstreamGivesServfail) {
  // Bound but never read: queries to it time out.
  net::io_context ioc;
  udp::socket silent(ioc, udp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  ResolverOptions ro;
  ro.forward_outside = true;
  DnsServerOptions so;
  so.upstreams = {"127.0.0.1:" + std::to_string(silent.local_endpoint().port())};
  so.upstream_timeout = std::chrono::milliseconds(100);
  Start(ro, so);
  auto m = AskUdp(server_->port(), QueryWire("example.com", kTypeA, 7));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Rcode(), kRcodeServFail);
  EXPECT_EQ(m->header.id, 7);
  EXPECT_EQ(server_->stats().forward_failures, 1u);
}

TEST_F(DnsServerTest, RefusesOutsideNamesByDefault) {
  Start({});
  auto m = AskUdp(server_->port(), QueryWire("example.com", kTypeA, 8));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Rcode(), kRcodeRefused);
}

// --- Hostile clients (issue 17 D4) -------------------------------------------------------------

// Answers waiting on a client that never reads used to hold the connection (and one of the
// max_tcp_connections places) forever: the idle timer only ran while reading.
TEST_F(DnsServerTest, TcpClientThatDoesNotReadIsClosedAtTheIdleTimeout) {
  DnsServerOptions so;
  so.tcp_idle_timeout = std::chrono::milliseconds(200);
  Start({}, so);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(test::ConnectExisting(fd, server_->port()));
  const std::vector<uint8_t> framed = Framed(QueryWire("big.warren", kTypeA, 1));
  // Queries (about a kilobyte of answer each) until the server stops reading them: its
  // answers have filled every buffer on the way.
  int sent = 0;
  for (; sent < 100000; ++sent) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 100) != 1) break;
    if (send(fd, framed.data(), framed.size(), MSG_NOSIGNAL | MSG_DONTWAIT) <= 0) break;
  }
  EXPECT_TRUE(WaitFor([&] { return server_->stats().tcp_connections == 0; }))
      << "after " << sent << " queries";
  close(fd);
}

TEST_F(DnsServerTest, TcpConnectionsBeyondTheDescriptorBudgetAreClosed) {
  DescriptorBudget budget(1);
  DnsServerOptions so;
  so.budget = &budget;
  Start({}, so);
  net::io_context ioc;
  tcp::socket first(ioc);
  first.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  SetReceiveTimeout(first.native_handle(), 5);
  WriteTcpQuery(first, QueryWire("web.warren", kTypeA, 1));
  ASSERT_TRUE(ReadTcpAnswer(first).ok());
  tcp::socket second(ioc);
  second.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
  SetReceiveTimeout(second.native_handle(), 5);
  std::array<uint8_t, 1> buf;
  boost::system::error_code ec;
  second.read_some(net::buffer(buf), ec);
  EXPECT_EQ(ec, net::error::eof) << ec.message();
  EXPECT_EQ(budget.in_use(), 1);
  first.close();
  EXPECT_TRUE(WaitFor([&] { return budget.in_use() == 0; }));
}

TEST_F(DnsServerTest, TcpConnectionsOverTheLimitAreClosed) {
  DnsServerOptions so;
  so.max_tcp_connections = 2;
  Start({}, so);
  net::io_context ioc;
  const tcp::endpoint server(net::ip::make_address("127.0.0.1"), server_->port());
  std::vector<tcp::socket> held;
  for (uint16_t id = 1; id <= 2; ++id) {
    tcp::socket s(ioc);
    s.connect(server);
    SetReceiveTimeout(s.native_handle(), 5);
    WriteTcpQuery(s, QueryWire("web.warren", kTypeA, id));
    ASSERT_TRUE(ReadTcpAnswer(s).ok());
    held.push_back(std::move(s));
  }
  tcp::socket over(ioc);
  over.connect(server);
  SetReceiveTimeout(over.native_handle(), 5);
  std::array<uint8_t, 1> buf;
  boost::system::error_code ec;
  over.read_some(net::buffer(buf), ec);
  EXPECT_EQ(ec, net::error::eof) << ec.message();
  EXPECT_EQ(server_->stats().tcp_connections, 2u);
  held.clear();
  EXPECT_TRUE(WaitFor([&] { return server_->stats().tcp_connections == 0; }));
  tcp::socket again(ioc);
  again.connect(server);
  SetReceiveTimeout(again.native_handle(), 5);
  WriteTcpQuery(again, QueryWire("web.warren", kTypeA, 3));
  EXPECT_TRUE(ReadTcpAnswer(again).ok());
}

// A forwarded query opens a UDP socket of its own: with no descriptor left it fails at once.
TEST_F(DnsServerTest, ForwardWithoutADescriptorIsServfail) {
  FakeUpstream upstream;
  DescriptorBudget budget(0);
  ResolverOptions ro;
  ro.forward_outside = true;
  DnsServerOptions so;
  so.budget = &budget;
  so.upstreams = {"127.0.0.1:" + std::to_string(upstream.port())};
  Start(ro, so);
  auto m = AskUdp(server_->port(), QueryWire("example.com", kTypeA, 12));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Rcode(), kRcodeServFail);
  EXPECT_EQ(server_->stats().forward_failures, 1u);
  // Let the fake upstream's thread end.
  budget.SetLimit(DescriptorBudget::kUnlimited);
  EXPECT_TRUE(AskUdp(server_->port(), QueryWire("example.com", kTypeA, 13)).ok());
}

TEST_F(DnsServerTest, TcpAcceptBacksOffAndRecoversAfterEmfile) {
  Start({});
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  {
    test::DescriptorExhaustion exhausted;
    ASSERT_TRUE(exhausted.ok());
    ASSERT_TRUE(test::ConnectExisting(fd, server_->port()));
    EXPECT_TRUE(WaitFor([&] { return server_->stats().accept_errors > 0; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a window to count retries
    EXPECT_LT(server_->stats().accept_errors, 20u);
  }
  const std::vector<uint8_t> framed = Framed(QueryWire("web.warren", kTypeA, 77));
  ASSERT_EQ(send(fd, framed.data(), framed.size(), MSG_NOSIGNAL), ssize_t(framed.size()));
  SetReceiveTimeout(fd, 10);
  uint8_t answer[2];
  EXPECT_EQ(recv(fd, answer, 2, MSG_WAITALL), 2);
  close(fd);
}

TEST(DnsServerConfigTest, ParseUpstream) {
  EXPECT_EQ(ParseUpstream("10.0.0.1")->second, 53);
  EXPECT_EQ(ParseUpstream("10.0.0.1:5353")->second, 5353);
  EXPECT_EQ(ParseUpstream("[::1]:54")->first, "::1");
  EXPECT_EQ(ParseUpstream("::1")->first, "::1");
  EXPECT_FALSE(ParseUpstream("dns.example").ok());
  EXPECT_FALSE(ParseUpstream("10.0.0.1:0").ok());
  ServiceResolver r({});
  DnsServerOptions so;
  so.address = "not-an-ip";
  DnsServer s(so, r);
  EXPECT_FALSE(s.Start().ok());
}

std::string RunCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST_F(DnsServerTest, DigOverUdpAndTcp) {
  if (RunCommand("command -v dig").empty())
    GTEST_SKIP() << "dig not installed (Debian package dnsutils)";
  Start({});
  std::string base = "dig +time=5 +tries=1 @127.0.0.1 -p " + std::to_string(server_->port());
  std::string a = RunCommand(base + " +short web.warren A");
  EXPECT_NE(a.find("127.1.0.1"), std::string::npos) << a;
  EXPECT_NE(a.find("127.1.0.2"), std::string::npos) << a;
  std::string tcp = RunCommand(base + " +tcp +short 2.web A");
  EXPECT_EQ(tcp, "127.1.0.2\n");
  std::string srv = RunCommand(base + " +short _http._tcp.web.warren SRV");
  EXPECT_NE(srv.find("8080 1.web.warren."), std::string::npos) << srv;
  std::string nx = RunCommand(base + " nope.warren A");
  EXPECT_NE(nx.find("status: NXDOMAIN"), std::string::npos) << nx;
  std::string nodata = RunCommand(base + " web.warren AAAA");
  EXPECT_NE(nodata.find("status: NOERROR"), std::string::npos) << nodata;
  EXPECT_NE(nodata.find("ANSWER: 0"), std::string::npos) << nodata;
  // dig retries a truncated UDP answer over TCP by itself and gets every record.
  std::string big = RunCommand(base + " +noedns +short big.warren A");
  EXPECT_EQ(std::count(big.begin(), big.end(), '\n'), 60) << big;
  std::string edns = RunCommand(base + " +bufsize=4096 big.warren A");
  EXPECT_NE(edns.find("EDNS: version: 0"), std::string::npos) << edns;
}

}  // namespace
}  // namespace warren::dns
