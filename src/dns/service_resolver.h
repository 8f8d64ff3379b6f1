#ifndef WARREN_DNS_SERVICE_RESOLVER_H_
#define WARREN_DNS_SERVICE_RESOLVER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dns/resolver_core.h"
#include "warren/v1/objects.pb.h"

namespace warren::dns {

// Service DNS answers from the manager's routing table. The table holds only healthy, ready
// tasks, so every endpoint in it is served.
class ServiceResolver : public ResolverCore {
 public:
  explicit ServiceResolver(ResolverOptions options) : ResolverCore(std::move(options)) {}

  // Swaps in a new snapshot. Entries that cannot be served (an address that is not IPv4, a port
  // out of range) are skipped and named in the returned error; everything else is applied.
  absl::Status Update(const v1::RoutingTable& table);
  using ResolverCore::Update;
};

// Converts a routing table into the resolver's plain records; `skipped` collects why entries
// were left out.
ServiceTable ToServiceTable(const v1::RoutingTable& table, std::vector<std::string>* skipped);

// The `nameserver` addresses of a resolv.conf file, in order.
absl::StatusOr<std::vector<std::string>> ReadResolvConfNameservers(
    const std::string& path = "/etc/resolv.conf");

}  // namespace warren::dns

#endif  // WARREN_DNS_SERVICE_RESOLVER_H_
