#ifndef WARREN_CLI_LISTENER_FLAGS_H_
#define WARREN_CLI_LISTENER_FLAGS_H_

// Flags of the server roles for the listeners that face untrusted clients: the published ports'
// proxy timeouts and connection limit, and the descriptors kept for the control plane.

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "roles.h"

namespace warren {

struct ProxyLimitFlags {
  std::string header_timeout;
  std::string idle_timeout;
  int max_connections = ProxyLimits{}.max_connections;
};

void AddProxyLimitFlags(CLI::App* cmd, ProxyLimitFlags* f);
absl::Status FinishProxyLimitFlags(const ProxyLimitFlags& f, ProxyLimits* out);

void AddReservedFdsFlag(CLI::App* cmd, int64_t* reserved);
absl::Status CheckReservedFds(int64_t reserved);

}  // namespace warren

#endif  // WARREN_CLI_LISTENER_FLAGS_H_
