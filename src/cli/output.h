#ifndef WARREN_CLI_OUTPUT_H_
#define WARREN_CLI_OUTPUT_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/task_state.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "warren/v1/api.pb.h"
#include "warren/v1/objects.pb.h"

namespace warren {

enum class OutputFormat { kTable, kJson, kYaml };

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view text);

// Columns padded to their widest cell, separated by three spaces; no trailing spaces.
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// "5s", "3m", "2h", "4d"; "-" for an unset time.
std::string FormatAge(const google::protobuf::Timestamp& since, absl::Time now);

// A message as JSON or YAML; a table-less format falls back to YAML.
std::string RenderMessage(const google::protobuf::Message& msg, OutputFormat format);

// Per service id: running tasks (desired and observed running).
std::map<std::string, int> CountRunning(const std::vector<v1::Task>& tasks);

std::string RenderServices(const v1::ListServicesResponse& services,
                           const std::map<std::string, int>& running, OutputFormat format,
                           absl::Time now);
// `node_names` maps node ids to names for the NODE column (the id is shown when unknown).
// ERROR is the task's last error (exec failure, unschedulable reason, bind failure...) on one
// line, shortened unless `no_trunc`; JSON and YAML carry it whole (status.error).
std::string RenderTasks(const v1::ListTasksResponse& tasks,
                        const std::map<std::string, std::string>& node_names, OutputFormat format,
                        absl::Time now, bool no_trunc = false);
// `service ps -q`: task ids, one per line, in the table's order.
std::string RenderTaskIds(const v1::ListTasksResponse& tasks);

// `text` on one line (line breaks and tabs become spaces), cut to `max_chars` with "..." at
// the end when longer.
std::string ShortenCell(std::string_view text, size_t max_chars = 60);
// `node ls`: the nodes, then (table) the managers, the one that answered marked with '*'.
std::string RenderNodes(const v1::ListNodesResponse& nodes, OutputFormat format, absl::Time now);
// `cluster status`: the store (its file, or each etcd member's status) and the managers.
std::string RenderClusterStatus(const v1::ClusterStatus& status, OutputFormat format);
// One event as one line (table), one compact JSON line, or one YAML document.
std::string RenderEvent(const v1::Event& event, OutputFormat format);

// One line of rollout progress: "[####++....] updated 3/5, available 2/5, batch 2" ('#'
// available on the target revision, '+' updated but not yet available), then for a canary
// ", step 2/4, weight 25%", for blue/green ", switched" once traffic is on the new revision,
// and ", rolling back" or ", paused" in those phases.
std::string RenderProgress(const v1::Deployment& d);

// Canary: "step 2/4, weight 25%" (the step 1-based, out of config.canary_steps). Empty for
// other strategies.
std::string CanaryStepText(const v1::Deployment& d);

// Time left in the current analysis window: step_started_at (blue/green: switched_at when no
// step start is set) + config.canary_window - now, at least 0. Unset when the deployment has
// no window running.
std::optional<absl::Duration> WindowLeft(const v1::Deployment& d, absl::Time now);

// An analysis check's value or threshold in the check's unit: error_rate and
// error_rate_increase in percent ("2.50%"), latency_p99 in seconds shown as milliseconds
// ("250.0ms"), requests and health as counts, anything else as a plain number.
std::string FormatCheckValue(const std::string& check, double value);

// Per revision: live tasks (desired running, not ended) and those of them serving.
struct RevisionReplicas {
  int live = 0;
  int serving = 0;
};
std::map<int64_t, RevisionReplicas> CountReplicasByRevision(const std::vector<v1::Task>& tasks);

// `service canary status`: strategy, phase, step and weight, time left in the window, one row
// per revision (role, weight, replicas) and one per analysis check (value, threshold,
// pass/fail). `endpoints` (may be null) gives the weights the proxies use; without it they
// come from the deployment. JSON/YAML carry the same fields.
std::string RenderCanaryStatus(const v1::Deployment& d, const v1::ServiceEndpoints* endpoints,
                               const std::map<int64_t, RevisionReplicas>& replicas,
                               OutputFormat format, absl::Time now);

// An analysis check's verdict for people: "pass", "FAIL", or "waiting" for a request count that
// is still being collected (the check only decides at the window's end).
std::string CheckResult(const v1::Deployment& d, const v1::AnalysisResult& a);

// What `promote` did: the result the manager recorded for the request (the step and weight it
// moved to), or, from an older manager, the same from the deployment's fields.
std::string DescribePromotion(const v1::Deployment& d, const std::string& name);

// "progressing", "rolled-back": the phase without its prefix, lower case, '-' for '_'.
std::string PhaseName(v1::DeploymentPhase phase);

// How a rollout ended, for a follower: whether it is over, the exit code, and the line to print
// ("rollout to revision 3 succeeded in 12s", "rolled back to revision 2: <reason>",
// "paused: <reason>", "failed: <reason>"). A blue/green rollout without autoPromote whose green
// set is ready waits for a person, as a pause does: done, exit 0, with the promote command.
struct RolloutOutcome {
  bool done = false;
  int exit_code = 0;
  std::string message;
};
// A blue/green or canary rollout is done for a follower once all traffic is on the new revision
// (exit 0): the message says how long the previous revision stays warm (from `now`) and how to
// roll back at once. With `until_end` (`rollout status --watch`) it is done when it ends.
RolloutOutcome OutcomeOf(const v1::Deployment& d, absl::Time now = absl::InfinitePast(),
                         bool until_end = false);

// `service rollout status`: a key/value block (table), or the Deployment as JSON/YAML.
std::string RenderRolloutStatus(const v1::Deployment& d, OutputFormat format, absl::Time now);

// `service history`: REVISION (the current one marked '*'), CREATED (age), CHANGE-CAUSE,
// STRATEGY, OUTCOME.
// Per revision: weight, recent requests, error rate and p99; then every endpoint.
std::string RenderEndpoints(const v1::ServiceEndpoints& endpoints, OutputFormat format);

std::string RenderHistory(const v1::ListRevisionsResponse& revisions, int64_t current,
                          OutputFormat format, absl::Time now);

// "web.1.0a1b2c3d4e5f" (replicated) or "web.0a1b2c3d4e5f" (global): names a task in log lines.
std::string TaskLabel(std::string_view service, int slot, std::string_view task_id);

// A unified-style line diff with three lines of context; empty when the texts are equal.
std::string UnifiedDiff(std::string_view from_name, std::string_view from, std::string_view to_name,
                        std::string_view to);

}  // namespace warren

#endif  // WARREN_CLI_OUTPUT_H_
