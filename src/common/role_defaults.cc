#include "common/role_defaults.h"

#include "absl/strings/str_cat.h"
#include "common/bind_probe.h"
#include "manager/scheduler.h"

namespace warren {

absl::StatusOr<std::string> WorkerDnsAddr(const std::string& address_range) {
  uint32_t base = 0, size = 0;
  if (!ParseTaskRange(address_range, &base, &size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("address-range: \"", address_range, "\" is not an IPv4 CIDR"));
  }
  return absl::StrCat(FormatIpv4(base), ":53");
}

DnsAddrChoice ChooseDnsAddr(const std::string& configured, const std::string& automatic) {
  if (configured != kAutoDnsAddr) return {configured, ""};
  absl::Status s = ProbeBind(automatic, /*udp=*/true);
  if (s.ok()) return {automatic, ""};
  std::string why;
  if (absl::IsPermissionDenied(s)) {
    why = absl::StrCat(automatic,
                       " needs root or CAP_NET_BIND_SERVICE (a port below 1024); pass --dns-addr "
                       "with a port of 1024 or more, e.g. --dns-addr 127.0.0.1:10053");
  } else if (absl::IsAlreadyExists(s)) {
    why = absl::StrCat(automatic,
                       " is in use (another Warren node on this machine?); pass --dns-addr with "
                       "an address of its own");
  } else {
    why = absl::StrCat(s.message(), "; pass --dns-addr");
  }
  return {"", absl::StrCat("service DNS is off: ", why, " (--dns-addr \"\" turns it off quietly)")};
}

}  // namespace warren
