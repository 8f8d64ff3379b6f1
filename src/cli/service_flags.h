#ifndef WARREN_CLI_SERVICE_FLAGS_H_
#define WARREN_CLI_SERVICE_FLAGS_H_

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Template flags shared by `service create` and `service update`. Only the flags named in
// `given` are applied, so an update changes exactly the fields its flags name.
struct TemplateFlags {
  std::string image;
  std::string image_pull_policy;
  std::string command;
  std::vector<std::string> args;
  int replicas = 1;
  std::string mode;
  std::vector<std::string> env;               // K=V
  std::vector<std::string> container_labels;  // K=V
  std::vector<std::string> publish;           // [HOST:][PUBLISHED:]TARGET[/tcp]
  std::string health_http;
  int health_port = 0;
  int health_tcp = 0;
  std::string health_cmd;
  std::string health_interval;
  std::string health_timeout;
  std::string health_start_period;
  int health_retries = 0;
  int health_success_threshold = 0;
  std::string restart_condition;
  int restart_max_attempts = 0;
  std::string restart_delay;
  double cpus = 0;
  std::string memory;
  std::vector<std::string> labels;  // K=V
  std::vector<std::string> constraints;
  // NAME[,target=FILE,mode=0400] (repeatable); on update, replaces the reference of that name.
  std::vector<std::string> secrets;
  std::string stop_timeout;
  std::string drain_timeout;

  // Long names ("--replicas") of the flags given on the command line.
  std::set<std::string> given;
  bool Given(std::string_view flag) const { return given.count(std::string(flag)) > 0; }
};

// Rollout flags (updateConfig, rollbackConfig, historyLimit) shared by `service create` and
// `service update`. As with TemplateFlags, only the flags named in `given` are applied.
struct UpdateConfigFlags {
  std::string strategy;
  int parallelism = 0;
  std::string max_surge;
  std::string max_unavailable;
  std::string order;
  std::string delay;
  std::string min_ready;
  std::string healthy_deadline;
  std::string progress_deadline;
  std::string failure_action;
  double max_failure_ratio = 0;
  int rollback_parallelism = 0;
  std::string rollback_max_surge;
  std::string rollback_max_unavailable;
  std::string rollback_order;
  std::string rollback_delay;
  int history_limit = 0;
  // Blue/green and canary.
  bool auto_promote = true;
  std::string scale_down_delay;
  int preview_publish = 0;
  std::string canary_steps;  // "10,25,50,100"
  std::string canary_window;
  bool canary_keep_stable = false;
  // Rolling.
  bool rolling_analysis = true;
  std::string rolling_window;
  std::string failure_threshold;        // percent: "10" or "10%"
  std::string max_error_rate_increase;  // percent, or "off"
  std::string max_latency;
  int min_requests = 0;
  std::string thin_traffic;
  std::string analysis_query;
  double analysis_threshold = 0;

  std::set<std::string> given;
  bool Given(std::string_view flag) const { return given.count(std::string(flag)) > 0; }
};

struct CreateFlags {
  std::string name;
  TemplateFlags t;
  UpdateConfigFlags u;
};

struct UpdateFlags {
  std::string name;
  TemplateFlags t;
  UpdateConfigFlags u;
  std::vector<std::string> env_rm;
  std::vector<std::string> secret_rm;
  std::string message;
  bool detach = false;
  // --force / `service restart`: raise template.force_update.
  bool force = false;
};

// Registers the template flags on `cmd`, bound to `flags`.
void AddTemplateFlags(CLI::App* cmd, TemplateFlags* flags);
// Registers the rollout flags on `cmd`, bound to `flags`.
void AddUpdateConfigFlags(CLI::App* cmd, UpdateConfigFlags* flags);
// After parsing: records in flags->given which of the flags on `cmd` were used.
void RecordGivenFlags(const CLI::App& cmd, TemplateFlags* flags);
void RecordGivenFlags(const CLI::App& cmd, UpdateConfigFlags* flags);

// "8080" (published 8080, target 8080), "9000:8080" (published 9000, target 8080),
// "127.0.0.1:9000:8080/tcp" (bound to one host address).
absl::StatusOr<v1::Port> ParsePublish(std::string_view text);
// "NAME", "NAME,target=FILE", "NAME,target=FILE,mode=0440" (mode in octal). Only the syntax
// is checked here; the rules are the spec's (ValidateServiceSpec).
absl::StatusOr<v1::SecretReference> ParseSecretFlag(std::string_view text);
// "10,25,50,100": whole numbers separated by commas (spaces allowed). Only the syntax is
// checked here; ranges and order are the spec's (ValidateServiceSpec).
absl::StatusOr<std::vector<int>> ParseCanarySteps(std::string_view text);
// "10", "2.5" or "10%": a percentage as a number.
absl::StatusOr<double> ParsePercent(std::string_view text);
// "K=V" (V may be empty or contain '='); `flag` names the flag in the error.
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(std::string_view flag,
                                                                  std::string_view text);

// The spec `service create` sends: flags applied, defaults filled, validated. Errors name
// the flag and the spec field, e.g. "--publish: template.ports[0].target: must be 1..65535".
absl::StatusOr<v1::ServiceSpec> SpecFromCreateFlags(const CreateFlags& flags);
// Changes `spec` (the current one) by the flags given, then defaults and validates it.
absl::Status ApplyUpdateFlags(const UpdateFlags& flags, v1::ServiceSpec* spec);

}  // namespace warren

#endif  // WARREN_CLI_SERVICE_FLAGS_H_
