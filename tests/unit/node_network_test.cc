// A routed node network (issue 13): the commands a worker gives the kernel for host-gw and
// vxlan (through a recording CommandRunner), the peers the manager's routing table carries, and
// registration with a routed network against an in-process manager.
#include "worker/node_network.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "in_process_cluster.h"
#include "manager/traffic.h"

namespace warren {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing_util::CliClusterTest;
using testing_util::WaitFor;

// Records every command; answers with the rule of the longest prefix the command starts with
// (the output, or an error), else succeeds with no output.
class RecordingRunner : public CommandRunner {
 public:
  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv) override {
    const std::string line = absl::StrJoin(argv, " ");
    commands.push_back(line);
    const absl::StatusOr<std::string>* best = nullptr;
    size_t best_size = 0;
    for (const auto& [prefix, answer] : rules) {
      if (absl::StartsWith(line, prefix) && (best == nullptr || prefix.size() > best_size)) {
        best = &answer;
        best_size = prefix.size();
      }
    }
    return best != nullptr ? *best : std::string();
  }
  // Recorded as "daemon ARGV"; then `after_daemon` become rules (the daemon answers now).
  absl::Status StartDaemon(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env,
                           const std::string& log_path) override {
    commands.push_back(absl::StrCat("daemon ", absl::StrJoin(argv, " ")));
    daemon_env = env;
    daemon_log = log_path;
    for (auto& [prefix, answer] : after_daemon) rules[prefix] = answer;
    return daemon_error;
  }
  // The commands since the last call.
  std::vector<std::string> Take() {
    std::vector<std::string> out;
    out.swap(commands);
    return out;
  }
  std::vector<std::string> commands;
  std::map<std::string, absl::StatusOr<std::string>> rules;
  std::map<std::string, absl::StatusOr<std::string>> after_daemon;
  absl::Status daemon_error;
  std::vector<std::string> daemon_env;
  std::string daemon_log;
};

v1::NodePeer Peer(const std::string& id, const std::string& subnet, const std::string& addr,
                  const std::string& network = "vxlan") {
  v1::NodePeer p;
  p.set_node_id(id);
  p.set_name("node-" + id);
  p.set_subnet(subnet);
  p.set_advertise_addr(addr);
  p.set_network(network);
  return p;
}

TEST(NodeNetworkTest, MacAndNodeAddress) {
  EXPECT_EQ(VxlanMacFor("10.252.0.3"), "02:57:0a:fc:00:03");
  EXPECT_EQ(VxlanMacFor("192.168.1.200"), "02:57:c0:a8:01:c8");
  EXPECT_EQ(VxlanMacFor("2001:db8::1"), "");
  EXPECT_EQ(NodeAddressOf("10.99.3.0/24"), "10.99.3.0");
}

TEST(NodeNetworkTest, VxlanCreatesItsDevicesMakesTheSubnetLocalAndRoutesEachPeer) {
  RecordingRunner run;
  // No device yet; the advertise address is on eth1.
  run.rules["ip -d -j link show dev warren.lo"] = absl::NotFoundError("Device does not exist");
  run.rules["ip -d -j link show dev warren.vx"] = absl::NotFoundError("Device does not exist");
  run.rules["ip -j -4 addr show"] =
      std::string(R"([{"ifname":"lo","addr_info":[{"local":"127.0.0.1"}]},)"
                  R"({"ifname":"eth1","addr_info":[{"local":"192.0.2.1"}]}])");
  NodeNetwork net(NodeNetworkMode::kVxlan, "192.0.2.1", run);
  ASSERT_TRUE(net.Prepare().ok());
  EXPECT_THAT(run.Take(),
              ElementsAre("ip -d -j link show dev warren.lo", "ip link add warren.lo type bridge",
                          "ip link set warren.lo up", "ip -d -j link show dev warren.vx",
                          "ip -j -4 addr show",
                          "ip link add warren.vx type vxlan id 1 local 192.0.2.1 dstport 4789 "
                          "nolearning dev eth1",
                          "ip link set warren.vx address 02:57:c0:00:02:01 addrgenmode none",
                          "ip link set warren.vx up"));

  // The node's address goes on warren.vx before an earlier one comes off (never a flush: a
  // device without an address loses every route through it).
  run.rules["ip -j -4 addr show dev warren.vx"] =
      std::string(R"([{"ifname":"warren.vx","addr_info":[{"local":"10.99.0.0","prefixlen":32},)"
                  R"({"local":"10.99.9.0","prefixlen":32}]}])");
  ASSERT_TRUE(net.SetSubnet("10.99.0.0/24").ok());
  EXPECT_THAT(
      run.Take(),
      ElementsAre("ip -j -4 route show table local proto 87",
                  "ip route replace local 10.99.0.0/24 dev warren.lo table local proto 87",
                  "ip addr replace 10.99.0.0/32 dev warren.vx", "ip -j -4 addr show dev warren.vx",
                  "ip addr del 10.99.9.0/32 dev warren.vx"));

  // The first call removes what an earlier worker left for a node that is gone (10.99.7.0/24
  // and its forwarding entry), then routes the peers; this node's own entry is skipped.
  run.rules["ip -j -4 route show proto 87"] =
      std::string(R"([{"dst":"10.99.1.0/24","gateway":"10.99.1.0"},{"dst":"10.99.7.0/24"}])");
  run.rules["bridge -j fdb show dev warren.vx"] =
      std::string(R"([{"mac":"02:57:c0:00:02:07","dst":"192.0.2.7"},)"
                  R"({"mac":"02:57:c0:00:02:02","dst":"192.0.2.2"},)"
                  R"({"mac":"aa:bb:cc:dd:ee:ff"}])");
  ASSERT_TRUE(
      net.SetPeers({Peer("self", "10.99.0.0/24", "192.0.2.1"),
                    Peer("b", "10.99.1.0/24", "192.0.2.2"), Peer("c", "10.99.2.0/24", "192.0.2.3")},
                   "self")
          .ok());
  EXPECT_THAT(
      run.Take(),
      ElementsAre("ip -j -4 route show proto 87", "ip route del 10.99.7.0/24 proto 87",
                  "ip neigh del 10.99.7.0 dev warren.vx", "bridge -j fdb show dev warren.vx",
                  "bridge fdb del 02:57:c0:00:02:07 dev warren.vx dst 192.0.2.7 self",
                  "ip neigh replace 10.99.1.0 lladdr 02:57:c0:00:02:02 dev warren.vx nud permanent",
                  "bridge fdb replace 02:57:c0:00:02:02 dev warren.vx dst 192.0.2.2 self permanent",
                  "ip route replace 10.99.1.0/24 via 10.99.1.0 dev warren.vx onlink proto 87",
                  "ip neigh replace 10.99.2.0 lladdr 02:57:c0:00:02:03 dev warren.vx nud permanent",
                  "bridge fdb replace 02:57:c0:00:02:03 dev warren.vx dst 192.0.2.3 self permanent",
                  "ip route replace 10.99.2.0/24 via 10.99.2.0 dev warren.vx onlink proto 87"));
  EXPECT_EQ(net.routed().size(), 2u);

  // The same peers again: nothing to do. One leaves: only its entries go.
  ASSERT_TRUE(
      net.SetPeers({Peer("b", "10.99.1.0/24", "192.0.2.2"), Peer("c", "10.99.2.0/24", "192.0.2.3")},
                   "self")
          .ok());
  EXPECT_THAT(run.Take(), IsEmpty());
  ASSERT_TRUE(net.SetPeers({Peer("c", "10.99.2.0/24", "192.0.2.3")}, "self").ok());
  EXPECT_THAT(
      run.Take(),
      ElementsAre("ip route del 10.99.1.0/24 proto 87", "ip neigh del 10.99.1.0 dev warren.vx",
                  "bridge fdb del 02:57:c0:00:02:02 dev warren.vx dst 192.0.2.2 self"));

  // A node that comes back at another address is routed through the new one.
  ASSERT_TRUE(net.SetPeers({Peer("c", "10.99.2.0/24", "192.0.2.30")}, "self").ok());
  const std::vector<std::string> moved = run.Take();
  EXPECT_THAT(moved, Contains("bridge fdb del 02:57:c0:00:02:03 dev warren.vx dst 192.0.2.3 self"));
  EXPECT_THAT(moved, Contains("bridge fdb replace 02:57:c0:00:02:1e dev warren.vx dst 192.0.2.30 "
                              "self permanent"));
}

TEST(NodeNetworkTest, HostGwRoutesThroughTheAdvertiseAddressAndSkipsOtherModes) {
  RecordingRunner run;
  NodeNetwork net(NodeNetworkMode::kHostGw, "192.0.2.1", run);
  ASSERT_TRUE(net.Prepare().ok());
  // The devices exist (the shows succeed): nothing is created; host-gw has no tunnel.
  EXPECT_THAT(run.Take(),
              ElementsAre("ip -d -j link show dev warren.lo", "ip link set warren.lo up"));
  ASSERT_TRUE(net.SetSubnet("10.99.4.0/24").ok());
  EXPECT_THAT(run.Take(), Not(Contains(HasSubstr("warren.vx"))));
  ASSERT_TRUE(net.SetPeers({Peer("b", "10.99.5.0/24", "192.0.2.2", "host-gw"),
                            Peer("v", "10.99.6.0/24", "192.0.2.3", "vxlan")},
                           "self")
                  .ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip -j -4 route show proto 87",
                                      "ip route replace 10.99.5.0/24 via 192.0.2.2 proto 87"));
  EXPECT_EQ(net.routed().size(), 1u);
}

// The cri runtime: the pods hold the subnet's addresses on their CNI bridge, and a `local`
// route of the whole subnet would deliver their packets to this host instead.
TEST(NodeNetworkTest, PodBridgeMakesOnlyTheNodeAddressLocal) {
  RecordingRunner run;
  // A process-runtime worker ran here before: its /24 local route must go.
  run.rules["ip -j -4 route show table local proto 87"] =
      std::string(R"([{"dst":"10.99.4.0/24","dev":"warren.lo"}])");
  NodeNetwork gw(NodeNetworkMode::kHostGw, "192.0.2.1", run);
  gw.SetPodBridge(true);
  ASSERT_TRUE(gw.SetSubnet("10.99.4.0/24").ok());
  EXPECT_THAT(
      run.Take(),
      ElementsAre("ip -j -4 route show table local proto 87",
                  "ip route del local 10.99.4.0/24 table local proto 87",
                  "ip route replace local 10.99.4.0/32 dev warren.lo table local proto 87"));
  // Check finds the node's address (`ip` prints a /32 without its prefix): nothing to add.
  run.rules["ip -j -4 route show table local proto 87"] =
      std::string(R"([{"dst":"10.99.4.0","dev":"warren.lo"}])");
  ASSERT_TRUE(gw.Check().ok());
  EXPECT_THAT(run.Take(), Not(Contains(HasSubstr("ip route replace local"))));
  // Gone: added again.
  run.rules["ip -j -4 route show table local proto 87"] = std::string("[]");
  ASSERT_TRUE(gw.Check().ok());
  EXPECT_THAT(run.Take(),
              Contains("ip route replace local 10.99.4.0/32 dev warren.lo table local proto 87"));

  // vxlan: the node's address is on warren.vx already; no local route at all.
  run.rules["ip -j -4 route show table local proto 87"] =
      std::string(R"([{"dst":"10.99.4.0/24","dev":"warren.lo"}])");
  NodeNetwork vx(NodeNetworkMode::kVxlan, "192.0.2.1", run);
  vx.SetPodBridge(true);
  ASSERT_TRUE(vx.SetSubnet("10.99.4.0/24").ok());
  const std::vector<std::string> done = run.Take();
  EXPECT_THAT(done, Contains("ip route del local 10.99.4.0/24 table local proto 87"));
  EXPECT_THAT(done, Contains("ip addr replace 10.99.4.0/32 dev warren.vx"));
  EXPECT_THAT(done, Not(Contains(HasSubstr("ip route replace local"))));
  run.rules["ip -j -4 route show table local proto 87"] = std::string("[]");
  ASSERT_TRUE(vx.Check().ok());
  EXPECT_THAT(run.Take(), Not(Contains(HasSubstr("ip route replace local"))));
}

// The pods' NAT and forwarding: own chains, filled once; a worker started again (or the
// periodic check) changes nothing that is right, and repairs what is not.
TEST(NodeNetworkTest, PodNatFillsItsOwnChainsOnceAndRepairsThem) {
  RecordingRunner run;
  NodeNetwork net(NodeNetworkMode::kVxlan, "192.0.2.1", run);
  net.SetPodBridge(true);
  EXPECT_EQ(net.SetPodNat("10.99.0.0/16").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(net.SetSubnet("10.99.4.0/24").ok());
  run.Take();
  EXPECT_THAT(net.SetPodNat("10.99.0.0/33").message(), HasSubstr("cluster_cidr"));
  run.Take();

  // Nothing there yet; POSTROUTING still jumps for the subnet of an earlier registration.
  const absl::Status no_chain = absl::FailedPreconditionError(
      "`iptables ...` failed (exit status 1): iptables: No chain/target/match by that name.");
  run.rules["iptables -w 5 -t nat -S WARREN-MASQ"] = no_chain;
  run.rules["iptables -w 5 -t filter -S WARREN-FWD"] = no_chain;
  run.rules["iptables -w 5 -t nat -S POSTROUTING"] = std::string(
      "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.88.0.0/16 -j CNI-abc\n"
      "-A POSTROUTING -s 10.99.9.0/24 -j WARREN-MASQ\n");
  run.rules["iptables -w 5 -t filter -S FORWARD"] = std::string("-P FORWARD DROP\n");
  ASSERT_TRUE(net.SetPodNat("10.99.0.0/16").ok());
  EXPECT_THAT(
      run.Take(),
      ElementsAre("sysctl -q -w net.ipv4.ip_forward=1", "iptables -w 5 -t nat -S WARREN-MASQ",
                  "iptables -w 5 -t nat -N WARREN-MASQ",
                  "iptables -w 5 -t nat -A WARREN-MASQ -d 10.99.0.0/16 -j RETURN",
                  "iptables -w 5 -t nat -A WARREN-MASQ -d 224.0.0.0/4 -j RETURN",
                  "iptables -w 5 -t nat -A WARREN-MASQ -j MASQUERADE",
                  "iptables -w 5 -t nat -S POSTROUTING",
                  "iptables -w 5 -t nat -D POSTROUTING -s 10.99.9.0/24 -j WARREN-MASQ",
                  "iptables -w 5 -t nat -I POSTROUTING 1 -s 10.99.4.0/24 -j WARREN-MASQ",
                  "iptables -w 5 -t filter -S WARREN-FWD", "iptables -w 5 -t filter -N WARREN-FWD",
                  "iptables -w 5 -t filter -A WARREN-FWD -s 10.99.0.0/16 -j ACCEPT",
                  "iptables -w 5 -t filter -A WARREN-FWD -d 10.99.0.0/16 -j ACCEPT",
                  "iptables -w 5 -t filter -S FORWARD",
                  "iptables -w 5 -t filter -I FORWARD 1 -j WARREN-FWD"));

  // All in place (as `iptables -S` prints it): only reads.
  run.rules["iptables -w 5 -t nat -S WARREN-MASQ"] = std::string(
      "-N WARREN-MASQ\n-A WARREN-MASQ -d 10.99.0.0/16 -j RETURN\n"
      "-A WARREN-MASQ -d 224.0.0.0/4 -j RETURN\n-A WARREN-MASQ -j MASQUERADE\n");
  run.rules["iptables -w 5 -t nat -S POSTROUTING"] =
      std::string("-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.99.4.0/24 -j WARREN-MASQ\n");
  run.rules["iptables -w 5 -t filter -S WARREN-FWD"] = std::string(
      "-N WARREN-FWD\n-A WARREN-FWD -s 10.99.0.0/16 -j ACCEPT\n"
      "-A WARREN-FWD -d 10.99.0.0/16 -j ACCEPT\n");
  run.rules["iptables -w 5 -t filter -S FORWARD"] =
      std::string("-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j WARREN-FWD\n");
  ASSERT_TRUE(net.SetPodNat("10.99.0.0/16").ok());
  EXPECT_THAT(
      run.Take(),
      ElementsAre("sysctl -q -w net.ipv4.ip_forward=1", "iptables -w 5 -t nat -S WARREN-MASQ",
                  "iptables -w 5 -t nat -S POSTROUTING", "iptables -w 5 -t filter -S WARREN-FWD",
                  "iptables -w 5 -t filter -S FORWARD"));

  // Someone changed WARREN-FWD and doubled the jump: the chain is filled again, one jump stays.
  run.rules["iptables -w 5 -t filter -S WARREN-FWD"] =
      std::string("-N WARREN-FWD\n-A WARREN-FWD -s 10.99.0.0/16 -j ACCEPT\n");
  run.rules["iptables -w 5 -t filter -S FORWARD"] =
      std::string("-P FORWARD DROP\n-A FORWARD -j WARREN-FWD\n-A FORWARD -j WARREN-FWD\n");
  run.rules["ip -j -4 route show table local proto 87"] = std::string("[]");
  ASSERT_TRUE(net.Check().ok());
  const std::vector<std::string> repaired = run.Take();
  EXPECT_THAT(repaired, Contains("iptables -w 5 -t filter -F WARREN-FWD"));
  EXPECT_THAT(repaired,
              Contains("iptables -w 5 -t filter -A WARREN-FWD -d 10.99.0.0/16 -j ACCEPT"));
  EXPECT_THAT(repaired, Contains("iptables -w 5 -t filter -D FORWARD -j WARREN-FWD"));
  EXPECT_THAT(repaired, Not(Contains(HasSubstr("-I FORWARD"))));
  EXPECT_THAT(repaired, Not(Contains(HasSubstr("-t nat -A"))));

  // Without iptables: the error says what to install.
  RecordingRunner bare;
  bare.rules["iptables"] =
      absl::UnavailableError("`iptables -w 5 -t nat -S WARREN-MASQ`: starting it: No such file");
  NodeNetwork none(NodeNetworkMode::kHostGw, "192.0.2.1", bare);
  none.SetPodBridge(true);
  ASSERT_TRUE(none.SetSubnet("10.99.4.0/24").ok());
  absl::Status missing = none.SetPodNat("10.99.0.0/16");
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.message(), HasSubstr("needs iptables (apt-get install iptables)"));
}

TEST(NodeNetworkTest, AFailedRouteIsTriedAgainAndTheOthersStay) {
  RecordingRunner run;
  NodeNetwork net(NodeNetworkMode::kHostGw, "192.0.2.1", run);
  run.rules["ip route replace 10.99.5.0/24"] = absl::FailedPreconditionError(
      "`ip route replace ...` failed (exit status 2): Nexthop "
      "has invalid gateway");
  absl::Status s = net.SetPeers({Peer("b", "10.99.5.0/24", "192.0.2.2", "host-gw"),
                                 Peer("c", "10.99.6.0/24", "192.0.2.3", "host-gw")},
                                "self");
  EXPECT_THAT(s.message(), HasSubstr("Nexthop has invalid gateway"));
  EXPECT_EQ(net.routed().size(), 1u);
  run.rules.clear();
  run.Take();
  ASSERT_TRUE(net.SetPeers({Peer("b", "10.99.5.0/24", "192.0.2.2", "host-gw"),
                            Peer("c", "10.99.6.0/24", "192.0.2.3", "host-gw")},
                           "self")
                  .ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip route replace 10.99.5.0/24 via 192.0.2.2 proto 87"));
  EXPECT_EQ(net.routed().size(), 2u);
}

TEST(NodeNetworkTest, RefusesALoopbackOrIpv6AdvertiseAddressAndSaysWhatIsNeeded) {
  RecordingRunner run;
  for (const std::string addr : {"127.0.0.1", "2001:db8::1", ""}) {
    NodeNetwork net(NodeNetworkMode::kVxlan, addr, run);
    absl::Status s = net.Prepare();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << addr;
    EXPECT_THAT(s.message(), HasSubstr("--network vxlan needs an IPv4 --advertise-addr that the "
                                       "other nodes reach"))
        << addr;
  }
  EXPECT_THAT(run.commands, IsEmpty());
  // Without the rights to make a device, the error says so.
  run.rules["ip -d -j link show dev warren.lo"] = absl::NotFoundError("no device");
  run.rules["ip link add warren.lo"] =
      absl::FailedPreconditionError("RTNETLINK answers: Operation not permitted");
  NodeNetwork net(NodeNetworkMode::kHostGw, "192.0.2.1", run);
  absl::Status s = net.Prepare();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--network host-gw needs root (CAP_NET_ADMIN) to create "
                                     "the device warren.lo"));
}

TEST(NodeNetworkTest, AVxlanDeviceOfAnotherAddressIsMadeAnewAndARightOneKept) {
  RecordingRunner run;
  run.rules["ip -d -j link show dev warren.vx"] = std::string(
      R"([{"ifname":"warren.vx","address":"02:57:c0:00:02:01","linkinfo":{"info_kind":"vxlan",)"
      R"("info_data":{"id":1,"local":"192.0.2.1","port":4789}}}])");
  run.rules["ip -j -4 addr show"] = std::string(
      R"([{"ifname":"eth0","addr_info":[{"local":"192.0.2.1"},{"local":"192.0.2.9"}]}])");
  NodeNetwork kept(NodeNetworkMode::kVxlan, "192.0.2.1", run);
  ASSERT_TRUE(kept.Prepare().ok());
  EXPECT_THAT(run.Take(), Not(Contains(HasSubstr("ip link add warren.vx"))));
  NodeNetwork moved(NodeNetworkMode::kVxlan, "192.0.2.9", run);
  ASSERT_TRUE(moved.Prepare().ok());
  const std::vector<std::string> cmds = run.Take();
  EXPECT_THAT(cmds, Contains("ip link del warren.vx"));
  EXPECT_THAT(cmds, Contains(HasSubstr("ip link add warren.vx type vxlan id 1 local 192.0.2.9")));
}

TEST(NodeNetworkTest, AnAdvertiseAddressOfNoDeviceOrAMissingIpIsAClearError) {
  RecordingRunner run;
  run.rules["ip -d -j link show dev warren.vx"] = absl::NotFoundError("Device does not exist");
  run.rules["ip -j -4 addr show"] =
      std::string(R"([{"ifname":"eth0","addr_info":[{"local":"192.0.2.1"}]}])");
  NodeNetwork nat(NodeNetworkMode::kVxlan, "203.0.113.5", run);
  absl::Status s = nat.Prepare();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--network vxlan: --advertise-addr 203.0.113.5 is not an "
                                     "address of this host"));
  EXPECT_THAT(run.Take(), Not(Contains(HasSubstr("ip link add warren.vx"))));

  RecordingRunner none;
  none.rules["ip"] = absl::UnavailableError(
      "`ip -d -j link show dev warren.lo`: starting it: "
      "No such file or directory");
  NodeNetwork net(NodeNetworkMode::kHostGw, "192.0.2.1", none);
  s = net.Prepare();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--network host-gw needs iproute2 (the `ip` and `bridge` "
                                     "commands)"));
}

TEST(NodeNetworkTest, WhatTheManagerSendsIsCheckedBeforeItReachesIp) {
  RecordingRunner run;
  NodeNetwork net(NodeNetworkMode::kHostGw, "192.0.2.1", run);
  for (const std::string bad : {"default", "0.0.0.0/0", "10.99.1.7/24", "10.99.0.0/16", ""}) {
    absl::Status s = net.SetSubnet(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("is not an IPv4 /24")) << bad;
  }
  EXPECT_THAT(run.Take(), IsEmpty());
  ASSERT_TRUE(net.SetPeers({Peer("x", "0.0.0.0/0", "192.0.2.2", "host-gw"),
                            Peer("y", "10.99.5.0/24", "2001:db8::5", "host-gw"),
                            Peer("z", "10.99.6.0/24", "192.0.2.6", "host-gw")},
                           "self")
                  .ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip -j -4 route show proto 87",
                                      "ip route replace 10.99.6.0/24 via 192.0.2.6 proto 87"));
}

TEST(NodeNetworkTest, ASharedHostMacStaysWhileAnotherNodeUsesIt) {
  RecordingRunner run;
  NodeNetwork net(NodeNetworkMode::kVxlan, "192.0.2.1", run);
  // The host 192.0.2.2 joined anew as node b2 before its old node b went down.
  ASSERT_TRUE(net.SetPeers({Peer("b", "10.99.1.0/24", "192.0.2.2"),
                            Peer("b2", "10.99.2.0/24", "192.0.2.2")},
                           "self")
                  .ok());
  run.Take();
  ASSERT_TRUE(net.SetPeers({Peer("b2", "10.99.2.0/24", "192.0.2.2")}, "self").ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip route del 10.99.1.0/24 proto 87",
                                      "ip neigh del 10.99.1.0 dev warren.vx"));
  ASSERT_TRUE(net.SetPeers({}, "self").ok());
  EXPECT_THAT(run.Take(), Contains("bridge fdb del 02:57:c0:00:02:02 dev warren.vx dst 192.0.2.2 "
                                   "self"));
}

TEST(NodeNetworkTest, ARouteTheKernelLostIsRoutedAgainAndForgetRoutesEverything) {
  RecordingRunner run;
  NodeNetwork net(NodeNetworkMode::kHostGw, "192.0.2.1", run);
  ASSERT_TRUE(net.SetSubnet("10.99.0.0/24").ok());
  const std::vector<v1::NodePeer> peers = {Peer("b", "10.99.1.0/24", "192.0.2.2", "host-gw"),
                                           Peer("c", "10.99.2.0/24", "192.0.2.3", "host-gw")};
  ASSERT_TRUE(net.SetPeers(peers, "self").ok());
  run.Take();
  // eth0 went down and up: the kernel dropped the route to 10.99.2.0/24; the local route stays.
  run.rules["ip -j -4 route show table local proto 87"] =
      std::string(R"([{"dst":"10.99.0.0/24","type":"local"}])");
  run.rules["ip -j -4 route show proto 87"] = std::string(R"([{"dst":"10.99.1.0/24"}])");
  absl::Status s = net.Check();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("1 routes to other nodes were gone"));
  run.Take();
  ASSERT_TRUE(net.SetPeers(peers, "self").ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip route replace 10.99.2.0/24 via 192.0.2.3 proto 87"));
  // All there: nothing to do.
  run.rules["ip -j -4 route show proto 87"] =
      std::string(R"([{"dst":"10.99.1.0/24"},{"dst":"10.99.2.0/24"}])");
  EXPECT_TRUE(net.Check().ok());
  // A lost local route is put back.
  run.rules["ip -j -4 route show table local proto 87"] = std::string("[]");
  EXPECT_TRUE(net.Check().ok());
  EXPECT_THAT(run.Take(),
              Contains("ip route replace local 10.99.0.0/24 dev warren.lo table local proto 87"));
  // After Forget (the node registered anew) every peer is routed again.
  net.Forget();
  ASSERT_TRUE(net.SetPeers(peers, "self").ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip -j -4 route show proto 87",
                                      "ip route replace 10.99.1.0/24 via 192.0.2.2 proto 87",
                                      "ip route replace 10.99.2.0/24 via 192.0.2.3 proto 87"));
}

// RFC 7748's X25519 test vector (Alice), in WireGuard's base64.
constexpr char kAlicePrivate[] = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
constexpr char kAlicePublic[] = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
constexpr char kKeyB[] = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";
constexpr char kKeyC[] = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA=";
constexpr char kKeyGone[] = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXA=";

v1::NodePeer WgPeer(const std::string& id, const std::string& subnet, const std::string& addr,
                    const std::string& key) {
  v1::NodePeer p = Peer(id, subnet, addr, "wireguard");
  p.set_wireguard_public_key(key);
  return p;
}

class WireguardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/warren-wg-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    key_path_ = dir_ + "/wireguard.key";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void WriteKey(const std::string& text) { std::ofstream(key_path_) << text; }
  std::string dir_;
  std::string key_path_;
};

TEST_F(WireguardTest, TheKeyIsMadeOnceKeptPrivateAndItsPublicKeyDerived) {
  absl::StatusOr<std::string> made = LoadOrCreateWireguardKey(key_path_);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(IsWireguardKey(*made));
  struct stat st {};
  ASSERT_EQ(stat(key_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  // Started again: the same key.
  EXPECT_EQ(*LoadOrCreateWireguardKey(key_path_), *made);
  // A key written by `wg genkey` gives what `wg pubkey` gives.
  WriteKey(absl::StrCat(kAlicePrivate, "\n"));
  EXPECT_EQ(*LoadOrCreateWireguardKey(key_path_), kAlicePublic);
  WriteKey("not a key");
  absl::StatusOr<std::string> bad = LoadOrCreateWireguardKey(key_path_);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(bad.status().message(), HasSubstr("is not a WireGuard private key"));
  EXPECT_FALSE(IsWireguardKey("short="));
  // Stray bits in the last character: not canonical, `wg` would refuse it.
  EXPECT_TRUE(IsWireguardKey(kKeyB));
  EXPECT_FALSE(IsWireguardKey(std::string(43, 'B') + "="));
  EXPECT_FALSE(IsWireguardKey(std::string(44, '!')));
}

TEST_F(WireguardTest, WithoutTheKernelModuleWireguardGoRunsOnAPersistentTun) {
  WriteKey(kAlicePrivate);
  RecordingRunner run;
  run.rules["ip -d -j link show dev warren.lo"] = absl::NotFoundError("Device does not exist");
  run.rules["ip -d -j link show dev warren.wg"] = absl::NotFoundError("Device does not exist");
  run.rules["ip -j -4 addr show"] =
      std::string(R"([{"ifname":"eth1","mtu":1500,"addr_info":[{"local":"192.0.2.1"}]}])");
  run.rules["ip link add warren.wg type wireguard"] = absl::FailedPreconditionError(
      "`ip link add warren.wg type wireguard` failed (exit status 2): Error: Unknown device type.");
  run.rules["wg show warren.wg dump"] = absl::FailedPreconditionError(
      "`wg show warren.wg dump` failed (exit status 1): Unable to access interface");
  run.after_daemon["wg show warren.wg dump"] = std::string("(none)\t(none)\t0\toff\n");
  NodeNetwork net(NodeNetworkMode::kWireguard, "192.0.2.1", run, dir_);
  ASSERT_TRUE(net.Prepare().ok());
  EXPECT_EQ(net.wireguard_public_key(), kAlicePublic);
  EXPECT_THAT(
      run.Take(),
      ElementsAre("ip -d -j link show dev warren.lo", "ip link add warren.lo type bridge",
                  "ip link set warren.lo up", "ip -j -4 addr show",
                  "ip -d -j link show dev warren.wg", "ip link add warren.wg type wireguard",
                  "ip tuntap add dev warren.wg mode tun", "ip link set warren.wg addrgenmode none",
                  "wg show warren.wg dump", "daemon wireguard-go -f warren.wg",
                  "wg show warren.wg dump",
                  absl::StrCat("wg set warren.wg private-key ", key_path_, " listen-port 51820"),
                  "ip link set warren.wg mtu 1420 up"));
  EXPECT_THAT(run.daemon_env, Contains("WG_PROCESS_FOREGROUND=1"));
  EXPECT_EQ(run.daemon_log, dir_ + "/wireguard-go.log");

  // The node's address goes on the tunnel (its packets' source is in its subnet, which the
  // other nodes' WireGuard accepts from it).
  run.rules["ip -j -4 addr show dev warren.wg"] = std::string("[]");
  ASSERT_TRUE(net.SetSubnet("10.99.0.0/24").ok());
  EXPECT_THAT(run.Take(), Contains("ip addr replace 10.99.0.0/32 dev warren.wg"));

  // The first SetPeers sweeps a route and a peer an earlier worker left, skips a peer without a
  // valid key, and routes each peer through its key.
  run.rules["ip -j -4 route show proto 87"] = std::string(R"([{"dst":"10.99.7.0/24"}])");
  run.rules["wg show warren.wg dump"] =
      absl::StrCat("(priv)\t", kAlicePublic, "\t51820\toff\n", kKeyGone,
                   "\t(none)\t192.0.2.7:51820\t10.99.7.0/"
                   "24\t0\t0\t0\toff\n");
  ASSERT_TRUE(net.SetPeers({WgPeer("self", "10.99.0.0/24", "192.0.2.1", kAlicePublic),
                            WgPeer("b", "10.99.1.0/24", "192.0.2.2", kKeyB),
                            WgPeer("c", "10.99.2.0/24", "192.0.2.3", kKeyC),
                            WgPeer("k", "10.99.3.0/24", "192.0.2.4", "no key"),
                            Peer("v", "10.99.4.0/24", "192.0.2.5", "vxlan")},
                           "self")
                  .ok());
  EXPECT_THAT(run.Take(),
              ElementsAre("ip -j -4 route show proto 87", "ip route del 10.99.7.0/24 proto 87",
                          "wg show warren.wg dump",
                          absl::StrCat("wg set warren.wg peer ", kKeyGone, " remove"),
                          absl::StrCat("wg set warren.wg peer ", kKeyB,
                                       " endpoint 192.0.2.2:51820 allowed-ips 10.99.1.0/24"),
                          "ip route replace 10.99.1.0/24 dev warren.wg proto 87",
                          absl::StrCat("wg set warren.wg peer ", kKeyC,
                                       " endpoint 192.0.2.3:51820 allowed-ips 10.99.2.0/24"),
                          "ip route replace 10.99.2.0/24 dev warren.wg proto 87"));
  EXPECT_EQ(net.routed().size(), 2u);

  // Node b joined anew from the same data dir (same key, a new subnet) before its old node went
  // down: the one peer carries both subnets, then only the new one.
  ASSERT_TRUE(net.SetPeers({WgPeer("b", "10.99.1.0/24", "192.0.2.2", kKeyB),
                            WgPeer("b2", "10.99.5.0/24", "192.0.2.2", kKeyB),
                            WgPeer("c", "10.99.2.0/24", "192.0.2.3", kKeyC)},
                           "self")
                  .ok());
  EXPECT_THAT(run.Take(), Contains(absl::StrCat("wg set warren.wg peer ", kKeyB,
                                                " endpoint 192.0.2.2:51820 allowed-ips "
                                                "10.99.1.0/24,10.99.5.0/24")));
  ASSERT_TRUE(net.SetPeers({WgPeer("b2", "10.99.5.0/24", "192.0.2.2", kKeyB)}, "self").ok());
  EXPECT_THAT(run.Take(), ElementsAre("ip route del 10.99.1.0/24 proto 87",
                                      absl::StrCat("wg set warren.wg peer ", kKeyB,
                                                   " allowed-ips 10.99.5.0/24"),
                                      "ip route del 10.99.2.0/24 proto 87",
                                      absl::StrCat("wg set warren.wg peer ", kKeyC, " remove")));

  // wireguard-go died: the check starts it again and every peer is configured anew.
  run.rules["wg show warren.wg dump"] = absl::FailedPreconditionError("Unable to access interface");
  run.rules["ip -d -j link show dev warren.wg"] =
      std::string(R"([{"ifname":"warren.wg","linkinfo":{"info_kind":"tun"}}])");
  run.after_daemon["wg show warren.wg dump"] = std::string("(priv)\tpub\t51820\toff\n");
  run.rules["ip -j -4 route show proto 87"] = std::string(R"([{"dst":"10.99.5.0/24"}])");
  absl::Status s = net.Check();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  const std::vector<std::string> checked = run.Take();
  EXPECT_THAT(checked, Contains("daemon wireguard-go -f warren.wg"));
  EXPECT_THAT(checked, Contains("ip addr replace 10.99.0.0/32 dev warren.wg"));
  EXPECT_THAT(checked, Not(Contains(HasSubstr("ip tuntap"))));
  ASSERT_TRUE(net.SetPeers({WgPeer("b2", "10.99.5.0/24", "192.0.2.2", kKeyB)}, "self").ok());
  EXPECT_THAT(run.Take(), Contains(absl::StrCat("wg set warren.wg peer ", kKeyB,
                                                " endpoint 192.0.2.2:51820 allowed-ips "
                                                "10.99.5.0/24")));
}

TEST_F(WireguardTest, ARunningWireguardIsAdoptedAndTheKernelsPreferred) {
  RecordingRunner run;
  run.rules["ip -j -4 addr show"] =
      std::string(R"([{"ifname":"eth1","mtu":9000,"addr_info":[{"local":"192.0.2.1"}]}])");
  // wireguard-go of an earlier worker still runs: nothing is started.
  run.rules["ip -d -j link show dev warren.wg"] =
      std::string(R"([{"ifname":"warren.wg","linkinfo":{"info_kind":"tun"}}])");
  NodeNetwork adopted(NodeNetworkMode::kWireguard, "192.0.2.1", run, dir_);
  ASSERT_TRUE(adopted.Prepare().ok());
  std::vector<std::string> cmds = run.Take();
  EXPECT_THAT(cmds, Not(Contains(HasSubstr("daemon"))));
  EXPECT_THAT(cmds, Not(Contains(HasSubstr("ip link add warren.wg"))));
  EXPECT_THAT(cmds, Contains("ip link set warren.wg mtu 8920 up"));

  // With the kernel module: its device, no wireguard-go.
  run.rules["ip -d -j link show dev warren.wg"] = absl::NotFoundError("Device does not exist");
  NodeNetwork kernel(NodeNetworkMode::kWireguard, "192.0.2.1", run, dir_);
  ASSERT_TRUE(kernel.Prepare().ok());
  cmds = run.Take();
  EXPECT_THAT(cmds, Contains("ip link add warren.wg type wireguard"));
  EXPECT_THAT(cmds, Not(Contains(HasSubstr("daemon"))));
  EXPECT_THAT(cmds, Not(Contains(HasSubstr("tuntap"))));

  // Neither the module nor wireguard-go: the error says what to install.
  run.rules["ip link add warren.wg type wireguard"] =
      absl::FailedPreconditionError("Error: Unknown device type.");
  run.rules["wg show warren.wg dump"] = absl::FailedPreconditionError("Unable to access interface");
  run.daemon_error =
      absl::UnavailableError("`wireguard-go -f warren.wg`: starting it: No such file or directory");
  NodeNetwork none(NodeNetworkMode::kWireguard, "192.0.2.1", run, dir_);
  absl::Status s = none.Prepare();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("this kernel has no WireGuard and wireguard-go is not "
                                     "installed"));
}

TEST(NodeNetworkTest, OneRoutedWorkerPerNetworkNamespace) {
  absl::StatusOr<int> first = ClaimHostNetwork();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<int> second = ClaimHostNetwork();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(),
              HasSubstr("another worker with a routed --network runs on this host"));
  close(*first);
  absl::StatusOr<int> again = ClaimHostNetwork();
  ASSERT_TRUE(again.ok()) << again.status();
  close(*again);
}

v1::Node NodeOf(const std::string& id, const std::string& network, v1::NodeState state,
                const std::string& subnet) {
  v1::Node n;
  n.set_id(id);
  n.set_name(id);
  n.set_network(network);
  n.set_state(state);
  n.set_subnet(subnet);
  n.set_advertise_addr("192.0.2." + std::to_string(subnet.size()));
  return n;
}

TEST(RoutedPeersTest, ReadyRoutedNodesBySubnetADrainedOneStaysWhileItRunsTasksADownOneGoes) {
  std::vector<v1::Node> nodes = {
      NodeOf("c", "vxlan", v1::NODE_STATE_READY, "10.99.2.0/24"),
      NodeOf("a", "vxlan", v1::NODE_STATE_READY, "10.99.0.0/24"),
      NodeOf("down", "vxlan", v1::NODE_STATE_DOWN, "10.99.3.0/24"),
      NodeOf("local", "local", v1::NODE_STATE_READY, "10.99.4.0/24"),
      NodeOf("old", "", v1::NODE_STATE_READY, "10.99.5.0/24"),
      NodeOf("gw", "host-gw", v1::NODE_STATE_READY, "10.99.6.0/24"),
      NodeOf("nosubnet", "vxlan", v1::NODE_STATE_READY, ""),
  };
  nodes[0].set_availability(v1::NODE_AVAILABILITY_DRAIN);
  std::vector<std::string> got;
  // Drained c still runs tasks: it stays.
  for (const v1::NodePeer& p : RoutedPeers(nodes, {"c"})) {
    got.push_back(p.node_id() + "@" + p.subnet());
  }
  EXPECT_THAT(got, ElementsAre("a@10.99.0.0/24", "c@10.99.2.0/24", "gw@10.99.6.0/24"));
  // Its last task stopped: it leaves.
  got.clear();
  for (const v1::NodePeer& p : RoutedPeers(nodes, {})) got.push_back(p.node_id());
  EXPECT_THAT(got, ElementsAre("a", "gw"));
}

// Registration with a routed network, and the peers in the routing table streamed to workers.
class RoutedRegistrationTest : public CliClusterTest {
 protected:
  absl::StatusOr<v1::Node> Register(const std::string& name, const std::string& network,
                                    const std::string& range = "",
                                    const std::string& runtime = "fake",
                                    const std::string& wg_key = "") {
    grpc::ClientContext ctx;
    v1::RegisterNodeRequest req;
    req.set_wireguard_public_key(wg_key);
    req.set_name(name);
    req.set_role("worker");
    req.set_runtime(runtime);
    req.set_address_range(range);
    req.set_network(network);
    req.set_agent_addr("127.0.0.1:1");
    req.set_advertise_addr("192.0.2." + std::to_string(name.size() + 10));
    req.mutable_capacity()->set_cpus(1);
    v1::Node node;
    grpc::Status s = dispatcher_->RegisterNode(&ctx, req, &node);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return node;
  }

  // The first routing table the manager streams to `node_id`.
  v1::RoutingTable Routes(const std::string& node_id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::WatchRoutesRequest req;
    req.set_node_id(node_id);
    auto reader = dispatcher_->WatchRoutes(&ctx, req);
    v1::RoutingTable table;
    EXPECT_TRUE(reader->Read(&table));
    ctx.TryCancel();
    reader->Finish();
    return table;
  }
};

TEST_F(RoutedRegistrationTest, TaskAddressesComeFromTheSubnetAndTheTableNamesThePeers) {
  auto a = Register("a", "vxlan");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->network(), "vxlan");
  EXPECT_EQ(a->address_range(), a->subnet());
  EXPECT_EQ(a->subnet(), "10.99.0.0/24");
  auto b = Register("bb", "vxlan");
  ASSERT_TRUE(b.ok()) << b.status();
  auto local = Register("ccc", "", "127.71.0.0/16");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->network(), "local");
  EXPECT_EQ(local->address_range(), "127.71.0.0/16");

  // The routed nodes, not the local one.
  v1::RoutingTable table = Routes(a->id());
  std::vector<std::string> peers;
  for (const v1::NodePeer& p : table.peers()) {
    peers.push_back(
        absl::StrCat(p.name(), " ", p.subnet(), " ", p.advertise_addr(), " ", p.network()));
  }
  EXPECT_THAT(peers,
              ElementsAre("a 10.99.0.0/24 192.0.2.11 vxlan", "bb 10.99.1.0/24 192.0.2.12 vxlan"));

  // Tasks on a routed node get host addresses of its subnet (.1 to .254).
  ASSERT_EQ(Run({"node", "update", "--availability", "drain", "ccc"}), 0) << err_.str();
  ASSERT_EQ(Run({"service", "create", "web", "--command", "/bin/true", "--replicas", "4"}), 0)
      << err_.str();
  std::vector<std::string> addresses;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    v1::ListTasksResponse resp;
    if (!stub_->ListTasks(&ctx, req, &resp).ok()) return false;
    addresses.clear();
    for (const v1::Task& t : resp.tasks()) {
      if (!t.address().empty()) addresses.push_back(t.address());
    }
    return addresses.size() == 4;
  }));
  for (const std::string& addr : addresses) {
    EXPECT_TRUE(absl::StartsWith(addr, "10.99.0.") || absl::StartsWith(addr, "10.99.1.")) << addr;
    EXPECT_FALSE(absl::EndsWith(addr, ".0") || absl::EndsWith(addr, ".255")) << addr;
  }

  // A removed node leaves the peers.
  ASSERT_EQ(Run({"node", "rm", "--force", "bb"}), 0) << err_.str();
  table = Routes(a->id());
  ASSERT_EQ(table.peers_size(), 1);
  EXPECT_EQ(table.peers(0).name(), "a");
}

// The cri runtime on a routed network: the pods' CNI bridge takes the node's subnet, so the
// manager hands it out (with the cluster CIDR, for the worker's NAT) and leaves the pod
// addresses to the runtime.
TEST_F(RoutedRegistrationTest, CriNodesGetTheSubnetAndTheClusterCidrAndNoTaskAddresses) {
  auto pods = Register("pods", "vxlan", "", "cri");
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_EQ(pods->runtime(), "cri");
  EXPECT_EQ(pods->subnet(), "10.99.0.0/24");
  EXPECT_EQ(pods->address_range(), pods->subnet());
  EXPECT_EQ(pods->cluster_cidr(), "10.99.0.0/16");
  auto gw = Register("gw", "host-gw", "", "cri");
  ASSERT_TRUE(gw.ok()) << gw.status();
  EXPECT_EQ(gw->subnet(), "10.99.1.0/24");
  EXPECT_EQ(gw->cluster_cidr(), "10.99.0.0/16");

  ASSERT_EQ(Run({"node", "update", "--availability", "drain", "gw"}), 0) << err_.str();
  ASSERT_EQ(
      Run({"service", "create", "web", "--image", "registry.example/web:1", "--replicas", "2"}), 0)
      << err_.str();
  int placed = 0;
  ASSERT_TRUE(WaitFor([&] {
    grpc::ClientContext ctx;
    v1::ListTasksRequest req;
    v1::ListTasksResponse resp;
    if (!stub_->ListTasks(&ctx, req, &resp).ok()) return false;
    placed = 0;
    for (const v1::Task& t : resp.tasks()) {
      if (t.node_id() != pods->id()) continue;
      ++placed;
      EXPECT_EQ(t.address(), "") << "the scheduler gave pod " << t.id() << " an address";
    }
    return placed == 2;
  }));
}

TEST_F(RoutedRegistrationTest, BadNetworkInputIsRefusedNamingTheFieldAndChangesNothing) {
  auto bogus = Register("a", "flannel");
  EXPECT_EQ(bogus.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bogus.status().message(), HasSubstr("network: \"flannel\" is not a network mode"));
  auto ranged = Register("a", "vxlan", "127.72.0.0/16");
  EXPECT_EQ(ranged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ranged.status().message(),
              HasSubstr("address_range: \"127.72.0.0/16\" must be empty with network vxlan"));
  grpc::ClientContext ctx;
  v1::RegisterNodeRequest loopback;
  loopback.set_name("a");
  loopback.set_runtime("fake");
  loopback.set_network("vxlan");
  loopback.set_advertise_addr("127.0.0.1");
  v1::Node ignored;
  grpc::Status refused = dispatcher_->RegisterNode(&ctx, loopback, &ignored);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("advertise_addr: network vxlan needs an IPv4 address the other nodes "
                        "reach, not \"127.0.0.1\""));
  auto cri = Register("a", "host-gw", "127.74.0.0/16", "cri");
  EXPECT_EQ(cri.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(cri.status().message(),
              HasSubstr("address_range: \"127.74.0.0/16\" must be empty with network host-gw"));
  ASSERT_EQ(Run({"node", "ls", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), Not(HasSubstr("\"name\": \"a\"")));

  // A node keeps the network it registered with: its tasks hold addresses of it.
  auto a = Register("a", "host-gw");
  ASSERT_TRUE(a.ok()) << a.status();
  auto moved = Register("a", "", "127.73.0.0/16");
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(moved.status().message(),
              HasSubstr("network: node a registered with network host-gw; a node may not change "
                        "it by registering again"));
  ASSERT_EQ(Run({"node", "inspect", "a", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"network\": \"host-gw\""));
  EXPECT_THAT(out_.str(), HasSubstr("\"addressRange\": \"10.99.0.0/24\""));
}

TEST_F(RoutedRegistrationTest, WireguardNodesNeedAKeyAndTheirPeersCarryIt) {
  for (const std::string bad : {std::string(), std::string("short="), std::string(44, '!')}) {
    auto refused = Register("a", "wireguard", "", "fake", bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(refused.status().message(),
                HasSubstr("wireguard_public_key: network wireguard needs the node's WireGuard "
                          "public key, base64 of 32 bytes"))
        << bad;
  }
  auto plain = Register("a", "vxlan", "", "fake", kKeyB);
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plain.status().message(), HasSubstr("wireguard_public_key: only with network "
                                                  "wireguard"));
  ASSERT_EQ(Run({"node", "ls", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), Not(HasSubstr("\"name\": \"a\"")));

  auto a = Register("a", "wireguard", "", "fake", kKeyB);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->network(), "wireguard");
  EXPECT_EQ(a->wireguard_public_key(), kKeyB);
  EXPECT_EQ(a->cluster_cidr(), "10.99.0.0/16");
  auto b = Register("bb", "wireguard", "", "fake", kKeyC);
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<std::string> peers;
  const v1::RoutingTable table = Routes(a->id());
  for (const v1::NodePeer& p : table.peers()) {
    peers.push_back(
        absl::StrCat(p.name(), " ", p.subnet(), " ", p.network(), " ", p.wireguard_public_key()));
  }
  EXPECT_THAT(peers, ElementsAre(absl::StrCat("a 10.99.0.0/24 wireguard ", kKeyB),
                                 absl::StrCat("bb 10.99.1.0/24 wireguard ", kKeyC)));
  // A copied data dir: another host with the same key is refused (the peers would send both
  // hosts' packets to one of them).
  auto copy = Register("ccc", "wireguard", "", "fake", kKeyC);
  EXPECT_EQ(copy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(copy.status().message(),
              HasSubstr("wireguard_public_key: node bb (192.0.2.12) has the same key"));
  auto stray = Register("ccc", "wireguard", "", "fake", std::string(43, 'B') + "=");
  EXPECT_EQ(stray.status().code(), absl::StatusCode::kInvalidArgument);
  // A new key (the data dir was replaced) reaches the peers; the network stays.
  auto rekeyed = Register("bb", "wireguard", "", "fake", kAlicePublic);
  ASSERT_TRUE(rekeyed.ok()) << rekeyed.status();
  EXPECT_EQ(rekeyed->wireguard_public_key(), kAlicePublic);
  auto moved = Register("bb", "vxlan");
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace warren
