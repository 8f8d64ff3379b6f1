#include "manager/rollout.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "manager/traffic.h"

namespace warren {
namespace {

std::string FailureReason(const v1::Task& t) {
  const auto& st = t.status();
  std::string s =
      absl::StrCat("task ", t.id(), " (slot ", t.slot(), ") ", TaskStateName(st.state()));
  if (st.has_exit_code()) absl::StrAppend(&s, " with exit code ", st.exit_code());
  if (!st.error().empty()) absl::StrAppend(&s, ": ", st.error());
  return s;
}

void SetOutcome(const std::map<int64_t, v1::Revision>& revisions, int64_t number,
                const std::string& outcome, RolloutStep* step) {
  auto it = revisions.find(number);
  if (it == revisions.end() || it->second.outcome() == outcome) return;
  v1::Revision r = it->second;
  r.set_outcome(outcome);
  step->revisions.push_back(std::move(r));
}

}  // namespace

RolloutParams ResolveRolloutParams(const v1::UpdateConfig& c, int replicas) {
  RolloutParams p;
  p.replicas = replicas;
  p.parallelism = c.has_parallelism() ? std::max(0, c.parallelism()) : 1;
  // Deployments store their config with defaults applied; fill the budgets' defaults for
  // configs written without them.
  v1::UpdateConfig filled = c;
  if (filled.max_surge().empty()) filled.set_max_surge("1");
  if (filled.max_unavailable().empty()) filled.set_max_unavailable("0");
  auto budget = ResolveRollingBudget(filled, replicas);
  p.max_surge = budget.ok() ? budget->max_surge : 1;
  p.max_unavailable = budget.ok() ? budget->max_unavailable : 0;
  p.start_first = c.order() != "stop-first";
  if (p.max_surge == 0) p.start_first = false;
  if (p.max_unavailable == 0) p.start_first = true;
  p.delay = DurationOr(c.delay(), absl::ZeroDuration());
  p.min_ready = DurationOr(c.min_ready(), absl::ZeroDuration());
  p.healthy_deadline = DurationOr(c.healthy_deadline(), absl::Minutes(5));
  p.progress_deadline = DurationOr(c.progress_deadline(), absl::Minutes(10));
  p.failure_action = c.failure_action().empty() ? "rollback" : c.failure_action();
  p.max_failure_ratio = c.max_failure_ratio();
  return p;
}

bool IsActive(const v1::Deployment& d) {
  switch (d.phase()) {
    case v1::DEPLOYMENT_PHASE_PENDING:
    case v1::DEPLOYMENT_PHASE_PROGRESSING:
    case v1::DEPLOYMENT_PHASE_PAUSED:
    case v1::DEPLOYMENT_PHASE_ROLLING_BACK:
      return true;
    default:
      return false;
  }
}

std::vector<std::string> WantedSlots(const v1::Service& service,
                                     const std::vector<v1::Node>& nodes) {
  std::vector<std::string> out;
  if (service.spec().mode() == "global") {
    for (const auto& n : nodes) {
      if (n.state() != v1::NODE_STATE_READY) continue;
      bool ok = true;
      for (const auto& c : service.spec().template_().constraints()) {
        auto m = MatchConstraint(c, n);
        if (!m.ok() || !*m) ok = false;
      }
      if (ok) out.push_back(n.id());
    }
  } else {
    for (int i = 1; i <= service.spec().replicas(); ++i) out.push_back(std::to_string(i));
  }
  return out;
}

std::string SlotKey(const v1::Service& service, const v1::Task& task) {
  return service.spec().mode() == "global" ? task.node_id() : std::to_string(task.slot());
}

bool IsAvailable(const v1::Task& t, absl::Duration min_ready, absl::Time now,
                 absl::Time* ready_at) {
  if (!IsLive(t) || !IsServing(t)) return false;
  absl::Time since = t.spec().has_health_check()
                         ? FromProtoTime(t.status().health().healthy_since())
                         : FromProtoTime(t.status().started_at());
  if (since == absl::InfinitePast()) since = FromProtoTime(t.status().timestamp());
  absl::Time at = since + min_ready;
  if (at <= now) return true;
  if (ready_at) *ready_at = at;
  return false;
}

bool IsProgressive(const v1::Deployment& d) {
  return d.strategy() == "blue-green" || d.strategy() == "canary";
}

std::vector<int> CanarySteps(const v1::UpdateConfig& c) {
  if (c.canary_steps_size() == 0) return {10, 25, 50, 100};
  return {c.canary_steps().begin(), c.canary_steps().end()};
}

namespace {

int CanaryCount(int replicas, int weight) {
  if (weight <= 0 || replicas <= 0) return 0;
  return std::max(1, (replicas * weight + 99) / 100);
}

int CurrentStepWeight(const v1::Deployment& d) {
  std::vector<int> steps = CanarySteps(d.config());
  int i = std::clamp(d.step(), 0, static_cast<int>(steps.size()) - 1);
  return steps[i];
}

// The analysis of one window: every check's value against its threshold.
struct Verdict {
  bool failed = false;
  bool passed = false;  // decided in favour (only meaningful at the window's end)
  std::string reason;
  std::string rollback_reason;
  std::vector<v1::AnalysisResult> results;
};

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
    r.set_detail(detail);
    *r.mutable_time() = ToProtoTime(now);
    v.results.push_back(std::move(r));
    if (!ok && !v.failed) {
      v.failed = true;
      v.rollback_reason = "error_rate";
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
        v.rollback_reason = "error_rate";
        v.reason = absl::StrCat("only ", ct.requests(), " requests in the window (min ",
                                min_requests, ") and the thin-traffic policy is fail");
      }
    }
  }
  return v;
}

// New tasks of `revision` that failed since `since`: crashed, unhealthy or not healthy within
// the healthy deadline. Returns the first reason.
// Why a new task counts as failed (crashed, unhealthy, or not available within the healthy
// deadline), or "" (then *wake_at gets its healthy deadline when that is still ahead).
std::string NewTaskFailure(const v1::Task& t, const RolloutParams& p, absl::Time now,
                           absl::Time* wake_at) {
  const auto state = t.status().state();
  if (state == v1::TASK_STATE_FAILED || state == v1::TASK_STATE_COMPLETE ||
      state == v1::TASK_STATE_REJECTED) {
    return FailureReason(t);
  }
  if (!IsLive(t)) return "";
  if (t.status().health().state() == v1::HEALTH_STATE_UNHEALTHY) {
    return absl::StrCat("task ", t.id(), " (slot ", t.slot(),
                        ") is unhealthy: ", t.status().health().last_probe().output());
  }
  if (!IsAvailable(t, p.min_ready, now)) {
    absl::Time deadline = FromProtoTime(t.created_at()) + p.healthy_deadline;
    if (now >= deadline) {
      return absl::StrCat("task ", t.id(), " (slot ", t.slot(), ") not healthy within ",
                          warren::FormatDuration(p.healthy_deadline), " (healthy deadline)");
    }
    *wake_at = std::min(*wake_at, deadline);
  }
  return "";
}

// The first failure among the tasks of `revision` created since `since`.
std::string TaskFailure(const std::vector<v1::Task>& tasks, int64_t revision, absl::Time since,
                        const RolloutParams& p, absl::Time now, absl::Time* wake_at) {
  for (const auto& t : tasks) {
    if (t.revision() != revision || FromProtoTime(t.created_at()) < since) continue;
    if (std::string reason = NewTaskFailure(t, p, now, wake_at); !reason.empty()) return reason;
  }
  return "";
}

// The `analysisQuery` check, when configured: false with *why when it fails or cannot run.
bool QueryCheck(const v1::UpdateConfig& c, const QueryFunction* query, absl::Time now,
                v1::Deployment* d, std::string* why) {
  if (c.analysis_query().empty()) return true;
  v1::AnalysisResult r;
  r.set_check("query");
  r.set_threshold(c.analysis_threshold());
  *r.mutable_time() = ToProtoTime(now);
  bool ok = false;
  if (query == nullptr) {
    r.set_detail("no --prometheus-url configured for the analysis query");
  } else if (auto v = (*query)(c.analysis_query()); !v.ok()) {
    r.set_detail(std::string(v.status().message()));
  } else {
    r.set_value(*v);
    ok = *v <= c.analysis_threshold();
    r.set_detail(c.analysis_query());
  }
  r.set_passed(ok);
  if (!ok) {
    *why =
        absl::StrCat("query ", r.value(), " exceeds ", r.threshold(), " or failed: ", r.detail());
  }
  *d->add_analysis() = std::move(r);
  return ok;
}

RolloutStep AdvanceProgressive(const v1::Service& service, const v1::Deployment& d,
                               const std::vector<v1::Task>& tasks,
                               const std::map<int64_t, v1::Revision>& revisions, absl::Time now,
                               const TrafficWindow* traffic, const QueryFunction* query) {
  RolloutStep step;
  step.deployment = d;
  v1::Deployment& nd = step.deployment;
  const std::string& name = service.spec().name();
  const bool canary = nd.strategy() == "canary";
  const int n = service.spec().replicas();
  const int64_t from = nd.from_revision(), to = nd.to_revision();
  const RolloutParams p = ResolveRolloutParams(nd.config(), n);
  absl::Time wake_at = absl::InfiniteFuture();
  auto finish_wake = [&] {
    if (wake_at > now) step.next_wakeup = std::min(step.next_wakeup, wake_at);
  };

  if (nd.phase() == v1::DEPLOYMENT_PHASE_PENDING) {
    nd.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
    nd.set_target_revision(to);
    *nd.mutable_phase_started_at() = ToProtoTime(now);
    *nd.mutable_last_progress_at() = ToProtoTime(now);
    step.changed = true;
    step.events.push_back(
        {"deployment", nd.id(), name, "started",
         canary ? absl::StrCat("canary of revision ", to, " beside ", from, ", steps ",
                               absl::StrJoin(CanarySteps(nd.config()), ","))
                : absl::StrCat("blue/green: green revision ", to, " starts beside blue ", from)});
  }

  int live_to = 0, available_to = 0;
  for (const auto& t : tasks) {
    if (t.revision() != to || !IsLive(t)) continue;
    live_to++;
    absl::Time ready_at = absl::InfiniteFuture();
    if (IsAvailable(t, p.min_ready, now, &ready_at)) {
      available_to++;
    } else {
      wake_at = std::min(wake_at, ready_at);
    }
  }
  if (nd.updated() != live_to || nd.available() != available_to || nd.total() != n) {
    nd.set_updated(live_to);
    nd.set_available(available_to);
    nd.set_total(n);
    step.changed = true;
  }

  if (nd.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
    if (live_to == 0) {
      nd.set_phase(v1::DEPLOYMENT_PHASE_ROLLED_BACK);
      *nd.mutable_finished_at() = ToProtoTime(now);
      step.finished_status = "rolled_back";
      step.changed = true;
      step.events.push_back({"deployment", nd.id(), name, "rolled-back",
                             absl::StrCat("traffic on revision ", from, "; revision ", to,
                                          " removed: ", nd.reason())});
    }
    finish_wake();
    return step;
  }
  if (nd.phase() == v1::DEPLOYMENT_PHASE_PAUSED) {
    finish_wake();
    return step;
  }

  // Traffic back to the stable revision at once; the reconciler then drains the new tasks.
  auto roll_back = [&](const std::string& why, const std::string& label) {
    step.changed = true;
    auto stable = revisions.find(from);
    nd.set_weight(0);
    nd.set_switched(false);
    nd.set_reason(why);
    nd.set_rollback_reason(label);
    nd.set_target_revision(from);
    if (stable == revisions.end()) {
      nd.set_phase(v1::DEPLOYMENT_PHASE_FAILED);
      *nd.mutable_finished_at() = ToProtoTime(now);
      step.finished_status = "failed";
      step.events.push_back({"deployment", nd.id(), name, "failed", why});
      return;
    }
    nd.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
    v1::Service reverted = service;
    *reverted.mutable_spec()->mutable_template_() = stable->second.template_();
    reverted.set_revision(from);
    *reverted.mutable_updated_at() = ToProtoTime(now);
    step.service = std::move(reverted);
    SetOutcome(revisions, to, "rolled-back", &step);
    step.rollback_reason = label;
    step.events.push_back({"deployment", nd.id(), name, "rolling-back",
                           absl::StrCat("traffic back to revision ", from, ": ", why)});
    step.next_wakeup = now;
  };
  auto succeed = [&](const std::string& why) {
    step.changed = true;
    nd.set_phase(v1::DEPLOYMENT_PHASE_SUCCEEDED);
    nd.set_reason(why);
    *nd.mutable_finished_at() = ToProtoTime(now);
    step.finished_status = "succeeded";
    SetOutcome(revisions, to, "succeeded", &step);
    step.events.push_back({"deployment", nd.id(), name, "succeeded", why});
  };

  absl::Time phase_start = FromProtoTime(nd.phase_started_at());
  if (phase_start == absl::InfinitePast()) phase_start = FromProtoTime(nd.created_at());
  if (std::string failure = TaskFailure(tasks, to, phase_start, p, now, &wake_at);
      !failure.empty()) {
    roll_back(failure, "health_check");
    return step;
  }
  absl::Time last_progress = FromProtoTime(nd.last_progress_at());
  if (last_progress == absl::InfinitePast()) last_progress = phase_start;
  const absl::Duration window = DurationOr(nd.config().canary_window(), absl::Minutes(5));

  if (!canary) {
    if (!nd.switched()) {
      if (available_to < n) {
        if (now - last_progress >= p.progress_deadline) {
          roll_back(
              absl::StrCat("green not ready within ", warren::FormatDuration(p.progress_deadline),
                           " (progress deadline); ", available_to, "/", n, " available"),
              "deadline");
          return step;
        }
        wake_at = std::min(wake_at, last_progress + p.progress_deadline);
        finish_wake();
        return step;
      }
      const bool auto_promote = !nd.config().has_auto_promote() || nd.config().auto_promote();
      if (!auto_promote && nd.step() == 0) {
        const std::string waiting = "green is ready; waiting for `warren service promote`";
        if (nd.reason() != waiting) {
          nd.set_reason(waiting);
          step.changed = true;
          step.events.push_back({"deployment", nd.id(), name, "ready", waiting});
        }
        finish_wake();
        return step;
      }
      if (std::string why; !QueryCheck(nd.config(), query, now, &nd, &why)) {
        roll_back(absl::StrCat("pre-promotion analysis failed: ", why), "error_rate");
        return step;
      }
      nd.set_switched(true);
      nd.set_weight(100);
      nd.set_reason("");
      *nd.mutable_switched_at() = ToProtoTime(now);
      *nd.mutable_last_progress_at() = ToProtoTime(now);
      step.changed = true;
      step.events.push_back({
          "deployment",
          nd.id(),
          name,
          "switched",
          absl::StrCat(
              "production traffic switched to revision ", to, "; revision ", from, " kept for ",
              warren::FormatDuration(DurationOr(nd.config().scale_down_delay(), absl::Minutes(5)))),
      });
      step.next_wakeup = now;
      return step;
    }
    // Switched: post-switch analysis until the scale-down delay ends.
    const absl::Time switched_at = FromProtoTime(nd.switched_at());
    const absl::Time end =
        switched_at + DurationOr(nd.config().scale_down_delay(), absl::Minutes(5));
    if (traffic && now < switched_at + window) {
      Verdict v =
          Analyze(nd.config(), to, from, (*traffic)(service.id(), now - switched_at), false, now);
      nd.clear_analysis();
      for (auto& r : v.results) *nd.add_analysis() = std::move(r);
      if (v.failed) {
        roll_back(absl::StrCat("post-switch analysis failed: ", v.reason), v.rollback_reason);
        return step;
      }
      wake_at = std::min(wake_at, now + absl::Seconds(1));
    }
    if (now >= end) {
      if (std::string why; !QueryCheck(nd.config(), query, now, &nd, &why)) {
        roll_back(absl::StrCat("post-switch analysis failed: ", why), "error_rate");
        return step;
      }
      succeed(absl::StrCat("revision ", to, " serves all traffic; revision ", from, " removed"));
      return step;
    }
    wake_at = std::min(wake_at, end);
    finish_wake();
    return step;
  }

  // Canary.
  const std::vector<int> steps = CanarySteps(nd.config());
  const int target_weight = CurrentStepWeight(nd);
  const int want = CanaryCount(n, target_weight);
  if (nd.weight() != target_weight) {
    if (available_to >= want) {
      nd.set_weight(target_weight);
      *nd.mutable_step_started_at() = ToProtoTime(now);
      *nd.mutable_last_progress_at() = ToProtoTime(now);
      nd.clear_analysis();
      step.changed = true;
      step.promoted_step = nd.step() > 0;
      step.events.push_back(
          {"deployment", nd.id(), name, "step",
           absl::StrCat("step ", nd.step() + 1, "/", steps.size(), ": ", target_weight,
                        "% of traffic on revision ", to, " (", want, " tasks)")});
      step.next_wakeup = now;
      return step;
    }
    if (now - last_progress >= p.progress_deadline) {
      roll_back(absl::StrCat("canary tasks not ready within ",
                             warren::FormatDuration(p.progress_deadline), " (progress deadline)"),
                "deadline");
      return step;
    }
    wake_at = std::min(wake_at, last_progress + p.progress_deadline);
    finish_wake();
    return step;
  }
  const absl::Time step_start = FromProtoTime(nd.step_started_at());
  const bool window_over = now >= step_start + window;
  Verdict v;
  if (traffic) {
    v = Analyze(nd.config(), to, from, (*traffic)(service.id(), now - step_start), window_over,
                now);
  } else {
    v.passed = window_over;
  }
  {
    v1::Deployment probe = nd;
    probe.clear_analysis();
    for (const auto& r : v.results) *probe.add_analysis() = r;
    // Values move with every request; write them at most once a second.
    bool results_changed = probe.analysis_size() != nd.analysis_size();
    for (int i = 0; !results_changed && i < probe.analysis_size(); ++i) {
      results_changed =
          probe.analysis(i).passed() != nd.analysis(i).passed() ||
          FromProtoTime(probe.analysis(i).time()) - FromProtoTime(nd.analysis(i).time()) >=
              absl::Seconds(1);
    }
    if (results_changed) {
      *nd.mutable_analysis() = probe.analysis();
      step.changed = true;
    }
  }
  if (v.failed) {
    roll_back(absl::StrCat("step ", nd.step() + 1, " analysis failed: ", v.reason),
              v.rollback_reason);
    return step;
  }
  if (window_over && v.passed) {
    if (std::string why; !QueryCheck(nd.config(), query, now, &nd, &why)) {
      roll_back(absl::StrCat("step ", nd.step() + 1, " analysis failed: ", why), "error_rate");
      return step;
    }
    std::string summary;
    for (const auto& r : nd.analysis()) {
      absl::StrAppend(&summary, summary.empty() ? "" : ", ", r.check(), " ", r.value(),
                      r.passed() ? " ok" : " FAILED", " (threshold ", r.threshold(), ")");
    }
    step.events.push_back({"deployment", nd.id(), name, "analysis",
                           absl::StrCat("step ", nd.step() + 1, " (", nd.weight(),
                                        "%) passed: ", summary.empty() ? "no checks" : summary)});
    if (nd.step() + 1 >= static_cast<int>(steps.size())) {
      succeed(absl::StrCat("canary revision ", to, " promoted through every step"));
      return step;
    }
    nd.set_step(nd.step() + 1);
    step.changed = true;
    step.next_wakeup = now;
    return step;
  }
  if (window_over && now - step_start >= window + p.progress_deadline) {
    roll_back(absl::StrCat("too little traffic to judge step ", nd.step() + 1, " within ",
                           warren::FormatDuration(p.progress_deadline),
                           " after its window (progress deadline)"),
              "deadline");
    return step;
  }
  wake_at = std::min(wake_at, window_over ? now + absl::Seconds(1)
                                          : std::min(step_start + window, now + absl::Seconds(1)));
  finish_wake();
  return step;
}

}  // namespace

std::vector<std::pair<int64_t, int>> TaskPlan(const v1::Service& service, const v1::Deployment& d) {
  const int n = service.spec().replicas();
  const int64_t from = d.from_revision(), to = d.to_revision();
  if (d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) return {{from, n}, {to, 0}};
  if (d.strategy() == "blue-green") return {{from, n}, {to, n}};
  const int canary = CanaryCount(n, CurrentStepWeight(d));
  const int stable = d.config().canary_keep_stable()
                         ? n
                         : std::max(0, n - CanaryCount(n, d.weight() >= 100 ? 100 : d.weight()));
  return {{from, stable}, {to, canary}};
}

std::map<int64_t, PlannedRoute> PlannedWeights(const v1::Deployment& d) {
  const int64_t from = d.from_revision(), to = d.to_revision();
  std::map<int64_t, PlannedRoute> out;
  if (d.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
    out[from] = {100, false};
    out[to] = {0, false};
  } else if (d.strategy() == "blue-green") {
    if (d.switched()) {
      out[to] = {100, false};
      out[from] = {0, false};
    } else {
      out[from] = {100, false};
      out[to] = {0, true};
    }
  } else {
    out[to] = {d.weight(), false};
    out[from] = {100 - d.weight(), false};
  }
  return out;
}

RolloutStep RolloutController::Advance(const v1::Service& service, const v1::Deployment& d,
                                       const std::vector<v1::Task>& tasks,
                                       const std::vector<v1::Node>& nodes,
                                       const std::map<int64_t, v1::Revision>& revisions,
                                       absl::Time now, const TrafficWindow* traffic,
                                       const QueryFunction* query) {
  if (IsProgressive(d) && IsActive(d)) {
    return AdvanceProgressive(service, d, tasks, revisions, now, traffic, query);
  }
  RolloutStep step;
  step.deployment = d;
  v1::Deployment& nd = step.deployment;
  if (!IsActive(d)) return step;
  auto wake = [&](absl::Time t) {
    if (t > now) step.next_wakeup = std::min(step.next_wakeup, t);
  };
  const std::string& name = service.spec().name();
  if (nd.phase() == v1::DEPLOYMENT_PHASE_PENDING) {
    nd.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
    *nd.mutable_phase_started_at() = ToProtoTime(now);
    *nd.mutable_last_progress_at() = ToProtoTime(now);
    step.changed = true;
    step.events.push_back({"deployment", nd.id(), name, "started",
                           absl::StrCat("rolling update from revision ", nd.from_revision(), " to ",
                                        nd.to_revision())});
  }
  if (nd.target_revision() == 0) nd.set_target_revision(nd.to_revision());
  const bool rolling_back = nd.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK;
  const int64_t target = nd.target_revision();
  const std::vector<std::string> wanted = WantedSlots(service, nodes);
  const int n = static_cast<int>(wanted.size());
  const RolloutParams p = ResolveRolloutParams(nd.config(), n);
  absl::Time phase_start = FromProtoTime(nd.phase_started_at());
  if (phase_start == absl::InfinitePast()) phase_start = FromProtoTime(nd.created_at());

  std::map<std::string, std::vector<const v1::Task*>> slots;
  for (const auto& t : tasks) slots[SlotKey(service, t)].push_back(&t);
  for (auto& [k, ts] : slots) {
    std::sort(ts.begin(), ts.end(), [](const v1::Task* a, const v1::Task* b) {
      return FromProtoTime(a->created_at()) < FromProtoTime(b->created_at());
    });
  }
  std::set<std::string> wanted_set(wanted.begin(), wanted.end());
  std::set<std::string> updated(nd.updated_slots().begin(), nd.updated_slots().end());
  std::set<std::string> failed(nd.failed_task_ids().begin(), nd.failed_task_ids().end());

  // Failures among this phase's new tasks, each counted once.
  std::string last_failure;
  for (const auto& t : tasks) {
    if (t.revision() != target || FromProtoTime(t.created_at()) < phase_start) continue;
    if (failed.count(t.id())) continue;
    absl::Time deadline = absl::InfiniteFuture();
    std::string reason = NewTaskFailure(t, p, now, &deadline);
    wake(deadline);
    if (reason.empty()) continue;
    failed.insert(t.id());
    nd.add_failed_task_ids(t.id());
    last_failure = reason;
    step.changed = true;
    step.events.push_back({"deployment", nd.id(), name, "task-failed", reason});
  }

  // Where every wanted slot stands.
  int done = 0, on_target = 0, available_any = 0, live_total = 0, in_flight = 0;
  std::vector<std::pair<int, std::string>> candidates;  // (priority, slot key)
  for (const auto& key : wanted) {
    std::vector<const v1::Task*> live;
    for (const v1::Task* t : slots[key]) {
      if (IsLive(*t)) live.push_back(t);
    }
    live_total += static_cast<int>(live.size());
    bool any_available = false;
    const v1::Task* newest_target = nullptr;
    bool other_live = false;
    for (const v1::Task* t : live) {
      absl::Time ready_at = absl::InfiniteFuture();
      if (IsAvailable(*t, p.min_ready, now, &ready_at)) {
        any_available = true;
      } else {
        wake(ready_at);
      }
      if (t->revision() == target) {
        newest_target = t;
      } else {
        other_live = true;
      }
    }
    if (any_available) available_any++;
    if (newest_target) on_target++;
    const bool slot_done =
        newest_target && !other_live && IsAvailable(*newest_target, p.min_ready, now);
    if (slot_done) {
      done++;
      continue;
    }
    if (updated.count(key)) {
      // A slot whose new task failed does not hold up the rollout under "continue".
      bool given_up = p.failure_action == "continue" && newest_target == nullptr &&
                      !slots[key].empty() && failed.count(slots[key].back()->id());
      if (!given_up) in_flight++;
      continue;
    }
    // Not switched yet: a slot still running another revision, or one whose target task is
    // there beside another revision's (left over from a rollout that went the other way).
    int priority = !newest_target ? (any_available ? 1 : 0) : -1;
    candidates.emplace_back(priority, key);
  }
  for (const auto& [key, ts] : slots) {
    if (wanted_set.count(key)) continue;
    for (const v1::Task* t : ts) live_total += IsLive(*t) ? 1 : 0;
  }

  if (done > nd.available()) {
    *nd.mutable_last_progress_at() = ToProtoTime(now);
    step.changed = true;
  }
  if (nd.available() != done || nd.updated() != on_target || nd.total() != n) {
    nd.set_available(done);
    nd.set_updated(on_target);
    nd.set_total(n);
    step.changed = true;
  }
  if (nd.phase() == v1::DEPLOYMENT_PHASE_PAUSED) return step;

  // Failure handling.
  const int failures = nd.failed_task_ids_size();
  const bool too_many_failures =
      failures > 0 && failures > p.max_failure_ratio * std::max(n, 1) + 1e-9;
  absl::Time last_progress = FromProtoTime(nd.last_progress_at());
  if (last_progress == absl::InfinitePast()) last_progress = phase_start;
  const bool deadline_missed = done < n && now - last_progress >= p.progress_deadline;
  if (done < n) wake(last_progress + p.progress_deadline);
  if ((too_many_failures && p.failure_action != "continue") || deadline_missed) {
    std::string why =
        deadline_missed
            ? absl::StrCat("no progress for ", warren::FormatDuration(p.progress_deadline),
                           " (progress deadline); ", done, "/", n, " tasks available")
            : absl::StrCat(failures, " of ", n, " new tasks failed (max failure ratio ",
                           p.max_failure_ratio, ")",
                           last_failure.empty() ? "" : ": " + last_failure);
    step.changed = true;
    const bool can_roll_back = !rolling_back && !nd.rollback() && p.failure_action == "rollback";
    auto from = revisions.find(nd.from_revision());
    if (can_roll_back && from != revisions.end()) {
      nd.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
      nd.set_target_revision(nd.from_revision());
      nd.clear_updated_slots();
      nd.clear_failed_task_ids();
      nd.set_batch(0);
      nd.clear_batch_done_at();
      nd.set_reason(why);
      nd.set_rollback_reason(deadline_missed ? "deadline" : "health_check");
      *nd.mutable_config() = EffectiveRollbackConfig(service.spec());
      *nd.mutable_phase_started_at() = ToProtoTime(now);
      *nd.mutable_last_progress_at() = ToProtoTime(now);
      v1::Service reverted = service;
      *reverted.mutable_spec()->mutable_template_() = from->second.template_();
      reverted.set_revision(nd.from_revision());
      *reverted.mutable_updated_at() = ToProtoTime(now);
      step.service = std::move(reverted);
      SetOutcome(revisions, nd.to_revision(), "rolled-back", &step);
      step.rollback_reason = nd.rollback_reason();
      step.events.push_back(
          {"deployment", nd.id(), name, "rolling-back",
           absl::StrCat("rolling back to revision ", nd.from_revision(), ": ", why)});
      step.next_wakeup = now;
      return step;
    }
    if (p.failure_action == "pause" && !rolling_back) {
      nd.set_phase(v1::DEPLOYMENT_PHASE_PAUSED);
      nd.set_paused_by_user(false);
      nd.set_reason(why);
      SetOutcome(revisions, nd.to_revision(), "paused", &step);
      step.events.push_back({"deployment", nd.id(), name, "paused", why});
      return step;
    }
    nd.set_phase(v1::DEPLOYMENT_PHASE_FAILED);
    nd.set_reason(rolling_back ? "rollback failed: " + why : why);
    *nd.mutable_finished_at() = ToProtoTime(now);
    SetOutcome(revisions, nd.to_revision(), "failed", &step);
    step.finished_status = "failed";
    step.events.push_back({"deployment", nd.id(), name, "failed", nd.reason()});
    return step;
  }

  // Done?
  if (done == n) {
    step.changed = true;
    *nd.mutable_finished_at() = ToProtoTime(now);
    if (rolling_back) {
      nd.set_phase(v1::DEPLOYMENT_PHASE_ROLLED_BACK);
      step.finished_status = "rolled_back";
      step.events.push_back(
          {"deployment", nd.id(), name, "rolled-back",
           absl::StrCat("rolled back to revision ", target, "; all ", n, " tasks available")});
    } else {
      nd.set_phase(v1::DEPLOYMENT_PHASE_SUCCEEDED);
      nd.set_reason(absl::StrCat("all ", n, " tasks on revision ", target));
      step.finished_status = "succeeded";
      if (nd.rollback()) {
        SetOutcome(revisions, nd.from_revision(), "rolled-back", &step);
      } else {
        SetOutcome(revisions, nd.to_revision(), "succeeded", &step);
      }
      step.events.push_back({"deployment", nd.id(), name, "succeeded",
                             absl::StrCat(nd.rollback() ? "rollback" : "rollout", " to revision ",
                                          target, " complete; all ", n, " tasks available")});
    }
    return step;
  }

  // Next batch, once the current one is done and the delay has passed.
  if (in_flight > 0) return step;
  if (nd.batch() > 0 && !IsSet(nd.batch_done_at())) {
    *nd.mutable_batch_done_at() = ToProtoTime(now);
    step.changed = true;
  }
  absl::Time next_at =
      IsSet(nd.batch_done_at()) ? FromProtoTime(nd.batch_done_at()) + p.delay : now;
  if (now < next_at) {
    wake(next_at);
    return step;
  }
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    if (a.second.size() != b.second.size()) return a.second.size() < b.second.size();
    return a.second < b.second;
  });
  const int unavailable_now = n - available_any;
  const int surge_used = std::max(0, live_total - n);
  int capacity = p.start_first ? p.max_surge - surge_used : p.max_unavailable - unavailable_now;
  const size_t limit = p.parallelism == 0 ? candidates.size() : static_cast<size_t>(p.parallelism);
  std::vector<std::string> chosen;
  for (const auto& [priority, key] : candidates) {
    if (chosen.size() >= limit) break;
    // A slot that already has its target task costs nothing; one with nothing available
    // loses nothing (stop-first) but still adds a task (start-first).
    int cost = priority < 0 ? 0 : (p.start_first ? 1 : (priority == 0 ? 0 : 1));
    if (cost > capacity) continue;
    capacity -= cost;
    chosen.push_back(key);
  }
  if (chosen.empty()) return step;
  for (const auto& key : chosen) nd.add_updated_slots(key);
  nd.set_batch(nd.batch() + 1);
  nd.clear_batch_done_at();
  step.changed = true;
  step.events.push_back(
      {"deployment", nd.id(), name, "batch",
       absl::StrCat("batch ", nd.batch(), ": slot", chosen.size() > 1 ? "s " : " ",
                    absl::StrJoin(chosen, ","), " to revision ", target)});
  step.next_wakeup = now;
  return step;
}

}  // namespace warren
