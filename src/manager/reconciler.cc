#include "manager/reconciler.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "manager/rollout/rollout.h"

namespace warren {
namespace {

// A restart chain resets once a task ran at least this long.
constexpr absl::Duration kBackoffResetAfter = absl::Seconds(30);

std::string ExitSummary(const v1::Task& t) {
  const auto& st = t.status();
  std::string s = TaskStateName(st.state());
  if (st.has_exit_code()) absl::StrAppend(&s, " (exit ", st.exit_code(), ")");
  if (!st.error().empty()) absl::StrAppend(&s, ": ", st.error());
  return s;
}

void ShutDown(v1::Task t, const std::string& why, ReconcileActions* out) {
  t.set_desired_state(v1::TASK_STATE_SHUTDOWN);
  if (!why.empty() && !IsTerminal(t.status().state())) t.mutable_status()->set_message(why);
  out->update.push_back(std::move(t));
}

// Keeps the slot's newest task and its `keep` newest terminal tasks (`ts` oldest first);
// older terminal tasks are removed. The newest task's desired state still running means it is
// about to be replaced: it is the one the backoff is computed from, never a removal.
void PruneHistory(const std::vector<const v1::Task*>& ts, int keep, ReconcileActions* out) {
  int terminal_seen = 0;
  for (auto rit = ts.rbegin(); rit != ts.rend(); ++rit) {
    const v1::Task* t = *rit;
    if (!IsTerminal(t->status().state()) || t->desired_state() == v1::TASK_STATE_RUNNING) continue;
    if (++terminal_seen > keep && t != ts.back()) out->remove.push_back({t->id(), t->version()});
  }
}

bool QuickFailure(const v1::Task& t, int64_t revision) {
  const auto& st = t.status();
  if (t.revision() != revision) return false;
  if (st.state() != v1::TASK_STATE_FAILED && st.state() != v1::TASK_STATE_COMPLETE) return false;
  absl::Time started = FromProtoTime(st.started_at());
  absl::Time finished = FromProtoTime(st.finished_at());
  return started == absl::InfinitePast() || finished - started < kBackoffResetAfter;
}

// One slot being reconciled towards `revision`.
struct Slot {
  const v1::Service& service;
  int64_t revision;
  const v1::TaskTemplate& tmpl;
  int number;
  std::string node_id;
  absl::Time now;
  ReconcileActions* out;

  v1::Task New(int attempt, absl::Time not_before) const {
    return Reconciler::NewTask(service, revision, tmpl, number, node_id, attempt, now, not_before);
  }
};

// The slot's newest task is terminal and nothing is live: replace it (at once, or after a
// backoff when it failed on the slot's revision), or record why not.
void ReplaceTerminal(const Slot& slot, const std::vector<const v1::Task*>& ts) {
  ReconcileActions& out = *slot.out;
  const std::string& name = slot.service.spec().name();
  const v1::Task* latest = ts.back();
  if (!IsTerminal(latest->status().state())) return;  // still stopping: replace once gone
  if (latest->revision() != slot.revision) {
    if (latest->desired_state() == v1::TASK_STATE_RUNNING) {
      v1::Task old = *latest;
      old.set_desired_state(v1::TASK_STATE_SHUTDOWN);
      out.update.push_back(std::move(old));
    }
    out.create.push_back(slot.New(0, slot.now));
    return;
  }
  std::string why_not;
  if (!Reconciler::ShouldReplace(*latest, &why_not)) {
    if (latest->desired_state() == v1::TASK_STATE_RUNNING) {
      v1::Task done = *latest;
      done.set_desired_state(v1::TASK_STATE_SHUTDOWN);
      done.mutable_status()->set_message("not restarted: " + why_not);
      out.update.push_back(std::move(done));
      out.events.push_back({"task", latest->id(), name, "not-restarted",
                            absl::StrCat("slot ", slot.number, " ", ExitSummary(*latest),
                                         "; not restarted: ", why_not)});
    }
    return;
  }
  const auto st = latest->status().state();
  const bool own_failure = st == v1::TASK_STATE_FAILED || st == v1::TASK_STATE_COMPLETE;
  absl::Time not_before = slot.now;
  int attempt = latest->attempt();
  int streak = 0;
  if (own_failure) {
    attempt++;
    // Consecutive quick failures of this revision in the slot set the backoff exponent: the
    // streak the latest task carries (history may be pruned), or what the kept history shows
    // (tasks stored before the streak was recorded).
    int counted = 0;
    for (auto rit = ts.rbegin(); rit != ts.rend() && QuickFailure(**rit, slot.revision); ++rit) {
      counted++;
    }
    if (QuickFailure(*latest, slot.revision)) {
      streak = std::max(latest->failure_streak() + 1, counted);
    }
    absl::Time finished = FromProtoTime(latest->status().finished_at());
    if (finished == absl::InfinitePast()) finished = FromProtoTime(latest->status().timestamp());
    not_before =
        std::max(slot.now, finished + Reconciler::Backoff(latest->spec().restart_policy(), streak));
  }
  if (latest->desired_state() == v1::TASK_STATE_RUNNING) {
    v1::Task old = *latest;
    old.set_desired_state(v1::TASK_STATE_SHUTDOWN);
    out.update.push_back(std::move(old));
  }
  v1::Task replacement = slot.New(attempt, not_before);
  replacement.set_failure_streak(streak);
  if (own_failure) {
    out.events.push_back(
        {"task", latest->id(), name, "restarting",
         absl::StrCat("slot ", slot.number, " ", ExitSummary(*latest), "; restarting in ",
                      warren::FormatDuration(not_before - slot.now), " as ", replacement.id())});
  } else if (st == v1::TASK_STATE_ORPHANED || st == v1::TASK_STATE_REJECTED) {
    out.events.push_back({"task", latest->id(), name, "rescheduled",
                          absl::StrCat("slot ", slot.number, " ", ExitSummary(*latest),
                                       "; rescheduled as ", replacement.id())});
  }
  if (not_before > slot.now) out.next_wakeup = std::min(out.next_wakeup, not_before);
  out.create.push_back(std::move(replacement));
}

// How many more slots may start moving off draining nodes now: `parallelism` (0: all) less the
// slots in flight. Start-first, a slot is in flight while its new task (off the draining nodes)
// is not yet available beside the old one; stop-first, while it has no available task at all
// (its old task stopping or its new one starting).
int DrainBudget(const std::vector<std::string>& wanted,
                const std::map<std::string, std::vector<const v1::Task*>>& slots,
                const std::set<std::string>& draining, const RolloutParams& p, absl::Time now) {
  if (p.parallelism <= 0) return std::numeric_limits<int>::max();
  int in_flight = 0;
  for (const auto& key : wanted) {
    auto it = slots.find(key);
    if (it == slots.end()) continue;
    bool on_drain = false, off_drain = false, off_drain_available = false, available = false;
    for (const v1::Task* t : it->second) {
      if (!IsLive(*t)) continue;
      const bool ok = IsAvailable(*t, p.min_ready, now);
      available |= ok;
      if (draining.count(t->node_id())) {
        on_drain = true;
      } else {
        off_drain = true;
        off_drain_available |= ok;
      }
    }
    if (p.start_first ? (on_drain && off_drain && !off_drain_available) : !available) in_flight++;
  }
  return std::max(0, p.parallelism - in_flight);
}

// Blue/green and canary: each revision of the plan gets its own slots 1..count; tasks of
// other revisions and of slots beyond the counts are shut down (they drain first).
void ReconcilePlan(const v1::Service& service, const std::vector<v1::Task>& tasks,
                   const std::vector<PlannedTasks>& plan,
                   const std::function<const v1::TaskTemplate&(int64_t)>& template_for,
                   absl::Time now, int task_history, ReconcileActions* out) {
  const std::string& name = service.spec().name();
  std::map<int64_t, int> counts;
  for (const PlannedTasks& p : plan) counts[p.revision] = p.count;
  std::map<std::pair<int64_t, int>, std::vector<const v1::Task*>> slots;
  for (const auto& t : tasks) slots[{t.revision(), t.slot()}].push_back(&t);
  for (auto& [key, ts] : slots) {
    std::stable_sort(ts.begin(), ts.end(), [](const v1::Task* a, const v1::Task* b) {
      return FromProtoTime(a->created_at()) < FromProtoTime(b->created_at());
    });
  }
  // Surplus first: other revisions, and slots beyond a revision's count.
  for (const auto& [key, ts] : slots) {
    auto c = counts.find(key.first);
    if (c != counts.end() && key.second >= 1 && key.second <= c->second) continue;
    for (const v1::Task* t : ts) {
      if (IsLive(*t)) {
        ShutDown(*t, "not in the rollout's plan", out);
        out->events.push_back(
            {"task", t->id(), name, "shutdown",
             absl::StrCat("revision ", t->revision(), " slot ", t->slot(), " removed")});
      } else if (IsTerminal(t->status().state())) {
        out->remove.push_back({t->id(), t->version()});
      }
    }
  }
  for (const auto& [revision, count, refill] : plan) {
    for (int number = 1; number <= count; ++number) {
      const auto& ts = slots[{revision, number}];
      PruneHistory(ts, task_history, out);
      std::vector<const v1::Task*> live;
      for (const v1::Task* t : ts) {
        if (IsLive(*t)) live.push_back(t);
      }
      for (size_t i = 0; i + 1 < live.size(); ++i) ShutDown(*live[i], "duplicate task", out);
      // A warm revision keeps the tasks it has; an ended one is not replaced.
      if (!live.empty() || !refill) continue;
      const Slot slot{service, revision, template_for(revision), number, "", now, out};
      if (ts.empty()) {
        out->create.push_back(slot.New(0, now));
      } else {
        ReplaceTerminal(slot, ts);
      }
    }
  }
}

}  // namespace

std::vector<v1::Node> Reconciler::SlotNodes(const std::vector<v1::Node>& nodes) {
  std::vector<v1::Node> out;
  for (const auto& n : nodes) {
    if (n.availability() != v1::NODE_AVAILABILITY_DRAIN) out.push_back(n);
  }
  return out;
}

absl::Duration Reconciler::Backoff(const v1::RestartPolicy& policy, int consecutive_failures) {
  absl::Duration base = DurationOr(policy.delay(), absl::Milliseconds(100));
  absl::Duration cap = DurationOr(policy.max_delay(), absl::Seconds(30));
  absl::Duration d = base;
  for (int i = 1; i < consecutive_failures && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

bool Reconciler::ShouldReplace(const v1::Task& t, std::string* why_not) {
  const auto& policy = t.spec().restart_policy();
  const std::string condition = policy.condition().empty() ? "always" : policy.condition();
  switch (t.status().state()) {
    case v1::TASK_STATE_SHUTDOWN:
    case v1::TASK_STATE_ORPHANED:
    case v1::TASK_STATE_REJECTED:
      return true;  // not the task's own doing: always refill or reschedule
    case v1::TASK_STATE_COMPLETE:
      if (condition != "always") {
        *why_not = absl::StrCat("exited 0 and the restart condition is ", condition);
        return false;
      }
      break;
    case v1::TASK_STATE_FAILED:
      if (condition == "never") {
        *why_not = "failed and the restart condition is never";
        return false;
      }
      break;
    default:
      return false;
  }
  if (policy.max_attempts() > 0 && t.attempt() >= policy.max_attempts()) {
    *why_not = absl::StrCat("restart attempts exhausted (", policy.max_attempts(), ")");
    return false;
  }
  return true;
}

v1::Task Reconciler::NewTask(const v1::Service& service, int slot, const std::string& node_id,
                             int attempt, absl::Time now, absl::Time not_before) {
  return NewTask(service, service.revision(), service.spec().template_(), slot, node_id, attempt,
                 now, not_before);
}

v1::Task Reconciler::NewTask(const v1::Service& service, int64_t revision,
                             const v1::TaskTemplate& tmpl, int slot, const std::string& node_id,
                             int attempt, absl::Time now, absl::Time not_before) {
  v1::Task t;
  t.set_id(NewId());
  t.set_service_id(service.id());
  t.set_service_name(service.spec().name());
  t.set_revision(revision);
  t.set_slot(slot);
  t.set_node_id(node_id);
  t.set_desired_state(v1::TASK_STATE_RUNNING);
  *t.mutable_spec() = tmpl;
  t.set_port(TaskPort(tmpl));
  t.set_attempt(attempt);
  *t.mutable_created_at() = ToProtoTime(now);
  auto* st = t.mutable_status();
  st->set_state(v1::TASK_STATE_PENDING);
  *st->mutable_timestamp() = ToProtoTime(now);
  if (not_before > now) {
    *t.mutable_not_before() = ToProtoTime(not_before);
    st->set_message(absl::StrCat("restart backoff until ", absl::FormatTime(not_before)));
  } else {
    st->set_message("waiting for a node");
  }
  return t;
}

ReconcileActions Reconciler::Reconcile(const v1::Service& service,
                                       const std::vector<v1::Task>& tasks,
                                       const std::vector<v1::Node>& nodes, absl::Time now,
                                       const v1::Deployment* rollout,
                                       const std::map<int64_t, v1::TaskTemplate>* templates,
                                       int task_history) {
  ReconcileActions out;
  const bool global = service.spec().mode() == "global";
  const std::string& name = service.spec().name();

  // Slot key -> tasks in creation order.
  std::map<std::string, std::vector<const v1::Task*>> slots;
  for (const auto& t : tasks) slots[SlotKey(service, t)].push_back(&t);
  for (auto& [key, ts] : slots) {
    std::stable_sort(ts.begin(), ts.end(), [](const v1::Task* a, const v1::Task* b) {
      return FromProtoTime(a->created_at()) < FromProtoTime(b->created_at());
    });
  }
  auto template_for = [&](int64_t revision) -> const v1::TaskTemplate& {
    if (revision == service.revision()) return service.spec().template_();
    if (templates) {
      auto it = templates->find(revision);
      if (it != templates->end()) return it->second;
    }
    for (const auto& t : tasks) {
      if (t.revision() == revision) return t.spec();
    }
    return service.spec().template_();
  };

  if (rollout && IsProgressive(*rollout) && !global) {
    ReconcilePlan(service, tasks, TaskPlan(service, *rollout, now), template_for, now, task_history,
                  &out);
    return out;
  }

  // A draining node holds no global slot, and its replicated tasks move (below).
  std::set<std::string> draining;
  for (const auto& n : nodes) {
    if (n.availability() == v1::NODE_AVAILABILITY_DRAIN) draining.insert(n.id());
  }
  const std::vector<std::string> wanted =
      WantedSlots(service, draining.empty() ? nodes : SlotNodes(nodes));
  const std::set<std::string> wanted_set(wanted.begin(), wanted.end());

  // Slots that are no longer wanted: shut down live tasks, drop terminal ones.
  for (const auto& [key, ts] : slots) {
    if (wanted_set.count(key)) continue;
    for (const v1::Task* t : ts) {
      if (IsLive(*t)) {
        ShutDown(*t,
                 !global                        ? "scaled down"
                 : draining.count(t->node_id()) ? "node draining"
                                                : "node no longer eligible",
                 &out);
        out.events.push_back({"task", t->id(), name, "shutdown",
                              absl::StrCat("slot ", t->slot(), " removed (scale down)")});
      } else if (IsTerminal(t->status().state())) {
        out.remove.push_back({t->id(), t->version()});
      }
    }
  }

  bool start_first = true;
  absl::Duration min_ready = absl::ZeroDuration();
  std::set<std::string> updated;
  int64_t target = service.revision();
  if (rollout) {
    RolloutParams p = ResolveRolloutParams(rollout->config(), static_cast<int>(wanted.size()));
    start_first = p.start_first;
    min_ready = p.min_ready;
    updated.insert(rollout->updated_slots().begin(), rollout->updated_slots().end());
    target = rollout->target_revision() != 0 ? rollout->target_revision() : rollout->to_revision();
  }
  // Slots moving off draining nodes go as a rolling update would move them: at most
  // `parallelism` at a time, in the update order, each new task available (healthy past
  // min-ready) before the old one stops when start-first.
  const RolloutParams drain =
      ResolveRolloutParams(service.spec().update_config(), static_cast<int>(wanted.size()));
  int drain_budget = std::numeric_limits<int>::max();
  if (!global && !draining.empty()) {
    drain_budget = DrainBudget(wanted, slots, draining, drain, now);
  }
  // Without a deployment, at most one stale slot moves at a time.
  int naive_budget = 1;
  if (!rollout) {
    for (const auto& key : wanted) {
      bool has_current = false, has_other = false;
      for (const v1::Task* t : slots[key]) {
        if (!IsLive(*t)) continue;
        (t->revision() == service.revision() ? has_current : has_other) = true;
      }
      if (has_current && has_other) naive_budget = 0;
    }
  }

  for (const auto& key : wanted) {
    const auto& ts = slots[key];
    const int number = global ? 0 : std::stoi(key);
    const std::string node_id = global ? key : "";

    PruneHistory(ts, task_history, &out);

    std::vector<const v1::Task*> live;
    for (const v1::Task* t : ts) {
      if (IsLive(*t)) live.push_back(t);
    }
    int64_t desired = service.revision();
    if (rollout) {
      if (updated.count(key)) {
        desired = target;
      } else if (!live.empty()) {
        desired = live.back()->revision();
        // Rolling back: a slot not moved back yet keeps what it ran before the revision being
        // left, so a task of that revision that never got ready (say, one no node can take)
        // is stopped instead of holding the surge the rollback needs.
        if (desired == rollout->to_revision() && target != rollout->to_revision()) {
          for (const v1::Task* t : live) {
            if (t->revision() != rollout->to_revision()) desired = t->revision();
          }
        }
      } else if (!ts.empty()) {
        desired = ts.back()->revision();
      } else {
        desired = target;
      }
    }
    // live_desired: on the slot's revision, where it may stay; leaving: on the slot's revision
    // but on a draining node; live_other: another revision.
    std::vector<const v1::Task*> live_desired, live_other, leaving;
    for (const v1::Task* t : live) {
      if (t->revision() != desired) {
        live_other.push_back(t);
      } else if (!global && draining.count(t->node_id())) {
        leaving.push_back(t);
      } else {
        live_desired.push_back(t);
      }
    }
    if (!rollout && live_desired.empty() && !live_other.empty()) {
      if (naive_budget == 0) continue;  // keeps running its revision for now
      naive_budget--;
    }
    const Slot slot{service, desired, template_for(desired), number, node_id, now, &out};

    if (!live_desired.empty()) {
      const v1::Task* newest = live_desired.back();
      for (size_t i = 0; i + 1 < live_desired.size(); ++i) {
        ShutDown(*live_desired[i], "duplicate task in slot", &out);
      }
      if (live_other.empty() && leaving.empty()) continue;
      absl::Time ready_at = absl::InfiniteFuture();
      const absl::Duration gate =
          leaving.empty() ? min_ready : std::max(min_ready, drain.min_ready);
      if (IsAvailable(*newest, gate, now, &ready_at)) {
        for (const v1::Task* old : live_other) {
          ShutDown(*old, absl::StrCat("replaced by revision ", desired), &out);
          out.events.push_back(
              {"task", old->id(), name, "replaced",
               absl::StrCat("slot ", key, ": revision ", old->revision(), " replaced by ",
                            newest->id(), " (revision ", desired, ")")});
        }
        for (const v1::Task* old : leaving) {
          ShutDown(*old, "moved off its draining node", &out);
          out.events.push_back({"task", old->id(), name, "moved",
                                absl::StrCat("slot ", key, ": moved off draining node ",
                                             old->node_id(), " to ", newest->id())});
        }
      } else if (ready_at != absl::InfiniteFuture()) {
        out.next_wakeup = std::min(out.next_wakeup, ready_at);
      }
      continue;
    }
    if (!live_other.empty()) {
      const v1::Task* latest = ts.back();
      if (latest->revision() == desired && IsTerminal(latest->status().state())) {
        // The new revision's task in this slot died: restart it under the backoff.
        ReplaceTerminal(slot, ts);
        continue;
      }
      if (start_first) {
        out.create.push_back(slot.New(0, now));
        out.events.push_back({"task", out.create.back().id(), name, "starting",
                              absl::StrCat("slot ", key, ": starting revision ", desired,
                                           " beside revision ", live_other.back()->revision())});
      } else {
        for (const v1::Task* old : live_other) {
          ShutDown(*old, absl::StrCat("stopping for revision ", desired), &out);
          out.events.push_back({"task", old->id(), name, "stopping",
                                absl::StrCat("slot ", key, ": stopping revision ", old->revision(),
                                             " before starting revision ", desired)});
        }
      }
      continue;
    }
    if (!leaving.empty()) {
      const v1::Task* latest = ts.back();
      if (latest->revision() == desired && IsTerminal(latest->status().state())) {
        // The task started to take over died: restart it under the backoff.
        ReplaceTerminal(slot, ts);
        continue;
      }
      if (drain_budget <= 0) continue;  // waits until a slot in flight has moved
      drain_budget--;
      if (drain.start_first) {
        out.create.push_back(slot.New(leaving.back()->attempt(), now));
        out.events.push_back(
            {"task", out.create.back().id(), name, "moving",
             absl::StrCat("slot ", key, ": starting a task to take over from ",
                          leaving.back()->id(), " on draining node ", leaving.back()->node_id())});
      } else {
        for (const v1::Task* old : leaving) {
          ShutDown(*old, "stopping: its node is draining", &out);
          out.events.push_back({"task", old->id(), name, "moving",
                                absl::StrCat("slot ", key, ": stopping on draining node ",
                                             old->node_id(), " before starting elsewhere")});
        }
      }
      continue;
    }
    if (ts.empty()) {
      out.create.push_back(slot.New(0, now));
      continue;
    }
    ReplaceTerminal(slot, ts);
  }
  return out;
}

}  // namespace warren
