#include "manager/controller.h"

#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/heap.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "manager/analysis/deployment.h"
#include "manager/analysis/verdict.h"
#include "manager/deployment_log.h"
#include "manager/prometheus.h"
#include "manager/reconciler.h"
#include "manager/rollout/legacy.h"
#include "manager/rollout/rollout.h"
#include "manager/scheduler.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {

Controller::Controller(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
                       absl::Duration node_timeout, ManagerMetrics* metrics)
    : store_(store),
      clock_(clock),
      events_(events),
      liveness_(liveness),
      node_timeout_(node_timeout),
      metrics_(metrics) {}

Controller::~Controller() { Stop(); }

void Controller::SetPrometheusUrl(std::string url, absl::Duration timeout) {
  prometheus_url_ = std::move(url);
  queries_.reset();
  if (prometheus_url_.empty()) return;
  queries_ = std::make_unique<analysis::QueryRunner>(
      [url = prometheus_url_, timeout](const std::string& q) {
        return QueryPrometheus(url, q, timeout);
      },
      clock_);
}

namespace {

// The deployment unchanged but for its query check, shown as waiting.
RolloutStep WaitForQuery(const v1::Deployment& d, absl::Time now) {
  RolloutStep step;
  step.deployment = d;
  step.next_wakeup = now + absl::Milliseconds(100);  // answers arrive without a store change
  const analysis::Thresholds t = analysis::ThresholdsFrom(d.config());
  v1::AnalysisResult waiting =
      analysis::ToProto(analysis::JudgeQuery(t, analysis::QueryOutcome::Pending()), now);
  auto* results = step.deployment.mutable_analysis();
  for (auto& r : *results) {
    if (r.check() != "query") continue;
    if (r.state() != v1::ANALYSIS_STATE_WAITING) {
      r = waiting;
      step.changed = true;
    }
    return step;
  }
  *results->Add() = std::move(waiting);
  step.changed = true;
  return step;
}

}  // namespace

ControllerStats Controller::stats() const {
  return ControllerStats{passes_.load(),
                         commits_.load(),
                         conflicts_.load(),
                         full_passes_.load(),
                         services_visited_.load(),
                         last_visited_.load(),
                         last_schedule_work_.load(),
                         term_passes_.load(),
                         led_.load(),
                         resyncs_.load(),
                         repaired_.load()};
}

bool Controller::UpgradeLegacyObjects(const std::vector<v1::Deployment>& deployments,
                                      const std::vector<v1::Revision>& revisions) {
  std::vector<Mutation> m;
  for (v1::Deployment d : deployments) {
    const uint64_t version = d.version();
    if (UpgradeLegacyFields(&d)) m.push_back(PutMutation(d, version));
  }
  for (v1::Revision r : revisions) {
    const uint64_t version = r.version();
    if (UpgradeLegacyFields(&r)) m.push_back(PutMutation(r, version));
  }
  if (m.empty()) return false;
  spdlog::info("upgrading {} deployments and revisions written by an older version", m.size());
  return CommitOrCount(m);
}

bool Controller::CommitStep(const RolloutStep& step, const v1::Deployment& stored,
                            const v1::Service& service) {
  if (!step.changed) return true;
  std::vector<Mutation> m = {PutMutation(step.deployment, stored.version())};
  if (step.service) m.push_back(PutMutation(*step.service, service.version()));
  if (step.started) m.push_back(PutMutation(*step.started, Mutation::kMustNotExist));
  for (const auto& r : step.revisions) m.push_back(PutMutation(r, r.version()));
  for (const auto& e : step.events) {
    m.push_back(
        events_.Make(e.kind, e.object_id, e.object_name, e.action, e.message, service.id()));
  }
  if (!CommitOrCount(m)) return false;  // decided again on the next pass
  LogDeploymentTransition(stored, step.deployment);
  if (metrics_ == nullptr) return true;
  const v1::Deployment& d = step.deployment;
  if (step.finished != v1::DEPLOYMENT_PHASE_UNSPECIFIED) {
    metrics_->DeploymentFinished(d.strategy(), step.finished,
                                 FromProtoTime(d.finished_at()) - FromProtoTime(d.created_at()));
  }
  if (step.rollback_started != v1::ROLLBACK_REASON_UNSPECIFIED) {
    metrics_->Rollback(step.rollback_started);
  }
  if (step.promoted_step) metrics_->CanaryStep();
  return true;
}

bool Controller::CommitOrCount(const std::vector<Mutation>& mutations) {
  if (mutations.empty()) return true;
  auto s = store_.Commit(mutations);
  if (s.ok()) {
    commits_++;
    return true;
  }
  // A concurrent write (a worker's status report, an API call) won the race; the next pass
  // sees it and decides again.
  if (s.status().code() == absl::StatusCode::kAborted ||
      s.status().code() == absl::StatusCode::kNotFound) {
    conflicts_++;
  } else {
    spdlog::error("controller commit failed: {}", s.status().ToString());
  }
  return false;
}

bool Controller::CommitInParts(const std::vector<Mutation>& mutations) {
  const size_t part = std::max<size_t>(1, store_.MaxMutationsPerCommit());
  if (mutations.size() <= part) return CommitOrCount(mutations);
  bool all = true;
  for (size_t at = 0; at < mutations.size(); at += part) {
    const auto begin = mutations.begin() + static_cast<std::ptrdiff_t>(at);
    const auto end =
        mutations.begin() + static_cast<std::ptrdiff_t>(std::min(at + part, mutations.size()));
    all = CommitOrCount(std::vector<Mutation>(begin, end)) && all;
  }
  return all;
}

void Controller::DeferReconcile(std::vector<Mutation> mutations) {
  // Bounds one transaction (a task is about a kilobyte) and what a conflict sends back to
  // per-service commits.
  constexpr size_t kMaxDeferredMutations = 2048;
  if (mutations.empty()) return;
  deferred_mutations_ += mutations.size();
  deferred_.push_back(std::move(mutations));
  if (deferred_mutations_ >= std::min(kMaxDeferredMutations, store_.MaxMutationsPerCommit())) {
    FlushReconciles();
  }
}

void Controller::FlushReconciles() {
  std::vector<std::vector<Mutation>> batch = std::move(deferred_);
  deferred_.clear();
  deferred_mutations_ = 0;
  // A reconcile's actions stand on their own (level-triggered: what is not done is decided
  // again), so one service's may be committed in parts.
  if (batch.size() == 1) {
    CommitInParts(batch[0]);
    return;
  }
  if (batch.empty()) return;
  std::vector<Mutation> all;
  for (auto& m : batch) all.insert(all.end(), m.begin(), m.end());
  if (all.size() <= store_.MaxMutationsPerCommit()) {
    auto s = store_.Commit(all);
    if (s.ok()) {
      commits_++;
      return;
    }
    if (s.status().code() != absl::StatusCode::kAborted &&
        s.status().code() != absl::StatusCode::kNotFound) {
      spdlog::error("controller commit failed: {}", s.status().ToString());
    }
  }
  for (const auto& m : batch) CommitInParts(m);
}

void Controller::SetTimer(const std::string& service_id, absl::Time at) {
  auto it = wake_at_.find(service_id);
  if (it != wake_at_.end()) {
    if (it->second == at) return;
    timers_.erase({it->second, service_id});
    wake_at_.erase(it);
  }
  if (at == absl::InfiniteFuture()) return;
  wake_at_[service_id] = at;
  timers_.insert({at, service_id});
}

bool Controller::MarkSilentNodesDown(absl::Time now, absl::Time* next) {
  const std::vector<v1::Node> nodes = index_.nodes();
  for (const auto& node : nodes) {
    if (node.state() != v1::NODE_STATE_READY) continue;
    absl::Time deadline = liveness_.AliveSince(node.id()) + node_timeout_;
    if (deadline > now) {
      *next = std::min(*next, deadline);
      continue;
    }
    std::vector<Mutation> m;
    for (const auto& [id, e] : index_.tasks()) {
      if (e.node_id != node.id() || IsTerminal(e.state)) continue;
      std::optional<v1::Task> t = GetObject<v1::Task>(store_, id);
      if (!t || IsTerminal(t->status().state())) continue;
      v1::Task lost = *t;
      auto* st = lost.mutable_status();
      st->set_state(v1::TASK_STATE_ORPHANED);
      st->set_message(absl::StrCat("node ", node.name(), " is down"));
      *st->mutable_timestamp() = ToProtoTime(now);
      *st->mutable_finished_at() = ToProtoTime(now);
      m.push_back(PutMutation(lost, t->version()));
    }
    // Too many tasks for one commit: they are orphaned first, in parts, and the node is
    // marked down last, so that a pass cut short finds the node still up and starts again.
    if (m.size() + 2 > store_.MaxMutationsPerCommit()) {
      if (!CommitInParts(m)) return true;
      m.clear();
    }
    v1::Node down = node;
    down.set_state(v1::NODE_STATE_DOWN);
    down.set_message(absl::StrCat("no heartbeat for ", absl::FormatDuration(node_timeout_)));
    m.push_back(PutMutation(down, node.version()));
    m.push_back(events_.Make("node", node.id(), node.name(), "down", down.message()));
    spdlog::warn("node {} ({}) is down: no heartbeat for {}", node.name(), node.id(),
                 absl::FormatDuration(node_timeout_));
    if (CommitOrCount(m)) return true;
  }
  return false;
}

void Controller::StopTasksOfDeleted(const std::vector<std::string>& service_ids) {
  if (service_ids.empty()) return;
  // A service whose record is corrupt is not deleted: its tasks keep running untouched.
  std::set<std::string> corrupt_services;
  for (const auto& c : store_.Corruption()) {
    if (c.kind == Kind::kService) corrupt_services.insert(c.id);
  }
  std::vector<Mutation> m;
  for (const std::string& service_id : service_ids) {
    if (corrupt_services.count(service_id)) continue;
    for (const std::string& id : index_.TasksOf(service_id)) {
      std::optional<v1::Task> t = GetObject<v1::Task>(store_, id);
      if (!t) continue;
      bool node_down = true;
      for (const auto& n : index_.nodes()) {
        if (n.id() == t->node_id()) node_down = n.state() != v1::NODE_STATE_READY;
      }
      if (IsTerminal(t->status().state()) || node_down) {
        m.push_back(DeleteMutation(*t, t->version()));
      } else if (t->desired_state() != v1::TASK_STATE_SHUTDOWN) {
        v1::Task stop = *t;
        stop.set_desired_state(v1::TASK_STATE_SHUTDOWN);
        stop.mutable_status()->set_message("service removed");
        m.push_back(PutMutation(stop, t->version()));
      }
    }
    for (const std::string& id : index_.RevisionsOf(service_id)) {
      if (auto r = GetObject<v1::Revision>(store_, id)) m.push_back(DeleteMutation(*r));
    }
    for (const std::string& id : index_.DeploymentsOf(service_id)) {
      if (auto d = GetObject<v1::Deployment>(store_, id)) m.push_back(DeleteMutation(*d));
    }
  }
  CommitInParts(m);
}

absl::Time Controller::VisitService(const std::string& service_id, absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  std::optional<v1::Service> found = GetObject<v1::Service>(store_, service_id);
  if (!found) return next;
  v1::Service service = std::move(*found);
  std::vector<v1::Task> tasks;
  for (const std::string& id : index_.TasksOf(service_id)) {
    if (auto t = GetObject<v1::Task>(store_, id)) tasks.push_back(std::move(*t));
  }
  auto read_owned = [&](std::vector<v1::Deployment>* deployments,
                        std::vector<v1::Revision>* revisions) {
    deployments->clear();
    revisions->clear();
    for (const std::string& id : index_.DeploymentsOf(service_id)) {
      if (auto d = GetObject<v1::Deployment>(store_, id)) deployments->push_back(std::move(*d));
    }
    for (const std::string& id : index_.RevisionsOf(service_id)) {
      if (auto r = GetObject<v1::Revision>(store_, id)) revisions->push_back(std::move(*r));
    }
  };
  std::vector<v1::Deployment> deployments;
  std::vector<v1::Revision> all_revisions;
  read_owned(&deployments, &all_revisions);
  if (UpgradeLegacyObjects(deployments, all_revisions)) read_owned(&deployments, &all_revisions);
  RevisionMap revisions;
  for (auto& r : all_revisions) revisions[r.number()] = std::move(r);

  const std::vector<v1::Node>& nodes = index_.nodes();
  // A draining node holds no global slot: a rollout counts the slots the reconciler keeps.
  const std::vector<v1::Node> slot_nodes = Reconciler::SlotNodes(nodes);
  std::optional<v1::Deployment> rollout;
  const v1::Deployment* latest = nullptr;
  const v1::Deployment* newest_active = nullptr;
  for (const v1::Deployment& dep : deployments) {
    const v1::Deployment* d = &dep;
    auto newer = [&](const v1::Deployment* than) {
      return than == nullptr || FromProtoTime(than->created_at()) < FromProtoTime(d->created_at());
    };
    if (newer(latest)) latest = d;
    if (IsActive(*d) && newer(newest_active)) newest_active = d;
  }
  PassInput in{service, tasks, slot_nodes, revisions, now, AnalysisSources{}};
  // A newer deployment replaced these before they finished.
  for (const v1::Deployment& d : deployments) {
    if (&d == newest_active || !IsActive(d) || newest_active == nullptr) continue;
    CommitStep(RolloutController::Supersede(in, d, *newest_active), d, service);
  }
  // The active deployment, or the latest one when a person asked something of it (a
  // rollback after it finished).
  const v1::Deployment* subject = newest_active;
  if (subject == nullptr && latest != nullptr) {
    for (const auto& i : latest->intents()) {
      if (!i.applied()) subject = latest;
    }
  }
  if (subject != nullptr) {
    const v1::Deployment& stored = *subject;
    analysis::TrafficSnapshot snapshot;
    TrafficWindow window;
    if (traffic_) {
      snapshot = traffic_->Snapshot(service.id());
      window = [&](const std::string&, absl::Duration w) {
        // The deployment's own window (which survives a manager restart) when that is the
        // one asked for, else the in-memory history.
        if (auto t = analysis::StoredWindowTraffic(stored, now - w, snapshot)) {
          return analysis::ToProto(*t);
        }
        return traffic_->Recent(service.id(), w);
      };
    }
    bool query_pending = false;
    QueryFunction query;
    if (queries_) {
      query = [&](const std::string& q) -> absl::StatusOr<double> {
        analysis::QueryOutcome o = queries_->Get({stored.id(), analysis::QueryStage(stored), q});
        if (o.kind == analysis::QueryOutcome::Kind::kPending) {
          query_pending = true;
          return absl::UnavailableError("waiting for Prometheus");
        }
        if (o.kind == analysis::QueryOutcome::Kind::kError) {
          return absl::UnavailableError(o.error);
        }
        return o.value;
      };
    }
    in.analysis = AnalysisSources{traffic_ ? &window : nullptr, queries_ ? &query : nullptr};
    RolloutStep step = RolloutController::Advance(in, stored);
    // What the step decided waits for Prometheus' answer: nothing of it is committed (the
    // next pass decides again, pending intents included), only the query check shows as
    // waiting.
    if (query_pending) step = WaitForQuery(stored, now);
    if (traffic_ && analysis::SyncDeploymentWindow(&step.deployment, snapshot, now, step.changed)) {
      step.changed = true;
    }
    next = std::min(next, step.next_wakeup);
    // Looked at again on every pass while it lasts (its analysis reads traffic, not the store).
    in_deployment_.insert(service_id);
    if (step.changed && !CommitStep(step, *subject, service)) return next;
    if (step.service) service = *step.service;
    if (step.started) {
      rollout = *step.started;
    } else if (IsActive(step.deployment) || IsWarm(step.deployment, now)) {
      rollout = step.deployment;
    }
    if (IsWarm(step.deployment, now)) {
      next = std::min(next, FromProtoTime(step.deployment.warm_until()));
    }
    if (!rollout) in_deployment_.erase(service_id);
  } else {
    in_deployment_.erase(service_id);
    if (latest != nullptr && IsWarm(*latest, now)) {
      rollout = *latest;
      next = std::min(next, FromProtoTime(latest->warm_until()));
    }
  }
  std::map<int64_t, v1::TaskTemplate> templates;
  for (const auto& [number, r] : revisions) templates[number] = r.template_();
  ReconcileActions a = Reconciler::Reconcile(
      service, tasks, nodes, now, rollout ? &*rollout : nullptr, &templates, task_history_);
  next = std::min(next, a.next_wakeup);
  if (a.empty()) return next;
  std::vector<Mutation> m;
  for (const auto& t : a.create) m.push_back(PutMutation(t, Mutation::kMustNotExist));
  for (const auto& t : a.update) m.push_back(PutMutation(t, t.version()));
  for (const auto& e : a.events) {
    m.push_back(
        events_.Make(e.kind, e.object_id, e.object_name, e.action, e.message, service.id()));
  }
  DeferReconcile(std::move(m));
  // Pruning commits on its own: a task that changed meanwhile (a late status report) only
  // keeps itself until the next pass, not the service's other actions.
  std::vector<Mutation> prune;
  for (const auto& r : a.remove) {
    Mutation d;
    d.kind = Kind::kTask;
    d.id = r.id;
    d.expected_version = r.version;
    prune.push_back(std::move(d));
  }
  CommitInParts(prune);
  return next;
}

absl::Time Controller::SchedulePending(absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  std::vector<v1::Task> pending;
  std::vector<Mutation> finished;
  last_schedule_work_ = 0;
  for (const std::string& id : index_.pending()) {
    last_schedule_work_++;
    const TaskEntry& e = index_.tasks().at(id);
    if (e.desired == v1::TASK_STATE_SHUTDOWN) {
      // Pending tasks whose desired state is shutdown never ran: finish them here.
      std::optional<v1::Task> t = GetObject<v1::Task>(store_, id);
      if (!t) continue;
      v1::Task done = *t;
      done.mutable_status()->set_state(v1::TASK_STATE_SHUTDOWN);
      done.mutable_status()->set_message("shut down before it started");
      *done.mutable_status()->mutable_timestamp() = ToProtoTime(now);
      finished.push_back(PutMutation(done, t->version()));
      continue;
    }
    if (e.desired != v1::TASK_STATE_RUNNING) continue;
    if (e.not_before > now) {
      next = std::min(next, e.not_before);
      continue;
    }
    if (auto t = GetObject<v1::Task>(store_, id)) pending.push_back(std::move(*t));
  }
  CommitInParts(finished);
  if (pending.empty()) return next;
  // What placed tasks hold comes from the index, kept per node as tasks change: a round
  // neither parses nor counts the placed tasks (issue 18).
  Scheduler::Result r = Scheduler::ScheduleOnLoads(index_.nodes(), index_.node_loads(), pending);
  last_schedule_work_ += r.work;
  std::vector<Mutation> m;
  for (auto& t : r.assigned) {
    *t.mutable_status()->mutable_timestamp() = ToProtoTime(now);
    t.mutable_status()->clear_error();  // the unschedulable reason no longer holds
    m.push_back(PutMutation(t, t.version()));
  }
  std::map<std::string, const v1::Task*> pending_by_id;
  for (const auto& t : pending) pending_by_id[t.id()] = &t;
  for (const auto& [id, reason] : r.unplaced) {
    const v1::Task* t = pending_by_id[id];
    if (t->status().message() == "no suitable node: " + reason) continue;
    v1::Task waiting = *t;
    waiting.mutable_status()->set_message("no suitable node: " + reason);
    // The error too: `service ps` shows it in ERROR, as it shows a start that failed.
    waiting.mutable_status()->set_error(waiting.status().message());
    m.push_back(PutMutation(waiting, t->version()));
    m.push_back(events_.Make("task", t->id(), t->service_name(), "unschedulable",
                             waiting.status().message(), t->service_id()));
  }
  // On a conflict the next pass places what is still pending (in parts, what the store took
  // stays placed, and the next round counts it).
  CommitInParts(m);
  return next;
}

bool Controller::UpdateLeadership() {
  const bool leading = !leading_ || leading_();
  if (leading && !led_) {
    BeginTerm();
  } else if (!leading && led_) {
    spdlog::warn("controller: no longer leading; passes stop until this manager leads again");
  }
  led_ = leading;
  return leading;
}

void Controller::BeginTerm() {
  index_.Invalidate();
  next_resync_ = absl::InfinitePast();
  carried_dirty_.clear();
  wake_at_.clear();
  timers_.clear();
  in_deployment_.clear();
  deferred_.clear();
  deferred_mutations_ = 0;
  schedule_at_ = absl::InfinitePast();
  liveness_.StartGrace();
  if (traffic_ != nullptr) traffic_->Reset();
  term_passes_ = 0;
  if (leading_) {
    spdlog::info("controller: leading; rebuilding from the store, every node has {} of grace",
                 absl::FormatDuration(node_timeout_));
  }
}

absl::Time Controller::RunPass() {
  passes_++;
  term_passes_++;
  const absl::Time started = absl::Now();
  const absl::Time now = clock_.Now();
  absl::Time next = absl::InfiniteFuture();

  ClusterIndex::Dirty dirty = index_.Sync();
  bool resynced = false;
  if (dirty.all) {
    next_resync_ = now + resync_interval_;
  } else if (now >= next_resync_) {
    resynced = true;
    // The resync: what the feed did not say is applied again, and its services looked at.
    ClusterIndex::Dirty missed = index_.Verify();
    dirty.all |= missed.all;
    dirty.nodes |= missed.nodes;
    dirty.tasks |= missed.tasks;
    dirty.ingresses |= missed.ingresses;
    dirty.services.merge(missed.services);
    next_resync_ = now + resync_interval_;
    resyncs_++;
    repaired_ = index_.repaired();
  }
  dirty.services.merge(carried_dirty_);
  carried_dirty_.clear();

  // 1. Node liveness: a node silent for node_timeout is down and its tasks are orphaned.
  if (MarkSilentNodesDown(now, &next)) {
    // The orphaned tasks must be rescheduled at once: the next pass sees them.
    carried_dirty_ = std::move(dirty.services);
    if (dirty.all || dirty.nodes) index_.Invalidate();  // the next pass looks at everything
    return clock_.Now();
  }

  // What this pass looks at: every service after a resync or a node change (global services
  // follow nodes, drained nodes move tasks), else the dirty ones, the due ones and those in a
  // deployment.
  std::set<std::string> visit;
  const bool full = dirty.all || dirty.nodes;
  if (full) {
    full_passes_++;
    visit = index_.service_ids();
    for (std::string& id : index_.ServicesWithTasks()) visit.insert(std::move(id));
  } else {
    visit = std::move(dirty.services);
    while (!timers_.empty() && timers_.begin()->first <= now) {
      visit.insert(timers_.begin()->second);
      wake_at_.erase(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
    visit.insert(in_deployment_.begin(), in_deployment_.end());
  }
  last_visited_ = visit.size();
  services_visited_ += visit.size();
  if (metrics_) metrics_->ControllerDirty(visit.size());

  // 2. Tasks of deleted services: stop them, then forget them.
  std::vector<std::string> deleted;
  for (const std::string& id : visit) {
    if (!index_.service_ids().count(id)) deleted.push_back(id);
  }
  StopTasksOfDeleted(deleted);

  // 3. Advance each service's deployment (its user intents first), then reconcile its tasks.
  for (const std::string& id : visit) {
    if (!index_.service_ids().count(id)) {
      SetTimer(id, absl::InfiniteFuture());
      in_deployment_.erase(id);
      continue;
    }
    SetTimer(id, VisitService(id, now));
  }
  FlushReconciles();
  if (!timers_.empty()) next = std::min(next, timers_.begin()->first);

  // 4. Schedule pending tasks. The index is brought up to date first (the reconciler may just
  // have created some); the services those changes touch are looked at by the next pass.
  ClusterIndex::Dirty after = index_.Sync();
  carried_dirty_ = std::move(after.services);
  if (after.all) {
    // The feed was compacted meanwhile: the next pass looks at everything.
    index_.Invalidate();
  }
  if (full || dirty.tasks || after.tasks || now >= schedule_at_) {
    schedule_at_ = SchedulePending(now);
  }
  next = std::min(next, schedule_at_);

  const absl::Duration took = absl::Now() - started;
  if (metrics_) metrics_->ControllerPass(took);
  if (took >= kSlowPass) {
    // What a reaction behind this pass waited for: the operator's first clue. At most one line
    // per 10 s (bulk creates make many slow passes), with the count of those not logged.
    slow_passes_++;
    if (started - last_slow_log_ >= absl::Seconds(10)) {
      spdlog::warn(
          "controller: a pass took {} ({} services visited{}{}{}, {} tasks pending; {} passes of "
          "{} or more since the last such line)",
          absl::FormatDuration(took), visit.size(), full ? ", all of them" : "",
          dirty.all ? ": the index was rebuilt" : (dirty.nodes ? ": a node changed" : ""),
          resynced ? ", after the resync" : "", index_.pending().size(), slow_passes_,
          absl::FormatDuration(kSlowPass));
      last_slow_log_ = started;
      slow_passes_ = 0;
    }
  }
  return next;
}

void Controller::Start() {
  stop_ = false;
  {
    absl::MutexLock lock(&prune_mu_);
    prune_stop_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
  pruner_ = std::thread([this] { PruneLoop(); });
}

void Controller::Stop() {
  stop_ = true;
  {
    absl::MutexLock lock(&prune_mu_);
    prune_stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (pruner_.joinable()) pruner_.join();
}

void Controller::PruneLoop() {
  while (true) {
    {
      absl::MutexLock lock(&prune_mu_);
      prune_mu_.AwaitWithTimeout(absl::Condition(&prune_stop_), kEventPruneInterval);
      if (prune_stop_) return;
    }
    // Between its commits it stops for Stop() and when this manager no longer leads.
    auto keep_going = [this] {
      absl::MutexLock lock(&prune_mu_);
      return !prune_stop_ && led_;
    };
    if (led_) events_.Prune(keep_going);
  }
}

void Controller::Loop() {
  uint64_t seen = 0;
  uint64_t trimmed_at_version = 0;
  absl::Time last_trim = absl::InfinitePast();
  while (!stop_) {
    if (!UpdateLeadership()) {
      // Followers idle; the election wakes nothing here, so look again shortly.
      absl::SleepFor(absl::Milliseconds(20));
      continue;
    }
    seen = store_.Version();
    absl::Time next = RunPass();
    // Passes, assignment streams and task lists parse thousands of tasks and drop them again;
    // glibc keeps the freed memory in the heap, between live objects, so the high-water mark
    // of that churn stayed resident (manager RSS 62 MiB with 13 MiB in use, 1,000 services x 3
    // tasks). Give the free pages back at most once a second while the store changes.
    if (seen != trimmed_at_version && clock_.Now() - last_trim >= absl::Seconds(1)) {
      ReturnFreeHeapToOs();
      trimmed_at_version = seen;
      last_trim = clock_.Now();
    }
    absl::Duration wait = std::clamp(next - clock_.Now(), absl::ZeroDuration(), absl::Seconds(1));
    if (wait > absl::ZeroDuration()) store_.WaitForVersion(seen, wait);
  }
}

}  // namespace warren
