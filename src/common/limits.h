#ifndef WARREN_COMMON_LIMITS_H_
#define WARREN_COMMON_LIMITS_H_

// Every size and count a client controls, in one place. ValidateServiceSpec (common/spec.h)
// enforces the spec limits for the CLI and the API alike; the API checks the request limits.
// Each is far above what a real service needs (Docker and Kubernetes practice) and low enough
// that one request cannot make the manager allocate without bound. docs/operations.md lists
// them with the reasoning; a change here must change that table too.

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace warren::limits {

// ---- a service spec ---------------------------------------------------------------------------

// Tasks of a replicated service: every replica is a task object and a slot the controller
// reconciles on every pass.
inline constexpr int kMaxReplicas = 10'000;
// The whole spec, protobuf-encoded (Kubernetes refuses objects over 1.5 MiB). Every task
// carries a copy of the template, so this bounds the size of each task object too.
inline constexpr size_t kMaxSpecBytes = 1 << 20;

// Environment: entries, a name, a value (Linux's own limit per string is 128 KiB).
inline constexpr int kMaxEnv = 1024;
inline constexpr size_t kMaxEnvNameBytes = 256;
inline constexpr size_t kMaxEnvValueBytes = 32 << 10;
// The command, an image reference, and the arguments (also the exec health check's argv).
inline constexpr size_t kMaxCommandBytes = 4096;
inline constexpr size_t kMaxImageBytes = 1024;
inline constexpr int kMaxArgs = 1024;
inline constexpr size_t kMaxArgBytes = 32 << 10;
// Labels (the service's and the container's): entries, a key, a value.
inline constexpr int kMaxLabels = 256;
inline constexpr size_t kMaxLabelKeyBytes = 253;
inline constexpr size_t kMaxLabelValueBytes = 4096;
// Placement constraints: expressions and the length of one.
inline constexpr int kMaxConstraints = 64;
inline constexpr size_t kMaxConstraintBytes = 512;
// Secrets one task uses (template.secrets).
inline constexpr int kMaxSecretsPerTask = 64;
// Ports and the length of a port name (a DNS label in SRV records).
inline constexpr int kMaxPorts = 128;
inline constexpr size_t kMaxPortNameBytes = 63;
// HTTP health check: path, headers, header name and value.
inline constexpr size_t kMaxHealthPathBytes = 2048;
inline constexpr int kMaxHealthHeaders = 32;
inline constexpr size_t kMaxHeaderNameBytes = 256;
inline constexpr size_t kMaxHeaderValueBytes = 4096;
// Health check counts (consecutive probe results).
inline constexpr int kMaxHealthRetries = 1000;
// Restart attempts (0 is unlimited).
inline constexpr int kMaxRestartAttempts = 1'000'000;
// Any duration in a spec: timeouts, delays, deadlines, windows. Beyond a week is a typo, and
// keeps time arithmetic far from overflow.
inline constexpr absl::Duration kMaxSpecDuration = absl::Hours(24 * 7);
// Reserved resources of one task.
inline constexpr double kMaxCpus = 4096;
inline constexpr int64_t kMaxMemoryBytes = int64_t{1} << 50;  // 1 PiB
// Revisions kept (historyLimit; 0 means kDefaultHistoryLimit). Each holds a template.
inline constexpr int kMaxHistoryLimit = 100;
// Canary steps (strictly increasing percentages, so 100 at most anyway).
inline constexpr int kMaxCanarySteps = 100;
// Analysis: requests needed before an error rate is judged, and the Prometheus query.
inline constexpr int kMaxMinRequests = 100'000'000;
inline constexpr size_t kMaxAnalysisQueryBytes = 4096;

// ---- spec files (`warren apply -f`) -----------------------------------------------------------

// Bytes of one YAML input, checked before it is parsed (yaml-cpp keeps ~100 bytes per node).
inline constexpr size_t kMaxYamlBytes = 4 << 20;
// Nesting of flow collections ('[' '{'), checked before parsing: a ServiceSpec nests 5 deep.
inline constexpr int kMaxYamlDepth = 64;
// Bytes of one document once aliases are expanded: an alias costs 3 bytes to write but copies
// what it names. Twice kMaxSpecBytes leaves room for the YAML keys and quoting.
inline constexpr size_t kMaxExpandedDocumentBytes = 2 * kMaxSpecBytes;

// ---- other API requests -----------------------------------------------------------------------

// `service logs --tail`: lines from the end of each task's log.
inline constexpr int kMaxLogTail = 1'000'000;
// Responses the CLI and the workers accept from the manager (gRPC's default is 4 MiB, less
// than `service ps` of a large service or a node's assignment set with large templates).
inline constexpr int kMaxClientReceiveBytes = 256 << 20;

// ---- the manager ------------------------------------------------------------------------------

// Terminal tasks kept per slot for `service ps` (the manager's --task-history-limit), like
// Swarm's task history retention limit.
inline constexpr int kDefaultTaskHistory = 5;
inline constexpr int kMaxTaskHistory = 100;

}  // namespace warren::limits

#endif  // WARREN_COMMON_LIMITS_H_
