#ifndef WARREN_COMMON_SPEC_H_
#define WARREN_COMMON_SPEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Durations as users write them: "500ms", "10s", "5m", "1h", "1m30s", "0". A bare number is
// rejected (the unit is required, except for "0").
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);
// Shortest form that ParseDuration reads back: "500ms", "10s", "5m", "1m30s".
std::string FormatDuration(absl::Duration d);

// Sizes: "512", "256K", "256M", "1G" (powers of 1024; "Ki/Mi/Gi" and "KB/MB/GB" accepted).
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);

// Fills every unset field with its documented default (mode, restart policy, health check
// timings and thresholds, stop timeout, port protocol and names, update config, history
// limit). rollbackConfig is left as written: its unset fields inherit from updateConfig.
void ApplySpecDefaults(v1::ServiceSpec* spec);

// Fills the unset fields of an update config: strategy "rolling", parallelism 1, maxSurge "1",
// maxUnavailable "0", order "start-first", delay 0, minReady 0, healthyDeadline 5m,
// progressDeadline 10m, failureAction "rollback", maxFailureRatio 0, autoPromote true,
// scaleDownDelay 30s, canaryWindow 5m, failureThreshold 10, minRequests 50 (also when 0),
// thinTraffic "extend", placementGrace 5s, and canarySteps 10,25,50,100 when the strategy is
// "canary". The one place for these defaults: the deployment engine resolves a config through
// it (ResolveRolloutParams, manager/rollout/params.h).
// maxErrorRateIncrease, maxLatency and the analysis query stay unset (not checked).
void ApplyUpdateConfigDefaults(v1::UpdateConfig* config);

inline constexpr int kDefaultCanarySteps[] = {10, 25, 50, 100};
inline constexpr int kDefaultMinRequests = 50;

// The budgets a rollback runs under: updateConfig (defaulted) with every field that
// rollbackConfig sets laid over it (canaryKeepStable only when true, minRequests and
// previewPublishedPort only when non-zero: proto3 cannot tell those unset from 0/false).
v1::UpdateConfig EffectiveRollbackConfig(const v1::ServiceSpec& spec);

// Revisions kept when historyLimit is 0.
inline constexpr int kDefaultHistoryLimit = 10;

// A maxSurge / maxUnavailable value ("3", "25%") as a task count for `replicas`. Percents are
// rounded up when `round_up` (surge) and down otherwise (unavailable), as Kubernetes does.
// INVALID_ARGUMENT unless the value is a whole number >= 0 or a whole percent 0%..100%.
absl::StatusOr<int> ResolveBudget(std::string_view value, int replicas, bool round_up);

// Both budgets of a rolling update for `replicas`. When both come out 0 (possible with
// percents, e.g. maxSurge "0" and maxUnavailable "10%" of 3), maxUnavailable becomes 1 so the
// rollout can move, as Kubernetes does.
struct RollingBudget {
  int max_surge = 0;
  int max_unavailable = 0;
};
absl::StatusOr<RollingBudget> ResolveRollingBudget(const v1::UpdateConfig& config, int replicas);

// OK when a replicated service may have `replicas` tasks (0..limits::kMaxReplicas); else
// INVALID_ARGUMENT "replicas: must be 0..10000, got N". Also what `service scale` checks.
absl::Status ValidateReplicas(int64_t replicas);

// Labels (of a service, a container or a node): at most limits::kMaxLabels, keys non-empty
// and within kMaxLabelKeyBytes, values within kMaxLabelValueBytes, no NUL bytes. `path` names
// the field in the error.
absl::Status ValidateLabels(std::string_view path,
                            const google::protobuf::Map<std::string, std::string>& labels);

// A secret's name: the rules of a service name (a DNS label). The error message does not name
// the field (the caller does).
absl::Status ValidateSecretName(std::string_view name);

// Checks a spec (after defaults) against its rules and every limit of common/limits.h, and
// refuses NUL bytes in every string. The error is INVALID_ARGUMENT and names the field with its
// path and what is allowed, e.g. "template.ports[0].target: must be 1..65535, got 70000".
absl::Status ValidateServiceSpec(const v1::ServiceSpec& spec);

// Placement constraints: "node.labels.KEY==VALUE", "node.labels.KEY!=VALUE", "node.name==N",
// "node.name!=N", "node.role==R", "node.role!=R". A missing label never equals a value.
// INVALID_ARGUMENT for an expression of any other shape.
absl::StatusOr<bool> MatchConstraint(std::string_view expr, const v1::Node& node);

// Name of the routing table's blue/green preview port (reserved in specs).
inline constexpr char kPreviewPortName[] = "preview";

// Task port: the first port's target, else the health check's port, else 8080.
int TaskPort(const v1::TaskTemplate& tmpl);

// Multi-document YAML of services (each document a ServiceSpec in protobuf's JSON mapping,
// lowerCamelCase keys; durations may use "500ms", "5m"). Unknown fields are errors naming the
// document and field. A missing `replicas` means 1.
absl::StatusOr<std::vector<v1::ServiceSpec>> ParseServicesYaml(std::string_view yaml);

// Any message as protobuf JSON (pretty, lowerCamelCase) and as YAML.
std::string ToJson(const google::protobuf::Message& msg);
std::string ToYaml(const google::protobuf::Message& msg);

}  // namespace warren

#endif  // WARREN_COMMON_SPEC_H_
