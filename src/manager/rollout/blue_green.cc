// Blue/green: a full green set starts beside blue, reachable only as the preview; once it is
// ready (and promoted, without auto-promote) production traffic switches in one routing-table
// version. Blue keeps running for the scale-down delay, during which green's traffic is
// analysed and a rollback is a switch back.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/spec.h"
#include "common/time_util.h"
#include "manager/rollout/strategy.h"
#include "manager/rollout/transitions.h"

namespace warren {
namespace {

class BlueGreen final : public Strategy {
 public:
  void Advance(const PassInput& in, RolloutStep* step) const override;

  void PrepareRollback(const PassInput& in, v1::Deployment* d) const override {
    d->set_weight(0);
    d->set_switched(false);
  }

  absl::StatusOr<std::string> Promote(const PassInput& in, bool full,
                                      RolloutStep* step) const override {
    v1::Deployment& d = step->deployment;
    if (d.switched()) {
      // The post-switch window ends now; blue stays warm for the rest of the delay.
      Succeed(in, absl::StrCat("revision ", d.to_revision(), " promoted by hand"), step);
      return absl::StrCat("promoted: revision ", d.to_revision(),
                          " serves all traffic; the rollout ended");
    }
    // Promotion requested: the switch happens once green is ready.
    d.set_step(1);
    step->changed = true;
    step->next_wakeup = in.now;
    return std::string("switch requested");
  }

  std::string StartMessage(const v1::Deployment& d) const override {
    return absl::StrCat("blue/green: green revision ", d.to_revision(), " starts beside blue ",
                        d.from_revision());
  }

  bool planned() const override { return true; }

  std::vector<PlannedTasks> ActivePlan(const v1::Service& service,
                                       const v1::Deployment& d) const override {
    const int n = service.spec().replicas();
    return {{d.from_revision(), n, true}, {d.to_revision(), n, true}};
  }

  std::map<int64_t, PlannedRoute> ActiveWeights(const v1::Deployment& d) const override {
    if (d.switched()) return {{d.to_revision(), {100, false}}, {d.from_revision(), {0, false}}};
    return {{d.from_revision(), {100, false}}, {d.to_revision(), {0, true}}};
  }

  int WarmCount(const v1::Service& service, const v1::Deployment& d) const override {
    return service.spec().replicas();
  }
};

void BlueGreen::Advance(const PassInput& in, RolloutStep* step) const {
  ProgressiveCounts c;
  if (!ProgressivePrelude(in, step, &c)) return;
  v1::Deployment& nd = step->deployment;
  const absl::Time now = in.now;
  const std::string& name = in.service.spec().name();
  const int64_t from = nd.from_revision(), to = nd.to_revision();
  AnalysisRequest analysis;
  analysis.config = &nd.config();
  analysis.service_id = in.service.id();
  analysis.candidate = to;
  analysis.baseline = from;
  analysis.now = now;

  if (!nd.switched()) {
    if (c.available_to < c.n) {
      if (now - c.last_progress >= c.p.progress_deadline) {
        BeginRollback(
            in, v1::ROLLBACK_REASON_DEADLINE,
            absl::StrCat("green not ready within ", warren::FormatDuration(c.p.progress_deadline),
                         " (progress deadline); ", c.available_to, "/", c.n, " available"),
            step);
        return;
      }
      WakeAt(c.last_progress + c.p.progress_deadline, now, step);
      return;
    }
    if (!c.p.auto_promote && nd.step() == 0) {
      const std::string waiting = "green is ready; waiting for `warren service promote`";
      if (nd.reason() != waiting) {
        nd.set_reason(waiting);
        step->changed = true;
        step->events.push_back({"deployment", nd.id(), name, "ready", waiting});
      }
      return;
    }
    analysis.traffic_checks = false;
    analysis.run_query = true;
    Verdict v = RunAnalysis(analysis, in.analysis);
    for (auto& r : v.results) *nd.add_analysis() = std::move(r);
    if (v.failed) {
      BeginRollback(in, v.rollback_reason,
                    absl::StrCat("pre-promotion analysis failed: ", v.reason), step);
      return;
    }
    nd.set_switched(true);
    nd.set_weight(100);
    nd.set_reason("");
    *nd.mutable_switched_at() = ToProtoTime(now);
    *nd.mutable_full_traffic_at() = ToProtoTime(now);
    *nd.mutable_warm_until() = ToProtoTime(now + c.p.scale_down_delay);
    *nd.mutable_last_progress_at() = ToProtoTime(now);
    step->changed = true;
    step->events.push_back(
        {"deployment", nd.id(), name, "switched",
         absl::StrCat("production traffic switched to revision ", to, "; revision ", from,
                      " kept for ", warren::FormatDuration(c.p.scale_down_delay))});
    step->next_wakeup = now;
    return;
  }
  // Switched: post-switch analysis for the window, which ends with the scale-down delay at the
  // latest; blue stays warm for the rest of the delay after the deployment succeeded.
  const absl::Time switched_at = FromProtoTime(nd.switched_at());
  const absl::Time end = switched_at + std::min(c.p.canary_window, c.p.scale_down_delay);
  if (!IsSet(nd.warm_until())) {
    // Switched by an older version: its blue is kept for the delay from the switch.
    *nd.mutable_full_traffic_at() = nd.switched_at();
    *nd.mutable_warm_until() = ToProtoTime(switched_at + c.p.scale_down_delay);
    step->changed = true;
  }
  if (in.analysis.traffic != nullptr && now < end) {
    analysis.window_start = switched_at;
    Verdict v = RunAnalysis(analysis, in.analysis);
    RecordAnalysis(v.results, step);
    if (v.failed) {
      BeginRollback(in, v.rollback_reason, absl::StrCat("post-switch analysis failed: ", v.reason),
                    step);
      return;
    }
    WakeAt(now + absl::Seconds(1), now, step);
  }
  if (now >= end) {
    analysis.traffic_checks = false;
    analysis.run_query = true;
    Verdict v = RunAnalysis(analysis, in.analysis);
    for (auto& r : v.results) *nd.add_analysis() = std::move(r);
    if (v.failed) {
      BeginRollback(in, v.rollback_reason, absl::StrCat("post-switch analysis failed: ", v.reason),
                    step);
      return;
    }
    Succeed(in,
            absl::StrCat("revision ", to, " serves all traffic; revision ", from,
                         " stays warm until the scale-down delay ends"),
            step);
    return;
  }
  WakeAt(end, now, step);
}

}  // namespace

const Strategy& BlueGreenStrategy() {
  static const BlueGreen kBlueGreen;
  return kBlueGreen;
}

}  // namespace warren
