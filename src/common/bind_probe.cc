#include "common/bind_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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

absl::Status ProbeBind(const std::string& host_port, bool udp) {
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
  for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
    if (type == SOCK_DGRAM && !udp) break;
    if (absl::Status s = BindOnce(type, sa); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(host_port, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace warren
