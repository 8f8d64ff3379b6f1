#ifndef WARREN_WORKER_NODE_NETWORK_H_
#define WARREN_WORKER_NODE_NETWORK_H_

// The host side of a routed node network (`worker --network host-gw|vxlan`, issue 13,
// docs/networking.md): the node's subnet made local on a device of its own, and a route to
// every other node's subnet. The kernel is programmed with iproute2 (`ip`, `bridge`) through a
// small interface, so tests see every command and the worker stays readable with `ip route`.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/cluster_cidr.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Runs a command (argv[0] looked up in PATH) and returns its standard output. A command that
// fails (exit status, signal, or not done within a bound) gives an error naming the command and
// carrying its standard error.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  virtual absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) = 0;
};
std::unique_ptr<CommandRunner> MakeSystemCommandRunner();

// The names and numbers other hosts and `ip` show.
inline constexpr char kLocalDevice[] = "warren.lo";  // holds the `local` route of the subnet
inline constexpr char kVxlanDevice[] = "warren.vx";  // the overlay's end on this node
inline constexpr int kVxlanId = 1;
inline constexpr int kVxlanPort = 4789;    // IANA's VXLAN port, UDP
inline constexpr int kRouteProtocol = 87;  // marks Warren's routes ("proto 87")

// The overlay MAC of the node with IPv4 advertise address `addr`: 02:57 and the address's four
// bytes (locally administered, unicast), so no MAC needs to be exchanged between nodes.
std::string VxlanMacFor(const std::string& addr);
// The node's own address in `subnet`: its first one, e.g. 10.99.3.0 of 10.99.3.0/24 (tasks get
// .1 to .254; the node's DNS and, with vxlan, the tunnel's end use .0).
std::string NodeAddressOf(const std::string& subnet);

// Holds this network namespace's routed node network for the life of the process (an abstract
// Unix socket, freed by the kernel when the process dies): the devices and routes are the
// host's, so a second routed worker on the host would undo the first one's. Returns the socket;
// FAILED_PRECONDITION when another process holds it.
absl::StatusOr<int> ClaimHostNetwork();

class NodeNetwork {
 public:
  // `advertise_addr`: this node's IPv4 address on the network between the nodes.
  NodeNetwork(NodeNetworkMode mode, std::string advertise_addr, CommandRunner& run)
      : mode_(mode), advertise_addr_(std::move(advertise_addr)), run_(run) {}

  // Creates the devices when missing; keeps them when they are right, so a worker started again
  // does not cut the traffic of the tasks it adopts. FAILED_PRECONDITION (saying what is needed)
  // without the rights to change links.
  absl::Status Prepare();

  // Makes every address of `subnet` (the node's /24) local to this host, so tasks bind to them
  // and packets for them from other nodes are delivered here; removes another subnet's route
  // left by an earlier registration.
  absl::Status SetSubnet(const std::string& subnet);

  // Routes to the subnet of every peer but `self_id` of this node's network mode; a peer that
  // is gone loses its route. The first call also removes the routes an earlier worker left for
  // nodes no longer in the cluster. On an error the peers not done are tried again next call.
  absl::Status SetPeers(const std::vector<v1::NodePeer>& peers, const std::string& self_id);

  // Forgets what it routed, so the next SetPeers routes every peer again and removes what is
  // stale (after the node registered anew).
  void Forget();

  // Compares the kernel with what it routed (another program, an interface going down and up,
  // may have removed routes): puts the node's local route back, and forgets the peers whose
  // route is gone so the next SetPeers routes them again (DATA_LOSS says how many).
  absl::Status Check();

  // The peers routed now, by subnet (tests, logs).
  const std::map<std::string, v1::NodePeer>& routed() const { return routed_; }

 private:
  absl::Status Route(const v1::NodePeer& peer);
  absl::Status Unroute(const std::string& subnet, const v1::NodePeer* known);
  // Removes what an earlier worker left for subnets not in `wanted`.
  absl::Status RemoveStale(const std::map<std::string, v1::NodePeer>& wanted);

  const NodeNetworkMode mode_;
  const std::string advertise_addr_;
  CommandRunner& run_;
  std::string subnet_;
  bool swept_ = false;
  std::map<std::string, v1::NodePeer> routed_;
  // Peers not routed and why, warned about once each.
  std::set<std::string> warned_;
};

}  // namespace warren

#endif  // WARREN_WORKER_NODE_NETWORK_H_
