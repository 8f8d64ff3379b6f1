#ifndef WARREN_MANAGER_PROMETHEUS_H_
#define WARREN_MANAGER_PROMETHEUS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace warren {

// Runs a Prometheus instant query (`GET <base_url>/api/v1/query?query=...`) and returns the
// value of the first sample (vector or scalar result). base_url is "http://host:port".
absl::StatusOr<double> QueryPrometheus(const std::string& base_url, const std::string& query,
                                       absl::Duration timeout);

// The value of the first sample of a Prometheus query API response body.
absl::StatusOr<double> ParsePrometheusResponse(const std::string& body);

}  // namespace warren

#endif  // WARREN_MANAGER_PROMETHEUS_H_
