#include "cli/service_flags.h"

#include <arpa/inet.h>

#include <algorithm>

#include <cmath>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/spec.h"

namespace warren {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status FlagError(std::string_view flag, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(AV(flag), ": ", msg));
}

absl::Status SetDuration(std::string_view flag, const std::string& text,
                         google::protobuf::Duration* out) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) return FlagError(flag, d.status().message());
  int64_t ns = absl::ToInt64Nanoseconds(*d);
  out->set_seconds(ns / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return absl::OkStatus();
}

absl::StatusOr<int> ParsePortNumber(absl::string_view text, absl::string_view what,
                                    std::string_view whole) {
  int port;
  if (!absl::SimpleAtoi(text, &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid port mapping \"%s\": %s port must be 1..65535, got \"%s\"",
                        AV(whole), what, text));
  }
  return port;
}

// Spec field path prefixes and the flag that sets them, most specific first.
constexpr std::pair<const char*, const char*> kFieldFlags[] = {
    {"replicas", "--replicas"},
    {"mode", "--mode"},
    {"labels", "--label"},
    {"template.command", "--command"},
    {"template.ports", "--publish"},
    {"template.healthCheck.http.port", "--health-port"},
    {"template.healthCheck.http", "--health-http"},
    {"template.healthCheck.tcp", "--health-tcp"},
    {"template.healthCheck.exec", "--health-cmd"},
    {"template.healthCheck.interval", "--health-interval"},
    {"template.healthCheck.timeout", "--health-timeout"},
    {"template.healthCheck.startPeriod", "--health-start-period"},
    {"template.healthCheck.retries", "--health-retries"},
    {"template.healthCheck.successThreshold", "--health-success-threshold"},
    {"template.healthCheck", "--health-http, --health-tcp or --health-cmd"},
    {"template.restartPolicy.condition", "--restart-condition"},
    {"template.restartPolicy.maxAttempts", "--restart-max-attempts"},
    {"template.restartPolicy.delay", "--restart-delay"},
    {"template.resources.cpus", "--cpus"},
    {"template.resources.memoryBytes", "--memory"},
    {"template.constraints", "--constraint"},
    {"template.secrets", "--secret"},
    {"template.env", "--env"},
    {"template.labels", "--container-label"},
    {"template.image", "--image"},
    {"template.imagePullPolicy", "--pull"},
    {"template.stopTimeout", "--stop-timeout"},
    {"template.drainTimeout", "--drain-timeout"},
    {"updateConfig.strategy", "--strategy"},
    {"updateConfig.parallelism", "--parallelism"},
    {"updateConfig.maxSurge", "--max-surge"},
    {"updateConfig.maxUnavailable", "--max-unavailable"},
    {"updateConfig.order", "--update-order"},
    {"updateConfig.delay", "--update-delay"},
    {"updateConfig.minReady", "--min-ready"},
    {"updateConfig.healthyDeadline", "--healthy-deadline"},
    {"updateConfig.progressDeadline", "--progress-deadline"},
    {"updateConfig.failureAction", "--failure-action"},
    {"updateConfig.maxFailureRatio", "--max-failure-ratio"},
    {"updateConfig.scaleDownDelay", "--scale-down-delay"},
    {"updateConfig.previewPublishedPort", "--preview-publish"},
    {"updateConfig.canarySteps", "--canary-steps"},
    {"updateConfig.canaryWindow", "--canary-window"},
    {"updateConfig.rollingWindow", "--rolling-window"},
    {"updateConfig.failureThreshold", "--failure-threshold"},
    {"updateConfig.maxErrorRateIncrease", "--max-error-rate-increase"},
    {"updateConfig.maxLatency", "--max-latency"},
    {"updateConfig.minRequests", "--min-requests"},
    {"updateConfig.thinTraffic", "--thin-traffic"},
    {"updateConfig.analysisQuery", "--analysis-query"},
    {"updateConfig.analysisThreshold", "--analysis-threshold"},
    {"updateConfig:", "--max-surge, --max-unavailable"},
    {"rollbackConfig.parallelism", "--rollback-parallelism"},
    {"rollbackConfig.maxSurge", "--rollback-max-surge"},
    {"rollbackConfig.maxUnavailable", "--rollback-max-unavailable"},
    {"rollbackConfig.order", "--rollback-order"},
    {"rollbackConfig.delay", "--rollback-delay"},
    {"rollbackConfig:", "--rollback-max-surge, --rollback-max-unavailable"},
    {"historyLimit", "--history-limit"},
};

// Prefixes a validation error with the flag that sets the offending field.
absl::Status NameFlag(const absl::Status& status) {
  if (status.ok()) return status;
  absl::string_view msg = status.message();
  for (const auto& [field, flag] : kFieldFlags) {
    absl::string_view f(field);
    // A field ending in ':' is an error about the object itself, not one of its fields.
    if (f.back() == ':' && msg.substr(0, f.size()) == f) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", msg));
    }
    if (msg.substr(0, f.size()) == f && msg.size() > f.size() &&
        (msg[f.size()] == ':' || msg[f.size()] == '.' || msg[f.size()] == '[')) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", msg));
    }
  }
  return status;
}

absl::Status ApplyTemplateFlags(const TemplateFlags& f, v1::ServiceSpec* spec) {
  v1::TaskTemplate* t = spec->mutable_template_();
  if (f.Given("--image")) t->set_image(f.image);
  if (f.Given("--pull")) t->set_image_pull_policy(f.image_pull_policy);
  if (f.Given("--command")) t->set_command(f.command);
  if (f.Given("--arg")) {
    t->clear_args();
    for (const auto& a : f.args) t->add_args(a);
  }
  if (f.Given("--replicas")) spec->set_replicas(f.replicas);
  if (f.Given("--mode")) {
    spec->set_mode(f.mode);
    // Global services have no replica count; a create leaves its default of 1 behind.
    if (f.mode == "global" && !f.Given("--replicas")) spec->set_replicas(0);
  }
  for (const auto& kv : f.env) {
    auto parsed = ParseKeyValue("--env", kv);
    if (!parsed.ok()) return parsed.status();
    (*t->mutable_env())[parsed->first] = parsed->second;
  }
  for (const auto& kv : f.container_labels) {
    auto parsed = ParseKeyValue("--container-label", kv);
    if (!parsed.ok()) return parsed.status();
    (*t->mutable_labels())[parsed->first] = parsed->second;
  }
  for (const auto& kv : f.labels) {
    auto parsed = ParseKeyValue("--label", kv);
    if (!parsed.ok()) return parsed.status();
    (*spec->mutable_labels())[parsed->first] = parsed->second;
  }
  if (f.Given("--publish")) {
    t->clear_ports();
    for (const auto& p : f.publish) {
      absl::StatusOr<v1::Port> port = ParsePublish(p);
      if (!port.ok()) return FlagError("--publish", port.status().message());
      *t->add_ports() = *port;
    }
  }
  if (f.Given("--constraint")) {
    t->clear_constraints();
    for (const auto& c : f.constraints) t->add_constraints(c);
  }
  for (const std::string& text : f.secrets) {
    absl::StatusOr<v1::SecretReference> ref = ParseSecretFlag(text);
    if (!ref.ok()) return FlagError("--secret", ref.status().message());
    v1::SecretReference* slot = nullptr;
    for (v1::SecretReference& have : *t->mutable_secrets()) {
      if (have.name() == ref->name()) slot = &have;
    }
    if (slot == nullptr) slot = t->add_secrets();
    *slot = *ref;
  }

  // Health check: the probe flags choose the probe; the timing flags change the current one.
  if (f.Given("--health-http")) {
    v1::HealthCheck* h = t->mutable_health_check();
    int port = h->has_http() ? h->http().port() : 0;
    h->mutable_http()->set_path(f.health_http);
    h->mutable_http()->set_port(port);
  }
  if (f.Given("--health-tcp")) t->mutable_health_check()->mutable_tcp()->set_port(f.health_tcp);
  if (f.Given("--health-cmd")) {
    v1::ExecProbe* exec = t->mutable_health_check()->mutable_exec();
    exec->clear_command();
    exec->add_command(f.health_cmd);
  }
  if (f.Given("--health-port")) {
    if (!t->health_check().has_http()) {
      return FlagError("--health-port", "needs an HTTP health check (--health-http PATH)");
    }
    t->mutable_health_check()->mutable_http()->set_port(f.health_port);
  }
  for (const char* flag : {"--health-interval", "--health-timeout", "--health-start-period",
                           "--health-retries", "--health-success-threshold"}) {
    if (f.Given(flag) && (!t->has_health_check() ||
                          t->health_check().probe_case() == v1::HealthCheck::PROBE_NOT_SET)) {
      return FlagError(flag, "needs a health check (--health-http, --health-tcp or --health-cmd)");
    }
  }
  if (f.Given("--health-interval")) {
    if (auto s = SetDuration("--health-interval", f.health_interval,
                             t->mutable_health_check()->mutable_interval());
        !s.ok()) {
      return s;
    }
  }
  if (f.Given("--health-timeout")) {
    if (auto s = SetDuration("--health-timeout", f.health_timeout,
                             t->mutable_health_check()->mutable_timeout());
        !s.ok()) {
      return s;
    }
  }
  if (f.Given("--health-start-period")) {
    if (auto s = SetDuration("--health-start-period", f.health_start_period,
                             t->mutable_health_check()->mutable_start_period());
        !s.ok()) {
      return s;
    }
  }
  if (f.Given("--health-retries")) t->mutable_health_check()->set_retries(f.health_retries);
  if (f.Given("--health-success-threshold")) {
    t->mutable_health_check()->set_success_threshold(f.health_success_threshold);
  }

  if (f.Given("--restart-condition")) {
    t->mutable_restart_policy()->set_condition(f.restart_condition);
  }
  if (f.Given("--restart-max-attempts")) {
    t->mutable_restart_policy()->set_max_attempts(f.restart_max_attempts);
  }
  if (f.Given("--restart-delay")) {
    if (auto s = SetDuration("--restart-delay", f.restart_delay,
                             t->mutable_restart_policy()->mutable_delay());
        !s.ok()) {
      return s;
    }
  }
  if (f.Given("--cpus")) t->mutable_resources()->set_cpus(f.cpus);
  if (f.Given("--memory")) {
    absl::StatusOr<int64_t> bytes = ParseByteSize(f.memory);
    if (!bytes.ok()) return FlagError("--memory", bytes.status().message());
    t->mutable_resources()->set_memory_bytes(*bytes);
  }
  if (f.Given("--drain-timeout")) {
    if (auto s = SetDuration("--drain-timeout", f.drain_timeout, t->mutable_drain_timeout());
        !s.ok())
      return s;
  }
  if (f.Given("--stop-timeout")) {
    if (auto s = SetDuration("--stop-timeout", f.stop_timeout, t->mutable_stop_timeout());
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// The blue/green and canary options.
absl::Status ApplyStrategyFlags(const UpdateConfigFlags& f, v1::UpdateConfig* u) {
  if (f.Given("--auto-promote")) u->set_auto_promote(f.auto_promote);
  if (f.Given("--preview-publish")) u->set_preview_published_port(f.preview_publish);
  if (f.Given("--canary-steps")) {
    absl::StatusOr<std::vector<int>> steps = ParseCanarySteps(f.canary_steps);
    if (!steps.ok()) return FlagError("--canary-steps", steps.status().message());
    u->clear_canary_steps();
    for (int w : *steps) u->add_canary_steps(w);
  }
  if (f.Given("--canary-keep-stable")) u->set_canary_keep_stable(f.canary_keep_stable);
  if (f.Given("--rolling-analysis")) u->set_rolling_analysis(f.rolling_analysis);
  using DurationField = google::protobuf::Duration* (v1::UpdateConfig::*)();
  for (const auto& [flag, text, field] :
       {std::tuple<const char*, const std::string*, DurationField>{
            "--scale-down-delay", &f.scale_down_delay, &v1::UpdateConfig::mutable_scale_down_delay},
        {"--canary-window", &f.canary_window, &v1::UpdateConfig::mutable_canary_window},
        {"--rolling-window", &f.rolling_window, &v1::UpdateConfig::mutable_rolling_window},
        {"--max-latency", &f.max_latency, &v1::UpdateConfig::mutable_max_latency}}) {
    if (!f.Given(flag)) continue;
    if (auto s = SetDuration(flag, *text, (u->*field)()); !s.ok()) return s;
  }
  if (f.Given("--failure-threshold")) {
    absl::StatusOr<double> pct = ParsePercent(f.failure_threshold);
    if (!pct.ok()) return FlagError("--failure-threshold", pct.status().message());
    u->set_failure_threshold(*pct);
  }
  if (f.Given("--max-error-rate-increase")) {
    if (f.max_error_rate_increase == "off") {
      u->clear_max_error_rate_increase();
    } else {
      absl::StatusOr<double> pct = ParsePercent(f.max_error_rate_increase);
      if (!pct.ok()) return FlagError("--max-error-rate-increase", pct.status().message());
      u->set_max_error_rate_increase(*pct);
    }
  }
  if (f.Given("--min-requests")) u->set_min_requests(f.min_requests);
  if (f.Given("--thin-traffic")) u->set_thin_traffic(f.thin_traffic);
  if (f.Given("--analysis-query")) {
    u->set_analysis_query(f.analysis_query);
    // An empty query turns the check off; its threshold goes with it.
    if (f.analysis_query.empty() && !f.Given("--analysis-threshold")) {
      u->clear_analysis_threshold();
    }
  }
  if (f.Given("--analysis-threshold")) u->set_analysis_threshold(f.analysis_threshold);
  return absl::OkStatus();
}

absl::Status ApplyUpdateConfigFlags(const UpdateConfigFlags& f, v1::ServiceSpec* spec) {
  v1::UpdateConfig* u = spec->mutable_update_config();
  if (f.Given("--strategy")) u->set_strategy(f.strategy);
  if (f.Given("--parallelism")) u->set_parallelism(f.parallelism);
  if (f.Given("--max-surge")) u->set_max_surge(f.max_surge);
  if (f.Given("--max-unavailable")) u->set_max_unavailable(f.max_unavailable);
  if (f.Given("--update-order")) u->set_order(f.order);
  // Member pointers, not mutable_*() calls: those would mark unset durations as set to 0.
  using DurationField = google::protobuf::Duration* (v1::UpdateConfig::*)();
  for (const auto& [flag, text, field] :
       {std::tuple<const char*, const std::string*, DurationField>{
            "--update-delay", &f.delay, &v1::UpdateConfig::mutable_delay},
        {"--min-ready", &f.min_ready, &v1::UpdateConfig::mutable_min_ready},
        {"--healthy-deadline", &f.healthy_deadline, &v1::UpdateConfig::mutable_healthy_deadline},
        {"--progress-deadline", &f.progress_deadline,
         &v1::UpdateConfig::mutable_progress_deadline}}) {
    if (!f.Given(flag)) continue;
    if (auto s = SetDuration(flag, *text, (u->*field)()); !s.ok()) return s;
  }
  if (f.Given("--failure-action")) u->set_failure_action(f.failure_action);
  if (f.Given("--max-failure-ratio")) u->set_max_failure_ratio(f.max_failure_ratio);
  if (auto s = ApplyStrategyFlags(f, u); !s.ok()) return s;

  // Only touched when a rollback flag is given: an absent rollbackConfig inherits everything.
  auto r = [spec] { return spec->mutable_rollback_config(); };
  if (f.Given("--rollback-parallelism")) r()->set_parallelism(f.rollback_parallelism);
  if (f.Given("--rollback-max-surge")) r()->set_max_surge(f.rollback_max_surge);
  if (f.Given("--rollback-max-unavailable")) r()->set_max_unavailable(f.rollback_max_unavailable);
  if (f.Given("--rollback-order")) r()->set_order(f.rollback_order);
  if (f.Given("--rollback-delay")) {
    if (auto s = SetDuration("--rollback-delay", f.rollback_delay, r()->mutable_delay()); !s.ok()) {
      return s;
    }
  }
  if (f.Given("--history-limit")) spec->set_history_limit(f.history_limit);
  return absl::OkStatus();
}

std::set<std::string> GivenFlagNames(const CLI::App& cmd) {
  std::set<std::string> given;
  for (const CLI::Option* opt : cmd.get_options()) {
    if (opt->count() == 0 || opt->get_lnames().empty()) continue;
    given.insert("--" + opt->get_lnames().front());
  }
  return given;
}

}  // namespace

void AddUpdateConfigFlags(CLI::App* cmd, UpdateConfigFlags* f) {
  const std::string g = "Rollout";
  cmd->add_option("--strategy", f->strategy,
                  "Rollout strategy: rolling (default), blue-green or canary")
      ->group(g);
  cmd->add_option("--parallelism", f->parallelism, "Tasks replaced per batch (0: all at once)")
      ->group(g);
  cmd->add_option("--max-surge", f->max_surge, "Extra tasks during a rollout: N or P% (default 1)")
      ->group(g);
  cmd->add_option("--max-unavailable", f->max_unavailable,
                  "Tasks that may be unavailable: N or P% (default 0)")
      ->group(g);
  cmd->add_option("--update-order", f->order, "start-first (default) or stop-first")->group(g);
  cmd->add_option("--update-delay,--delay", f->delay, "Wait between batches (default 0)")->group(g);
  cmd->add_option("--min-ready", f->min_ready,
                  "A new task is available after being healthy this long (default 0)")
      ->group(g);
  cmd->add_option("--healthy-deadline", f->healthy_deadline,
                  "A new task not available within this fails (default 5m)")
      ->group(g);
  cmd->add_option("--progress-deadline", f->progress_deadline,
                  "The rollout fails without progress for this long (default 10m)")
      ->group(g);
  cmd->add_option("--failure-action", f->failure_action,
                  "On failure: rollback (default), pause or continue")
      ->group(g);
  cmd->add_option("--max-failure-ratio", f->max_failure_ratio,
                  "Failed new tasks tolerated, 0..1 (default 0)")
      ->group(g);
  cmd->add_option("--rollback-parallelism", f->rollback_parallelism,
                  "Rollbacks: tasks per batch (default: as --parallelism)")
      ->group(g);
  cmd->add_option("--rollback-max-surge", f->rollback_max_surge,
                  "Rollbacks: max surge (default: as --max-surge)")
      ->group(g);
  cmd->add_option("--rollback-max-unavailable", f->rollback_max_unavailable,
                  "Rollbacks: max unavailable (default: as --max-unavailable)")
      ->group(g);
  cmd->add_option("--rollback-order", f->rollback_order,
                  "Rollbacks: start-first or stop-first (default: as --update-order)")
      ->group(g);
  cmd->add_option("--rollback-delay", f->rollback_delay,
                  "Rollbacks: wait between batches (default: as --update-delay)")
      ->group(g);
  cmd->add_option("--history-limit", f->history_limit, "Revisions kept (default 10, at least 2)")
      ->group(g);

  const std::string bg = "Blue/green";
  cmd->add_flag("--auto-promote,!--no-auto-promote", f->auto_promote,
                "Switch to green as soon as it is ready (default true); "
                "else wait for `service promote`")
      ->group(bg);
  cmd->add_option("--scale-down-delay", f->scale_down_delay,
                  "Blue/green and canary: the previous revision keeps running this long after "
                  "the new one got all traffic, so a rollback is a switch back (default 30s)")
      ->group(bg);
  cmd->add_option("--preview-publish", f->preview_publish,
                  "Port where green is reachable before the switch (0: none)")
      ->group(bg);

  const std::string c = "Canary";
  cmd->add_option("--canary-steps", f->canary_steps,
                  "Traffic weights in percent, increasing, ending at 100 (default 10,25,50,100)")
      ->group(c);
  cmd->add_option("--canary-window", f->canary_window,
                  "Observation window per step (default 5m; blue/green: after the switch)")
      ->group(c);
  cmd->add_flag("--canary-keep-stable", f->canary_keep_stable,
                "Keep the stable revision at full replicas until the end (default false)")
      ->group(c);

  const std::string r = "Rolling";
  cmd->add_flag("--rolling-analysis,!--no-rolling-analysis", f->rolling_analysis,
                "Judge the new revision's traffic while the update runs and roll back when a "
                "check fails (default: on for services with a published port)")
      ->group(r);
  cmd->add_option("--rolling-window", f->rolling_window,
                  "Sliding analysis window of a rolling update; it also runs this long before "
                  "it succeeds (default 10s)")
      ->group(r);

  const std::string a = "Analysis (canary, blue/green and rolling)";
  cmd->add_option("--failure-threshold", f->failure_threshold,
                  "Highest error rate of the new revision, percent (default 5 for rolling, 10 "
                  "for canary and blue/green)")
      ->group(a);
  cmd->add_option("--max-error-rate-increase", f->max_error_rate_increase,
                  "Highest error rate above the stable revision's, percentage points "
                  "(default: off)")
      ->group(a);
  cmd->add_option("--max-latency", f->max_latency, "Highest p99 latency (default 0: not checked)")
      ->group(a);
  cmd->add_option("--min-requests", f->min_requests,
                  "Requests needed before the error rate is judged (default 50)")
      ->group(a);
  cmd->add_option("--thin-traffic", f->thin_traffic,
                  "Fewer requests than --min-requests at the end of a window: extend (default), "
                  "pass or fail")
      ->group(a);
  cmd->add_option("--analysis-query", f->analysis_query,
                  "Prometheus instant query checked each window ('' removes it)")
      ->group(a);
  cmd->add_option("--analysis-threshold", f->analysis_threshold,
                  "Highest value of --analysis-query")
      ->group(a);
}

void RecordGivenFlags(const CLI::App& cmd, UpdateConfigFlags* flags) {
  flags->given = GivenFlagNames(cmd);
}

void AddTemplateFlags(CLI::App* cmd, TemplateFlags* f) {
  cmd->add_option("--image", f->image,
                  "Container image, e.g. 127.0.0.1:5000/shop/web:2 (runs on cri workers)");
  cmd->add_option("--command", f->command, "Executable to run (looked up in PATH)");
  cmd->add_option("--arg", f->args, "Argument to the command (repeat for several)");
  cmd->add_option("--replicas", f->replicas, "Number of tasks (replicated mode)");
  cmd->add_option("--mode", f->mode, "replicated or global")
      ->check(CLI::IsMember({"replicated", "global"}));
  cmd->add_option("--env", f->env, "Environment variable K=V (repeatable)");
  cmd->add_option("--pull", f->image_pull_policy,
                  "When to pull the image: always, missing or never (default: always for :latest "
                  "or no tag, else missing)");
  cmd->add_option("--container-label", f->container_labels,
                  "Label K=V on the task's container (cri runtime; repeatable)");
  cmd->add_option("--publish,-p", f->publish,
                  "Port: TARGET, PUBLISHED:TARGET or HOST:PUBLISHED:TARGET[/tcp] (repeatable)");
  auto* http = cmd->add_option("--health-http", f->health_http, "HTTP health check path");
  cmd->add_option("--health-port", f->health_port, "Port of the HTTP health check");
  auto* tcp =
      cmd->add_option("--health-tcp", f->health_tcp, "TCP health check port (0: task port)");
  auto* exec =
      cmd->add_option("--health-cmd", f->health_cmd, "Health check command (run by sh -c)");
  http->excludes(tcp)->excludes(exec);
  tcp->excludes(exec);
  cmd->add_option("--health-interval", f->health_interval, "Time between probes (e.g. 5s)");
  cmd->add_option("--health-timeout", f->health_timeout, "Probe timeout (e.g. 2s)");
  cmd->add_option("--health-retries", f->health_retries, "Failures before unhealthy");
  cmd->add_option("--health-start-period", f->health_start_period,
                  "Grace period before failures count");
  cmd->add_option("--health-success-threshold", f->health_success_threshold,
                  "Successes before healthy");
  cmd->add_option("--restart-condition", f->restart_condition, "always, on-failure or never")
      ->check(CLI::IsMember({"always", "on-failure", "never"}));
  cmd->add_option("--restart-max-attempts", f->restart_max_attempts, "0 means unlimited");
  cmd->add_option("--restart-delay", f->restart_delay, "First restart backoff (e.g. 100ms)");
  cmd->add_option("--cpus", f->cpus, "Reserved CPUs (e.g. 0.5)");
  cmd->add_option("--memory", f->memory, "Reserved memory (e.g. 256M)");
  cmd->add_option("--label", f->labels, "Service label K=V (repeatable)");
  cmd->add_option("--constraint", f->constraints,
                  "Placement: node.labels.K==V, node.name!=N, node.role==R (repeatable)");
  cmd->add_option("--secret", f->secrets,
                  "Secret as a file: NAME[,target=FILE,mode=0400,uid=0,gid=0] (repeatable)");
  cmd->add_option("--stop-timeout", f->stop_timeout, "SIGKILL after this long (e.g. 10s)");
  cmd->add_option("--drain-timeout", f->drain_timeout,
                  "Out of the routing table this long before SIGTERM (default 5s)");
}

void RecordGivenFlags(const CLI::App& cmd, TemplateFlags* flags) {
  flags->given = GivenFlagNames(cmd);
}

absl::StatusOr<v1::Port> ParsePublish(std::string_view text_in) {
  absl::string_view text = AV(text_in);
  v1::Port port;
  absl::string_view rest = text;
  if (size_t slash = rest.rfind('/'); slash != absl::string_view::npos) {
    absl::string_view proto = rest.substr(slash + 1);
    if (proto != "tcp") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "invalid port mapping \"%s\": protocol must be tcp, got \"%s\"", text, proto));
    }
    port.set_protocol("tcp");
    rest = rest.substr(0, slash);
  }
  // Split from the right: TARGET, then PUBLISHED, then whatever is left is the host address
  // (which may itself contain ':' when it is an IPv6 address).
  absl::string_view target_text = rest;
  absl::string_view published_text;
  absl::string_view host;
  bool has_published = false;
  bool has_host = false;
  if (size_t c = rest.rfind(':'); c != absl::string_view::npos) {
    has_published = true;
    target_text = rest.substr(c + 1);
    published_text = rest.substr(0, c);
    if (size_t c2 = published_text.rfind(':'); c2 != absl::string_view::npos) {
      has_host = true;
      host = published_text.substr(0, c2);
      published_text = published_text.substr(c2 + 1);
    }
  }
  absl::StatusOr<int> target = ParsePortNumber(target_text, "target", text_in);
  if (!target.ok()) return target.status();
  port.set_target(*target);
  port.set_published(*target);
  if (has_published) {
    absl::StatusOr<int> published = ParsePortNumber(published_text, "published", text_in);
    if (!published.ok()) return published.status();
    port.set_published(*published);
  }
  if (has_host && host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid port mapping \"%s\": the host address is empty", text));
  }
  if (!host.empty()) {
    std::string h(host);
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET, h.c_str(), buf) != 1 && inet_pton(AF_INET6, h.c_str(), buf) != 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("invalid port mapping \"%s\": \"%s\" is not an IP address", text, host));
    }
    port.set_host_ip(h);
  }
  return port;
}

absl::StatusOr<std::vector<int>> ParseCanarySteps(std::string_view text) {
  std::vector<int> steps;
  for (absl::string_view part : absl::StrSplit(AV(text), ',')) {
    absl::string_view item = absl::StripAsciiWhitespace(part);
    absl::ConsumeSuffix(&item, "%");
    int w;
    if (!absl::SimpleAtoi(item, &w)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "invalid steps \"%s\": use whole percentages separated by commas, e.g. 10,25,50,100",
          AV(text)));
    }
    steps.push_back(w);
  }
  return steps;
}

absl::StatusOr<double> ParsePercent(std::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(AV(text));
  absl::ConsumeSuffix(&t, "%");
  double v;
  if (t.empty() || !absl::SimpleAtod(t, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid percentage \"%s\": use a number such as 10, 2.5 or 10%%", AV(text)));
  }
  return v;
}

absl::StatusOr<v1::SecretReference> ParseSecretFlag(std::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(AV(text), ',');
  v1::SecretReference ref;
  ref.set_name(std::string(parts[0]));
  if (ref.name().empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("expected NAME[,target=FILE,mode=0400,uid=0,gid=0], got \"%s\"", AV(text)));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    absl::string_view part = parts[i];
    if (absl::ConsumePrefix(&part, "target=")) {
      ref.set_target(std::string(part));
    } else if (absl::ConsumePrefix(&part, "mode=")) {
      uint32_t mode = 0;
      if (part.empty() || part.size() > 4 ||
          !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        return absl::InvalidArgumentError(
            absl::StrFormat("mode: an octal file mode such as 0400 or 0440, got \"%s\"", part));
      }
      for (char c : part) mode = mode * 8 + static_cast<uint32_t>(c - '0');
      ref.set_mode(mode);
    } else if (absl::StartsWith(part, "uid=") || absl::StartsWith(part, "gid=")) {
      const bool is_uid = absl::ConsumePrefix(&part, "uid=");
      if (!is_uid) absl::ConsumePrefix(&part, "gid=");
      uint32_t id = 0;
      if (!absl::SimpleAtoi(part, &id) || id == UINT32_MAX ||
          !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: a numeric user or group id (0..4294967294), got \"%s\"",
                            is_uid ? "uid" : "gid", part));
      }
      if (is_uid) {
        ref.set_uid(id);
      } else {
        ref.set_gid(id);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrFormat(
          "\"%s\": expected target=FILE, mode=OCTAL, uid=N or gid=N after the secret's name",
          part));
    }
  }
  return ref;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(std::string_view flag,
                                                                  std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return FlagError(flag, absl::StrFormat("expected KEY=VALUE, got \"%s\"", AV(text)));
  }
  return std::pair{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

absl::StatusOr<v1::ServiceSpec> SpecFromCreateFlags(const CreateFlags& flags) {
  v1::ServiceSpec spec;
  spec.set_name(flags.name);
  spec.set_replicas(flags.t.replicas);
  if (auto s = ApplyTemplateFlags(flags.t, &spec); !s.ok()) return s;
  if (auto s = ApplyUpdateConfigFlags(flags.u, &spec); !s.ok()) return s;
  ApplySpecDefaults(&spec);
  if (auto s = NameFlag(ValidateServiceSpec(spec)); !s.ok()) return s;
  return spec;
}

absl::Status ApplyUpdateFlags(const UpdateFlags& flags, v1::ServiceSpec* spec) {
  if (auto s = ApplyTemplateFlags(flags.t, spec); !s.ok()) return s;
  if (auto s = ApplyUpdateConfigFlags(flags.u, spec); !s.ok()) return s;
  for (const std::string& key : flags.env_rm) {
    if (spec->template_().env().count(key) == 0) {
      return FlagError("--env-rm",
                       absl::StrFormat("the service has no environment variable \"%s\"", key));
    }
    spec->mutable_template_()->mutable_env()->erase(key);
  }
  for (const std::string& name : flags.secret_rm) {
    auto* refs = spec->mutable_template_()->mutable_secrets();
    auto it = std::find_if(refs->begin(), refs->end(),
                           [&](const v1::SecretReference& r) { return r.name() == name; });
    if (it == refs->end()) {
      return FlagError("--secret-rm", absl::StrFormat("the service has no secret \"%s\"", name));
    }
    refs->erase(it);
  }
  if (flags.force) {
    spec->mutable_template_()->set_force_update(spec->template_().force_update() + 1);
  }
  ApplySpecDefaults(spec);
  return NameFlag(ValidateServiceSpec(*spec));
}

}  // namespace warren
