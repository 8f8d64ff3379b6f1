#ifndef WARREN_COMMON_BIND_PROBE_H_
#define WARREN_COMMON_BIND_PROBE_H_

#include <string>

#include "absl/status/status.h"

namespace warren {

// Whether an IPv4 "host:port" can be bound just now, by a TCP socket (and a UDP one too with
// `udp`), with the socket options Warren's servers use: OK, PERMISSION_DENIED (a privileged
// port), ALREADY_EXISTS (in use), or another error; each names the address. The sockets are
// closed again at once.
absl::Status ProbeBind(const std::string& host_port, bool udp = false);

}  // namespace warren

#endif  // WARREN_COMMON_BIND_PROBE_H_
