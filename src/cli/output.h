#ifndef WARREN_CLI_OUTPUT_H_
#define WARREN_CLI_OUTPUT_H_

#include <map>
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
std::string RenderTasks(const v1::ListTasksResponse& tasks,
                        const std::map<std::string, std::string>& node_names, OutputFormat format,
                        absl::Time now);
std::string RenderNodes(const v1::ListNodesResponse& nodes, OutputFormat format, absl::Time now);
// One event as one line (table), one compact JSON line, or one YAML document.
std::string RenderEvent(const v1::Event& event, OutputFormat format);

// One line of rollout progress: "[####++....] updated 3/5, available 2/5, batch 2" ('#'
// available on the target revision, '+' updated but not yet available), with ", rolling back"
// or ", paused" appended in those phases.
std::string RenderProgress(const v1::Deployment& d);

// "progressing", "rolled-back": the phase without its prefix, lower case, '-' for '_'.
std::string PhaseName(v1::DeploymentPhase phase);

// How a rollout ended, for a follower: whether it is over, the exit code, and the line to print
// ("rollout to revision 3 succeeded in 12s", "rolled back to revision 2: <reason>",
// "paused: <reason>", "failed: <reason>").
struct RolloutOutcome {
  bool done = false;
  int exit_code = 0;
  std::string message;
};
RolloutOutcome OutcomeOf(const v1::Deployment& d);

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
