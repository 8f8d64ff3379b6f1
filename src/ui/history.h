#ifndef WARREN_UI_HISTORY_H_
#define WARREN_UI_HISTORY_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "warren/v1/api.pb.h"

namespace warren::ui {

// One moment of a service's traffic, per revision: its routing weight (percent), its recent
// error rate (percent) and its recent p99 latency (milliseconds). Preview traffic is left out.
struct TrafficSample {
  absl::Time time;
  std::map<int64_t, double> weight;
  std::map<int64_t, double> error_rate;
  std::map<int64_t, double> p99_ms;
};

TrafficSample SampleOf(absl::Time now, const v1::ServiceEndpoints& endpoints);

struct HistoryOptions {
  // A sample of every watched service this often.
  absl::Duration interval = absl::Seconds(2);
  // Samples older than this are dropped.
  absl::Duration retention = absl::Hours(1);
  // A service is sampled while it has an active deployment and this long after, so the chart
  // shows how traffic settled.
  absl::Duration tail = absl::Minutes(1);
  // Services with samples kept at once; the one sampled longest ago goes first.
  size_t max_services = 64;
};

// The dashboard's charts from before the page was opened: the manager samples the traffic of
// services with a deployment in progress and keeps the last hour. Memory is bounded by
// max_services x retention / interval samples. Time comes from the caller (fake clock in the
// tests); the dashboard's sampler thread calls Watch for each deployment event and Sample
// every interval.
class TrafficHistory {
 public:
  explicit TrafficHistory(HistoryOptions options = {}) : options_(options) {}

  // The service has (or just had) deployment news: sample it from the next round on.
  void Watch(const std::string& service_id, absl::Time now);

  // One round: a sample of every watched service from `endpoints` (nullopt: nothing routed
  // yet, no sample); a service stops being watched `tail` after `active` last said true.
  using EndpointsFn = std::function<std::optional<v1::ServiceEndpoints>(const std::string&)>;
  using ActiveFn = std::function<bool(const std::string&)>;
  void Sample(absl::Time now, const EndpointsFn& endpoints, const ActiveFn& active);

  // Oldest first.
  std::vector<TrafficSample> Samples(const std::string& service_id) const;
  size_t watched() const;
  const HistoryOptions& options() const { return options_; }

 private:
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const HistoryOptions options_;
  mutable absl::Mutex mu_;
  // Service id -> when it was last seen with an active deployment (or news of one).
  std::map<std::string, absl::Time> watched_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<TrafficSample>> samples_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::ui

#endif  // WARREN_UI_HISTORY_H_
