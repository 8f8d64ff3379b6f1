#ifndef WARREN_COMMON_ADVERTISE_ADDR_H_
#define WARREN_COMMON_ADVERTISE_ADDR_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace warren {

// A node's advertise address: the address other nodes reach it at (docs/networking.md).

// `text` as an IPv4 or IPv6 literal in its canonical form; INVALID_ARGUMENT naming `field` (the
// flag or the request field) for anything else, and for the unspecified (0.0.0.0, ::),
// broadcast and multicast addresses, which name no one node.
absl::StatusOr<std::string> ParseAdvertiseAddr(absl::string_view field, absl::string_view text);

struct InterfaceAddress {
  std::string interface;
  // IPv4, dotted.
  std::string address;
};

// The address the kernel picks as source for the default route: the first IPv4 address of the
// interface of the IPv4 default route with the lowest metric in `route_table` (the text of
// /proc/net/route). nullopt when there is no default route or its interface has no address.
std::optional<std::string> DefaultRouteAddress(absl::string_view route_table,
                                               const std::vector<InterfaceAddress>& addresses);

// --advertise-addr's default: DefaultRouteAddress of this host (/proc/net/route and its
// interfaces), else 127.0.0.1 (a host without a default route is a one-machine cluster).
std::string DetectAdvertiseAddr();

}  // namespace warren

#endif  // WARREN_COMMON_ADVERTISE_ADDR_H_
