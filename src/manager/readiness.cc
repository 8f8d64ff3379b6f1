#include "manager/readiness.h"

#include <optional>

#include "spdlog/spdlog.h"

namespace warren {

HealthStatusUpdater::HealthStatusUpdater(grpc::Server& server, std::function<bool()> ready,
                                         std::vector<std::string> services)
    : server_(server), services_(std::move(services)) {
  Set(ready());
  thread_ = std::thread([this, ready = std::move(ready)] {
    bool serving = ready();
    // Readiness changes rarely (a corrupt object found at open, then removed): a look every
    // second is enough, and stopping never waits for a store commit.
    while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      const bool now = ready();
      if (now == serving) continue;
      serving = now;
      spdlog::info("gRPC health: {}", serving ? "SERVING" : "NOT_SERVING (see /readyz)");
      Set(serving);
    }
  });
}

HealthStatusUpdater::~HealthStatusUpdater() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void HealthStatusUpdater::Set(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  for (const std::string& s : services_) health->SetServingStatus(s, serving);
}

}  // namespace warren
