#ifndef WARREN_MANAGER_ANALYSIS_DEPLOYMENT_H_
#define WARREN_MANAGER_ANALYSIS_DEPLOYMENT_H_

// The analysis state a deployment carries, as the controller keeps it: which window runs, the
// window's traffic from the deployment's own checkpoint, and the key of its query results.

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "manager/analysis/counters.h"
#include "manager/analysis/window.h"
#include "warren/v1/objects.pb.h"

namespace warren::analysis {

// When the analysis window of a deployment began: a canary's step once its weight is applied,
// blue/green's switch for its post-switch window (canary_window long, 5 min by default), a
// rolling update's start while its analysis runs; nullopt when no window runs (not progressing or
// paused, or between windows).
std::optional<absl::Time> WindowStart(const v1::Deployment& d, absl::Time now);

// Query results are kept per stage ("step N" of a canary; blue/green "pre-switch" and
// "post-switch"; "rollout" for the others), so a new step never reads the previous step's
// answer.
std::string QueryStage(const v1::Deployment& d);

// The traffic of the deployment's stored window when that window began at `start` (nullopt:
// it has none, or another one; the caller then uses the in-memory history).
std::optional<RevisionCounters> StoredWindowTraffic(const v1::Deployment& d, absl::Time start,
                                                    const TrafficSnapshot& s);

// Keeps d->analysis_window in step with WindowStart (see SyncWindow): opened with the snapshot
// as its baseline, checkpointed, dropped when no window runs. `writing`: the deployment is
// written anyway. Returns whether the window changed (the deployment must be written).
bool SyncDeploymentWindow(v1::Deployment* d, const TrafficSnapshot& s, absl::Time now,
                          bool writing);

}  // namespace warren::analysis

#endif  // WARREN_MANAGER_ANALYSIS_DEPLOYMENT_H_
