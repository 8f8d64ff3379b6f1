#include "common/role_defaults.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren {
namespace {

absl::Status BindOnce(int type, const sockaddr_in& sa) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(strerror(errno));
  // The servers set these too: an address they could share is not "in use" here either.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, type == SOCK_STREAM ? SO_REUSEADDR : SO_REUSEPORT, &one, sizeof(one));
  int rc = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  int err = errno;
  close(fd);
  if (rc == 0) return absl::OkStatus();
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(strerror(err));
  if (err == EADDRINUSE) return absl::AlreadyExistsError(strerror(err));
  return absl::UnavailableError(strerror(err));
}

}  // namespace

absl::StatusOr<std::string> WorkerDnsAddr(const std::string& address_range) {
  std::vector<std::string> parts = absl::StrSplit(address_range, '/');
  int prefix = 0;
  in_addr a{};
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &prefix) || prefix < 0 || prefix > 32 ||
      inet_pton(AF_INET, parts[0].c_str(), &a) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("address-range: \"", address_range, "\" is not an IPv4 CIDR"));
  }
  const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  a.s_addr = htonl(ntohl(a.s_addr) & mask);
  char text[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &a, text, sizeof(text));
  return absl::StrCat(text, ":53");
}

absl::Status ProbeBind(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port) ||
      port < 0 || port > 65535 ||
      inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(host_port, ": not IPv4 HOST:PORT"));
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
    if (absl::Status s = BindOnce(type, sa); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(host_port, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

DnsAddrChoice ChooseDnsAddr(const std::string& configured, const std::string& automatic) {
  if (configured != kAutoDnsAddr) return {configured, ""};
  absl::Status s = ProbeBind(automatic);
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
