#ifndef WARREN_CLI_STORE_FLAGS_H_
#define WARREN_CLI_STORE_FLAGS_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "roles.h"

namespace warren {

// --store and the etcd options of `manager` and `cluster init` (docs/high-availability.md).
struct StoreFlags {
  std::string url;
  std::string leader_ttl = "5s";
  std::string compaction_interval = "5m";
};

void AddStoreFlags(CLI::App* cmd, StoreFlags* flags, StoreOptions* options);

// Checks the flags and fills `options`; errors name the flag.
absl::Status FinishStoreFlags(const StoreFlags& flags, StoreOptions* options);

}  // namespace warren

#endif  // WARREN_CLI_STORE_FLAGS_H_
