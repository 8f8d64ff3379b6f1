#ifndef WARREN_COMMON_CLUSTER_CIDR_H_
#define WARREN_COMMON_CLUSTER_CIDR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace warren {

// The IPv4 range the nodes' subnets come from, a /24 per node (docs/networking.md).
inline constexpr char kDefaultClusterCidr[] = "10.99.0.0/16";
// The prefix lengths a cluster CIDR may have: at most 65536 node subnets, at least 2.
inline constexpr int kMinClusterPrefix = 8;
inline constexpr int kMaxClusterPrefix = 23;
inline constexpr int kNodeSubnetPrefix = 24;

// How task addresses reach other nodes (`worker --network`, docs/networking.md).
enum class NodeNetworkMode {
  // A loopback --address-range: tasks are reachable from their own host only.
  kLocal,
  // The node's subnet, routed directly through each node's advertise address (one L2 network).
  kHostGw,
  // The node's subnet, routed through a VXLAN overlay between the advertise addresses.
  kVxlan,
  // The node's subnet, routed through WireGuard tunnels between the advertise addresses
  // (`worker --encrypt`): nothing of a task's traffic crosses the network between nodes in clear.
  kWireguard,
};
// "local" (also ""), "host-gw", "vxlan" or "wireguard"; INVALID_ARGUMENT naming `field` and what
// is allowed.
absl::StatusOr<NodeNetworkMode> ParseNodeNetworkMode(absl::string_view field,
                                                     absl::string_view text);
absl::string_view NodeNetworkModeName(NodeNetworkMode mode);

// `worker --network auto`, the default: vxlan for a worker that can have the overlay and needs
// it (it runs as root, joins managers of which none is on a loopback address, i.e. it is part
// of a cluster across hosts, and has an IPv4 advertise address that is not loopback); local
// otherwise (a one-host cluster, the demo, a worker without root). `managers`: HOST:PORT
// entries (ParseManagerList). `why` says which rule decided.
NodeNetworkMode AutoNodeNetwork(const std::vector<std::string>& managers,
                                const std::string& advertise_addr, bool root, std::string* why);
// host-gw, vxlan and wireguard: task addresses come from the node's subnet and are routed
// between nodes.
inline bool IsRouted(NodeNetworkMode mode) { return mode != NodeNetworkMode::kLocal; }

class ClusterCidr {
 public:
  // "A.B.C.D/N", IPv4, N in 8..23, with no host bits set. Errors name `field` (the flag or the
  // request field) and what is allowed.
  static absl::StatusOr<ClusterCidr> Parse(absl::string_view field, absl::string_view text);

  // How many /24 node subnets it holds.
  int SubnetCount() const { return 1 << (kNodeSubnetPrefix - prefix_); }
  // The i-th /24 (0-based), e.g. "10.99.3.0/24".
  std::string Subnet(int i) const;
  // The index of `subnet` when it is one of this CIDR's /24s.
  std::optional<int> IndexOf(absl::string_view subnet) const;
  std::string ToString() const;

 private:
  ClusterCidr(uint32_t base, int prefix) : base_(base), prefix_(prefix) {}
  uint32_t base_;
  int prefix_;
};

}  // namespace warren

#endif  // WARREN_COMMON_CLUSTER_CIDR_H_
