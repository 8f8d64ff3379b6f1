#ifndef WARREN_DNS_CLUSTER_DNS_H_
#define WARREN_DNS_CLUSTER_DNS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "dns/dns_server.h"
#include "dns/service_resolver.h"
#include "roles.h"
#include "warren/v1/objects.pb.h"

namespace warren::dns {

// The service DNS of a manager or worker: a resolver over the routing table and its
// UDP/TCP server.
class ClusterDns {
 public:
  // Errors name the option: "dns-addr 127.0.0.11:53: address already in use".
  static absl::StatusOr<std::unique_ptr<ClusterDns>> Start(const DnsOptions& options);
  ~ClusterDns();

  void Update(const v1::RoutingTable& table);
  int port() const { return server_->port(); }
  uint64_t version() const { return resolver_->version(); }

 private:
  ClusterDns() = default;
  std::unique_ptr<ServiceResolver> resolver_;
  std::unique_ptr<DnsServer> server_;
};

}  // namespace warren::dns

#endif  // WARREN_DNS_CLUSTER_DNS_H_
