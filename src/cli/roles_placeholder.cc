// Placeholder for CLI development only: the real roles live elsewhere. Drop this file (and its
// commit) when merging with the branch that implements RunManager/RunWorker/RunHybrid.
#include <iostream>

#include "roles.h"

namespace warren {

int RunManager(const ManagerOptions& options) {
  std::cerr << "error: the manager role is not part of this build (placeholder roles)\n";
  return 1;
}

int RunWorker(const WorkerOptions& options) {
  std::cerr << "error: the worker role is not part of this build (placeholder roles)\n";
  return 1;
}

int RunHybrid(const ManagerOptions& manager, const WorkerOptions& worker) {
  std::cerr << "error: the hybrid role is not part of this build (placeholder roles)\n";
  return 1;
}

}  // namespace warren
