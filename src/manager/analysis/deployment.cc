#include "manager/analysis/deployment.h"

#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace warren::analysis {

std::optional<absl::Time> WindowStart(const v1::Deployment& d, absl::Time now) {
  if (d.phase() != v1::DEPLOYMENT_PHASE_PROGRESSING && d.phase() != v1::DEPLOYMENT_PHASE_PAUSED) {
    return std::nullopt;
  }
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY && d.weight() > 0 &&
      IsSet(d.step_started_at())) {
    return FromProtoTime(d.step_started_at());
  }
  // A rolling update's window slides; the stored one covers it from the start, so a restarted
  // manager still judges the update's first window from the requests already seen.
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_ROLLING && d.config().rolling_analysis() &&
      !d.rollback() && IsSet(d.phase_started_at())) {
    return FromProtoTime(d.phase_started_at());
  }
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN && d.switched()) {
    const absl::Time at = FromProtoTime(d.switched_at());
    if (now < at + DurationOr(d.config().canary_window(), absl::Minutes(5))) return at;
  }
  return std::nullopt;
}

std::string QueryStage(const v1::Deployment& d) {
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY) return absl::StrCat("step ", d.step());
  if (d.strategy() == v1::DEPLOYMENT_STRATEGY_BLUE_GREEN)
    return d.switched() ? "post-switch" : "pre-switch";
  return "rollout";
}

std::optional<RevisionCounters> StoredWindowTraffic(const v1::Deployment& d, absl::Time start,
                                                    const TrafficSnapshot& s) {
  if (!d.has_analysis_window() || FromProtoTime(d.analysis_window().started_at()) != start) {
    return std::nullopt;
  }
  return WindowTraffic(d.analysis_window(), s);
}

bool SyncDeploymentWindow(v1::Deployment* d, const TrafficSnapshot& s, absl::Time now,
                          bool writing) {
  bool has_window = d->has_analysis_window();
  v1::AnalysisWindow w = d->analysis_window();
  if (!SyncWindow(WindowStart(*d, now), s, now, writing, {d->from_revision(), d->to_revision()},
                  &has_window, &w)) {
    return false;
  }
  if (has_window) {
    *d->mutable_analysis_window() = std::move(w);
  } else {
    d->clear_analysis_window();
  }
  return true;
}

}  // namespace warren::analysis
