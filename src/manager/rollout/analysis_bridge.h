#ifndef WARREN_MANAGER_ROLLOUT_ANALYSIS_BRIDGE_H_
#define WARREN_MANAGER_ROLLOUT_ANALYSIS_BRIDGE_H_

// The one door between the deployment engine and the analysis of a new revision: every
// strategy asks RunAnalysis, and nothing else in the engine looks at traffic or queries.
// The checks below are the engine's original ones, moved here unchanged; the analysis module
// (src/manager/analysis/) replaces their bodies.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "warren/v1/api.pb.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Proxy traffic of a service's revisions over the last `window`.
using TrafficWindow = std::function<std::map<int64_t, v1::RevisionTraffic>(
    const std::string& service_id, absl::Duration window)>;

// Runs an analysis query (Prometheus) and returns its value.
using QueryFunction = std::function<absl::StatusOr<double>(const std::string& query)>;

// Where the analysis gets its data; either may be null (no traffic: only health is judged;
// no query runner: a configured query fails its check with that reason).
struct AnalysisSources {
  const TrafficWindow* traffic = nullptr;
  const QueryFunction* query = nullptr;
};

// One question of a strategy to the analysis.
struct AnalysisRequest {
  // The deployment's config snapshot (defaults applied).
  const v1::UpdateConfig* config = nullptr;
  std::string service_id;
  // The new revision and the one it is compared with.
  int64_t candidate = 0;
  int64_t baseline = 0;
  // Traffic checks over [window_start, now]; off for a pre-switch check.
  bool traffic_checks = true;
  absl::Time window_start;
  // The window has ended: decide (enough traffic passes; thin traffic follows its policy).
  bool window_over = false;
  // Run `analysisQuery` (at a window's end, before a blue/green switch).
  bool run_query = false;
  absl::Time now;
};

// The analysis of one window: every check's value against its threshold.
struct Verdict {
  bool failed = false;
  bool passed = false;  // decided in favour (only meaningful at the window's end)
  std::string reason;
  v1::RollbackReason rollback_reason = v1::ROLLBACK_REASON_UNSPECIFIED;
  std::vector<v1::AnalysisResult> results;
};

Verdict RunAnalysis(const AnalysisRequest& request, const AnalysisSources& sources);

// The traffic checks of one window (error rate, increase over the baseline, p99 latency,
// request count, thin-traffic policy).
Verdict Analyze(const v1::UpdateConfig& c, int64_t canary, int64_t stable,
                const std::map<int64_t, v1::RevisionTraffic>& recent, bool window_over,
                absl::Time now);

// The `analysisQuery` check, when configured: false with *why when it fails or cannot run;
// its result goes to *result.
bool QueryCheck(const v1::UpdateConfig& c, const QueryFunction* query, absl::Time now,
                v1::AnalysisResult* result, std::string* why);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_ANALYSIS_BRIDGE_H_
