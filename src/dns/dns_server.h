#ifndef WARREN_DNS_DNS_SERVER_H_
#define WARREN_DNS_DNS_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dns/resolver_core.h"
#include "http/descriptor_budget.h"

namespace warren::dns {

struct DnsServerOptions {
  std::string address = "127.0.0.11";
  // 0 picks a free port; see DnsServer::port().
  uint16_t port = 53;
  // Threads running the event loop; also the number of UDP sockets sharing the port
  // (SO_REUSEPORT), so the kernel spreads queries over them.
  int threads = 2;
  // A TCP connection with no complete query for this long is closed, and so is one whose
  // answer the client does not take within this time.
  std::chrono::milliseconds tcp_idle_timeout{10000};
  // Resolvers for names outside the cluster, "ip" or "ip:port" ("[v6]:port"). Used only when the
  // resolver forwards. Our own listen address is never used, so a resolv.conf pointing at us
  // cannot make a loop.
  std::vector<std::string> upstreams;
  // Per upstream; after the last one the client gets SERVFAIL.
  std::chrono::milliseconds upstream_timeout{2000};
  size_t max_tcp_connections = 1024;
  // TCP connections and the UDP sockets of forwarded queries take a descriptor each from it;
  // without one a connection is closed and a forward answered SERVFAIL. Null:
  // DescriptorBudget::DataPlane().
  DescriptorBudget* budget = nullptr;
  // Bind even while the address is not (yet) on an interface (IP_FREEBIND): the pods' DNS
  // listens on their bridge's gateway address, which appears with the first pod.
  bool freebind = false;
};

// UDP and TCP DNS server (RFC 1035, RFC 7766 framing) answering with a ResolverCore.
class DnsServer {
 public:
  struct Stats {
    uint64_t udp_queries = 0;
    uint64_t tcp_queries = 0;
    uint64_t forwarded = 0;
    uint64_t forward_failures = 0;
    uint64_t dropped = 0;
    uint64_t tcp_connections = 0;  // open now
    // Accepts that failed for lack of descriptors or memory.
    uint64_t accept_errors = 0;
  };

  // `resolver` must outlive the server.
  DnsServer(DnsServerOptions options, const ResolverCore& resolver);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds UDP and TCP on the same port and starts the threads.
  absl::Status Start();
  // Idempotent; also run by the destructor.
  void Stop();

  uint16_t port() const { return port_; }
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // shared with nothing; handlers hold raw pointers
  uint16_t port_ = 0;
};

// Parses "ip", "ip:port" or "[v6]:port" (default port 53).
absl::StatusOr<std::pair<std::string, uint16_t>> ParseUpstream(const std::string& text);

}  // namespace warren::dns

#endif  // WARREN_DNS_DNS_SERVER_H_
