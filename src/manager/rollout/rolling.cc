// Rolling update: slots move to the target revision in batches, each gated on health, within
// the surge/unavailable budgets. A rollback is the same machinery in the other direction.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "manager/analysis/window.h"
#include "manager/rollout/strategy.h"
#include "manager/rollout/transitions.h"

namespace warren {
namespace {

class Rolling final : public Strategy {
 public:
  // Each pass: count slots that are done (only a live task of the target revision, available
  // past min-ready), find failed new tasks (crashed, unhealthy, or not available within the
  // healthy deadline), apply the failure action when the failures exceed max-failure-ratio or
  // the progress deadline passes, and when the current batch is done (and `delay` has
  // passed) switch the next batch of slots to the target within the surge/unavailable
  // budgets.
  void Advance(const PassInput& in, RolloutStep* step) const override;

  void PrepareRollback(const PassInput& in, v1::Deployment* d) const override {
    d->clear_updated_slots();
    d->clear_failed_task_ids();
    d->set_batch(0);
    d->clear_batch_done_at();
    *d->mutable_config() = EffectiveRollbackConfig(in.service.spec());
    d->mutable_config()->set_strategy("rolling");
  }

  absl::StatusOr<std::string> Promote(const PassInput& in, bool full,
                                      RolloutStep* step) const override {
    return absl::FailedPreconditionError(
        absl::StrCat("service \"", in.service.spec().name(),
                     "\" has no blue/green or canary rollout to promote"));
  }

  std::string StartMessage(const v1::Deployment& d) const override {
    return absl::StrCat(d.rollback() ? "rolling rollback" : "rolling update", " from revision ",
                        d.from_revision(), " to ", d.to_revision());
  }

  bool planned() const override { return false; }
};

void Rolling::Advance(const PassInput& in, RolloutStep* step) const {
  const absl::Time now = in.now;
  v1::Deployment& nd = step->deployment;
  auto wake = [&](absl::Time t) { WakeAt(t, now, step); };
  const std::string& name = in.service.spec().name();
  if (nd.target_revision() == 0) nd.set_target_revision(nd.to_revision());
  const bool rolling_back = nd.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK;
  const int64_t target = nd.target_revision();
  const std::vector<std::string> wanted = WantedSlots(in.service, in.nodes);
  const int n = static_cast<int>(wanted.size());
  const RolloutParams p = ResolveRolloutParams(nd.config(), n);
  absl::Time phase_start = FromProtoTime(nd.phase_started_at());
  if (phase_start == absl::InfinitePast()) phase_start = FromProtoTime(nd.created_at());

  std::map<std::string, std::vector<const v1::Task*>> slots;
  for (const auto& t : in.tasks) slots[SlotKey(in.service, t)].push_back(&t);
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
  v1::RollbackReason failure_kind = v1::ROLLBACK_REASON_HEALTH_CHECK;
  for (const auto& t : in.tasks) {
    if (t.revision() != target || FromProtoTime(t.created_at()) < phase_start) continue;
    if (failed.count(t.id())) continue;
    absl::Time deadline = absl::InfiniteFuture();
    v1::RollbackReason kind;
    std::string reason = NewTaskFailure(t, in.nodes, p, now, &deadline, &kind);
    wake(deadline);
    if (reason.empty()) continue;
    failed.insert(t.id());
    nd.add_failed_task_ids(t.id());
    last_failure = reason;
    failure_kind = kind;
    step->changed = true;
    step->events.push_back({"deployment", nd.id(), name, "task-failed", reason});
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
    step->changed = true;
  }
  if (nd.available() != done || nd.updated() != on_target || nd.total() != n) {
    nd.set_available(done);
    nd.set_updated(on_target);
    nd.set_total(n);
    step->changed = true;
  }
  if (nd.phase() == v1::DEPLOYMENT_PHASE_PAUSED) return;

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
    if (p.failure_action == "rollback" && !rolling_back && !nd.rollback()) {
      BeginRollback(in, deadline_missed ? v1::ROLLBACK_REASON_DEADLINE : failure_kind, why, step);
    } else if (p.failure_action == "pause" && !rolling_back) {
      Pause(in, /*by_user=*/false, why, step);
    } else {
      Fail(in, rolling_back ? "rollback failed: " + why : why, step);
    }
    return;
  }

  // The new revision's traffic over the last rolling_window (never before the update began),
  // judged by the canary's checks; a rollback has nothing left to fall back to.
  const bool judging = p.rolling_analysis && !rolling_back && !nd.rollback() && nd.batch() > 0;
  const absl::Time settled = phase_start + p.rolling_window;
  if (judging) {
    AnalysisRequest a;
    a.config = &nd.config();
    a.service_id = in.service.id();
    a.candidate = target;
    a.baseline = nd.from_revision();
    a.window_start = analysis::SlidingWindowStart(phase_start, now, p.rolling_window);
    // Only the end decides a pass (and the thin-traffic policy): until then a failing check
    // rolls back at once and anything else keeps watching.
    a.window_over = done == n && now >= settled;
    a.run_query = a.window_over;
    a.now = now;
    Verdict v = RunAnalysis(a, in.analysis);
    RecordAnalysis(v.results, step);
    if (v.failed) {
      BeginRollback(in, v.rollback_reason,
                    absl::StrCat("rolling analysis of revision ", target, " failed: ", v.reason),
                    step);
      return;
    }
    // Traffic reports change no stored object: look again within a second.
    wake(now + absl::Seconds(1));
    if (done == n && now < settled) {
      wake(settled);
      return;
    }
  }

  // Done?
  if (done == n) {
    if (rolling_back) {
      FinishRollback(
          in, absl::StrCat("rolled back to revision ", target, "; all ", n, " tasks available"),
          step);
    } else {
      Succeed(in, absl::StrCat("all ", n, " tasks on revision ", target), step,
              absl::StrCat(nd.rollback() ? "rollback" : "rollout", " to revision ", target,
                           " complete; all ", n, " tasks available"));
    }
    return;
  }

  // Next batch, once the current one is done and the delay has passed.
  if (in_flight > 0) return;
  if (nd.batch() > 0 && !IsSet(nd.batch_done_at())) {
    *nd.mutable_batch_done_at() = ToProtoTime(now);
    step->changed = true;
  }
  absl::Time next_at =
      IsSet(nd.batch_done_at()) ? FromProtoTime(nd.batch_done_at()) + p.delay : now;
  if (now < next_at) {
    wake(next_at);
    return;
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
  // Slots still serving the previous revision (priority 1): all of them, and those chosen.
  size_t old_available = 0, chosen_old = 0;
  for (const auto& [priority, key] : candidates) {
    old_available += priority > 0 ? 1 : 0;
    if (chosen.size() >= limit) continue;
    // A slot that already has its target task costs nothing; one with nothing available
    // loses nothing (stop-first) but still adds a task (start-first).
    int cost = priority < 0 ? 0 : (p.start_first ? 1 : (priority == 0 ? 0 : 1));
    if (cost > capacity) continue;
    capacity -= cost;
    chosen.push_back(key);
    chosen_old += priority > 0 ? 1 : 0;
  }
  if (chosen.empty()) return;
  // The batch that would replace the previous revision's last available tasks waits for the
  // analysis window: until the verdict, the proxies answer a bad revision's 5xx from those
  // tasks (retry on another revision), so a bad update that is caught loses no request. The
  // window runs anyway before the update can succeed; holding costs no time when it is over.
  if (judging && now < settled && old_available > 0 && chosen_old == old_available) {
    wake(settled);
    return;
  }
  for (const auto& key : chosen) nd.add_updated_slots(key);
  nd.set_batch(nd.batch() + 1);
  nd.clear_batch_done_at();
  step->changed = true;
  step->events.push_back(
      {"deployment", nd.id(), name, "batch",
       absl::StrCat("batch ", nd.batch(), ": slot", chosen.size() > 1 ? "s " : " ",
                    absl::StrJoin(chosen, ","), " to revision ", target)});
  step->next_wakeup = now;
}

}  // namespace

const Strategy& RollingStrategy() {
  static const Rolling kRolling;
  return kRolling;
}

}  // namespace warren
