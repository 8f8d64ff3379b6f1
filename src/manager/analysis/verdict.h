#ifndef WARREN_MANAGER_ANALYSIS_VERDICT_H_
#define WARREN_MANAGER_ANALYSIS_VERDICT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/spec.h"
#include "manager/analysis/counters.h"
#include "warren/v1/objects.pb.h"

namespace warren::analysis {

enum class ThinTraffic { kExtend, kPass, kFail };

// The thresholds of an analysis, defaults filled in (the one place they are).
struct Thresholds {
  // Highest error rate of the new revision, percent.
  double failure_threshold = 10;
  // Requests the new revision must have served in the window before anything is judged.
  int64_t min_requests = kDefaultMinRequests;
  // Highest error rate above the stable revision's, percentage points (unset: not checked).
  std::optional<double> max_error_rate_increase;
  // Highest p99 latency of the window (zero: not checked).
  absl::Duration max_latency = absl::ZeroDuration();
  // What a window that ended with fewer than min_requests counts as.
  ThinTraffic thin_traffic = ThinTraffic::kExtend;
  // A Prometheus instant query whose value must stay at or below query_threshold ("": none).
  std::string query;
  double query_threshold = 0;
};

Thresholds ThresholdsFrom(const v1::UpdateConfig& c);

// The latest outcome of the Prometheus query of a window.
struct QueryOutcome {
  enum class Kind {
    kNone,     // no query configured
    kPending,  // asked, the answer has not arrived yet
    kValue,
    kError,  // it could not run (no --prometheus-url, Prometheus down, no sample, ...)
  };
  Kind kind = Kind::kNone;
  double value = 0;
  std::string error;

  static QueryOutcome Pending() { return Make(Kind::kPending, 0, ""); }
  static QueryOutcome Value(double v) { return Make(Kind::kValue, v, ""); }
  static QueryOutcome Error(std::string why) { return Make(Kind::kError, 0, std::move(why)); }

 private:
  static QueryOutcome Make(Kind k, double v, std::string e) {
    QueryOutcome o;
    o.kind = k;
    o.value = v;
    o.error = std::move(e);
    return o;
  }
};

enum class CheckState { kPassed, kFailed, kWaiting };

struct CheckResult {
  // requests | error_rate | error_rate_increase | latency_p99 | query
  std::string check;
  double value = 0;
  double threshold = 0;
  CheckState state = CheckState::kWaiting;
  std::string detail;
  // False when no value could be obtained (a query that could not run): `detail` says why.
  bool measured = true;
};

enum class Decision {
  kObserve,  // nothing decided: keep watching (the window runs, or waits for traffic / a query)
  kPass,     // the window is over and every check passed
  kFail,     // a check failed: roll back
};

struct Verdict {
  Decision decision = Decision::kObserve;
  std::vector<CheckResult> checks;
  // For kFail: "<check> <value> exceeds <threshold>: <detail>", and the rollback reason:
  // "latency" when the p99 check failed, else "error_rate" (the error-rate checks, the query,
  // the thin-traffic policy).
  std::string reason;
  std::string rollback_reason;
};

// One window of traffic to judge.
struct WindowInput {
  // The new revision's traffic in the window, and the stable revision's (relative checks).
  Counters candidate{};
  Counters stable{};
  // The window's time is up: a pass (or the thin-traffic policy) can be decided.
  bool window_over = false;
  // Off: only the query is judged (blue/green before its switch and at the end of the
  // post-switch window); the traffic fields are ignored.
  bool traffic_checks = true;
  // Consulted once the window is over and the traffic checks passed (at once without traffic
  // checks); kNone when no query is configured.
  QueryOutcome query{};
};

// Judges a window. A traffic check fails as soon as the window has min_requests requests and
// a value is over its threshold, without waiting for the window's end; a pass needs the
// window's end, every check passed, and the query's answer (when one is configured). Without
// traffic checks the query alone decides: pass when none is configured or its value is under
// the threshold, observe while its answer is pending.
Verdict Judge(const Thresholds& t, const WindowInput& in);

// The query check alone (blue/green runs it before the switch and at the end of the delay).
CheckResult JudgeQuery(const Thresholds& t, const QueryOutcome& q);

// "<check> <value> exceeds <threshold>: <detail>" (or why the query could not run).
std::string FailureReason(const CheckResult& r);

v1::AnalysisResult ToProto(const CheckResult& r, absl::Time now);
std::vector<v1::AnalysisResult> ToProto(const std::vector<CheckResult>& r, absl::Time now);

}  // namespace warren::analysis

#endif  // WARREN_MANAGER_ANALYSIS_VERDICT_H_
