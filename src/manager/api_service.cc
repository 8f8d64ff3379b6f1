#include "manager/api_service.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "manager/rollout.h"
#include "manager/scheduler.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

using google::protobuf::util::MessageDifferencer;

// Retries for read-modify-write cycles that lose a race with another writer.
constexpr int kMaxRetries = 8;

absl::Status NodeNameError(const std::string& name) {
  return absl::InvalidArgumentError(
      absl::StrCat("name: \"", name,
                   "\" is not a valid node name (letters, digits, '-', '_' and '.', 1..253 "
                   "characters)"));
}

bool ValidNodeName(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

ApiService::ApiService(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
                       ApiOptions options, ManagerMetrics* metrics)
    : store_(store),
      clock_(clock),
      events_(events),
      liveness_(liveness),
      options_(options),
      metrics_(metrics) {}

absl::StatusOr<v1::Service> ApiService::FindService(const std::string& name_or_id) const {
  if (name_or_id.empty()) return absl::InvalidArgumentError("service: a name or id is required");
  if (auto s = GetObjectByName<v1::Service>(store_, name_or_id)) return *s;
  if (auto s = GetObject<v1::Service>(store_, name_or_id)) return *s;
  if (auto c = FindCorrupt(store_, Kind::kService, name_or_id)) return CorruptObjectError(*c);
  return absl::NotFoundError(absl::StrCat("service \"", name_or_id, "\" not found"));
}

absl::StatusOr<v1::Node> ApiService::FindNode(const std::string& name_or_id) const {
  if (name_or_id.empty()) return absl::InvalidArgumentError("node: a name or id is required");
  if (auto n = GetObjectByName<v1::Node>(store_, name_or_id)) return *n;
  if (auto n = GetObject<v1::Node>(store_, name_or_id)) return *n;
  if (auto c = FindCorrupt(store_, Kind::kNode, name_or_id)) return CorruptObjectError(*c);
  return absl::NotFoundError(absl::StrCat("node \"", name_or_id, "\" not found"));
}

void ApiService::FillLiveness(v1::Node* node) const {
  if (liveness_.Heard(node->id())) {
    *node->mutable_last_heartbeat() = ToProtoTime(liveness_.LastSeen(node->id()));
  }
}

grpc::Status ApiService::CreateService(grpc::ServerContext*, const v1::CreateServiceRequest* req,
                                       v1::Service* resp) {
  v1::ServiceSpec spec = req->spec();
  ApplySpecDefaults(&spec);
  if (auto s = ValidateServiceSpec(spec); !s.ok()) return ToGrpc(s);
  if (GetObjectByName<v1::Service>(store_, spec.name())) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("service \"", spec.name(), "\" already exists"));
  }
  const absl::Time now = clock_.Now();
  v1::Service svc;
  svc.set_id(NewId());
  *svc.mutable_spec() = spec;
  svc.set_revision(1);
  *svc.mutable_created_at() = ToProtoTime(now);
  *svc.mutable_updated_at() = ToProtoTime(now);
  if (req->dry_run()) {
    *resp = svc;
    return grpc::Status::OK;
  }
  v1::Revision rev;
  rev.set_id(NewId());
  rev.set_service_id(svc.id());
  rev.set_number(1);
  *rev.mutable_template_() = spec.template_();
  rev.set_change_cause("create");
  rev.set_strategy(spec.update_config().strategy().empty() ? "rolling"
                                                           : spec.update_config().strategy());
  rev.set_outcome("created");
  *rev.mutable_created_at() = ToProtoTime(now);
  std::vector<Mutation> m = {
      PutMutation(svc, Mutation::kMustNotExist), PutMutation(rev, Mutation::kMustNotExist),
      events_.Make("service", svc.id(), spec.name(), "created",
                   absl::StrCat("created with ", spec.replicas(), " replicas (revision 1)"),
                   svc.id())};
  auto v = store_.Commit(m);
  if (!v.ok()) {
    if (v.status().code() == absl::StatusCode::kAlreadyExists) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          absl::StrCat("service \"", spec.name(), "\" already exists"));
    }
    return ToGrpc(v.status());
  }
  svc.set_version(*v);
  *resp = svc;
  return grpc::Status::OK;
}

grpc::Status ApiService::GetService(grpc::ServerContext*, const v1::GetServiceRequest* req,
                                    v1::Service* resp) {
  auto s = FindService(req->name_or_id());
  if (!s.ok()) return ToGrpc(s.status());
  *resp = *s;
  return grpc::Status::OK;
}

grpc::Status ApiService::ListServices(grpc::ServerContext*, const v1::ListServicesRequest*,
                                      v1::ListServicesResponse* resp) {
  if (auto s = CorruptKindError(store_, Kind::kService); !s.ok()) return ToGrpc(s);
  auto services = ListObjects<v1::Service>(store_);
  std::sort(services.begin(), services.end(),
            [](const auto& a, const auto& b) { return a.spec().name() < b.spec().name(); });
  for (auto& s : services) *resp->add_services() = std::move(s);
  return grpc::Status::OK;
}

grpc::Status ApiService::UpdateService(grpc::ServerContext*, const v1::UpdateServiceRequest* req,
                                       v1::Service* resp) {
  v1::ServiceSpec spec = req->spec();
  ApplySpecDefaults(&spec);
  if (auto s = ValidateServiceSpec(spec); !s.ok()) return ToGrpc(s);
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    auto current = FindService(spec.name());
    if (!current.ok()) return ToGrpc(current.status());
    if (req->expected_version() != 0 && req->expected_version() != current->version()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("service \"", spec.name(), "\" changed since version ",
                                       req->expected_version(), " (now ", current->version(),
                                       "); read it again and retry"));
    }
    if (spec.replicas() > current->spec().replicas()) {
      // The store takes updates in place on a full disk, but the tasks to add would not fit.
      if (auto s = store_.CheckSpace(); !s.ok()) return ToGrpc(s);
    }
    if (current->spec().mode() != spec.mode()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("mode: cannot change from ", current->spec().mode(), " to ",
                                       spec.mode(), "; remove and recreate the service"));
    }
    const absl::Time now = clock_.Now();
    v1::Service next = *current;
    const bool template_changed =
        !MessageDifferencer::Equals(current->spec().template_(), spec.template_());
    StartedRollout started;
    *next.mutable_spec() = spec;
    std::vector<Mutation> m;
    std::string what;
    if (template_changed) {
      // A corrupt revision may hold the next number: never hand it out twice.
      if (auto s = CorruptKindError(store_, Kind::kRevision); !s.ok()) return ToGrpc(s);
      // Revision numbers only grow, even after a rollback to an older one.
      int64_t number = current->revision();
      for (const auto& r : ServiceRevisions(next.id())) number = std::max(number, r.number());
      next.set_revision(number + 1);
      const std::string cause = req->change_cause().empty() ? "update" : req->change_cause();
      auto rollout = StartRollout(*current, next, cause, /*rollback=*/false, now, &m);
      if (!rollout.ok()) return ToGrpc(rollout.status());
      started = *rollout;
      v1::Revision rev;
      rev.set_id(NewId());
      rev.set_service_id(next.id());
      rev.set_number(next.revision());
      *rev.mutable_template_() = spec.template_();
      rev.set_change_cause(cause);
      rev.set_strategy(RolloutStrategy(spec));
      rev.set_outcome("in-progress");
      rev.set_deployment_id(started.deployment_id);
      *rev.mutable_created_at() = ToProtoTime(now);
      m.push_back(PutMutation(rev, Mutation::kMustNotExist));
      what = absl::StrCat("updated to revision ", next.revision());
      PruneRevisions(next, started.from_revision, &m);
    } else if (current->spec().replicas() != spec.replicas()) {
      what = absl::StrCat("scaled from ", current->spec().replicas(), " to ", spec.replicas());
    } else if (MessageDifferencer::Equals(current->spec(), spec)) {
      *resp = *current;
      return grpc::Status::OK;  // nothing to do
    } else {
      what = "updated (no new revision)";
    }
    *next.mutable_updated_at() = ToProtoTime(now);
    if (req->dry_run()) {
      *resp = next;
      return grpc::Status::OK;
    }
    m.insert(m.begin(), PutMutation(next, current->version()));
    m.push_back(events_.Make("service", next.id(), spec.name(), "updated", what, next.id()));
    auto v = store_.Commit(m);
    if (v.ok()) {
      RecordSuperseded(started);
      next.set_version(*v);
      *resp = next;
      return grpc::Status::OK;
    }
    if (v.status().code() != absl::StatusCode::kFailedPrecondition) return ToGrpc(v.status());
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

std::vector<v1::Revision> ApiService::ServiceRevisions(const std::string& service_id) const {
  std::vector<v1::Revision> out;
  for (auto& r : ListObjects<v1::Revision>(store_)) {
    if (r.service_id() == service_id) out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.number() < b.number(); });
  return out;
}

std::vector<v1::Deployment> ApiService::ServiceDeployments(const std::string& service_id) const {
  std::vector<v1::Deployment> out;
  for (auto& d : ListObjects<v1::Deployment>(store_)) {
    if (d.service_id() == service_id) out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return FromProtoTime(a.created_at()) > FromProtoTime(b.created_at());
  });
  return out;
}

std::optional<v1::Deployment> ApiService::ActiveDeployment(const std::string& service_id) const {
  for (auto& d : ServiceDeployments(service_id)) {
    if (IsActive(d)) return d;
  }
  return std::nullopt;
}

std::string ApiService::RolloutStrategy(const v1::ServiceSpec& spec) {
  return spec.update_config().strategy().empty() ? "rolling" : spec.update_config().strategy();
}

absl::StatusOr<ApiService::StartedRollout> ApiService::StartRollout(const v1::Service& current,
                                                                    const v1::Service& next,
                                                                    const std::string& cause,
                                                                    bool rollback, absl::Time now,
                                                                    std::vector<Mutation>* m) {
  StartedRollout started;
  auto active = ActiveDeployment(current.id());
  // The stable revision: where a failing rollout goes back to. A rollout that supersedes an
  // unfinished one keeps the stable revision of the one it replaces.
  started.from_revision = current.revision();
  if (active && !rollback) started.from_revision = active->from_revision();
  if (active) {
    v1::Deployment old = *active;
    old.set_phase(rollback ? v1::DEPLOYMENT_PHASE_ROLLED_BACK : v1::DEPLOYMENT_PHASE_SUPERSEDED);
    old.set_reason(rollback ? absl::StrCat("rolled back by hand to revision ", next.revision())
                            : absl::StrCat("superseded by revision ", next.revision()));
    if (rollback) old.set_rollback_reason("manual");
    *old.mutable_finished_at() = ToProtoTime(now);
    m->push_back(PutMutation(old, active->version()));
    for (auto r : ServiceRevisions(current.id())) {
      if (r.number() != active->to_revision()) continue;
      r.set_outcome(rollback ? "rolled-back" : "superseded");
      m->push_back(PutMutation(r, r.version()));
    }
    m->push_back(events_.Make("deployment", old.id(), current.spec().name(),
                              rollback ? "rolled-back" : "superseded", old.reason(), current.id()));
    started.superseded = old;
  }
  v1::Deployment d;
  d.set_id(NewId());
  d.set_service_id(current.id());
  d.set_service_name(current.spec().name());
  d.set_from_revision(started.from_revision);
  d.set_to_revision(next.revision());
  d.set_target_revision(next.revision());
  d.set_strategy(RolloutStrategy(next.spec()));
  *d.mutable_config() =
      rollback ? EffectiveRollbackConfig(next.spec()) : next.spec().update_config();
  d.set_phase(v1::DEPLOYMENT_PHASE_PENDING);
  d.set_rollback(rollback);
  if (rollback) d.set_rollback_reason("manual");
  d.set_change_cause(cause);
  d.set_total(next.spec().replicas());
  *d.mutable_created_at() = ToProtoTime(now);
  *d.mutable_phase_started_at() = ToProtoTime(now);
  *d.mutable_last_progress_at() = ToProtoTime(now);
  m->push_back(PutMutation(d, Mutation::kMustNotExist));
  m->push_back(events_.Make(
      "deployment", d.id(), current.spec().name(), rollback ? "rollback" : "created",
      absl::StrCat(rollback ? "rollback" : "rollout", " from revision ", current.revision(), " to ",
                   next.revision(), " (", d.strategy(), "): ", cause),
      current.id()));
  started.deployment_id = d.id();
  return started;
}

void ApiService::RecordSuperseded(const StartedRollout& started) {
  if (!metrics_ || !started.superseded) return;
  const auto& d = *started.superseded;
  metrics_->DeploymentFinished(
      d.strategy(), d.phase() == v1::DEPLOYMENT_PHASE_ROLLED_BACK ? "rolled_back" : "superseded",
      FromProtoTime(d.finished_at()) - FromProtoTime(d.created_at()));
}

void ApiService::PruneRevisions(const v1::Service& next, int64_t keep_also,
                                std::vector<Mutation>* m) {
  int limit =
      next.spec().history_limit() > 0 ? next.spec().history_limit() : options_.history_limit;
  limit = std::max(limit, 2);
  std::vector<v1::Revision> revs = ServiceRevisions(next.id());
  // The new revision is not stored yet: it takes one place of the limit.
  int kept = 1;
  for (auto it = revs.rbegin(); it != revs.rend(); ++it) {
    if (it->number() == keep_also || it->number() == next.revision()) {
      kept++;
      continue;
    }
    if (kept < limit) {
      kept++;
      continue;
    }
    m->push_back(DeleteMutation(*it));
  }
}

grpc::Status ApiService::AbortProgressive(const v1::Service& svc, const v1::Deployment& active,
                                          const std::string& why, v1::Deployment* resp) {
  const absl::Time now = clock_.Now();
  std::vector<v1::Revision> revs = ServiceRevisions(svc.id());
  const v1::Revision* stable = nullptr;
  for (const auto& r : revs) {
    if (r.number() == active.from_revision()) stable = &r;
  }
  if (stable == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("revision ", active.from_revision(), " is no longer kept"));
  }
  v1::Deployment d = active;
  d.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
  d.set_weight(0);
  d.set_switched(false);
  d.set_target_revision(active.from_revision());
  d.set_reason(why);
  d.set_rollback_reason("manual");
  v1::Service next = svc;
  *next.mutable_spec()->mutable_template_() = stable->template_();
  next.set_revision(active.from_revision());
  *next.mutable_updated_at() = ToProtoTime(now);
  std::vector<Mutation> m = {
      PutMutation(d, active.version()), PutMutation(next, svc.version()),
      events_.Make("deployment", d.id(), svc.spec().name(), "rolling-back",
                   absl::StrCat("traffic back to revision ", active.from_revision(), ": ", why),
                   svc.id())};
  for (auto r : revs) {
    if (r.number() != active.to_revision()) continue;
    r.set_outcome("rolled-back");
    m.push_back(PutMutation(r, r.version()));
  }
  auto v = store_.Commit(m);
  // The controller writes the deployment at every step and analysis: a conflict is worth
  // reading again, and ABORTED tells the callers so.
  if (!v.ok() && v.status().code() == absl::StatusCode::kFailedPrecondition) {
    return grpc::Status(grpc::StatusCode::ABORTED, std::string(v.status().message()));
  }
  if (!v.ok()) return ToGrpc(v.status());
  if (metrics_) metrics_->Rollback("manual");
  d.set_version(*v);
  *resp = d;
  return grpc::Status::OK;
}

grpc::Status ApiService::PromoteRollout(grpc::ServerContext*, const v1::PromoteRequest* req,
                                        v1::Deployment* resp) {
  // The controller writes the deployment at every step and analysis: read again and retry.
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    grpc::Status s = PromoteOnce(*req, resp);
    if (s.error_code() != grpc::StatusCode::ABORTED) return s;
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

grpc::Status ApiService::PromoteOnce(const v1::PromoteRequest& request, v1::Deployment* resp) {
  const v1::PromoteRequest* req = &request;
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  auto active = ActiveDeployment(svc->id());
  if (!active || !IsProgressive(*active) || active->phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("service \"", svc->spec().name(),
                                     "\" has no blue/green or canary rollout to promote"));
  }
  v1::Deployment d = *active;
  std::string what;
  if (d.strategy() == "blue-green") {
    if (d.switched()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "already switched; blue is removed after the scale-down delay");
    }
    d.set_step(1);  // promotion requested: the controller switches once green is ready
    what = "switch requested";
  } else {
    const int last = static_cast<int>(CanarySteps(d.config()).size()) - 1;
    d.set_step(req->full() ? last : std::min(d.step() + 1, last));
    what = absl::StrCat("promoted to step ", d.step() + 1, " (", CanarySteps(d.config())[d.step()],
                        "%)");
  }
  if (d.phase() == v1::DEPLOYMENT_PHASE_PAUSED) d.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  auto v = store_.Commit(
      {PutMutation(d, active->version()), events_.Make("deployment", d.id(), svc->spec().name(),
                                                       "promoted", what + " by hand", svc->id())});
  if (!v.ok() && v.status().code() == absl::StatusCode::kFailedPrecondition) {
    return grpc::Status(grpc::StatusCode::ABORTED, std::string(v.status().message()));
  }
  if (!v.ok()) return ToGrpc(v.status());
  d.set_version(*v);
  *resp = d;
  return grpc::Status::OK;
}

grpc::Status ApiService::AbortRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                                      v1::Deployment* resp) {
  for (int attempt = 0;; ++attempt) {
    auto svc = FindService(req->name_or_id());
    if (!svc.ok()) return ToGrpc(svc.status());
    auto active = ActiveDeployment(svc->id());
    if (!active || active->phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("service \"", svc->spec().name(), "\" has no rollout in progress to abort"));
    }
    if (!IsProgressive(*active)) break;
    grpc::Status s = AbortProgressive(*svc, *active, "aborted by hand", resp);
    if (s.error_code() != grpc::StatusCode::ABORTED || attempt + 1 >= kMaxRetries) return s;
  }
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  v1::RollbackServiceRequest rb;
  rb.set_name_or_id(svc->id());
  rb.set_change_cause("abort");
  v1::Service out;
  grpc::Status s = RollbackService(nullptr, &rb, &out);
  if (!s.ok()) return s;
  auto latest = ActiveDeployment(svc->id());
  if (latest) *resp = *latest;
  return grpc::Status::OK;
}

grpc::Status ApiService::RollbackService(grpc::ServerContext*,
                                         const v1::RollbackServiceRequest* req, v1::Service* resp) {
  if (req->to_revision() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("to_revision: must be 0 (the previous revision) or a kept "
                                     "revision number, got ",
                                     req->to_revision()));
  }
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    auto svc = FindService(req->name_or_id());
    if (!svc.ok()) return ToGrpc(svc.status());
    const absl::Time now = clock_.Now();
    auto active = ActiveDeployment(svc->id());
    // Blue/green (blue still running) and canary (stable still serving): flip back at once.
    if (active && IsProgressive(*active) && req->to_revision() == 0 &&
        active->phase() != v1::DEPLOYMENT_PHASE_ROLLING_BACK) {
      v1::Deployment d;
      grpc::Status s = AbortProgressive(*svc, *active, "rolled back by hand", &d);
      if (s.error_code() == grpc::StatusCode::ABORTED) continue;
      if (!s.ok()) return s;
      auto now_svc = FindService(svc->id());
      if (now_svc.ok()) *resp = *now_svc;
      return grpc::Status::OK;
    }
    auto revs = ServiceRevisions(svc->id());
    int64_t to = req->to_revision();
    if (to == 0) {
      // The previous revision: the stable one of the rollout in progress, or the one the
      // current revision replaced.
      if (active) {
        to = active->from_revision();
      } else {
        for (const auto& d : ServiceDeployments(svc->id())) {
          if (d.to_revision() == svc->revision() && d.from_revision() != svc->revision()) {
            to = d.from_revision();
            break;
          }
        }
        if (to == 0) {
          for (const auto& r : revs) {
            if (r.number() < svc->revision()) to = r.number();
          }
        }
      }
      if (to == 0) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            absl::StrCat("service \"", svc->spec().name(),
                                         "\" has no previous revision to roll back to"));
      }
    }
    const v1::Revision* target = nullptr;
    std::string kept;
    for (const auto& r : revs) {
      if (r.number() == to) target = &r;
      absl::StrAppend(&kept, kept.empty() ? "" : ", ", r.number());
    }
    if (target == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("to-revision: revision ", to, " of service \"",
                                       svc->spec().name(), "\" is not kept (kept: ", kept, ")"));
    }
    if (to == svc->revision() && !active) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("service \"", svc->spec().name(), "\" already runs revision ", to));
    }
    v1::Service next = *svc;
    *next.mutable_spec()->mutable_template_() = target->template_();
    next.set_revision(to);
    *next.mutable_updated_at() = ToProtoTime(now);
    std::vector<Mutation> m = {PutMutation(next, svc->version())};
    const std::string cause = req->change_cause().empty()
                                  ? absl::StrCat("rollback to revision ", to)
                                  : req->change_cause();
    auto started = StartRollout(*svc, next, cause, /*rollback=*/true, now, &m);
    if (!started.ok()) return ToGrpc(started.status());
    auto v = store_.Commit(m);
    if (v.ok()) {
      if (metrics_) metrics_->Rollback("manual");
      RecordSuperseded(*started);
      next.set_version(*v);
      *resp = next;
      return grpc::Status::OK;
    }
    if (v.status().code() != absl::StatusCode::kFailedPrecondition) return ToGrpc(v.status());
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

grpc::Status ApiService::SetPaused(const std::string& name_or_id, bool pause,
                                   v1::Deployment* resp) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    auto svc = FindService(name_or_id);
    if (!svc.ok()) return ToGrpc(svc.status());
    auto active = ActiveDeployment(svc->id());
    if (!active) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("service \"", svc->spec().name(), "\" has no rollout in progress"));
    }
    v1::Deployment d = *active;
    const bool paused = d.phase() == v1::DEPLOYMENT_PHASE_PAUSED;
    if (pause == paused) {
      *resp = d;
      return grpc::Status::OK;
    }
    const absl::Time now = clock_.Now();
    if (pause) {
      d.set_phase(v1::DEPLOYMENT_PHASE_PAUSED);
      d.set_paused_by_user(true);
      d.set_reason("paused by hand");
    } else {
      const bool rolling_back = d.target_revision() != 0 && d.target_revision() != d.to_revision();
      d.set_phase(rolling_back ? v1::DEPLOYMENT_PHASE_ROLLING_BACK
                               : v1::DEPLOYMENT_PHASE_PROGRESSING);
      d.set_paused_by_user(false);
      d.set_reason("");
      // Failures that paused it were seen by the user; the deadline starts over.
      d.clear_failed_task_ids();
      *d.mutable_last_progress_at() = ToProtoTime(now);
    }
    std::vector<Mutation> m = {
        PutMutation(d, active->version()),
        events_.Make("deployment", d.id(), svc->spec().name(), pause ? "paused" : "resumed",
                     pause ? "paused by hand" : "resumed by hand", svc->id())};
    for (auto r : ServiceRevisions(svc->id())) {
      if (r.number() != d.to_revision() || d.target_revision() != d.to_revision()) continue;
      r.set_outcome(pause ? "paused" : "in-progress");
      m.push_back(PutMutation(r, r.version()));
    }
    auto v = store_.Commit(m);
    if (v.ok()) {
      d.set_version(*v);
      *resp = d;
      return grpc::Status::OK;
    }
    if (v.status().code() != absl::StatusCode::kFailedPrecondition) return ToGrpc(v.status());
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

grpc::Status ApiService::PauseRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                                      v1::Deployment* resp) {
  return SetPaused(req->name_or_id(), true, resp);
}

grpc::Status ApiService::ResumeRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                                       v1::Deployment* resp) {
  return SetPaused(req->name_or_id(), false, resp);
}

grpc::Status ApiService::GetRollout(grpc::ServerContext*, const v1::RolloutRequest* req,
                                    v1::Deployment* resp) {
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  auto all = ServiceDeployments(svc->id());
  if (all.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("service \"", svc->spec().name(), "\" has had no rollout"));
  }
  *resp = all.front();
  return grpc::Status::OK;
}

grpc::Status ApiService::ListDeployments(grpc::ServerContext*, const v1::RolloutRequest* req,
                                         v1::ListDeploymentsResponse* resp) {
  if (auto s = CorruptKindError(store_, Kind::kDeployment); !s.ok()) return ToGrpc(s);
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  for (auto& d : ServiceDeployments(svc->id())) *resp->add_deployments() = std::move(d);
  return grpc::Status::OK;
}

grpc::Status ApiService::ListRevisions(grpc::ServerContext*, const v1::ListRevisionsRequest* req,
                                       v1::ListRevisionsResponse* resp) {
  if (auto s = CorruptKindError(store_, Kind::kRevision); !s.ok()) return ToGrpc(s);
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  for (auto& r : ServiceRevisions(svc->id())) *resp->add_revisions() = std::move(r);
  return grpc::Status::OK;
}

grpc::Status ApiService::GetRevision(grpc::ServerContext*, const v1::GetRevisionRequest* req,
                                     v1::Revision* resp) {
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  std::string kept;
  for (auto& r : ServiceRevisions(svc->id())) {
    if (r.number() == req->number()) {
      *resp = std::move(r);
      return grpc::Status::OK;
    }
    absl::StrAppend(&kept, kept.empty() ? "" : ", ", r.number());
  }
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      absl::StrCat("revision: service \"", svc->spec().name(),
                                   "\" has no revision ", req->number(), " (kept: ", kept, ")"));
}

grpc::Status ApiService::DeleteService(grpc::ServerContext*, const v1::DeleteServiceRequest* req,
                                       v1::DeleteServiceResponse* resp) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    auto svc = FindService(req->name_or_id());
    if (!svc.ok()) {
      auto corrupt = FindCorrupt(store_, Kind::kService, req->name_or_id());
      if (!corrupt) return ToGrpc(svc.status());
      // Removal is the way out of a corrupt service: what is known of it (id, name) is enough
      // to delete it with its revisions, deployments and tasks.
      svc = v1::Service();
      svc->set_id(corrupt->id);
      svc->mutable_spec()->set_name(corrupt->name);
      svc->set_version(corrupt->version);
    }
    std::vector<Mutation> m = {DeleteMutation(*svc, svc->version())};
    for (const auto& r : ServiceRevisions(svc->id())) m.push_back(DeleteMutation(r));
    for (const auto& d : ServiceDeployments(svc->id())) m.push_back(DeleteMutation(d));
    for (const auto& t : ListObjects<v1::Task>(store_)) {
      if (t.service_id() != svc->id()) continue;
      if (IsTerminal(t.status().state())) {
        m.push_back(DeleteMutation(t, t.version()));
      } else {
        v1::Task stop = t;
        stop.set_desired_state(v1::TASK_STATE_SHUTDOWN);
        stop.mutable_status()->set_message("service removed");
        m.push_back(PutMutation(stop, t.version()));
      }
    }
    m.push_back(
        events_.Make("service", svc->id(), svc->spec().name(), "deleted", "removed", svc->id()));
    auto v = store_.Commit(m);
    if (v.ok()) {
      resp->set_id(svc->id());
      return grpc::Status::OK;
    }
    if (v.status().code() != absl::StatusCode::kFailedPrecondition &&
        v.status().code() != absl::StatusCode::kNotFound) {
      return ToGrpc(v.status());
    }
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

grpc::Status ApiService::ScaleService(grpc::ServerContext* ctx, const v1::ScaleServiceRequest* req,
                                      v1::Service* resp) {
  if (auto s = ValidateReplicas(req->replicas()); !s.ok()) return ToGrpc(s);
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  if (svc->spec().mode() == "global") {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("replicas: service \"", svc->spec().name(),
                                     "\" is global (one task per node) and cannot be scaled"));
  }
  v1::UpdateServiceRequest update;
  *update.mutable_spec() = svc->spec();
  update.mutable_spec()->set_replicas(req->replicas());
  return UpdateService(ctx, &update, resp);
}

grpc::Status ApiService::ServiceLogs(grpc::ServerContext* ctx, const v1::ServiceLogsRequest* req,
                                     grpc::ServerWriter<v1::LogLine>* writer) {
  if (req->tail() > limits::kMaxLogTail) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("tail: must be 0 (all)..", limits::kMaxLogTail, ", got ", req->tail()));
  }
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  std::vector<v1::Task> tasks;
  for (auto& t : ListObjects<v1::Task>(store_)) {
    if (t.service_id() == svc->id() && !t.node_id().empty()) tasks.push_back(std::move(t));
  }
  std::sort(tasks.begin(), tasks.end(), [](const auto& a, const auto& b) {
    if (a.slot() != b.slot()) return a.slot() < b.slot();
    return FromProtoTime(a.created_at()) < FromProtoTime(b.created_at());
  });
  // In follow mode only live tasks are followed; dead ones are printed and done.
  std::mutex write_mu;
  std::vector<std::thread> followers;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::mutex ctx_mu;
  auto stream_task = [&](const v1::Task& task, bool follow) {
    auto node = GetObject<v1::Node>(store_, task.node_id());
    if (!node || node->agent_addr().empty()) return;
    auto channel = grpc::CreateChannel(node->agent_addr(), grpc::InsecureChannelCredentials());
    auto stub = v1::WorkerAgent::NewStub(channel);
    v1::TaskLogsRequest lreq;
    lreq.set_task_id(task.id());
    lreq.set_follow(follow);
    lreq.set_tail(req->tail());
    auto cctx = std::make_unique<grpc::ClientContext>();
    if (!follow) cctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::ClientContext* raw = cctx.get();
    {
      std::lock_guard<std::mutex> lock(ctx_mu);
      contexts.push_back(std::move(cctx));
    }
    auto reader = stub->TaskLogs(raw, lreq);
    v1::LogLine line;
    while (reader->Read(&line)) {
      line.set_slot(task.slot());
      std::lock_guard<std::mutex> lock(write_mu);
      if (!writer->Write(line)) break;
    }
    reader->Finish();
  };
  for (const auto& t : tasks) {
    bool live = !IsTerminal(t.status().state());
    if (req->follow() && live) {
      followers.emplace_back([&, t] { stream_task(t, true); });
    } else {
      stream_task(t, false);
    }
  }
  if (!followers.empty()) {
    while (!ctx->IsCancelled() && !shutting_down_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    {
      std::lock_guard<std::mutex> lock(ctx_mu);
      for (auto& c : contexts) c->TryCancel();
    }
    for (auto& th : followers) th.join();
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::ListTasks(grpc::ServerContext*, const v1::ListTasksRequest* req,
                                   v1::ListTasksResponse* resp) {
  if (auto s = CorruptKindError(store_, Kind::kTask); !s.ok()) return ToGrpc(s);
  std::string service_id, node_id;
  if (!req->service().empty()) {
    auto s = FindService(req->service());
    if (!s.ok()) return ToGrpc(s.status());
    service_id = s->id();
  }
  if (!req->node().empty()) {
    auto n = FindNode(req->node());
    if (!n.ok()) return ToGrpc(n.status());
    node_id = n->id();
  }
  auto tasks = ListObjects<v1::Task>(store_);
  std::sort(tasks.begin(), tasks.end(), [](const auto& a, const auto& b) {
    if (a.service_name() != b.service_name()) return a.service_name() < b.service_name();
    if (a.slot() != b.slot()) return a.slot() < b.slot();
    if (a.node_id() != b.node_id()) return a.node_id() < b.node_id();
    return FromProtoTime(a.created_at()) > FromProtoTime(b.created_at());
  });
  for (auto& t : tasks) {
    if (!service_id.empty() && t.service_id() != service_id) continue;
    if (!node_id.empty() && t.node_id() != node_id) continue;
    *resp->add_tasks() = std::move(t);
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::GetTask(grpc::ServerContext*, const v1::GetTaskRequest* req,
                                 v1::Task* resp) {
  auto t = GetObject<v1::Task>(store_, req->id());
  if (!t) {
    if (auto c = FindCorrupt(store_, Kind::kTask, req->id())) return ToGrpc(CorruptObjectError(*c));
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("task \"", req->id(), "\" not found"));
  }
  *resp = *t;
  return grpc::Status::OK;
}

grpc::Status ApiService::RegisterNode(grpc::ServerContext*, const v1::RegisterNodeRequest* req,
                                      v1::Node* resp) {
  if (!ValidNodeName(req->name())) return ToGrpc(NodeNameError(req->name()));
  if (auto s = ValidateLabels("labels", req->labels()); !s.ok()) return ToGrpc(s);
  uint32_t base = 0, size = 0;
  const std::string runtime = req->runtime().empty() ? "process" : req->runtime();
  // Container tasks get their address from the CNI network, not from a loopback range.
  const bool runtime_addresses = runtime == "cri";
  if (runtime_addresses && !req->address_range().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("address_range: \"", req->address_range(),
                                     "\" must be empty for the cri runtime (task addresses "
                                     "come from its CNI network)"));
  }
  if (!runtime_addresses && !ParseLoopbackRange(req->address_range(), &base, &size)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("address_range: \"", req->address_range(),
                                     "\" is not a loopback CIDR inside 127.0.0.0/8 with a "
                                     "prefix of 8..30 bits, e.g. 127.1.0.0/16"));
  }
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    const absl::Time now = clock_.Now();
    auto existing = GetObjectByName<v1::Node>(store_, req->name());
    v1::Node node;
    uint64_t expected = Mutation::kMustNotExist;
    if (existing) {
      node = *existing;
      expected = existing->version();
    } else {
      node.set_id(NewId());
      node.set_name(req->name());
      *node.mutable_registered_at() = ToProtoTime(now);
    }
    // Two nodes must not hand out the same task addresses.
    for (const auto& other : ListObjects<v1::Node>(store_)) {
      if (other.id() == node.id()) continue;
      uint32_t ob = 0, os = 0;
      if (size > 0 && ParseLoopbackRange(other.address_range(), &ob, &os) && base < ob + os &&
          ob < base + size) {
        return grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat("address_range: ", req->address_range(), " overlaps node ", other.name(),
                         "'s ", other.address_range(), "; give each worker its own range"));
      }
    }
    *node.mutable_labels() = req->labels();
    node.set_role(req->role().empty() ? "worker" : req->role());
    node.set_state(v1::NODE_STATE_READY);
    *node.mutable_capacity() = req->capacity();
    node.set_agent_addr(req->agent_addr());
    node.set_address_range(req->address_range());
    node.set_runtime(runtime);
    node.set_message("");
    std::vector<Mutation> m = {
        PutMutation(node, expected),
        events_.Make(
            "node", node.id(), node.name(), existing ? "rejoined" : "registered",
            absl::StrCat("agent ", node.agent_addr(), ", runtime ", runtime, ", tasks from ",
                         runtime_addresses ? "the runtime's network" : node.address_range()))};
    auto v = store_.Commit(m);
    if (v.ok()) {
      liveness_.Beat(node.id());
      node.set_version(*v);
      FillLiveness(&node);
      *resp = node;
      return grpc::Status::OK;
    }
    if (v.status().code() != absl::StatusCode::kFailedPrecondition &&
        v.status().code() != absl::StatusCode::kAlreadyExists) {
      return ToGrpc(v.status());
    }
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

grpc::Status ApiService::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                   v1::HeartbeatResponse* resp) {
  auto node = GetObject<v1::Node>(store_, req->node_id());
  if (!node) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node \"", req->node_id(), "\" not found; register again"));
  }
  liveness_.Beat(node->id());
  if (node->state() != v1::NODE_STATE_READY) {
    v1::Node ready = *node;
    ready.set_state(v1::NODE_STATE_READY);
    ready.set_message("");
    auto v = store_.Commit(
        {PutMutation(ready, node->version()),
         events_.Make("node", node->id(), node->name(), "ready", "heartbeats resumed")});
    if (!v.ok() && v.status().code() != absl::StatusCode::kFailedPrecondition) {
      return ToGrpc(v.status());
    }
  }
  *resp->mutable_period() = ToProtoDuration(options_.node_timeout / 5);
  return grpc::Status::OK;
}

grpc::Status ApiService::ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                                   v1::ListNodesResponse* resp) {
  if (auto s = CorruptKindError(store_, Kind::kNode); !s.ok()) return ToGrpc(s);
  auto nodes = ListObjects<v1::Node>(store_);
  std::sort(nodes.begin(), nodes.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  for (auto& n : nodes) {
    FillLiveness(&n);
    *resp->add_nodes() = std::move(n);
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::GetNode(grpc::ServerContext*, const v1::GetNodeRequest* req,
                                 v1::Node* resp) {
  auto n = FindNode(req->name_or_id());
  if (!n.ok()) return ToGrpc(n.status());
  *resp = *n;
  FillLiveness(resp);
  return grpc::Status::OK;
}

grpc::Status ApiService::WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest* req,
                                     grpc::ServerWriter<v1::Event>* writer) {
  std::string service_id;
  if (!req->service().empty()) {
    auto s = FindService(req->service());
    if (!s.ok()) return ToGrpc(s.status());
    service_id = s->id();
  }
  // Ids are handed out in order and never reused: one past the newest can never arrive.
  if (const uint64_t newest = events_.LastId(); req->since_id() > newest) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("since_id: must be an event id 0..", newest,
                                     " (the newest event), got ", req->since_id()));
  }
  auto matches = [&](const v1::Event& e) {
    return service_id.empty() || e.service_id() == service_id || e.object_id() == service_id;
  };
  EventReader reader(store_, req->since_id(), matches);
  while (!ctx->IsCancelled() && !shutting_down_) {
    for (const v1::Event& e : reader.Next(absl::Milliseconds(500))) {
      if (!writer->Write(e)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::WatchAssignments(grpc::ServerContext* ctx,
                                          const v1::WatchAssignmentsRequest* req,
                                          grpc::ServerWriter<v1::Assignments>* writer) {
  if (!GetObject<v1::Node>(store_, req->node_id())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node \"", req->node_id(), "\" not found; register again"));
  }
  uint64_t seen = UINT64_MAX;
  std::string last_sent;
  while (!ctx->IsCancelled() && !shutting_down_) {
    uint64_t version = store_.Version();
    if (version != seen) {
      seen = version;
      v1::Assignments a;
      a.set_version(version);
      for (auto& t : ListObjects<v1::Task>(store_)) {
        if (t.node_id() != req->node_id() || IsTerminal(t.status().state())) continue;
        t.set_version(0);  // versions churn on status reports; the worker needs no resend
        *a.add_tasks() = std::move(t);
      }
      std::string key;
      {
        v1::Assignments copy = a;
        copy.set_version(0);
        // Status churn (health probes) is the worker's own report: no resend for it.
        for (auto& t : *copy.mutable_tasks()) t.clear_status();
        copy.SerializeToString(&key);
      }
      if (key != last_sent) {
        if (!writer->Write(a)) break;
        last_sent = std::move(key);
      }
    }
    store_.WaitForVersion(seen, absl::Milliseconds(500));
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::ReportTaskStatus(grpc::ServerContext*,
                                          const v1::ReportTaskStatusRequest* req,
                                          v1::ReportTaskStatusResponse*) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    std::vector<Mutation> m;
    for (const auto& r : req->reports()) {
      auto task = GetObject<v1::Task>(store_, r.task_id());
      if (!task || task->node_id() != req->node_id()) continue;
      const auto& old = task->status();
      // The manager's verdicts (orphaned) and earlier terminal reports are final.
      if (IsTerminal(old.state())) continue;
      if (MessageDifferencer::Equals(old, r.status())) continue;
      v1::Task next = *task;
      *next.mutable_status() = r.status();
      if (!r.status().address().empty()) next.set_address(r.status().address());
      m.push_back(PutMutation(next, task->version()));
      const auto& ns = r.status();
      if (ns.state() != old.state()) {
        std::string msg = TaskStateName(ns.state());
        if (ns.has_exit_code()) absl::StrAppend(&msg, " (exit ", ns.exit_code(), ")");
        if (!ns.error().empty()) absl::StrAppend(&msg, ": ", ns.error());
        m.push_back(
            events_.Make("task", task->id(), task->service_name(), TaskStateName(ns.state()),
                         absl::StrCat("slot ", task->slot(), " ", msg), task->service_id()));
      }
      if (ns.health().state() != old.health().state() &&
          (ns.health().state() == v1::HEALTH_STATE_HEALTHY ||
           ns.health().state() == v1::HEALTH_STATE_UNHEALTHY)) {
        m.push_back(events_.Make(
            "task", task->id(), task->service_name(), HealthStateName(ns.health().state()),
            absl::StrCat("slot ", task->slot(), " ", HealthStateName(ns.health().state()), ": ",
                         ns.health().last_probe().output()),
            task->service_id()));
      }
    }
    if (m.empty()) return grpc::Status::OK;
    auto v = store_.Commit(m);
    if (v.ok()) return grpc::Status::OK;
    if (v.status().code() != absl::StatusCode::kFailedPrecondition &&
        v.status().code() != absl::StatusCode::kNotFound) {
      return ToGrpc(v.status());
    }
  }
  return grpc::Status(grpc::StatusCode::ABORTED, "too many concurrent updates; retry");
}

grpc::Status ApiService::WatchRoutes(grpc::ServerContext* ctx, const v1::WatchRoutesRequest*,
                                     grpc::ServerWriter<v1::RoutingTable>* writer) {
  if (!routes_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no traffic controller");
  uint64_t sent = 0;
  while (!ctx->IsCancelled() && !shutting_down_) {
    const uint64_t seen = store_.Version();
    v1::RoutingTable table = routes_->Get();
    if (table.version() != sent) {
      if (!writer->Write(table)) break;
      sent = table.version();
    }
    // Wakes on every commit; the timeout catches tasks passing their min-ready.
    store_.WaitForVersion(seen, absl::Milliseconds(100));
  }
  return grpc::Status::OK;
}

grpc::Status ApiService::ReportTrafficStats(grpc::ServerContext*, const v1::TrafficStatsReport* req,
                                            v1::ReportTrafficStatsResponse*) {
  if (!traffic_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no traffic controller");
  traffic_->Report(*req);
  return grpc::Status::OK;
}

grpc::Status ApiService::GetEndpoints(grpc::ServerContext*, const v1::GetEndpointsRequest* req,
                                      v1::ServiceEndpoints* resp) {
  if (!routes_ || !traffic_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no traffic controller");
  }
  auto svc = FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  v1::RoutingTable table = routes_->Get();
  resp->set_service(svc->spec().name());
  resp->set_routing_version(table.version());
  *resp->mutable_ports() = svc->spec().template_().ports();
  std::map<int64_t, const v1::RevisionRoute*> routed_revs;
  std::set<std::string> routed_tasks;
  for (const auto& s : table.services()) {
    if (s.service_id() != svc->id()) continue;
    for (const auto& r : s.revisions()) {
      routed_revs[r.revision()] = &r;
      for (const auto& e : r.endpoints()) routed_tasks.insert(e.task_id());
    }
  }
  std::map<int64_t, v1::RevisionEndpoints> revs;
  for (const auto& t : ListObjects<v1::Task>(store_)) {
    if (t.service_id() != svc->id() || IsTerminal(t.status().state())) continue;
    auto& re = revs[t.revision()];
    re.set_revision(t.revision());
    auto* e = re.add_endpoints();
    e->set_task_id(t.id());
    e->set_slot(t.slot());
    e->set_address(t.address());
    e->set_port(t.port());
    e->set_node_id(t.node_id());
    e->set_state(t.desired_state() == v1::TASK_STATE_SHUTDOWN ? "draining"
                                                              : TaskStateName(t.status().state()));
    e->set_health(HealthStateName(t.status().health().state()));
    e->set_routed(routed_tasks.count(t.id()) > 0);
  }
  auto totals = traffic_->Totals(svc->id());
  auto recent = traffic_->Recent(svc->id(), absl::Minutes(1));
  for (const auto& [rev, t] : totals) revs[rev].set_revision(rev);
  for (auto& [rev, re] : revs) {
    if (auto r = routed_revs.find(rev); r != routed_revs.end()) {
      re.set_weight(r->second->weight());
      re.set_preview(r->second->preview());
    }
    if (auto t = totals.find(rev); t != totals.end()) *re.mutable_total() = t->second;
    if (auto t = recent.find(rev); t != recent.end()) {
      *re.mutable_recent() = t->second;
      re.set_recent_error_rate(ErrorRate(t->second));
    }
    *resp->add_revisions() = std::move(re);
  }
  return grpc::Status::OK;
}

}  // namespace warren
