#include "common/cluster_cidr.h"

#include <arpa/inet.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace warren {
namespace {

std::string FormatIpv4(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

}  // namespace

absl::StatusOr<ClusterCidr> ClusterCidr::Parse(absl::string_view field, absl::string_view text) {
  const std::string shown(text);
  const size_t slash = text.find('/');
  const std::string ip(text.substr(0, slash));
  in_addr a{};
  int prefix = -1;
  if (slash == absl::string_view::npos || inet_pton(AF_INET, ip.c_str(), &a) != 1 ||
      !absl::SimpleAtoi(text.substr(slash + 1), &prefix) || prefix < 0 || prefix > 32 ||
      text.substr(slash + 1).find_first_not_of("0123456789") != absl::string_view::npos) {
    in6_addr a6{};
    if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"", shown, "\" is IPv6; the cluster CIDR must be IPv4 (A.B.C.D/N), e.g. ",
          kDefaultClusterCidr));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", shown, "\" is not an IPv4 CIDR (A.B.C.D/N), e.g. ", kDefaultClusterCidr));
  }
  if (prefix < kMinClusterPrefix || prefix > kMaxClusterPrefix) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", shown, "\" has a /", prefix, " prefix; it must be /",
                     kMinClusterPrefix, " to /", kMaxClusterPrefix, " (each node gets a /",
                     kNodeSubnetPrefix, " of it, so it holds 2 to 65536 nodes)"));
  }
  const uint32_t addr = ntohl(a.s_addr);
  const uint32_t mask = ~uint32_t{0} << (32 - prefix);
  if ((addr & ~mask) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", shown,
                                                   "\" has host bits set; did you mean ",
                                                   FormatIpv4(addr & mask), "/", prefix, "?"));
  }
  return ClusterCidr(addr, prefix);
}

std::string ClusterCidr::Subnet(int i) const {
  return absl::StrCat(FormatIpv4(base_ + (static_cast<uint32_t>(i) << 8)), "/", kNodeSubnetPrefix);
}

std::optional<int> ClusterCidr::IndexOf(absl::string_view subnet) const {
  const std::string suffix = absl::StrCat("/", kNodeSubnetPrefix);
  if (subnet.size() <= suffix.size() || subnet.substr(subnet.size() - suffix.size()) != suffix) {
    return std::nullopt;
  }
  const std::string ip(subnet.substr(0, subnet.size() - suffix.size()));
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1) return std::nullopt;
  const uint32_t addr = ntohl(a.s_addr);
  if ((addr & 0xff) != 0 || addr < base_) return std::nullopt;
  const uint32_t i = (addr - base_) >> 8;
  if (i >= static_cast<uint32_t>(SubnetCount())) return std::nullopt;
  return static_cast<int>(i);
}

std::string ClusterCidr::ToString() const { return absl::StrCat(FormatIpv4(base_), "/", prefix_); }

absl::StatusOr<NodeNetworkMode> ParseNodeNetworkMode(absl::string_view field,
                                                     absl::string_view text) {
  if (text.empty() || text == "local") return NodeNetworkMode::kLocal;
  if (text == "host-gw") return NodeNetworkMode::kHostGw;
  if (text == "vxlan") return NodeNetworkMode::kVxlan;
  if (text == "wireguard") return NodeNetworkMode::kWireguard;
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": \"", text,
      "\" is not a network mode; use local (task addresses of this host only), host-gw (routes "
      "between nodes on one L2 network), vxlan (an overlay between the nodes) or wireguard (an "
      "encrypted overlay, also `--encrypt`)"));
}

namespace {

// The host of "HOST:PORT" or "[V6]:PORT" is a loopback address or name.
bool IsLoopbackEndpoint(absl::string_view endpoint) {
  absl::string_view host = endpoint;
  if (absl::ConsumePrefix(&host, "[")) {
    host = host.substr(0, host.find(']'));
  } else if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace

NodeNetworkMode AutoNodeNetwork(const std::vector<std::string>& managers,
                                const std::string& advertise_addr, bool root, std::string* why) {
  if (managers.empty() || std::all_of(managers.begin(), managers.end(),
                                      [](const std::string& m) { return IsLoopbackEndpoint(m); })) {
    *why = "the managers are on this host's loopback: a one-host cluster";
    return NodeNetworkMode::kLocal;
  }
  if (!root) {
    *why = "not root: the overlay needs CAP_NET_ADMIN; tasks reach this host only";
    return NodeNetworkMode::kLocal;
  }
  in_addr a{};
  if (inet_pton(AF_INET, advertise_addr.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) == 127) {
    *why =
        absl::StrCat("the advertise address ", advertise_addr.empty() ? "(none)" : advertise_addr,
                     " is not an IPv4 address other hosts reach; tasks reach this host only");
    return NodeNetworkMode::kLocal;
  }
  *why = "a worker of managers on other hosts: the VXLAN overlay between the hosts";
  return NodeNetworkMode::kVxlan;
}

absl::string_view NodeNetworkModeName(NodeNetworkMode mode) {
  switch (mode) {
    case NodeNetworkMode::kLocal:
      return "local";
    case NodeNetworkMode::kHostGw:
      return "host-gw";
    case NodeNetworkMode::kVxlan:
      return "vxlan";
    case NodeNetworkMode::kWireguard:
      return "wireguard";
  }
  return "local";
}

}  // namespace warren
