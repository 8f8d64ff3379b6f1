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
  return ControllerStats{passes_.load(), commits_.load(), conflicts_.load()};
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

absl::Time Controller::RunPass() {
  passes_++;
  const absl::Time now = clock_.Now();
  absl::Time next = absl::InfiniteFuture();

  std::vector<v1::Node> nodes = ListObjects<v1::Node>(store_);
  std::vector<v1::Task> tasks = ListObjects<v1::Task>(store_);
  std::vector<v1::Service> services = ListObjects<v1::Service>(store_);

  // 1. Node liveness: a node silent for node_timeout is down and its tasks are orphaned.
  for (auto& node : nodes) {
    if (node.state() != v1::NODE_STATE_READY) continue;
    absl::Time deadline = liveness_.LastSeen(node.id()) + node_timeout_;
    if (deadline > now) {
      next = std::min(next, deadline);
      continue;
    }
    std::vector<Mutation> m;
    v1::Node down = node;
    down.set_state(v1::NODE_STATE_DOWN);
    down.set_message(absl::StrCat("no heartbeat for ", absl::FormatDuration(node_timeout_)));
    m.push_back(PutMutation(down, node.version()));
    m.push_back(events_.Make("node", node.id(), node.name(), "down", down.message()));
    for (const auto& t : tasks) {
      if (t.node_id() != node.id() || IsTerminal(t.status().state())) continue;
      v1::Task lost = t;
      auto* st = lost.mutable_status();
      st->set_state(v1::TASK_STATE_ORPHANED);
      st->set_message(absl::StrCat("node ", node.name(), " is down"));
      *st->mutable_timestamp() = ToProtoTime(now);
      *st->mutable_finished_at() = ToProtoTime(now);
      m.push_back(PutMutation(lost, t.version()));
    }
    spdlog::warn("node {} ({}) is down: no heartbeat for {}", node.name(), node.id(),
                 absl::FormatDuration(node_timeout_));
    if (CommitOrCount(m)) {
      // Re-read: the orphaned tasks must be rescheduled in this very pass.
      return clock_.Now();
    }
  }

  // 2. Tasks of deleted services: stop them, then forget them.
  std::map<std::string, std::vector<v1::Task>> by_service;
  std::map<std::string, const v1::Service*> service_by_id;
  for (const auto& s : services) service_by_id[s.id()] = &s;
  std::map<std::string, const v1::Node*> node_by_id;
  for (const auto& n : nodes) node_by_id[n.id()] = &n;
  // A service whose record is corrupt is not deleted: its tasks keep running untouched.
  std::set<std::string> corrupt_services;
  for (const auto& c : store_.Corruption()) {
    if (c.kind == Kind::kService) corrupt_services.insert(c.id);
  }
  {
    std::vector<Mutation> m;
    for (auto& t : tasks) {
      if (service_by_id.count(t.service_id())) {
        // Moved, not copied: parsed tasks are most of a pass's memory (docs/benchmarks.md).
        by_service[t.service_id()].push_back(std::move(t));
        continue;
      }
      if (corrupt_services.count(t.service_id())) continue;
      auto node = node_by_id.find(t.node_id());
      bool node_down = node == node_by_id.end() || node->second->state() != v1::NODE_STATE_READY;
      if (IsTerminal(t.status().state()) || node_down) {
        m.push_back(DeleteMutation(t, t.version()));
      } else if (t.desired_state() != v1::TASK_STATE_SHUTDOWN) {
        v1::Task stop = t;
        stop.set_desired_state(v1::TASK_STATE_SHUTDOWN);
        stop.mutable_status()->set_message("service removed");
        m.push_back(PutMutation(stop, t.version()));
      }
    }
    CommitOrCount(m);
  }

  // 3. Advance each service's deployment (its user intents first), then reconcile its tasks.
  std::vector<v1::Deployment> deployments = ListObjects<v1::Deployment>(store_);
  std::vector<v1::Revision> all_revisions = ListObjects<v1::Revision>(store_);
  if (UpgradeLegacyObjects(deployments, all_revisions)) {
    deployments = ListObjects<v1::Deployment>(store_);
    all_revisions = ListObjects<v1::Revision>(store_);
  }
  std::map<std::string, std::vector<const v1::Deployment*>> deployments_by_service;
  for (const auto& d : deployments) deployments_by_service[d.service_id()].push_back(&d);
  std::map<std::string, RevisionMap> revisions_by_service;
  for (auto& r : all_revisions) revisions_by_service[r.service_id()][r.number()] = std::move(r);
  // A draining node holds no global slot: a rollout counts the slots the reconciler keeps.
  const std::vector<v1::Node> slot_nodes = Reconciler::SlotNodes(nodes);
  for (v1::Service service : services) {
    const RevisionMap& revisions = revisions_by_service[service.id()];
    const auto& mine = deployments_by_service[service.id()];
    std::optional<v1::Deployment> rollout;
    const v1::Deployment* latest = nullptr;
    const v1::Deployment* newest_active = nullptr;
    for (const v1::Deployment* d : mine) {
      auto newer = [&](const v1::Deployment* than) {
        return than == nullptr ||
               FromProtoTime(than->created_at()) < FromProtoTime(d->created_at());
      };
      if (newer(latest)) latest = d;
      if (IsActive(*d) && newer(newest_active)) newest_active = d;
    }
    PassInput in{service, by_service[service.id()], slot_nodes, revisions, now, AnalysisSources{}};
    // A newer deployment replaced these before they finished.
    for (const v1::Deployment* d : mine) {
      if (d == newest_active || !IsActive(*d) || newest_active == nullptr) continue;
      CommitStep(RolloutController::Supersede(in, *d, *newest_active), *d, service);
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
      if (traffic_ &&
          analysis::SyncDeploymentWindow(&step.deployment, snapshot, now, step.changed)) {
        step.changed = true;
      }
      next = std::min(next, step.next_wakeup);
      if (step.changed && !CommitStep(step, *subject, service)) continue;
      if (step.service) service = *step.service;
      if (step.started) {
        rollout = *step.started;
      } else if (IsActive(step.deployment) || IsWarm(step.deployment, now)) {
        rollout = step.deployment;
      }
      if (IsWarm(step.deployment, now)) {
        next = std::min(next, FromProtoTime(step.deployment.warm_until()));
      }
    } else if (latest != nullptr && IsWarm(*latest, now)) {
      rollout = *latest;
      next = std::min(next, FromProtoTime(latest->warm_until()));
    }
    std::map<int64_t, v1::TaskTemplate> templates;
    for (const auto& [number, r] : revisions) templates[number] = r.template_();
    ReconcileActions a =
        Reconciler::Reconcile(service, by_service[service.id()], nodes, now,
                              rollout ? &*rollout : nullptr, &templates, task_history_);
    next = std::min(next, a.next_wakeup);
    if (a.empty()) continue;
    std::vector<Mutation> m;
    for (const auto& t : a.create) m.push_back(PutMutation(t, Mutation::kMustNotExist));
    for (const auto& t : a.update) m.push_back(PutMutation(t, t.version()));
    for (const auto& e : a.events) {
      m.push_back(
          events_.Make(e.kind, e.object_id, e.object_name, e.action, e.message, service.id()));
    }
    CommitOrCount(m);
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
    CommitOrCount(prune);
  }

  // 4. Schedule pending tasks (re-read: the reconciler may just have created some).
  // The tasks read at the start go before they are read again: two parsed copies of every
  // task at once were the manager's memory peak.
  by_service.clear();
  tasks.clear();
  tasks.shrink_to_fit();
  tasks = ListObjects<v1::Task>(store_);
  std::vector<v1::Task> active, pending;
  for (auto& t : tasks) {
    if (IsTerminal(t.status().state())) continue;
    if (t.status().state() == v1::TASK_STATE_PENDING) {
      if (t.desired_state() != v1::TASK_STATE_RUNNING) continue;
      absl::Time not_before = FromProtoTime(t.not_before());
      if (not_before > now) {
        next = std::min(next, not_before);
        continue;
      }
      pending.push_back(std::move(t));
    } else if (!t.node_id().empty()) {
      active.push_back(std::move(t));
    }
  }
  // Pending tasks whose desired state is shutdown never ran: finish them here.
  {
    std::vector<Mutation> m;
    for (const auto& t : tasks) {
      if (t.status().state() == v1::TASK_STATE_PENDING &&
          t.desired_state() == v1::TASK_STATE_SHUTDOWN) {
        v1::Task done = t;
        done.mutable_status()->set_state(v1::TASK_STATE_SHUTDOWN);
        done.mutable_status()->set_message("shut down before it started");
        *done.mutable_status()->mutable_timestamp() = ToProtoTime(now);
        m.push_back(PutMutation(done, t.version()));
      }
    }
    CommitOrCount(m);
  }
  if (!pending.empty()) {
    Scheduler::Result r = Scheduler::Schedule(nodes, active, pending);
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
    // Scheduling is all-or-nothing per pass: on a conflict the next pass places everything.
    CommitOrCount(m);
  }

  if (now - last_prune_ > absl::Seconds(10)) {
    last_prune_ = now;
    events_.Prune();
  }
  return next;
}

void Controller::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Controller::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Controller::Loop() {
  uint64_t seen = 0;
  uint64_t trimmed_at_version = 0;
  absl::Time last_trim = absl::InfinitePast();
  while (!stop_) {
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
