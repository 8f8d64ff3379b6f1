#ifndef WARREN_TESTS_UNIT_RAW_SOCKET_H_
#define WARREN_TESTS_UNIT_RAW_SOCKET_H_

// Raw blocking sockets for in-test backends and clients that must see or shape the exact bytes
// (IPv4 loopback). Every blocking call is bounded, so a broken server fails a test instead of
// hanging it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace warren::test {

inline int Listen(const std::string& ip, int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  EXPECT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

// Waits (bounded) for a connection on a listening socket.
inline int AcceptWithin(int lfd, absl::Duration timeout) {
  pollfd p{lfd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) return -1;
  return accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
}

// Connects a socket made earlier to ip:port. connect(2) needs no new descriptor, so this works
// while the process is out of them (see DescriptorExhaustion).
inline bool ConnectExisting(int fd, int port, const std::string& ip = "127.0.0.1") {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  return connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
}

inline int ConnectTo(int port, const std::string& ip = "127.0.0.1") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_TRUE(ConnectExisting(fd, port, ip));
  timeval tv{10, 0};  // no test blocks forever
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

inline bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `pred(buffer)` holds or the peer closes / times out.
template <class Pred>
bool ReadUntil(int fd, std::string& buf, Pred pred) {
  char tmp[65536];
  while (!pred(buf)) {
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
  }
  return true;
}

// Reads until the peer closes the connection (true) or `timeout` passes (false); what arrives
// meanwhile is appended to `buf`.
inline bool ReadUntilClosed(int fd, std::string& buf, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  char tmp[65536];
  for (;;) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) != 1) continue;
    ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return true;  // reset
    }
    buf.append(tmp, static_cast<size_t>(n));
  }
}

// Uses up every free descriptor of the process (below a soft RLIMIT_NOFILE lowered for the
// purpose, so it is quick) until destroyed: accept(2), socket(2) and open(2) fail with EMFILE
// meanwhile. Nothing else in the process may need a descriptor while it exists.
class DescriptorExhaustion {
 public:
  DescriptorExhaustion() {
    if (getrlimit(RLIMIT_NOFILE, &saved_) != 0) return;
    int probe = dup(0);
    if (probe < 0) return;
    close(probe);
    // Descriptors are allocated lowest first: everything up to the limit is then taken.
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(probe + 64);
    if (low.rlim_cur > saved_.rlim_cur || setrlimit(RLIMIT_NOFILE, &low) != 0) return;
    lowered_ = true;
    for (;;) {
      int fd = dup(0);
      if (fd < 0) break;
      fds_.push_back(fd);
    }
    ok_ = errno == EMFILE;
  }
  ~DescriptorExhaustion() {
    for (int fd : fds_) close(fd);
    if (lowered_) setrlimit(RLIMIT_NOFILE, &saved_);
  }
  DescriptorExhaustion(const DescriptorExhaustion&) = delete;
  DescriptorExhaustion& operator=(const DescriptorExhaustion&) = delete;
  bool ok() const { return ok_; }
  // Takes again the descriptors that other threads closed since (gRPC closes connections in the
  // background), so that the next one the process opens fails with EMFILE.
  void Refill() {
    if (!lowered_) return;
    for (;;) {
      int fd = dup(0);
      if (fd < 0) break;
      fds_.push_back(fd);
    }
  }

 private:
  rlimit saved_{};
  bool lowered_ = false;
  bool ok_ = false;
  std::vector<int> fds_;
};

// Runs the process out of descriptors (DescriptorExhaustion) and connects 8 clients made before
// to `port`, one at a time, until `accept_failed()` holds (within 30 s), then runs `meanwhile`
// while still exhausted, frees the descriptors and closes the clients. The server closes
// connections in the background, which can free a descriptor after the exhaustion: its
// acceptor then accepts a client; the descriptor is taken again and the next client sent.
// Whether an accept failed.
inline bool RunOutOfDescriptorsUntilAnAcceptFails(int port,
                                                  const std::function<bool()>& accept_failed,
                                                  const std::function<void()>& meanwhile = {}) {
  std::vector<int> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_GE(clients.back(), 0);
  }
  bool failed = false;
  {
    DescriptorExhaustion exhausted;
    EXPECT_TRUE(exhausted.ok());
    size_t sent = 0;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!(failed = accept_failed()) && absl::Now() < deadline) {
      exhausted.Refill();
      if (sent < clients.size()) EXPECT_TRUE(ConnectExisting(clients[sent++], port));
      absl::SleepFor(absl::Milliseconds(20));
    }
    if (meanwhile) meanwhile();
  }
  for (int c : clients) close(c);
  return failed;
}

// A GET head of at least `size` bytes in fields of about 40 bytes each, ending in CRLF CRLF.
inline std::string HeadOfSmallFields(size_t size) {
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; head.size() + 2 < size; ++i) {
    head += "X-F" + std::to_string(i) + ": " + std::string(30, 'f') + "\r\n";
  }
  return head + "\r\n";
}

inline int FreePort(const std::string& ip = "127.0.0.1") {
  int port = 0;
  int fd = Listen(ip, &port);
  close(fd);
  return port;
}

// A loopback address of this test alone (127.1-126.x.y): a port found free on it stays free
// while tests beside it bind and connect on 127.0.0.1 (a port found free on 127.0.0.1 can be
// taken by another test's connection before this one binds it).
inline std::string UniqueLoopbackAddress() {
  std::random_device rd;
  return "127." + std::to_string(1 + rd() % 126) + "." + std::to_string(rd() % 256) + "." +
         std::to_string(1 + rd() % 254);
}

}  // namespace warren::test

#endif  // WARREN_TESTS_UNIT_RAW_SOCKET_H_
