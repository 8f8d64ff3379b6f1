#ifndef WARREN_DNS_RESOLVER_CORE_H_
#define WARREN_DNS_RESOLVER_CORE_H_

// The part of service DNS that maps a query to an answer. Plain C++ (no protobuf) so that it
// can be fuzzed together with the wire format; ServiceResolver feeds it from a RoutingTable.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dns/dns_message.h"

namespace warren::dns {

struct EndpointRecord {
  std::array<uint8_t, 4> address{};
  uint16_t port = 0;
  int32_t slot = 0;
};

struct RevisionRecords {
  int64_t revision = 0;
  // Percent of production traffic, 0..100.
  int32_t weight = 0;
  bool preview = false;
  std::vector<EndpointRecord> endpoints;
};

struct PortRecord {
  // SRV name, without the leading '_'.
  std::string name;
  uint16_t target = 0;
};

struct ServiceRecords {
  std::string name;
  std::vector<PortRecord> ports;
  std::vector<RevisionRecords> revisions;
};

struct ServiceTable {
  uint64_t version = 0;
  std::vector<ServiceRecords> services;
};

struct ResolverOptions {
  // Cluster domain: `<service>.<domain>`.
  std::string domain = "warren";
  uint32_t ttl_seconds = 5;
  // Answer A queries with only the weighted first record.
  bool single_answer = false;
  // Seed of the weighted choice; answers are reproducible for a given seed and query order.
  uint64_t seed = 0;
  // Names outside the cluster: forward to upstream resolvers, or answer REFUSED.
  bool forward_outside = false;
  // EDNS0 payload size we advertise.
  uint16_t edns_payload_size = 1232;
};

enum class Transport { kUdp, kTcp };

class ResolverCore {
 public:
  struct Result {
    enum class Action {
      // Send `wire` back to the client.
      kRespond,
      // Not a cluster name: relay the query to an upstream resolver.
      kForward,
      // Not worth an answer (too short for a header, or a response rather than a query).
      kDrop,
    };
    Action action = Action::kDrop;
    std::vector<uint8_t> wire;
  };

  explicit ResolverCore(ResolverOptions options);
  ~ResolverCore();
  ResolverCore(const ResolverCore&) = delete;
  ResolverCore& operator=(const ResolverCore&) = delete;

  // Replaces the served records. Readers keep the snapshot they started with; safe to call
  // concurrently with Answer.
  void Update(const ServiceTable& table);

  // Thread-safe.
  Result Answer(std::span<const uint8_t> query, Transport transport) const;

  // A SERVFAIL for `query` (e.g. when no upstream answered), or empty if the query cannot be
  // parsed.
  std::vector<uint8_t> ServerFailure(std::span<const uint8_t> query) const;

  const ResolverOptions& options() const { return options_; }
  uint64_t version() const;

 public:
  // The immutable snapshot Update builds; opaque.
  struct Index;

 private:
  Message Resolve(const Message& query, bool* forward) const;
  uint64_t NextRandom() const;

  ResolverOptions options_;
  std::string domain_;  // canonical
  std::atomic<std::shared_ptr<const Index>> index_;
  mutable std::atomic<uint64_t> counter_{0};
};

}  // namespace warren::dns

#endif  // WARREN_DNS_RESOLVER_CORE_H_
