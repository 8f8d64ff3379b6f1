#ifndef WARREN_COMMON_ROLE_DEFAULTS_H_
#define WARREN_COMMON_ROLE_DEFAULTS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace warren {

// --dns-addr's default: each role picks its own address, so a manager and workers on one
// machine never want the same one.
inline constexpr char kAutoDnsAddr[] = "auto";
// The manager's (and a hybrid node's) DNS when --dns-addr is auto.
inline constexpr char kManagerDnsAddr[] = "127.0.0.11:53";

// A worker's DNS when --dns-addr is auto: port 53 on the first address of its task address
// range (127.1.0.0/16 -> 127.1.0.0:53). Tasks never get that address, and ranges of the
// workers of one cluster do not overlap.
absl::StatusOr<std::string> WorkerDnsAddr(const std::string& address_range);

// The address a node serves DNS on, from --dns-addr (`configured`) and the role's automatic
// address. An explicit address is returned as it is (a failure to listen there stops the
// node). The automatic one is first tried: when it cannot be had (a port below
// ip_unprivileged_port_start without root or CAP_NET_BIND_SERVICE, or an address in use),
// DNS is off (empty address) and `warning` says why and what to pass instead.
struct DnsAddrChoice {
  std::string addr;
  std::string warning;
};
DnsAddrChoice ChooseDnsAddr(const std::string& configured, const std::string& automatic);

}  // namespace warren

#endif  // WARREN_COMMON_ROLE_DEFAULTS_H_
