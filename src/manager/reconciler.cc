#include "manager/reconciler.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"

namespace warren {
namespace {

bool IsLive(const v1::Task& t) {
  return t.desired_state() == v1::TASK_STATE_RUNNING && !IsTerminal(t.status().state());
}

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

// The slot's newest task is terminal: replace it (at once or after a backoff), or record
// why not.
void ReplaceTerminal(const v1::Service& service, const std::vector<const v1::Task*>& ts, int slot,
                     const std::string& node_id, absl::Time now, ReconcileActions* out_ptr) {
  ReconcileActions& out = *out_ptr;
  const std::string& name = service.spec().name();
  const v1::Task* latest = ts.back();
  std::string why_not;
  if (!IsTerminal(latest->status().state())) {
    // Desired shutdown but still stopping: its replacement comes once it is gone.
    return;
  }
  if (!Reconciler::ShouldReplace(*latest, &why_not)) {
    if (latest->desired_state() == v1::TASK_STATE_RUNNING) {
      v1::Task done = *latest;
      done.set_desired_state(v1::TASK_STATE_SHUTDOWN);
      done.mutable_status()->set_message("not restarted: " + why_not);
      out.update.push_back(std::move(done));
      out.events.push_back(
          {"task", latest->id(), name, "not-restarted",
           absl::StrCat("slot ", slot, " ", ExitSummary(*latest), "; not restarted: ", why_not)});
    }
    return;
  }
  const auto st = latest->status().state();
  const bool own_failure = st == v1::TASK_STATE_FAILED || st == v1::TASK_STATE_COMPLETE;
  absl::Time not_before = now;
  int attempt = latest->revision() == service.revision() ? latest->attempt() + 1 : 0;
  if (own_failure && latest->revision() == service.revision()) {
    // Consecutive quick failures in this slot set the backoff exponent.
    int streak = 0;
    for (auto rit = ts.rbegin(); rit != ts.rend(); ++rit) {
      const auto& rs = (*rit)->status();
      if (rs.state() != v1::TASK_STATE_FAILED && rs.state() != v1::TASK_STATE_COMPLETE) break;
      absl::Time started = FromProtoTime(rs.started_at());
      absl::Time finished = FromProtoTime(rs.finished_at());
      if (started != absl::InfinitePast() && finished - started >= kBackoffResetAfter) break;
      streak++;
    }
    absl::Time finished = FromProtoTime(latest->status().finished_at());
    if (finished == absl::InfinitePast()) finished = FromProtoTime(latest->status().timestamp());
    not_before =
        std::max(now, finished + Reconciler::Backoff(latest->spec().restart_policy(), streak));
  } else {
    attempt = latest->revision() == service.revision() ? latest->attempt() : 0;
  }
  if (latest->desired_state() == v1::TASK_STATE_RUNNING) {
    v1::Task old = *latest;
    old.set_desired_state(v1::TASK_STATE_SHUTDOWN);
    out.update.push_back(std::move(old));
  }
  v1::Task replacement = Reconciler::NewTask(service, slot, node_id, attempt, now, not_before);
  if (own_failure) {
    out.events.push_back(
        {"task", latest->id(), name, "restarting",
         absl::StrCat("slot ", slot, " ", ExitSummary(*latest), "; restarting in ",
                      warren::FormatDuration(not_before - now), " as ", replacement.id())});
  } else if (st == v1::TASK_STATE_ORPHANED || st == v1::TASK_STATE_REJECTED) {
    out.events.push_back({"task", latest->id(), name, "rescheduled",
                          absl::StrCat("slot ", slot, " ", ExitSummary(*latest),
                                       "; rescheduled as ", replacement.id())});
  }
  if (not_before > now) out.next_wakeup = std::min(out.next_wakeup, not_before);
  out.create.push_back(std::move(replacement));
}

}  // namespace

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
  v1::Task t;
  t.set_id(NewId());
  t.set_service_id(service.id());
  t.set_service_name(service.spec().name());
  t.set_revision(service.revision());
  t.set_slot(slot);
  t.set_node_id(node_id);
  t.set_desired_state(v1::TASK_STATE_RUNNING);
  *t.mutable_spec() = service.spec().template_();
  t.set_port(TaskPort(service.spec().template_()));
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
                                       const std::vector<v1::Node>& nodes, absl::Time now) {
  ReconcileActions out;
  const bool global = service.spec().mode() == "global";
  const std::string& name = service.spec().name();

  // Slot key -> tasks by creation order.
  std::map<std::string, std::vector<const v1::Task*>> slots;
  for (const auto& t : tasks) {
    slots[global ? t.node_id() : std::to_string(t.slot())].push_back(&t);
  }
  for (auto& [key, ts] : slots) {
    std::sort(ts.begin(), ts.end(), [](const v1::Task* a, const v1::Task* b) {
      if (a->revision() != b->revision()) return a->revision() < b->revision();
      if (a->attempt() != b->attempt()) return a->attempt() < b->attempt();
      return FromProtoTime(a->created_at()) < FromProtoTime(b->created_at());
    });
  }

  // The slots that should exist.
  std::vector<std::pair<std::string, int>> wanted;  // key, slot number
  std::map<std::string, bool> wanted_set;
  if (global) {
    for (const auto& n : nodes) {
      if (n.state() != v1::NODE_STATE_READY) continue;
      bool ok = true;
      for (const auto& c : service.spec().template_().constraints()) {
        auto m = MatchConstraint(c, n);
        if (!m.ok() || !*m) ok = false;
      }
      if (!ok) continue;
      wanted.emplace_back(n.id(), 0);
      wanted_set[n.id()] = true;
    }
  } else {
    for (int i = 1; i <= service.spec().replicas(); ++i) {
      wanted.emplace_back(std::to_string(i), i);
      wanted_set[std::to_string(i)] = true;
    }
  }

  // Slots that are no longer wanted: shut down live tasks, drop terminal ones.
  for (const auto& [key, ts] : slots) {
    if (wanted_set.count(key)) continue;
    for (const v1::Task* t : ts) {
      if (IsLive(*t)) {
        ShutDown(*t, global ? "node no longer eligible" : "scaled down", &out);
        out.events.push_back({"task", t->id(), name, "shutdown",
                              absl::StrCat("slot ", t->slot(), " removed (scale down)")});
      } else if (IsTerminal(t->status().state())) {
        out.remove.push_back(t->id());
      }
    }
  }

  int in_transition = 0;
  std::vector<std::pair<std::string, int>> stale_slots;
  for (const auto& [key, slot] : wanted) {
    auto it = slots.find(key);
    const std::string node_id = global ? key : "";
    if (it == slots.end()) {
      out.create.push_back(NewTask(service, slot, node_id, 0, now, now));
      continue;
    }
    const auto& ts = it->second;
    std::vector<const v1::Task*> live;
    for (const v1::Task* t : ts) {
      if (IsLive(*t)) live.push_back(t);
    }

    // History: keep the newest terminal tasks only.
    int terminal_seen = 0;
    for (auto rit = ts.rbegin(); rit != ts.rend(); ++rit) {
      if (!IsTerminal((*rit)->status().state()) ||
          (*rit)->desired_state() == v1::TASK_STATE_RUNNING)
        continue;
      if (++terminal_seen > kHistoryPerSlot) out.remove.push_back((*rit)->id());
    }

    if (!live.empty()) {
      const v1::Task* newest = live.back();
      bool newest_current = newest->revision() == service.revision();
      // More than one live task: a start-first replacement in flight (or a leftover).
      for (size_t i = 0; i + 1 < live.size(); ++i) {
        const v1::Task* older = live[i];
        if (newest_current && older->revision() != service.revision()) {
          if (IsServing(*newest)) {
            ShutDown(*older, "replaced by revision " + std::to_string(service.revision()), &out);
            out.events.push_back({"task", older->id(), name, "replaced",
                                  absl::StrCat("slot ", slot, ": revision ", older->revision(),
                                               " replaced by ", newest->id())});
          } else {
            in_transition++;
          }
        } else {
          ShutDown(*older, "duplicate task in slot", &out);
        }
      }
      if (!newest_current) {
        const v1::Task* latest = ts.back();
        if (latest->revision() == service.revision() && IsTerminal(latest->status().state())) {
          // The new revision's task in this slot died: restart it under the backoff.
          ReplaceTerminal(service, ts, slot, node_id, now, &out);
          in_transition++;
        } else {
          stale_slots.emplace_back(key, slot);
        }
      }
      continue;
    }

    // No live task: first task, refill, or restart.
    ReplaceTerminal(service, ts, slot, node_id, now, &out);
  }

  // Template update: one start-first replacement at a time.
  if (in_transition == 0 && !stale_slots.empty()) {
    const auto& [key, slot] = stale_slots.front();
    out.create.push_back(NewTask(service, slot, global ? key : "", 0, now, now));
    out.events.push_back({"service", service.id(), name, "updating",
                          absl::StrCat("slot ", slot, ": starting revision ", service.revision())});
  }
  return out;
}

}  // namespace warren
