#include "common/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace warren {

void NotifyReady(std::string_view status) {
  const std::string state = "READY=1\nSTATUS=" + std::string(status);
  if (int rc = sd_notify(0, state.c_str()); rc < 0) {
    spdlog::warn("sd_notify READY=1: {}", std::strerror(-rc));
  }
}

void NotifyStopping() { sd_notify(0, "STOPPING=1\nSTATUS=shutting down"); }

std::unique_ptr<WatchdogPinger> WatchdogPinger::StartIfEnabled() {
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is this process).
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return nullptr;
  return std::unique_ptr<WatchdogPinger>(new WatchdogPinger(absl::Microseconds(usec) / 2));
}

WatchdogPinger::WatchdogPinger(absl::Duration period) {
  thread_ = std::thread([this, period] {
    do {
      sd_notify(0, "WATCHDOG=1");
    } while (!stop_.WaitForNotificationWithTimeout(period));
  });
}

WatchdogPinger::~WatchdogPinger() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace warren
