#include "manager/rollout/analysis_bridge.h"

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "manager/traffic.h"

namespace warren {

Verdict RunAnalysis(const AnalysisRequest& r, const AnalysisSources& sources) {
  Verdict v;
  if (r.traffic_checks) {
    if (sources.traffic != nullptr) {
      v = Analyze(*r.config, r.candidate, r.baseline,
                  (*sources.traffic)(r.service_id, r.now - r.window_start), r.window_over, r.now);
    } else {
      v.passed = r.window_over;
    }
  }
  if (v.failed) {
    // The check that failed names the rollback reason (latency has its own metric label).
    for (const auto& res : v.results) {
      if (res.passed()) continue;
      if (res.check() == "latency_p99") v.rollback_reason = v1::ROLLBACK_REASON_LATENCY;
      break;
    }
    return v;
  }
  if (r.run_query && (v.passed || !r.traffic_checks)) {
    v1::AnalysisResult result;
    std::string why;
    if (!QueryCheck(*r.config, sources.query, r.now, &result, &why)) {
      v.failed = true;
      v.passed = false;
      v.reason = why;
      v.rollback_reason = v1::ROLLBACK_REASON_ERROR_RATE;
    }
    if (result.check() == "query") v.results.push_back(std::move(result));
  }
  return v;
}

Verdict Analyze(const v1::UpdateConfig& c, int64_t canary, int64_t stable,
                const std::map<int64_t, v1::RevisionTraffic>& recent, bool window_over,
                absl::Time now) {
  Verdict v;
  auto add = [&](const std::string& check, double value, double threshold, bool ok,
                 const std::string& detail) {
    v1::AnalysisResult r;
    r.set_check(check);
    r.set_value(value);
    r.set_threshold(threshold);
    r.set_passed(ok);
    r.set_state(ok ? v1::ANALYSIS_STATE_PASSED : v1::ANALYSIS_STATE_FAILED);
    r.set_detail(detail);
    *r.mutable_time() = ToProtoTime(now);
    v.results.push_back(std::move(r));
    if (!ok && !v.failed) {
      v.failed = true;
      v.rollback_reason = v1::ROLLBACK_REASON_ERROR_RATE;
      v.reason = absl::StrCat(check, " ", value, " exceeds ", threshold, ": ", detail);
    }
  };
  v1::RevisionTraffic ct, st;
  if (auto it = recent.find(canary); it != recent.end()) ct = it->second;
  if (auto it = recent.find(stable); it != recent.end()) st = it->second;
  const int min_requests = c.min_requests() > 0 ? c.min_requests() : 0;
  const bool enough = static_cast<int>(ct.requests()) >= min_requests;
  v1::AnalysisResult req;
  req.set_check("requests");
  req.set_value(static_cast<double>(ct.requests()));
  req.set_threshold(min_requests);
  req.set_passed(enough);
  // Too few requests is no verdict yet: the window goes on collecting them.
  req.set_state(enough ? v1::ANALYSIS_STATE_PASSED : v1::ANALYSIS_STATE_WAITING);
  req.set_detail(enough ? "enough requests to judge" : "too few requests to judge yet");
  *req.mutable_time() = ToProtoTime(now);
  v.results.push_back(req);
  if (enough && ct.requests() > 0) {
    const double rate = ErrorRate(ct);
    const double threshold = c.has_failure_threshold() ? c.failure_threshold() : 10.0;
    add("error_rate", rate, threshold, rate <= threshold,
        absl::StrCat(ct.responses_5xx(), " 5xx and ", ct.connect_errors(), " connect errors in ",
                     ct.requests(), " requests (percent)"));
    if (c.has_max_error_rate_increase()) {
      const double stable_rate = st.requests() > 0 ? ErrorRate(st) : 0;
      add("error_rate_increase", rate - stable_rate, c.max_error_rate_increase(),
          rate - stable_rate <= c.max_error_rate_increase(),
          absl::StrCat("canary ", rate, "% vs stable ", stable_rate, "% (percentage points)"));
    }
    if (c.has_max_latency() && FromProtoDuration(c.max_latency()) > absl::ZeroDuration()) {
      const double limit = absl::ToDoubleSeconds(FromProtoDuration(c.max_latency()));
      add("latency_p99", ct.latency_p99_seconds(), limit, ct.latency_p99_seconds() <= limit,
          "p99 latency in seconds");
    }
  }
  if (window_over && !v.failed) {
    if (enough) {
      v.passed = true;
    } else {
      const std::string policy = c.thin_traffic().empty() ? "extend" : c.thin_traffic();
      if (policy == "pass") {
        v.passed = true;
      } else if (policy == "fail") {
        v.failed = true;
        v.rollback_reason = v1::ROLLBACK_REASON_ERROR_RATE;
        v.reason = absl::StrCat("only ", ct.requests(), " requests in the window (min ",
                                min_requests, ") and the thin-traffic policy is fail");
      }
    }
  }
  return v;
}

bool QueryCheck(const v1::UpdateConfig& c, const QueryFunction* query, absl::Time now,
                v1::AnalysisResult* r, std::string* why) {
  if (c.analysis_query().empty()) return true;
  r->set_check("query");
  r->set_threshold(c.analysis_threshold());
  *r->mutable_time() = ToProtoTime(now);
  bool ok = false;
  if (query == nullptr) {
    r->set_detail("no --prometheus-url configured for the analysis query");
  } else if (auto v = (*query)(c.analysis_query()); !v.ok()) {
    r->set_detail(std::string(v.status().message()));
  } else {
    r->set_value(*v);
    ok = *v <= c.analysis_threshold();
    r->set_detail(c.analysis_query());
  }
  r->set_passed(ok);
  r->set_state(ok ? v1::ANALYSIS_STATE_PASSED : v1::ANALYSIS_STATE_FAILED);
  if (!ok) {
    *why = absl::StrCat("query ", r->value(), " exceeds ", r->threshold(),
                        " or failed: ", r->detail());
  }
  return ok;
}

}  // namespace warren
