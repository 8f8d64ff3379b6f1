// The address plan: the cluster CIDR, a /24 per node (allocation, reuse, exhaustion, restarts,
// races) and the advertise address (validation, the default-route picker), at the store level
// and through registration against an in-process manager.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/advertise_addr.h"
#include "common/cluster_cidr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "in_process_cluster.h"
#include "manager/node_subnets.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::CliClusterTest;
using testing_util::InProcessClusterTest;
using testing_util::TempDir;

TEST(AutoNodeNetworkTest, TheOverlayForARootWorkerOfManagersOnOtherHostsElseLocal) {
  std::string why;
  // A cluster across hosts, joined as root with an address the other hosts reach: vxlan.
  EXPECT_EQ(AutoNodeNetwork({"192.168.1.10:8080"}, "192.168.1.11", true, &why),
            NodeNetworkMode::kVxlan);
  EXPECT_THAT(why, HasSubstr("managers on other hosts"));
  // One loopback manager of several is not enough to call the cluster one-host.
  EXPECT_EQ(AutoNodeNetwork({"127.0.0.1:8080", "10.0.0.2:8080"}, "10.0.0.3", true, &why),
            NodeNetworkMode::kVxlan);
  // The demo, the tests, a one-host cluster: local.
  for (const std::vector<std::string>& local :
       {std::vector<std::string>{}, std::vector<std::string>{"127.0.0.1:8080"},
        std::vector<std::string>{"localhost:8080", "[::1]:8081", "127.3.0.1:9"}}) {
    EXPECT_EQ(AutoNodeNetwork(local, "192.168.1.11", true, &why), NodeNetworkMode::kLocal);
    EXPECT_THAT(why, HasSubstr("one-host cluster"));
  }
  // Not root: the overlay cannot be made.
  EXPECT_EQ(AutoNodeNetwork({"192.168.1.10:8080"}, "192.168.1.11", false, &why),
            NodeNetworkMode::kLocal);
  EXPECT_THAT(why, HasSubstr("not root"));
  // No advertise address other hosts reach (a host without a default route, IPv6).
  for (const std::string addr : {"127.0.0.1", "2001:db8::1", ""}) {
    EXPECT_EQ(AutoNodeNetwork({"192.168.1.10:8080"}, addr, true, &why), NodeNetworkMode::kLocal)
        << addr;
    EXPECT_THAT(why, HasSubstr("is not an IPv4 address other hosts reach")) << addr;
  }
}

TEST(ClusterCidrTest, SubnetsOfACidr) {
  auto cidr = ClusterCidr::Parse("--cluster-cidr", "10.99.0.0/16");
  ASSERT_TRUE(cidr.ok()) << cidr.status();
  EXPECT_EQ(cidr->ToString(), "10.99.0.0/16");
  EXPECT_EQ(cidr->SubnetCount(), 256);
  EXPECT_EQ(cidr->Subnet(0), "10.99.0.0/24");
  EXPECT_EQ(cidr->Subnet(3), "10.99.3.0/24");
  EXPECT_EQ(cidr->Subnet(255), "10.99.255.0/24");
  EXPECT_EQ(cidr->IndexOf("10.99.3.0/24"), 3);
  EXPECT_EQ(cidr->IndexOf("10.98.3.0/24"), std::nullopt);
  EXPECT_EQ(cidr->IndexOf("10.100.0.0/24"), std::nullopt);
  EXPECT_EQ(cidr->IndexOf("10.99.3.1/24"), std::nullopt);
  EXPECT_EQ(cidr->IndexOf("10.99.3.0/25"), std::nullopt);
  EXPECT_EQ(ClusterCidr::Parse("f", "10.0.0.0/8")->SubnetCount(), 65536);
  EXPECT_EQ(ClusterCidr::Parse("f", "172.16.2.0/23")->SubnetCount(), 2);
  EXPECT_EQ(ClusterCidr::Parse("f", "172.16.2.0/23")->Subnet(1), "172.16.3.0/24");
}

TEST(ClusterCidrTest, RefusesWithTheFieldAndWhatIsAllowed) {
  struct Case {
    std::string text, want;
  };
  for (const Case& c : std::vector<Case>{
           {"10.99.0.0/24",
            "--cluster-cidr: \"10.99.0.0/24\" has a /24 prefix; it must be /8 to "
            "/23 (each node gets a /24 of it, so it holds 2 to 65536 nodes)"},
           {"10.0.0.0/7", "has a /7 prefix; it must be /8 to /23"},
           {"fd00::/48", "--cluster-cidr: \"fd00::/48\" is IPv6; the cluster CIDR must be IPv4"},
           {"10.99.1.0/16", "has host bits set; did you mean 10.99.0.0/16?"},
           {"10.99.0.0",
            "--cluster-cidr: \"10.99.0.0\" is not an IPv4 CIDR (A.B.C.D/N), e.g. "
            "10.99.0.0/16"},
           {"10.99.0.0/16x", "is not an IPv4 CIDR"},
           {"10.99.0.0/+16", "is not an IPv4 CIDR"},
           {"10.99.0/16", "is not an IPv4 CIDR"},
           {"", "is not an IPv4 CIDR"},
       }) {
    auto cidr = ClusterCidr::Parse("--cluster-cidr", c.text);
    ASSERT_FALSE(cidr.ok()) << c.text;
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(cidr.status().message(), HasSubstr(c.want)) << c.text;
  }
}

TEST(AdvertiseAddrTest, AcceptsAddressesOfOneNode) {
  EXPECT_EQ(*ParseAdvertiseAddr("--advertise-addr", "192.168.1.10"), "192.168.1.10");
  EXPECT_EQ(*ParseAdvertiseAddr("--advertise-addr", "127.0.0.1"), "127.0.0.1");
  // IPv6 in its canonical form.
  EXPECT_EQ(*ParseAdvertiseAddr("--advertise-addr", "2001:DB8:0:0::1"), "2001:db8::1");
  struct Case {
    std::string text, want;
  };
  for (const Case& c : std::vector<Case>{
           {"0.0.0.0",
            "--advertise-addr: 0.0.0.0 is the unspecified address; give the address "
            "other nodes reach this node at, e.g. 192.168.1.10"},
           {"::", "--advertise-addr: :: is the unspecified address"},
           {"224.0.0.1", "--advertise-addr: 224.0.0.1 is a multicast address"},
           {"239.255.255.250", "is a multicast address"},
           {"ff02::1", "--advertise-addr: ff02::1 is a multicast address"},
           {"255.255.255.255", "is the broadcast address"},
           {"node1.example",
            "--advertise-addr: \"node1.example\" is not an IP address; give an "
            "IPv4 or IPv6 address (no port, no host name)"},
           {"10.0.0.1:7946", "is not an IP address"},
           {"10.0.0.1/24", "is not an IP address"},
           {"", "is not an IP address"},
       }) {
    auto addr = ParseAdvertiseAddr("--advertise-addr", c.text);
    ASSERT_FALSE(addr.ok()) << c.text;
    EXPECT_EQ(addr.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(addr.status().message(), HasSubstr(c.want)) << c.text;
  }
}

constexpr char kRouteHeader[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

TEST(AdvertiseAddrTest, DefaultRouteAddressPicksTheLowestMetricDefaultRoute) {
  const std::vector<InterfaceAddress> addrs = {{"lo", "127.0.0.1"},
                                               {"eth0", "192.168.1.10"},
                                               {"eth0", "192.168.1.11"},
                                               {"wlan0", "10.1.2.3"},
                                               {"docker0", "172.17.0.1"}};
  const std::string table =
      std::string(kRouteHeader) +
      // A network route on docker0 and a default route that is down come first.
      "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
      "eth1\t00000000\t0101A8C0\t0002\t0\t0\t10\t00000000\t0\t0\t0\n"
      "wlan0\t00000000\t0102010A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
      "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
      "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
  EXPECT_EQ(DefaultRouteAddress(table, addrs), "192.168.1.10");
  // Without eth0's route, wlan0's.
  const std::string wlan_only =
      std::string(kRouteHeader) + "wlan0\t00000000\t0102010A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n";
  EXPECT_EQ(DefaultRouteAddress(wlan_only, addrs), "10.1.2.3");
  // No default route (a host on a private network only, a fresh namespace), an unreadable
  // table, a default route through an interface without an IPv4 address.
  EXPECT_EQ(
      DefaultRouteAddress(std::string(kRouteHeader) +
                              "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n",
                          addrs),
      std::nullopt);
  EXPECT_EQ(DefaultRouteAddress("", addrs), std::nullopt);
  EXPECT_EQ(DefaultRouteAddress(std::string(kRouteHeader) + "garbage line\n", addrs), std::nullopt);
  EXPECT_EQ(DefaultRouteAddress(std::string(kRouteHeader) +
                                    "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n",
                                addrs),
            std::nullopt);
}

TEST(AdvertiseAddrTest, DetectedAddressIsValid) {
  // Whatever this machine's routes are, the default is an address a node may advertise.
  const std::string addr = DetectAdvertiseAddr();
  EXPECT_TRUE(ParseAdvertiseAddr("detected", addr).ok()) << addr;
}

class NodeSubnetStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> OpenStore() {
    fs::create_directories(tmp_.path());
    SqliteStoreOptions opts;
    opts.parse = ParseStoredObject;
    auto store = SqliteStore::Open((tmp_.path() / "store.db").string(), opts);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Claims a subnet for `node_id` and commits it; the subnet.
  std::string Claim(Store& store, const std::string& node_id) {
    std::string subnet;
    absl::StatusOr<Mutation> m = ClaimNodeSubnet(store, node_id, &subnet);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return "";
    absl::StatusOr<uint64_t> v = store.Commit({*m});
    EXPECT_TRUE(v.ok()) << v.status();
    return subnet;
  }

  TempDir tmp_;
};

TEST_F(NodeSubnetStoreTest, TheCidrIsStoredOnceAndNeverChanges) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    // Nothing stored yet: the default.
    EXPECT_EQ(StoredClusterCidr(*store)->ToString(), kDefaultClusterCidr);
    auto cidr = LoadOrStoreClusterCidr(*store, "10.50.0.0/20");
    ASSERT_TRUE(cidr.ok()) << cidr.status();
    EXPECT_EQ(cidr->ToString(), "10.50.0.0/20");
    EXPECT_EQ(StoredClusterCidr(*store)->ToString(), "10.50.0.0/20");
    EXPECT_EQ(Claim(*store, "n1"), "10.50.0.0/24");
  }
  // A restart: the flag left out keeps the cluster's, the same value is fine, another one is
  // refused naming both.
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(LoadOrStoreClusterCidr(*store, "")->ToString(), "10.50.0.0/20");
  EXPECT_EQ(LoadOrStoreClusterCidr(*store, "10.50.0.0/20")->ToString(), "10.50.0.0/20");
  auto other = LoadOrStoreClusterCidr(*store, "10.60.0.0/16");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(other.status().message(),
            "--cluster-cidr: 10.60.0.0/16 differs from the cluster's 10.50.0.0/20 (stored when "
            "the cluster was created); a cluster is never renumbered: start with --cluster-cidr "
            "10.50.0.0/20 or without the flag");
  EXPECT_EQ(StoredClusterCidr(*store)->ToString(), "10.50.0.0/20");
  // The claim made before the restart still holds its subnet.
  EXPECT_EQ(Claim(*store, "n2"), "10.50.1.0/24");
}

TEST_F(NodeSubnetStoreTest, LowestFreeSubnetReusedAfterRelease) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(LoadOrStoreClusterCidr(*store, "10.99.0.0/16").ok());
  EXPECT_EQ(Claim(*store, "n1"), "10.99.0.0/24");
  EXPECT_EQ(Claim(*store, "n2"), "10.99.1.0/24");
  EXPECT_EQ(Claim(*store, "n3"), "10.99.2.0/24");
  v1::Node n2;
  n2.set_id("n2");
  n2.set_subnet("10.99.1.0/24");
  auto release = ReleaseNodeSubnet(*store, n2);
  ASSERT_TRUE(release.has_value());
  ASSERT_TRUE(store->Commit({*release}).ok());
  // The hole is filled first.
  EXPECT_EQ(Claim(*store, "n4"), "10.99.1.0/24");
  EXPECT_EQ(Claim(*store, "n5"), "10.99.3.0/24");
  // Releasing a subnet the node does not hold (another node's claim) frees nothing.
  EXPECT_FALSE(ReleaseNodeSubnet(*store, n2).has_value());
  v1::Node none;
  none.set_id("n6");
  EXPECT_FALSE(ReleaseNodeSubnet(*store, none).has_value());
}

TEST_F(NodeSubnetStoreTest, TwoClaimsOfOneSubnetCannotBothCommit) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  // Two registrations decide on the same state: both pick the lowest free subnet.
  std::string s1, s2;
  absl::StatusOr<Mutation> m1 = ClaimNodeSubnet(*store, "n1", &s1);
  absl::StatusOr<Mutation> m2 = ClaimNodeSubnet(*store, "n2", &s2);
  ASSERT_TRUE(m1.ok() && m2.ok());
  EXPECT_EQ(s1, s2);
  ASSERT_TRUE(store->Commit({*m1}).ok());
  absl::StatusOr<uint64_t> lost = store->Commit({*m2});
  ASSERT_FALSE(lost.ok());
  // ABORTED: CommitWithRetry decides again, on the fresh state.
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Claim(*store, "n2"), "10.99.1.0/24");
}

TEST_F(NodeSubnetStoreTest, AFullCidrNamesTheFlagAndItsSize) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(LoadOrStoreClusterCidr(*store, "10.99.0.0/23").ok());
  EXPECT_EQ(Claim(*store, "n1"), "10.99.0.0/24");
  EXPECT_EQ(Claim(*store, "n2"), "10.99.1.0/24");
  std::string subnet;
  absl::StatusOr<Mutation> full = ClaimNodeSubnet(*store, "n3", &subnet);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.status().message(),
            "--cluster-cidr 10.99.0.0/23 is full: it holds 2 nodes (a /24 each) and every "
            "subnet is taken; remove nodes that are gone (`warren node rm`), or create the "
            "cluster with a larger --cluster-cidr");
}

// Registration against a real manager: the subnet and the advertise address on the Node.
class NodeAddressTest : public CliClusterTest {
 protected:
  absl::StatusOr<v1::Node> Register(const std::string& name, const std::string& range,
                                    const std::string& advertise) {
    grpc::ClientContext ctx;
    v1::RegisterNodeRequest req;
    req.set_name(name);
    req.set_role("worker");
    req.set_runtime("fake");
    req.set_address_range(range);
    req.set_agent_addr("127.0.0.1:1");
    req.set_advertise_addr(advertise);
    req.mutable_capacity()->set_cpus(1);
    v1::Node node;
    grpc::Status s = dispatcher_->RegisterNode(&ctx, req, &node);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return node;
  }

  // Stops the manager and starts one on `data_dir` (under the test's dir).
  void RestartManager(const std::string& cluster_cidr, absl::Status* error = nullptr,
                      const std::string& data_dir = "manager") {
    if (manager_) manager_->Shutdown();
    manager_.reset();
    ManagerOptions mo;
    mo.tls = false;
    mo.data_dir = (dir_.path() / data_dir).string();
    mo.api_addr = "127.0.0.1:0";
    mo.metrics_addr = "";
    mo.node_timeout = node_timeout_;
    mo.dns.addr = "";
    mo.cluster_cidr = cluster_cidr;
    auto m = ManagerServer::Start(mo, RealClock::Get());
    if (error != nullptr) *error = m.status();
    if (!m.ok()) return;
    manager_ = std::move(*m);
    channel_ = grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials());
    stub_ = v1::Control::NewStub(channel_);
    dispatcher_ = v1::Dispatcher::NewStub(channel_);
  }
};

TEST_F(NodeAddressTest, RegistrationGivesASubnetAndKeepsItAcrossRejoinsAndRestarts) {
  auto a = Register("a", "127.61.0.0/16", "192.0.2.10");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->subnet(), "10.99.0.0/24");
  EXPECT_EQ(a->advertise_addr(), "192.0.2.10");
  auto b = Register("b", "127.62.0.0/16", "2001:DB8::2");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->subnet(), "10.99.1.0/24");
  EXPECT_EQ(b->advertise_addr(), "2001:db8::2");

  // Registering again keeps the subnet and takes the new address; an older worker that sends
  // no address leaves it as it was.
  auto a2 = Register("a", "127.61.0.0/16", "192.0.2.11");
  ASSERT_TRUE(a2.ok()) << a2.status();
  EXPECT_EQ(a2->id(), a->id());
  EXPECT_EQ(a2->subnet(), "10.99.0.0/24");
  EXPECT_EQ(a2->advertise_addr(), "192.0.2.11");
  auto a3 = Register("a", "127.61.0.0/16", "");
  ASSERT_TRUE(a3.ok()) << a3.status();
  EXPECT_EQ(a3->advertise_addr(), "192.0.2.11");

  // A bad address is refused naming the field, and changes nothing.
  auto bad = Register("a", "127.61.0.0/16", "0.0.0.0");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("advertise_addr: 0.0.0.0 is the unspecified"));
  auto bad_new = Register("c", "127.63.0.0/16", "239.1.1.1");
  ASSERT_FALSE(bad_new.ok());
  EXPECT_THAT(bad_new.status().message(), HasSubstr("advertise_addr: 239.1.1.1 is a multicast"));

  // node ls and inspect show both.
  ASSERT_EQ(Run({"node", "ls"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("ADVERTISE"));
  EXPECT_THAT(out_.str(), HasSubstr("SUBNET"));
  EXPECT_THAT(out_.str(),
              ::testing::ContainsRegex("a +worker .* 192\\.0\\.2\\.11 +10\\.99\\.0\\.0/24 "));
  EXPECT_THAT(out_.str(),
              ::testing::ContainsRegex("b +worker .* 2001:db8::2 +10\\.99\\.1\\.0/24 "));
  ASSERT_EQ(Run({"node", "inspect", "b", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"advertiseAddr\": \"2001:db8::2\""));
  EXPECT_THAT(out_.str(), HasSubstr("\"subnet\": \"10.99.1.0/24\""));

  // A restart keeps the cluster CIDR and every node's subnet.
  RestartManager("");
  ASSERT_NE(manager_, nullptr);
  auto b2 = Register("b", "127.62.0.0/16", "2001:db8::2");
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_EQ(b2->subnet(), "10.99.1.0/24");
  auto c = Register("c", "127.63.0.0/16", "192.0.2.12");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->subnet(), "10.99.2.0/24");

  // `node rm` frees the subnet: the next new node gets it.
  ASSERT_EQ(Run({"node", "rm", "--force", "a"}), 0) << err_.str();
  auto d = Register("d", "127.64.0.0/16", "192.0.2.13");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->subnet(), "10.99.0.0/24");
}

TEST_F(NodeAddressTest, AnotherCidrAtRestartIsRefused) {
  RestartManager("10.99.0.0/16");  // the same as the default it was created with
  ASSERT_NE(manager_, nullptr);
  absl::Status error;
  RestartManager("10.100.0.0/16", &error);
  EXPECT_EQ(error.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(error.message(),
              HasSubstr("--cluster-cidr: 10.100.0.0/16 differs from the cluster's 10.99.0.0/16"));
}

TEST_F(NodeAddressTest, RegistrationFailsWhenTheCidrIsFull) {
  // A new cluster on a data dir of its own, with room for two nodes.
  RestartManager("10.99.0.0/23", nullptr, "small");
  ASSERT_NE(manager_, nullptr);
  ASSERT_TRUE(Register("a", "127.61.0.0/16", "192.0.2.10").ok());
  ASSERT_TRUE(Register("b", "127.62.0.0/16", "192.0.2.11").ok());
  auto c = Register("c", "127.63.0.0/16", "192.0.2.12");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c.status().message(),
              HasSubstr("--cluster-cidr 10.99.0.0/23 is full: it holds 2 nodes"));
  // A node already in the cluster still registers again.
  EXPECT_TRUE(Register("a", "127.61.0.0/16", "192.0.2.10").ok());
}

// A worker agent sends its --advertise-addr, or the detected default.
TEST_F(InProcessClusterTest, AgentRegistersItsAdvertiseAddress) {
  WorkerOptions wo = Options("w1", "127.65.0.0/16");
  wo.advertise_addr = "198.51.100.7";
  Worker& w1 = AddWorker(wo);
  EXPECT_EQ(w1.agent->advertise_addr(), "198.51.100.7");
  Worker& w2 = AddWorker("w2", "127.66.0.0/16");
  EXPECT_EQ(w2.agent->advertise_addr(), DetectAdvertiseAddr());
  grpc::ClientContext ctx;
  v1::ListNodesResponse nodes;
  ASSERT_TRUE(stub_->ListNodes(&ctx, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 2);
  for (const v1::Node& n : nodes.nodes()) {
    const Worker& w = n.name() == "w1" ? w1 : w2;
    EXPECT_EQ(n.advertise_addr(), w.agent->advertise_addr()) << n.name();
    EXPECT_FALSE(n.subnet().empty()) << n.name();
  }
}

}  // namespace
}  // namespace warren
