#include "worker/cni_config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace warren {
namespace {

bool IsName(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

struct Subnet {
  uint32_t network = 0;  // host byte order, as written (host bits not cleared)
  int prefix = 0;
  uint32_t mask() const { return ~uint32_t{0} << (32 - prefix); }
};

// "10.88.0.0/16" -> {10.88.0.0, 16}; nullopt unless an IPv4 CIDR with a prefix of 8..28.
std::optional<Subnet> ParseSubnet(const std::string& cidr) {
  std::vector<std::string> parts = absl::StrSplit(cidr, '/');
  in_addr addr{};
  Subnet s;
  if (parts.size() != 2 || inet_pton(AF_INET, parts[0].c_str(), &addr) != 1 ||
      !absl::SimpleAtoi(parts[1], &s.prefix) || s.prefix < 8 || s.prefix > 28) {
    return std::nullopt;
  }
  s.network = ntohl(addr.s_addr);
  return s;
}

std::string FormatIpv4(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

}  // namespace

absl::Status ValidateCniOptions(const CriOptions& o) {
  if (o.socket.empty()) return absl::InvalidArgumentError("--cri-socket: must not be empty");
  if (o.cni_conf_dir.empty() || o.cni_conf_dir.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--cni-conf-dir: \"", o.cni_conf_dir, "\" must be an absolute path"));
  }
  if (!IsName(o.cni_network, 63)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cni-network: \"", o.cni_network, "\" must be 1..63 letters, digits, '-', '_' or '.'"));
  }
  // Linux interface names have at most 15 characters.
  if (!IsName(o.cni_bridge, 15)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cni-bridge: \"", o.cni_bridge,
                     "\" must be 1..15 letters, digits, '-', '_' or '.' (an interface name)"));
  }
  std::optional<Subnet> subnet = ParseSubnet(o.cni_subnet);
  if (!subnet) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cni-subnet: \"", o.cni_subnet,
                     "\" must be an IPv4 CIDR with a prefix of 8..28 bits, e.g. 10.88.0.0/16"));
  }
  const uint32_t a = subnet->network;
  if ((a & ~subnet->mask()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--cni-subnet: \"", o.cni_subnet, "\" has host bits set; the network address is ",
        FormatIpv4(a & subnet->mask()), "/", subnet->prefix));
  }
  if ((a >> 24) == 127) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cni-subnet: \"", o.cni_subnet, "\" is loopback; pods need a real subnet"));
  }
  return absl::OkStatus();
}

std::string CniConfigList(const CriOptions& o, bool masquerade, const std::string& ipam_dir) {
  nlohmann::json range = {{"subnet", o.cni_subnet}};
  if (std::optional<Subnet> s = ParseSubnet(o.cni_subnet)) {
    const uint32_t first = s->network & s->mask();
    const uint32_t last = first | ~s->mask();
    range["gateway"] = FormatIpv4(first + 1);
    range["rangeStart"] = FormatIpv4(first + 2);
    range["rangeEnd"] = FormatIpv4(last - 1);
  }
  nlohmann::json bridge = {{"type", "bridge"},
                           {"bridge", o.cni_bridge},
                           {"isGateway", true},
                           {"ipMasq", masquerade},
                           {"hairpinMode", true},
                           {"ipam",
                            {{"type", "host-local"},
                             {"ranges", nlohmann::json::array({nlohmann::json::array({range})})},
                             {"routes", nlohmann::json::array({{{"dst", "0.0.0.0/0"}}})}}}};
  if (!ipam_dir.empty()) bridge["ipam"]["dataDir"] = ipam_dir;
  nlohmann::json list = {{"cniVersion", "0.4.0"},
                         {"name", o.cni_network},
                         {"plugins", nlohmann::json::array({bridge})}};
  return list.dump(2) + "\n";
}

std::string CniConfigPath(const CriOptions& o) {
  return (std::filesystem::path(o.cni_conf_dir) / absl::StrCat("10-", o.cni_network, ".conflist"))
      .string();
}

absl::StatusOr<std::string> WriteCniConfig(const CriOptions& o, bool masquerade,
                                           const std::string& ipam_dir) {
  const std::string path = CniConfigPath(o);
  const std::string content = CniConfigList(o, masquerade, ipam_dir);
  std::error_code ec;
  std::filesystem::create_directories(o.cni_conf_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("--cni-conf-dir ", o.cni_conf_dir, ": cannot create: ", ec.message()));
  }
  {
    std::ifstream in(path);
    std::stringstream old;
    old << in.rdbuf();
    if (in && old.str() == content) return path;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out.flush()) {
      return absl::FailedPreconditionError(absl::StrCat("cannot write ", tmp));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path, ": ", ec.message()));
  }
  return path;
}

std::string PodGateway(const CriOptions& o) {
  std::optional<Subnet> subnet = ParseSubnet(o.cni_subnet);
  return subnet ? FormatIpv4((subnet->network & subnet->mask()) + 1) : std::string();
}

absl::Status PrepareBridge(const CriOptions& o) {
  std::optional<Subnet> parsed = ParseSubnet(o.cni_subnet);
  if (!parsed) return ValidateCniOptions(o);
  const uint32_t mask = parsed->mask();
  const uint32_t subnet = parsed->network & mask;
  ifaddrs* addrs = nullptr;
  if (getifaddrs(&addrs) != 0) return absl::OkStatus();  // nothing to learn; the plugin decides
  std::string stale;
  for (ifaddrs* a = addrs; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    if (o.cni_bridge != a->ifa_name) continue;
    uint32_t ip = ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr);
    if ((ip & mask) != subnet) stale = FormatIpv4(ip);
  }
  freeifaddrs(addrs);
  if (stale.empty()) return absl::OkStatus();
  std::error_code ec;
  const std::filesystem::path brif =
      std::filesystem::path("/sys/class/net") / o.cni_bridge / "brif";
  size_t attached = 0;
  for (auto it = std::filesystem::directory_iterator(brif, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    attached++;
  }
  if (attached > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--cni-subnet ", o.cni_subnet, ": bridge ", o.cni_bridge, " still has address ", stale,
        " of another subnet and ", attached,
        " pod interface(s) attached; stop those pods, or give this network its own --cni-bridge"));
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket: cannot manage the bridge");
  ifreq req{};
  std::snprintf(req.ifr_name, IFNAMSIZ, "%s", o.cni_bridge.c_str());
  bool ok = ioctl(fd, SIOCGIFFLAGS, &req) == 0;
  if (ok) {
    req.ifr_flags &= ~IFF_UP;
    ok = ioctl(fd, SIOCSIFFLAGS, &req) == 0;
  }
  char name[IFNAMSIZ] = {0};
  std::snprintf(name, IFNAMSIZ, "%s", o.cni_bridge.c_str());
  ok = ok && ioctl(fd, SIOCBRDELBR, name) == 0;
  const int err = errno;
  close(fd);
  if (!ok) {
    return absl::FailedPreconditionError(
        absl::StrCat("--cni-subnet ", o.cni_subnet, ": bridge ", o.cni_bridge, " has address ",
                     stale, " of another subnet and could not be deleted (", std::strerror(err),
                     "); delete it with: ip link del ", o.cni_bridge));
  }
  return absl::OkStatus();
}

}  // namespace warren
