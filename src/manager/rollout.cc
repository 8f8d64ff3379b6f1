#include "manager/rollout.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"

namespace warren {
namespace {

bool IsLive(const v1::Task& t) {
  return t.desired_state() == v1::TASK_STATE_RUNNING && !IsTerminal(t.status().state());
}

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

RolloutStep RolloutController::Advance(const v1::Service& service, const v1::Deployment& d,
                                       const std::vector<v1::Task>& tasks,
                                       const std::vector<v1::Node>& nodes,
                                       const std::map<int64_t, v1::Revision>& revisions,
                                       absl::Time now) {
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
    std::string reason;
    const auto state = t.status().state();
    if (IsTerminal(state)) {
      if (state == v1::TASK_STATE_FAILED || state == v1::TASK_STATE_COMPLETE ||
          state == v1::TASK_STATE_REJECTED) {
        reason = FailureReason(t);
      }
    } else if (IsLive(t)) {
      if (t.status().health().state() == v1::HEALTH_STATE_UNHEALTHY) {
        reason = absl::StrCat("task ", t.id(), " (slot ", t.slot(),
                              ") is unhealthy: ", t.status().health().last_probe().output());
      } else if (!IsAvailable(t, p.min_ready, now)) {
        absl::Time deadline = FromProtoTime(t.created_at()) + p.healthy_deadline;
        if (now >= deadline) {
          reason = absl::StrCat("task ", t.id(), " (slot ", t.slot(), ") not healthy within ",
                                warren::FormatDuration(p.healthy_deadline), " (healthy deadline)");
        } else {
          wake(deadline);
        }
      }
    }
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
