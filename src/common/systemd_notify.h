#ifndef WARREN_COMMON_SYSTEMD_NOTIFY_H_
#define WARREN_COMMON_SYSTEMD_NOTIFY_H_

// The service manager's notification protocol (systemd's Type=notify, sd_notify(3)): each
// call is a no-op when the process was not started with NOTIFY_SOCKET.

#include <atomic>
#include <memory>
#include <string_view>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace warren {

// READY=1 with a STATUS line: the role serves (its gRPC server started, its store opened).
void NotifyReady(std::string_view status);
// STOPPING=1: shutdown began.
void NotifyStopping();

// Sends WATCHDOG=1 at half the interval systemd asked for (WatchdogSec=, passed as
// WATCHDOG_USEC to this process) until destroyed.
class WatchdogPinger {
 public:
  // nullptr when the service has no watchdog.
  static std::unique_ptr<WatchdogPinger> StartIfEnabled();
  ~WatchdogPinger();

 private:
  explicit WatchdogPinger(absl::Duration period);

  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace warren

#endif  // WARREN_COMMON_SYSTEMD_NOTIFY_H_
