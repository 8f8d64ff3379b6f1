#include "common/advertise_addr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/route.h>
#include <netinet/in.h>

#include <cstdint>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren {

absl::StatusOr<std::string> ParseAdvertiseAddr(absl::string_view field, absl::string_view text) {
  const std::string s(text);
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr a4{};
  in6_addr a6{};
  auto refuse = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", s, " is ", what,
                     "; give the address other nodes reach this node at, e.g. 192.168.1.10"));
  };
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    const uint32_t host = ntohl(a4.s_addr);
    if (host == 0) return refuse("the unspecified address");
    if (host == 0xffffffffu) return refuse("the broadcast address");
    if ((host >> 28) == 0xe) return refuse("a multicast address");
    inet_ntop(AF_INET, &a4, buf, sizeof(buf));
    return std::string(buf);
  }
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_UNSPECIFIED(&a6)) return refuse("the unspecified address");
    if (IN6_IS_ADDR_MULTICAST(&a6)) return refuse("a multicast address");
    inet_ntop(AF_INET6, &a6, buf, sizeof(buf));
    return std::string(buf);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", s,
                   "\" is not an IP address; give an IPv4 or IPv6 address (no port, no host "
                   "name), e.g. 192.168.1.10"));
}

std::optional<std::string> DefaultRouteAddress(absl::string_view route_table,
                                               const std::vector<InterfaceAddress>& addresses) {
  std::string best_interface;
  int64_t best_metric = -1;
  bool header = true;
  for (absl::string_view line : absl::StrSplit(route_table, '\n', absl::SkipWhitespace())) {
    if (header) {  // "Iface Destination Gateway Flags RefCnt Use Metric Mask ..."
      header = false;
      continue;
    }
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 8) continue;
    uint32_t destination = 0, mask = 0, flags = 0;
    int64_t metric = 0;
    if (!absl::SimpleHexAtoi(f[1], &destination) || !absl::SimpleHexAtoi(f[3], &flags) ||
        !absl::SimpleAtoi(f[6], &metric) || !absl::SimpleHexAtoi(f[7], &mask)) {
      continue;
    }
    if (destination != 0 || mask != 0 || (flags & RTF_UP) == 0) continue;
    if (best_metric < 0 || metric < best_metric) {
      best_metric = metric;
      best_interface = std::string(f[0]);
    }
  }
  if (best_metric < 0) return std::nullopt;
  for (const InterfaceAddress& a : addresses) {
    if (a.interface == best_interface) return a.address;
  }
  return std::nullopt;
}

std::string DetectAdvertiseAddr() {
  std::ifstream in("/proc/net/route");
  std::stringstream table;
  table << in.rdbuf();
  std::vector<InterfaceAddress> addresses;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
      char buf[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof(buf));
      addresses.push_back({i->ifa_name, buf});
    }
    freeifaddrs(list);
  }
  return DefaultRouteAddress(table.str(), addresses).value_or("127.0.0.1");
}

}  // namespace warren
