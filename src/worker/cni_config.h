#ifndef WARREN_WORKER_CNI_CONFIG_H_
#define WARREN_WORKER_CNI_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "roles.h"

namespace warren {

// Checks the CNI settings of the cri runtime; errors name the flag.
absl::Status ValidateCniOptions(const CriOptions& options);

// The CNI network config list (JSON) of the pods: one bridge with host-local IPAM over the
// subnet (gateway: its first address, on the bridge; pods: the rest up to the last but one),
// the bridge as the pods' gateway. `masquerade` NATs pod traffic leaving the host (needs
// iptables). `ipam_dir`: where host-local keeps the addresses it gave out; empty: the
// plugin's default (/var/lib/cni/networks).
std::string CniConfigList(const CriOptions& options, bool masquerade,
                          const std::string& ipam_dir = "");

// Path of the config file in the conf dir: 10-<network>.conflist.
std::string CniConfigPath(const CriOptions& options);

// Writes the config list atomically (unchanged files are left alone, so the runtime does not
// reload for nothing). Returns the path written.
absl::StatusOr<std::string> WriteCniConfig(const CriOptions& options, bool masquerade,
                                           const std::string& ipam_dir = "");

// The pods' gateway: the subnet's first address, which host-local IPAM gives the bridge.
// Empty for an invalid subnet.
std::string PodGateway(const CriOptions& options);

// The bridge plugin refuses a bridge that already has an address outside the subnet (left
// by an earlier --cni-subnet). An unused bridge like that is deleted so the plugin recreates
// it; one with pods still attached is an error naming the way out.
absl::Status PrepareBridge(const CriOptions& options);

}  // namespace warren

#endif  // WARREN_WORKER_CNI_CONFIG_H_
