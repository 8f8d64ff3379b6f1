#include "manager/analysis/verdict.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/time_util.h"

namespace warren::analysis {

Thresholds ThresholdsFrom(const v1::UpdateConfig& c) {
  Thresholds t;
  if (c.has_failure_threshold()) t.failure_threshold = c.failure_threshold();
  if (c.min_requests() > 0) t.min_requests = c.min_requests();
  if (c.has_max_error_rate_increase()) t.max_error_rate_increase = c.max_error_rate_increase();
  t.max_latency = std::max(absl::ZeroDuration(), FromProtoDuration(c.max_latency()));
  if (c.thin_traffic() == "pass") t.thin_traffic = ThinTraffic::kPass;
  if (c.thin_traffic() == "fail") t.thin_traffic = ThinTraffic::kFail;
  t.query = c.analysis_query();
  t.query_threshold = c.analysis_threshold();
  return t;
}

CheckResult JudgeQuery(const Thresholds& t, const QueryOutcome& q) {
  CheckResult r;
  r.check = "query";
  r.threshold = t.query_threshold;
  switch (q.kind) {
    case QueryOutcome::Kind::kNone:
      r.state = CheckState::kPassed;
      r.detail = "no query configured";
      break;
    case QueryOutcome::Kind::kPending:
      r.state = CheckState::kWaiting;
      r.detail = absl::StrCat("waiting for Prometheus to answer: ", t.query);
      break;
    case QueryOutcome::Kind::kError:
      r.state = CheckState::kFailed;
      r.measured = false;
      r.detail = q.error;
      break;
    case QueryOutcome::Kind::kValue:
      r.value = q.value;
      r.state = q.value <= t.query_threshold ? CheckState::kPassed : CheckState::kFailed;
      r.detail = t.query;
      break;
  }
  return r;
}

std::string FailureReason(const CheckResult& r) {
  if (!r.measured) return absl::StrCat(r.check, " could not run: ", r.detail);
  return absl::StrCat(r.check, " ", r.value, " exceeds ", r.threshold, ": ", r.detail);
}

Verdict Judge(const Thresholds& t, const WindowInput& in) {
  Verdict v;
  if (!in.traffic_checks) {
    if (t.query.empty()) {
      v.decision = Decision::kPass;
      return v;
    }
    CheckResult q = JudgeQuery(t, in.query);
    v.decision = q.state == CheckState::kPassed   ? Decision::kPass
                 : q.state == CheckState::kFailed ? Decision::kFail
                                                  : Decision::kObserve;
    if (v.decision == Decision::kFail) {
      v.reason = FailureReason(q);
      v.rollback_reason = "error_rate";
    }
    v.checks.push_back(std::move(q));
    return v;
  }
  const Counters& c = in.candidate;
  const bool enough = c.requests >= static_cast<uint64_t>(std::max<int64_t>(0, t.min_requests));
  auto add = [&](CheckResult r) {
    if (r.state == CheckState::kFailed && v.decision != Decision::kFail) {
      v.decision = Decision::kFail;
      v.reason = FailureReason(r);
      v.rollback_reason = r.check == "latency_p99" ? "latency" : "error_rate";
    }
    v.checks.push_back(std::move(r));
  };
  add({.check = "requests",
       .value = static_cast<double>(c.requests),
       .threshold = static_cast<double>(t.min_requests),
       .state = enough ? CheckState::kPassed : CheckState::kWaiting,
       .detail = enough ? "enough requests to judge"
                        : absl::StrCat("waiting for traffic: ", c.requests, " of ", t.min_requests,
                                       " requests")});
  bool traffic_waiting = !enough;
  if (enough && c.requests > 0) {
    const double rate = ErrorRate(c);
    add({.check = "error_rate",
         .value = rate,
         .threshold = t.failure_threshold,
         .state = rate <= t.failure_threshold ? CheckState::kPassed : CheckState::kFailed,
         .detail = absl::StrCat(c.responses_5xx, " 5xx and ", c.connect_errors,
                                " connect errors in ", c.requests, " requests (percent)")});
    if (t.max_error_rate_increase) {
      const double stable = ErrorRate(in.stable);
      const double increase = rate - stable;
      add({.check = "error_rate_increase",
           .value = increase,
           .threshold = *t.max_error_rate_increase,
           .state =
               increase <= *t.max_error_rate_increase ? CheckState::kPassed : CheckState::kFailed,
           .detail = absl::StrCat("canary ", rate, "% vs stable ", stable, "% in ",
                                  in.stable.requests, " requests (percentage points)")});
    }
    if (t.max_latency > absl::ZeroDuration()) {
      const double limit = absl::ToDoubleSeconds(t.max_latency);
      const uint64_t observed = c.latency.Total();
      if (observed == 0) {
        traffic_waiting = true;
        add({.check = "latency_p99",
             .threshold = limit,
             .state = CheckState::kWaiting,
             .detail = "no latency observations in the window yet"});
      } else {
        const double p99 = LatencyP99(c);
        add({.check = "latency_p99",
             .value = p99,
             .threshold = limit,
             .state = p99 <= limit ? CheckState::kPassed : CheckState::kFailed,
             .detail = absl::StrCat("p99 of ", observed, " requests in the window (seconds)")});
      }
    }
  }
  if (v.decision == Decision::kFail || !in.window_over) return v;
  if (!enough) {
    if (t.thin_traffic == ThinTraffic::kFail) {
      v.decision = Decision::kFail;
      v.rollback_reason = "error_rate";
      v.reason = absl::StrCat("only ", c.requests, " requests in the window (min ", t.min_requests,
                              ") and the thin-traffic policy is fail");
      return v;
    }
    if (t.thin_traffic == ThinTraffic::kExtend) return v;
    traffic_waiting = false;  // kPass: judged on what there is
  }
  if (traffic_waiting) return v;
  if (!t.query.empty()) {
    add(JudgeQuery(t, in.query));
    if (v.decision == Decision::kFail || v.checks.back().state == CheckState::kWaiting) return v;
  }
  v.decision = Decision::kPass;
  return v;
}

v1::AnalysisResult ToProto(const CheckResult& r, absl::Time now) {
  v1::AnalysisResult out;
  out.set_check(r.check);
  out.set_value(r.value);
  out.set_threshold(r.threshold);
  out.set_passed(r.state == CheckState::kPassed);
  out.set_state(r.state == CheckState::kPassed   ? v1::ANALYSIS_STATE_PASSED
                : r.state == CheckState::kFailed ? v1::ANALYSIS_STATE_FAILED
                                                 : v1::ANALYSIS_STATE_WAITING);
  out.set_detail(r.detail);
  *out.mutable_time() = ToProtoTime(now);
  return out;
}

std::vector<v1::AnalysisResult> ToProto(const std::vector<CheckResult>& r, absl::Time now) {
  std::vector<v1::AnalysisResult> out;
  for (const auto& c : r) out.push_back(ToProto(c, now));
  return out;
}

}  // namespace warren::analysis
