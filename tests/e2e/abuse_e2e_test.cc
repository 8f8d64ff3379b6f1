// The node against abusive clients of a published port (issue 17 D1, D4): slow connections,
// oversized heads and trailers, descriptor exhaustion. Afterwards, and meanwhile, the gRPC API
// and DNS answer within a second, and the node still serves the published port.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dns/dns_message.h"
#include "e2e_fixture.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A raw loopback TCP connection, closed with the object.
class Conn {
 public:
  explicit Conn(int port) : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  bool connected() const { return connected_; }

  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // What arrives until the peer closes (or 5 s pass).
  std::string ReadAll() {
    std::string out;
    char buf[16384];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // True when the peer has closed (EOF or reset); data is discarded.
  bool ClosedByPeer() {
    char buf[4096];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) return true;
      if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

// One ListServices call on a fresh connection (a new accept on the API port), within 1 s.
bool ApiAnswersWithinASecond(const std::string& api_addr,
                             const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
  auto channel = grpc::CreateCustomChannel(api_addr, creds, args);
  auto stub = v1::Control::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(1));
  v1::ListServicesRequest req;
  v1::ListServicesResponse resp;
  return stub->ListServices(&ctx, req, &resp).ok();
}

// An A query for `name` over UDP, answered within 1 s.
bool DnsAnswersWithinASecond(int port, const std::string& name) {
  dns::Message q;
  q.header.id = 4711;
  q.header.rd = true;
  q.questions.push_back({name, dns::kTypeA, dns::kClassIn});
  auto wire = dns::SerializeMessage(q);
  if (!wire.ok()) return false;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, wire->data(), wire->size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  uint8_t buf[4096];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  close(fd);
  if (n <= 0) return false;
  auto m = dns::ParseMessage(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
  return m.ok() && m->header.id == 4711 && !m->answers.empty();
}

// Polls `cond` (bounded) until it holds.
bool Soon(const std::function<bool()>& cond, milliseconds timeout = seconds(15)) {
  return WaitFor(cond, timeout);
}

class AbuseE2eTest : public E2eTest {
 protected:
  int publish_port_ = FreePort();

  void CreateWeb() {
    auto r = CreateTestapp("web", 1,
                           {"--publish", "127.0.0.1:" + std::to_string(publish_port_) + ":8080"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(WaitFor([&] {
      auto resp = HttpGet("127.0.0.1", publish_port_, "/");
      return resp && resp->first == 200;
    })) << processes_.back()->Log();
  }

  bool Serves() {
    auto resp = HttpGet("127.0.0.1", publish_port_, "/");
    return resp && resp->first == 200;
  }

  // The soft and hard "Max open files" of a process.
  static std::pair<std::string, std::string> FileLimits(pid_t pid) {
    std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/limits"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("Max open files", 0) != 0) continue;
      std::istringstream fields(line.substr(14));
      std::string soft, hard;
      fields >> soft >> hard;
      return {soft, hard};
    }
    return {};
  }
};

TEST_F(AbuseE2eTest, SlowAndOversizedClientsOfAPublishedPortLeaveTheNodeServing) {
  // A soft descriptor limit below the hard one: the node raises it at start.
  command_prefix_ = {"/bin/sh", "-c", "ulimit -S -n 512 && exec \"$0\" \"$@\""};
  StartHybrid({"--proxy-max-connections", "200", "--proxy-header-timeout", "1s",
               "--proxy-idle-timeout", "2s"});
  Process& node = *processes_.back();
  auto [soft, hard] = FileLimits(node.pid());
  EXPECT_EQ(soft, hard);
  EXPECT_NE(soft, "512");
  CreateWeb();

  // Slowloris: a thousand connections, each with an unfinished request head.
  std::vector<std::unique_ptr<Conn>> slow;
  for (int i = 0; i < 1000; ++i) {
    auto c = std::make_unique<Conn>(publish_port_);
    ASSERT_TRUE(c->connected()) << i;
    c->Send("GET / HTTP/1.1\r\nHost: web\r\nX-Slow: ");
    slow.push_back(std::move(c));
  }
  // Oversized heads and the trailer that used to abort the process (D1).
  struct Bad {
    std::string request;
    std::string status;
  };
  std::vector<Bad> bad = {
      {"GET / HTTP/1.1\r\nHost: web\r\nX-Big: " + std::string(100000, 'a') + "\r\n\r\n", "431"},
      {"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
       "X-Big: " +
           std::string(65535, 'a') + "\r\n\r\n",
       "431"},
      {"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: xchunked\r\n\r\n", "400"},
  };
  // The port is full of slow connections now: these are refused (503) or, once places free
  // up, answered with their own error. Either way the connection ends and nothing crashes.
  for (const Bad& b : bad) {
    Conn c(publish_port_);
    ASSERT_TRUE(c.connected());
    c.Send(b.request);
    std::string got = c.ReadAll();
    EXPECT_TRUE(got.rfind("HTTP/1.1 " + b.status, 0) == 0 || got.rfind("HTTP/1.1 503", 0) == 0)
        << got.substr(0, 200);
  }
  // Meanwhile the control plane and DNS answer at once.
  EXPECT_TRUE(ApiAnswersWithinASecond(api_addr_, ApiCredentials()));
  EXPECT_TRUE(DnsAnswersWithinASecond(dns_port_, "web.warren"));
  EXPECT_TRUE(node.Alive());

  // The header timeout clears the slow connections; the refused ones were closed at once.
  EXPECT_TRUE(Soon([&] {
    for (auto& c : slow) {
      if (!c->ClosedByPeer()) return false;
    }
    return true;
  }));
  slow.clear();
  EXPECT_TRUE(Soon([&] { return Serves(); }));
  // With room again, the oversized requests get their own answers.
  for (const Bad& b : bad) {
    Conn c(publish_port_);
    c.Send(b.request);
    std::string got = c.ReadAll();
    EXPECT_EQ(got.rfind("HTTP/1.1 " + b.status, 0), 0u) << got.substr(0, 200);
  }
  EXPECT_TRUE(node.Alive());
  EXPECT_TRUE(Serves());
  EXPECT_TRUE(ApiAnswersWithinASecond(api_addr_, ApiCredentials()));
}

// 256 descriptors in all. Idle connections to a published port stop at the data plane's
// budget, so the API keeps answering; a flood on the API port itself runs the process out of
// descriptors, and the API answers again once they are free (gRPC 1.51's own listener never
// accepted again after its first EMFILE).
TEST_F(AbuseE2eTest, DescriptorExhaustionNeverStopsTheApiForGood) {
  // Plaintext: this checks Warren's own accept loop, which serves the API only without TLS
  // (under TLS gRPC 1.51's listener accepts; docs/security.md).
  UsePlaintext();
  command_prefix_ = {"/bin/sh", "-c", "ulimit -n 256 && exec \"$0\" \"$@\""};
  StartHybrid({"--reserved-fds", "128", "--proxy-header-timeout", "30s"});
  Process& node = *processes_.back();
  CreateWeb();

  std::vector<std::unique_ptr<Conn>> idle;
  for (int i = 0; i < 300; ++i) {
    auto c = std::make_unique<Conn>(publish_port_);
    ASSERT_TRUE(c->connected()) << i;
    c->Send("GET / HTTP/1.1\r\nHost: web\r\n");
    idle.push_back(std::move(c));
  }
  // Every connection is either held or refused by now.
  auto over = HttpGet("127.0.0.1", publish_port_, "/");
  EXPECT_TRUE(over && over->first == 503);
  EXPECT_TRUE(ApiAnswersWithinASecond(api_addr_, ApiCredentials())) << node.Log();
  EXPECT_TRUE(DnsAnswersWithinASecond(dns_port_, "web.warren"));
  idle.clear();
  EXPECT_TRUE(Soon([&] { return Serves(); }));

  // Now the API port itself, past every descriptor the process has.
  int api_port = std::stoi(api_addr_.substr(api_addr_.rfind(':') + 1));
  std::vector<std::unique_ptr<Conn>> flood;
  for (int i = 0; i < 300; ++i) {
    auto c = std::make_unique<Conn>(api_port);
    ASSERT_TRUE(c->connected()) << i;
    flood.push_back(std::move(c));
  }
  EXPECT_TRUE(Soon([&] {
    return node.Log().find(absl::StrCat("gRPC listener ", api_addr_,
                                        ": accept failed (Too many open files)")) !=
           std::string::npos;
  })) << node.Log();
  flood.clear();
  EXPECT_TRUE(Soon([&] { return ApiAnswersWithinASecond(api_addr_, ApiCredentials()); }))
      << node.Log();
  EXPECT_TRUE(node.Alive());
  EXPECT_TRUE(Soon([&] { return Serves(); }));
}

}  // namespace
}  // namespace warren::e2e
