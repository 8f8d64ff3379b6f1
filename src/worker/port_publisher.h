#ifndef WARREN_WORKER_PORT_PUBLISHER_H_
#define WARREN_WORKER_PORT_PUBLISHER_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proxy/proxy.h"
#include "warren/v1/objects.pb.h"

namespace warren {

struct PortPublisherOptions {
  // Retry delay after a port's first failed bind, doubled per failure up to max_backoff.
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
};

// Applies routing tables to the node's proxies and retries the published ports that cannot be
// bound (another program holds them) with a capped exponential backoff per port: a port in
// backoff is left out of the tables applied meanwhile, so a table change does not bind it
// again early. Each failure is logged once when it begins (and when its error changes), and
// once when the port listens at last; the current failures go to the manager.
class PortPublisher {
 public:
  PortPublisher(ProxyManager& proxies, const Clock& clock, PortPublisherOptions options = {});

  // A new routing table, applied at once (but for ports in backoff).
  void Apply(const v1::RoutingTable& table);
  // Applies the last table again when a failed port's retry is due; returns whether it did.
  bool RetryIfDue();

  // The ports that failed their last attempt (service, port, host, error, since, attempts;
  // without node).
  std::vector<v1::PublishError> Failures() const;
  // Changes whenever a port starts or stops failing or its error changes.
  uint64_t generation() const;

 private:
  using Key = std::pair<std::string, int>;  // service id, published port
  struct Failing {
    v1::PublishError error;
    absl::Time since;
    absl::Time retry_at;
  };

  void ApplyLocked(const v1::RoutingTable& table, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff(int attempts) const;

  ProxyManager& proxies_;
  const Clock& clock_;
  const PortPublisherOptions options_;
  mutable absl::Mutex mu_;
  // The last table, kept only while a port fails (for RetryIfDue): a copy of every service's
  // route per change would cost more than the change on a large cluster.
  v1::RoutingTable table_ ABSL_GUARDED_BY(mu_);
  std::map<Key, Failing> failing_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace warren

#endif  // WARREN_WORKER_PORT_PUBLISHER_H_
