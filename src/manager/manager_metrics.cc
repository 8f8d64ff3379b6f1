#include "manager/manager_metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "common/enum_names.h"
#include "manager/rollout/rollout.h"
#include "manager/traffic.h"
#include "store/typed_store.h"

namespace warren {
namespace {

// The plan's status label: success when the deployment reached its target revision.
const char* StatusLabel(v1::DeploymentPhase phase) {
  return phase == v1::DEPLOYMENT_PHASE_SUCCEEDED ? "success" : "failed";
}

// The finer outcome label, "rolled_back": the phase's name.
std::string PhaseLabel(v1::DeploymentPhase phase) {
  std::string name = v1::DeploymentPhase_Name(phase);
  absl::string_view view = name;
  if (absl::ConsumePrefix(&view, "DEPLOYMENT_PHASE_")) name = std::string(view);
  return absl::AsciiStrToLower(name);
}

}  // namespace

ManagerMetrics::ManagerMetrics(Registry& registry)
    : registry_(registry),
      deployments_(registry.AddCounter("warren_deployments_total",
                                       "Finished deployments by strategy, status (success or "
                                       "failed) and outcome (succeeded, rolled_back, failed, "
                                       "superseded).",
                                       {"strategy", "status", "outcome"})),
      duration_(registry.AddHistogram(
          "warren_deployment_duration_seconds", "Time from the start of a deployment to its end.",
          {"strategy"}, {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600})),
      rollbacks_(registry.AddCounter("warren_rollbacks_total", "Rollbacks by reason.", {"reason"})),
      canary_steps_(registry.AddCounter("warren_canary_promotion_steps_total",
                                        "Canary steps promoted (after the first).")),
      pass_duration_(registry.AddHistogram(
          "warren_controller_pass_duration_seconds",
          "Time one controller pass took (it looks at the dirty, due and deploying services; "
          "every 30 s at all of them).",
          {}, {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5})),
      dirty_(registry.AddGauge("warren_controller_dirty_services",
                               "Services the latest controller pass had to look at (changed, due "
                               "or in a deployment; all of them on a full pass).")) {
  // Export the documented label sets from the start, so dashboards see zeros, not gaps.
  for (auto reason : {v1::ROLLBACK_REASON_HEALTH_CHECK, v1::ROLLBACK_REASON_ERROR_RATE,
                      v1::ROLLBACK_REASON_LATENCY, v1::ROLLBACK_REASON_MANUAL,
                      v1::ROLLBACK_REASON_DEADLINE, v1::ROLLBACK_REASON_UNSCHEDULABLE}) {
    rollbacks_.WithLabels({DisplayName(reason)});
  }
}

void ManagerMetrics::CanaryStep() { canary_steps_.WithLabels({}).Inc(); }

void ManagerMetrics::DeploymentFinished(v1::DeploymentStrategy strategy, v1::DeploymentPhase phase,
                                        absl::Duration duration) {
  deployments_.WithLabels({DisplayName(strategy), StatusLabel(phase), PhaseLabel(phase)}).Inc();
  duration_.WithLabels({DisplayName(strategy)}).Observe(absl::ToDoubleSeconds(duration));
}

void ManagerMetrics::ControllerPass(absl::Duration duration) {
  pass_duration_.WithLabels({}).Observe(absl::ToDoubleSeconds(duration));
}

void ManagerMetrics::ControllerDirty(size_t services) {
  dirty_.WithLabels({}).Set(static_cast<double>(services));
}

void ManagerMetrics::Rollback(v1::RollbackReason reason) {
  rollbacks_.WithLabels({DisplayName(reason)}).Inc();
}

void ManagerMetrics::AddCanaryGauges(const Store& store, const TrafficStats& traffic) {
  const Store* st = &store;
  const TrafficStats* tr = &traffic;
  // The weight the proxies apply and the error rate they measure (last minute).
  registry_.AddCallbackGauge(
      "warren_canary_traffic_weight",
      "Traffic weight (percent) per version (revision) of canaries.", {"service", "version"}, [st] {
        Registry::Samples out;
        for (const auto& d : ListObjects<v1::Deployment>(*st)) {
          if (d.strategy() != v1::DEPLOYMENT_STRATEGY_CANARY || !IsActive(d)) {
            continue;
          }
          for (const auto& [rev, route] : PlannedWeights(d)) {
            out.push_back(
                {{d.service_name(), std::to_string(rev)}, static_cast<double>(route.weight)});
          }
        }
        return out;
      });
  registry_.AddCallbackGauge(
      "warren_canary_error_rate",
      "Error rate (percent, last minute) per version (revision) of canaries.",
      {"service", "version"}, [st, tr] {
        Registry::Samples out;
        for (const auto& d : ListObjects<v1::Deployment>(*st)) {
          if (d.strategy() != v1::DEPLOYMENT_STRATEGY_CANARY || !IsActive(d)) continue;
          auto recent = tr->Recent(d.service_id(), absl::Minutes(1));
          for (int64_t rev : {d.from_revision(), d.to_revision()}) {
            auto it = recent.find(rev);
            out.push_back({{d.service_name(), std::to_string(rev)},
                           it == recent.end() ? 0.0 : ErrorRate(it->second)});
          }
        }
        return out;
      });
}

}  // namespace warren
