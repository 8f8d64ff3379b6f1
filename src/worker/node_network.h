#ifndef WARREN_WORKER_NODE_NETWORK_H_
#define WARREN_WORKER_NODE_NETWORK_H_

// The host side of a routed node network (`worker --network host-gw|vxlan|wireguard`, issue 13,
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
  // Starts a long-running program (wireguard-go) in a session of its own, with `env` ("K=V")
  // added to the environment, standard input /dev/null and its output appended to `log_path`.
  // It outlives the caller; returns once it started, not once it is ready.
  virtual absl::Status StartDaemon(const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env,
                                   const std::string& log_path) = 0;
};
std::unique_ptr<CommandRunner> MakeSystemCommandRunner();

// The names and numbers other hosts and `ip` show.
inline constexpr char kLocalDevice[] = "warren.lo";  // holds the `local` route of the subnet
inline constexpr char kVxlanDevice[] = "warren.vx";  // the overlay's end on this node
inline constexpr int kVxlanId = 1;
inline constexpr int kVxlanPort = 4789;                  // IANA's VXLAN port, UDP
inline constexpr int kRouteProtocol = 87;                // marks Warren's routes ("proto 87")
inline constexpr char kWireguardDevice[] = "warren.wg";  // the encrypted tunnels' end
inline constexpr int kWireguardPort = 51820;             // WireGuard's usual port, UDP
// The iptables chains of the cri runtime's pods on a routed network (NodeNetwork::SetPodNat).
inline constexpr char kMasqueradeChain[] = "WARREN-MASQ";  // nat: what leaves the cluster
inline constexpr char kForwardChain[] = "WARREN-FWD";      // filter: the cluster's traffic
// What WireGuard adds to a packet at most (IPv6 outer header 40, UDP 8, WireGuard 32).
inline constexpr int kWireguardOverhead = 80;
// In the worker's data dir: the node's WireGuard private key (base64, mode 0600) and the log
// of the wireguard-go it started.
inline constexpr char kWireguardKeyFile[] = "wireguard.key";
inline constexpr char kWireguardLogFile[] = "wireguard-go.log";
// Where wireguard-go listens for `wg` (its UAPI socket).
inline constexpr char kWireguardGoSocket[] = "/run/wireguard/warren.wg.sock";

// The WireGuard public key (base64) of the private key in `path`; creates the file with a new
// key (X25519, OpenSSL) when it is missing. The key stays with the data dir, so a worker started
// again keeps its identity on the tunnels.
absl::StatusOr<std::string> LoadOrCreateWireguardKey(const std::string& path);
// A WireGuard key as `wg` writes it: base64 of 32 bytes.
bool IsWireguardKey(const std::string& text);

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
  // `advertise_addr`: this node's IPv4 address on the network between the nodes. `data_dir`:
  // where the WireGuard key and wireguard-go's log are (network wireguard).
  NodeNetwork(NodeNetworkMode mode, std::string advertise_addr, CommandRunner& run,
              std::string data_dir = "")
      : mode_(mode),
        advertise_addr_(std::move(advertise_addr)),
        run_(run),
        data_dir_(std::move(data_dir)) {}

  // Creates the devices when missing; keeps them when they are right, so a worker started again
  // does not cut the traffic of the tasks it adopts. FAILED_PRECONDITION (saying what is needed)
  // without the rights to change links. With network wireguard: loads or creates the key, and
  // uses the kernel's WireGuard, else starts wireguard-go on a persistent TUN device (left
  // running when the worker stops, adopted by the next one; its routes survive its restart).
  absl::Status Prepare();

  // Whether the wireguard-go this network uses stopped answering on its control socket (a
  // cheap probe, for every second; Check then starts it again). False without wireguard-go.
  bool WireguardGoGone() const;

  // This node's WireGuard public key (after Prepare, network wireguard).
  const std::string& wireguard_public_key() const { return public_key_; }

  // Makes every address of `subnet` (the node's /24) local to this host, so tasks bind to them
  // and packets for them from other nodes are delivered here; removes another subnet's route
  // left by an earlier registration. With SetPodBridge(true) only the node's own address (.0)
  // is made local (host-gw; the overlays have it on their device): the rest are the pods' on
  // their CNI bridge, which a `local` route would swallow.
  absl::Status SetSubnet(const std::string& subnet);

  // The cri runtime: the subnet's addresses are the pods' on their CNI bridge (call before
  // SetSubnet).
  void SetPodBridge(bool pods) { pod_bridge_ = pods; }

  // The pods' traffic (after SetSubnet): forwarded to and from `cluster_cidr` (chain
  // WARREN-FWD, first in FORWARD; ip_forward on), and NATed to the host's address when it
  // leaves the cluster (chain WARREN-MASQ, from POSTROUTING for the node's subnet), so between
  // nodes pods keep their own addresses. Changes only what differs: a worker started again
  // adds nothing twice.
  absl::Status SetPodNat(const std::string& cluster_cidr);

  // Routes to the subnet of every peer but `self_id` of this node's network mode; a peer that
  // is gone loses its route. The first call also removes the routes an earlier worker left for
  // nodes no longer in the cluster. On an error the peers not done are tried again next call.
  absl::Status SetPeers(const std::vector<v1::NodePeer>& peers, const std::string& self_id);

  // Forgets what it routed, so the next SetPeers routes every peer again and removes what is
  // stale (after the node registered anew).
  void Forget();

  // Compares the kernel with what it routed (another program, an interface going down and up,
  // may have removed routes): puts the node's local route back, and forgets the peers whose
  // route (or WireGuard peer: a wireguard-go that died is started again) is gone so the next
  // SetPeers routes them again (DATA_LOSS says how many).
  absl::Status Check();

  // The peers routed now, by subnet (tests, logs).
  const std::map<std::string, v1::NodePeer>& routed() const { return routed_; }

 private:
  absl::Status Route(const v1::NodePeer& peer);
  absl::Status Unroute(const std::string& subnet, const v1::NodePeer* known);
  // Removes what an earlier worker left for subnets not in `wanted`.
  absl::Status RemoveStale(const std::map<std::string, v1::NodePeer>& wanted);
  // The subnets WireGuard peer `key` carries: those routed through it, with `plus` and without
  // `minus`, comma-separated (`wg set ... allowed-ips`).
  std::string AllowedIps(const std::string& key, const std::string& plus,
                         const std::string& minus) const;
  // The tunnel device of the overlay modes (warren.vx, warren.wg); empty with host-gw.
  const char* OverlayDevice() const;
  // The device holding the advertise address and its MTU.
  absl::Status FindUnderlay(std::string* dev, int* mtu);
  absl::Status PrepareVxlan();
  // warren.wg: the kernel's device, or a persistent TUN with wireguard-go attached; then the
  // key, the port and the MTU.
  absl::Status PrepareWireguard();
  // Starts wireguard-go on warren.wg and waits until `wg` reaches it.
  absl::Status StartWireguardGo();
  // The public keys of the peers warren.wg has; an error when `wg` cannot reach the device.
  absl::StatusOr<std::set<std::string>> WireguardPeers();
  // The `local` route SetSubnet makes for `subnet` in table local: the subnet, the node's
  // address as /32 (pods, host-gw) or none (pods, overlay: the address is on its device).
  std::string LocalRouteOf(const std::string& subnet) const;
  // iptables chain `chain` of `table` holds exactly `rules` (each appended as `-A chain ...`):
  // created when missing, flushed and filled again when it differs, else left alone.
  absl::Status EnsureChain(const std::string& table, const std::string& chain,
                           const std::vector<std::vector<std::string>>& rules);
  // `parent` of `table` jumps to `chain` for `match` (inserted first when missing); other
  // jumps to it go.
  absl::Status EnsureJump(const std::string& table, const std::string& parent,
                          const std::vector<std::string>& match, const std::string& chain);

  const NodeNetworkMode mode_;
  const std::string advertise_addr_;
  CommandRunner& run_;
  const std::string data_dir_;
  std::string public_key_;
  // warren.wg is a TUN device served by wireguard-go (not the kernel's WireGuard).
  bool wireguard_go_ = false;
  std::string subnet_;
  bool pod_bridge_ = false;
  std::string cluster_cidr_;  // of SetPodNat
  bool swept_ = false;
  std::map<std::string, v1::NodePeer> routed_;
  // Peers not routed and why, warned about once each.
  std::set<std::string> warned_;
};

}  // namespace warren

#endif  // WARREN_WORKER_NODE_NETWORK_H_
