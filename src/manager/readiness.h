#ifndef WARREN_MANAGER_READINESS_H_
#define WARREN_MANAGER_READINESS_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"

namespace warren {

// Keeps the manager's gRPC health status (grpc.health.v1: the server as a whole, "", and each
// of `services`) equal to `ready()`, the same condition as /readyz: re-evaluated every
// second. Generic health probes then see what /readyz sees.
class HealthStatusUpdater {
 public:
  HealthStatusUpdater(grpc::Server& server, std::function<bool()> ready,
                      std::vector<std::string> services);
  ~HealthStatusUpdater();

 private:
  void Set(bool serving);

  grpc::Server& server_;
  const std::vector<std::string> services_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_READINESS_H_
