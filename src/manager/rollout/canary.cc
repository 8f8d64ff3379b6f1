// Canary: the new revision gets an exact share of the traffic in steps (say 10, 25, 50, 100 %);
// each step's weight is applied once ceil(replicas x weight / 100) canary tasks are available,
// then the step's window is analysed; a failing check sets the weight to 0 in the same pass.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/spec.h"
#include "common/time_util.h"
#include "manager/rollout/strategy.h"
#include "manager/rollout/transitions.h"

namespace warren {
namespace {

int CanaryCount(int replicas, int weight) {
  if (weight <= 0 || replicas <= 0) return 0;
  return std::max(1, (replicas * weight + 99) / 100);
}

int StepWeight(const v1::Deployment& d, int step) {
  std::vector<int> steps = CanarySteps(d.config());
  return steps[std::clamp(step, 0, static_cast<int>(steps.size()) - 1)];
}

class Canary final : public Strategy {
 public:
  void Advance(const PassInput& in, RolloutStep* step) const override;

  void PrepareRollback(const PassInput& in, v1::Deployment* d) const override { d->set_weight(0); }

  absl::StatusOr<std::string> Promote(const PassInput& in, bool full,
                                      RolloutStep* step) const override {
    v1::Deployment& d = step->deployment;
    const std::vector<int> steps = CanarySteps(d.config());
    const int last = static_cast<int>(steps.size()) - 1;
    const int count = static_cast<int>(steps.size());
    step->changed = true;
    step->next_wakeup = in.now;
    if (!full && d.step() < last) {
      d.set_step(d.step() + 1);
      const RolloutParams p = ResolveRolloutParams(d.config(), in.service.spec().replicas());
      int ready = 0;
      for (const auto& t : in.tasks) {
        if (t.revision() == d.to_revision() && IsAvailable(t, p.min_ready, in.now)) ready++;
      }
      const bool now = ready >= CanaryCount(p.replicas, steps[d.step()]);
      return absl::StrCat("promoted to step ", d.step() + 1, "/", count, ": ", steps[d.step()],
                          "% of traffic on revision ", d.to_revision(),
                          now ? "" : " once its tasks are ready");
    }
    // At the last step, or with --full: the rollout ends as soon as the canary has all traffic,
    // without the remaining windows.
    d.set_step(last);
    d.set_promoted_to_end(true);
    if (d.weight() >= 100) {
      Succeed(in, absl::StrCat("canary revision ", d.to_revision(), " promoted by hand"), step);
      return absl::StrCat("promoted: 100% of traffic on revision ", d.to_revision(),
                          "; the rollout ended");
    }
    return absl::StrCat("promoted to step ", count, "/", count, ": 100% of traffic on revision ",
                        d.to_revision(), " once its tasks are ready, and the rollout ends then");
  }

  std::string StartMessage(const v1::Deployment& d) const override {
    return absl::StrCat("canary of revision ", d.to_revision(), " beside ", d.from_revision(),
                        ", steps ", absl::StrJoin(CanarySteps(d.config()), ","));
  }

  bool planned() const override { return true; }

  std::vector<PlannedTasks> ActivePlan(const v1::Service& service,
                                       const v1::Deployment& d) const override {
    const int n = service.spec().replicas();
    const int canary = CanaryCount(n, StepWeight(d, d.step()));
    // At 100 % the stable tasks of the step before stay (warm) until the deployment ends.
    const int stable = d.config().canary_keep_stable() ? n
                       : d.weight() >= 100             ? d.warm_replicas()
                                           : std::max(0, n - CanaryCount(n, d.weight()));
    return {{d.from_revision(), stable, true}, {d.to_revision(), canary, true}};
  }

  std::map<int64_t, PlannedRoute> ActiveWeights(const v1::Deployment& d) const override {
    return {{d.to_revision(), {d.weight(), false}}, {d.from_revision(), {100 - d.weight(), false}}};
  }

  int WarmCount(const v1::Service& service, const v1::Deployment& d) const override {
    return d.config().canary_keep_stable() ? service.spec().replicas() : d.warm_replicas();
  }
};

void Canary::Advance(const PassInput& in, RolloutStep* step) const {
  ProgressiveCounts c;
  if (!ProgressivePrelude(in, step, &c)) return;
  v1::Deployment& nd = step->deployment;
  const absl::Time now = in.now;
  const std::string& name = in.service.spec().name();
  const int64_t from = nd.from_revision(), to = nd.to_revision();
  const std::vector<int>& steps = c.p.canary_steps;
  const int target_weight = StepWeight(nd, nd.step());
  const int want = CanaryCount(c.n, target_weight);
  if (nd.weight() != target_weight) {
    if (c.available_to >= want) {
      if (target_weight >= 100) {
        // All traffic on the canary: the stable set that served until now stays warm for the
        // scale-down delay, so a rollback is a switch back.
        nd.set_warm_replicas(nd.config().canary_keep_stable()
                                 ? c.n
                                 : std::max(0, c.n - CanaryCount(c.n, nd.weight())));
        *nd.mutable_full_traffic_at() = ToProtoTime(now);
        *nd.mutable_warm_until() = ToProtoTime(now + c.p.scale_down_delay);
      }
      nd.set_weight(target_weight);
      *nd.mutable_step_started_at() = ToProtoTime(now);
      *nd.mutable_last_progress_at() = ToProtoTime(now);
      nd.clear_analysis();
      step->changed = true;
      step->promoted_step = nd.step() > 0;
      step->events.push_back(
          {"deployment", nd.id(), name, "step",
           absl::StrCat("step ", nd.step() + 1, "/", steps.size(), ": ", target_weight,
                        "% of traffic on revision ", to, " (", want, " tasks)")});
      step->next_wakeup = now;
      if (target_weight >= 100 && nd.promoted_to_end()) {
        Succeed(in, absl::StrCat("canary revision ", to, " promoted by hand"), step);
      }
      return;
    }
    if (now - c.last_progress >= c.p.progress_deadline) {
      BeginRollback(
          in, v1::ROLLBACK_REASON_DEADLINE,
          absl::StrCat("canary tasks not ready within ",
                       warren::FormatDuration(c.p.progress_deadline), " (progress deadline)"),
          step);
      return;
    }
    WakeAt(c.last_progress + c.p.progress_deadline, now, step);
    return;
  }
  const absl::Time step_start = FromProtoTime(nd.step_started_at());
  const absl::Duration window = c.p.canary_window;
  const bool window_over = now >= step_start + window;
  AnalysisRequest analysis;
  analysis.config = &nd.config();
  analysis.service_id = in.service.id();
  analysis.candidate = to;
  analysis.baseline = from;
  analysis.window_start = step_start;
  analysis.window_over = window_over;
  analysis.run_query = window_over;
  analysis.now = now;
  Verdict v = RunAnalysis(analysis, in.analysis);
  RecordAnalysis(v.results, step);
  if (v.failed) {
    BeginRollback(in, v.rollback_reason,
                  absl::StrCat("step ", nd.step() + 1, " analysis failed: ", v.reason), step);
    return;
  }
  if (window_over && v.passed) {
    std::string summary;
    for (const auto& r : v.results) {
      absl::StrAppend(&summary, summary.empty() ? "" : ", ", r.check(), " ", r.value(),
                      r.passed() ? " ok" : (r.check() == "requests" ? " too few" : " FAILED"),
                      " (threshold ", r.threshold(), ")");
    }
    step->events.push_back({"deployment", nd.id(), name, "analysis",
                            absl::StrCat("step ", nd.step() + 1, " (", nd.weight(),
                                         "%) passed: ", summary.empty() ? "no checks" : summary)});
    if (nd.step() + 1 >= static_cast<int>(steps.size())) {
      Succeed(in, absl::StrCat("canary revision ", to, " promoted through every step"), step);
      return;
    }
    nd.set_step(nd.step() + 1);
    step->changed = true;
    step->next_wakeup = now;
    return;
  }
  if (window_over && now - step_start >= window + c.p.progress_deadline) {
    BeginRollback(in, v1::ROLLBACK_REASON_DEADLINE,
                  absl::StrCat("too little traffic to judge step ", nd.step() + 1, " within ",
                               warren::FormatDuration(c.p.progress_deadline),
                               " after its window (progress deadline)"),
                  step);
    return;
  }
  WakeAt(
      window_over ? now + absl::Seconds(1) : std::min(step_start + window, now + absl::Seconds(1)),
      now, step);
}

}  // namespace

const Strategy& CanaryStrategy() {
  static const Canary kCanary;
  return kCanary;
}

}  // namespace warren
