#include "manager/control_service.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/enum_names.h"
#include "common/ids.h"
#include "common/limits.h"
#include "common/published_ports.h"
#include "common/spec.h"
#include "common/task_state.h"
#include "common/time_util.h"
#include "common/version.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "manager/cluster_identity.h"
#include "manager/commit_retry.h"
#include "manager/node_subnets.h"
#include "manager/rollout/intents.h"
#include "manager/rollout/rollout.h"
#include "manager/scheduler.h"
#include "manager/secret_service.h"
#include "spdlog/spdlog.h"
#include "store/typed_store.h"

namespace warren {
namespace {

using google::protobuf::util::MessageDifferencer;

}  // namespace

ControlService::ControlService(ApiShared& shared)
    : shared_(shared),
      store_(shared.store),
      clock_(shared.clock),
      events_(shared.events),
      liveness_(shared.liveness),
      options_(shared.options),
      metrics_(shared.metrics),
      publish_errors_(shared.publish_errors) {}

absl::Status ControlService::CheckPorts(const v1::ServiceSpec& spec,
                                        const v1::ServiceSpec* current) {
  absl::MutexLock lock(&ports_mu_);
  return ports_.Check(spec, current);
}

grpc::Status ControlService::CreateService(grpc::ServerContext* ctx,
                                           const v1::CreateServiceRequest* req, v1::Service* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/CreateService");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  v1::ServiceSpec spec = req->spec();
  ApplySpecDefaults(&spec);
  if (auto s = ValidateServiceSpec(spec); !s.ok()) return ToGrpc(s);
  if (auto s = ResolveSecretReferences(store_, &spec); !s.ok()) return ToGrpc(s);
  if (GetObjectByName<v1::Service>(store_, spec.name())) {
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        absl::StrCat("service \"", spec.name(), "\" already exists"));
  }
  // The ports stay reserved until the commit ends, so a concurrent create or update cannot
  // claim them meanwhile; the lock is not held across the commit, so creates commit together.
  uint64_t reservation = 0;
  {
    absl::MutexLock lock(&ports_mu_);
    if (auto s = ports_.Check(spec, nullptr); !s.ok()) return ToGrpc(s);
    if (!req->dry_run()) reservation = ports_.Reserve(spec);
  }
  absl::Cleanup release = [&] {
    if (reservation == 0) return;
    absl::MutexLock lock(&ports_mu_);
    ports_.Release(reservation);
  };
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
  rev.set_strategy(ParseStrategy(spec.update_config().strategy()));
  rev.set_outcome(v1::REVISION_OUTCOME_CREATED);
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

grpc::Status ControlService::GetService(grpc::ServerContext* ctx, const v1::GetServiceRequest* req,
                                        v1::Service* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetService");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  auto s = shared_.FindService(req->name_or_id());
  if (!s.ok()) return ToGrpc(s.status());
  *resp = *s;
  FillPublishErrors(resp);
  return grpc::Status::OK;
}

void ControlService::FillPublishErrors(v1::Service* svc) const {
  const absl::Time now = clock_.Now();
  // A node silent for the node timeout is down; what it said about its ports no longer holds.
  for (v1::PublishError& e : publish_errors_.ForService(svc->id(), [&](const std::string& node) {
         return liveness_.LastSeen(node) + options_.node_timeout > now;
       })) {
    *svc->add_publish_errors() = std::move(e);
  }
}

grpc::Status ControlService::ListServices(grpc::ServerContext* ctx,
                                          const v1::ListServicesRequest* req,
                                          v1::ListServicesResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ListServices");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = CorruptKindError(store_, Kind::kService); !s.ok()) return ToGrpc(s);
  auto page = ListServicesPage(store_, *req);
  if (!page.ok()) return ToGrpc(page.status());
  *resp = std::move(*page);
  std::vector<std::string> ids;
  for (auto& s : *resp->mutable_services()) {
    FillPublishErrors(&s);
    ids.push_back(s.id());
  }
  if (req->with_running_counts()) {
    for (const auto& [id, n] : lookup_.Running(ids)) (*resp->mutable_running_tasks())[id] = n;
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::UpdateService(grpc::ServerContext* ctx,
                                           const v1::UpdateServiceRequest* req, v1::Service* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/UpdateService");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  v1::ServiceSpec spec = req->spec();
  ApplySpecDefaults(&spec);
  if (auto s = ValidateServiceSpec(spec); !s.ok()) return ToGrpc(s);
  if (auto s = ResolveSecretReferences(store_, &spec); !s.ok()) return ToGrpc(s);
  v1::Service next;
  bool unchanged = false;
  // Held until the commit: two services must not claim one port in concurrent requests.
  absl::MutexLock ports_lock(&ports_mu_);
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(store_, [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto current = shared_.FindService(spec.name());
        if (!current.ok()) return current.status();
        if (auto s = ports_.Check(spec, &current->spec()); !s.ok()) return s;
        if (req->expected_version() != 0 && req->expected_version() != current->version()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "service \"", spec.name(), "\" changed since version ", req->expected_version(),
              " (now ", current->version(), "); read it again and retry"));
        }
        if (spec.replicas() > current->spec().replicas()) {
          // The store takes updates in place on a full disk, but the tasks to add would not fit.
          if (auto s = store_.CheckSpace(); !s.ok()) return s;
        }
        if (current->spec().mode() != spec.mode()) {
          return absl::InvalidArgumentError(
              absl::StrCat("mode: cannot change from ", current->spec().mode(), " to ", spec.mode(),
                           "; remove and recreate the service"));
        }
        const absl::Time now = clock_.Now();
        next = *current;
        const bool template_changed =
            !MessageDifferencer::Equals(current->spec().template_(), spec.template_());
        *next.mutable_spec() = spec;
        std::vector<Mutation> m;
        std::string what;
        unchanged = false;
        if (template_changed) {
          // A corrupt revision may hold the next number: never hand it out twice.
          if (auto s = CorruptKindError(store_, Kind::kRevision); !s.ok()) return s;
          // Revision numbers only grow, even after a rollback to an older one.
          int64_t number = current->revision();
          for (const auto& r : ServiceRevisions(next.id())) number = std::max(number, r.number());
          next.set_revision(number + 1);
          const std::string cause = req->change_cause().empty() ? "update" : req->change_cause();
          const v1::Deployment started = StartRollout(*current, next, cause, now, &m);
          v1::Revision rev;
          rev.set_id(NewId());
          rev.set_service_id(next.id());
          rev.set_number(next.revision());
          *rev.mutable_template_() = spec.template_();
          rev.set_change_cause(cause);
          rev.set_strategy(ParseStrategy(spec.update_config().strategy()));
          rev.set_outcome(v1::REVISION_OUTCOME_IN_PROGRESS);
          rev.set_deployment_id(started.id());
          *rev.mutable_created_at() = ToProtoTime(now);
          m.push_back(PutMutation(rev, Mutation::kMustNotExist));
          what = absl::StrCat("updated to revision ", next.revision());
          PruneRevisions(next, started.from_revision(), &m);
        } else if (current->spec().replicas() != spec.replicas()) {
          what = absl::StrCat("scaled from ", current->spec().replicas(), " to ", spec.replicas());
        } else if (MessageDifferencer::Equals(current->spec(), spec)) {
          next = *current;
          unchanged = true;
          return std::vector<Mutation>{};  // nothing to do
        } else {
          what = "updated (no new revision)";
        }
        *next.mutable_updated_at() = ToProtoTime(now);
        if (req->dry_run()) return std::vector<Mutation>{};
        m.insert(m.begin(), PutMutation(next, current->version()));
        m.push_back(events_.Make("service", next.id(), spec.name(), "updated", what, next.id()));
        return m;
      });
  if (!v.ok()) return ToGrpc(v.status());
  if (!unchanged && !req->dry_run()) next.set_version(*v);
  *resp = next;
  return grpc::Status::OK;
}

std::vector<v1::Revision> ControlService::ServiceRevisions(const std::string& service_id) const {
  std::vector<v1::Revision> out;
  for (const std::string& id : lookup_.RevisionIdsOf(service_id)) {
    auto r = GetObject<v1::Revision>(store_, id);
    if (r && r->service_id() == service_id) out.push_back(std::move(*r));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.number() < b.number(); });
  return out;
}

std::vector<v1::Deployment> ControlService::ServiceDeployments(
    const std::string& service_id) const {
  std::vector<v1::Deployment> out;
  for (const std::string& id : lookup_.DeploymentIdsOf(service_id)) {
    auto d = GetObject<v1::Deployment>(store_, id);
    if (d && d->service_id() == service_id) out.push_back(std::move(*d));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return FromProtoTime(a.created_at()) > FromProtoTime(b.created_at());
  });
  return out;
}

std::optional<v1::Deployment> ControlService::ActiveDeployment(
    const std::string& service_id) const {
  for (auto& d : ServiceDeployments(service_id)) {
    if (IsActive(d)) return d;
  }
  return std::nullopt;
}

std::optional<v1::Deployment> ControlService::LatestDeployment(
    const std::string& service_id) const {
  auto all = ServiceDeployments(service_id);
  if (all.empty()) return std::nullopt;
  return all.front();
}

v1::Deployment ControlService::StartRollout(const v1::Service& current, const v1::Service& next,
                                            const std::string& cause, absl::Time now,
                                            std::vector<Mutation>* m) {
  // The stable revision: where a failing rollout goes back to. A rollout that supersedes an
  // unfinished one keeps the stable revision of the one it replaces (the controller ends that
  // one in its next pass).
  auto active = ActiveDeployment(current.id());
  const int64_t from = active ? active->from_revision() : current.revision();
  v1::Deployment d = NewDeployment(current, next, from, cause, /*rollback=*/false, now);
  m->push_back(PutMutation(d, Mutation::kMustNotExist));
  m->push_back(
      events_.Make("deployment", d.id(), current.spec().name(), "created",
                   absl::StrCat("rollout from revision ", current.revision(), " to ",
                                next.revision(), " (", DisplayName(d.strategy()), "): ", cause),
                   current.id()));
  return d;
}

void ControlService::PruneRevisions(const v1::Service& next, int64_t keep_also,
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

absl::StatusOr<ControlService::RecordedIntent> ControlService::RecordIntent(
    const std::string& name_or_id, v1::DeploymentIntent intent, bool finished_too) {
  RecordedIntent out;
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(store_, [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto svc = shared_.FindService(name_or_id);
        if (!svc.ok()) return svc.status();
        out.service = *svc;
        std::optional<v1::Deployment> d = ActiveDeployment(svc->id());
        if (!d && finished_too) d = LatestDeployment(svc->id());
        if (!d) {
          return absl::FailedPreconditionError(
              absl::StrCat("service \"", svc->spec().name(), "\" has no rollout in progress"));
        }
        v1::DeploymentIntent i = intent;
        *i.mutable_requested_at() = ToProtoTime(clock_.Now());
        const uint64_t version = d->version();
        out.sequence = AddIntent(&*d, std::move(i));
        out.deployment_id = d->id();
        return std::vector<Mutation>{PutMutation(*d, version)};
      });
  if (!v.ok()) return v.status();
  return out;
}

absl::StatusOr<v1::Deployment> ControlService::AwaitIntent(const RecordedIntent& recorded) {
  const absl::Time deadline = absl::Now() + options_.intent_wait;
  while (true) {
    const uint64_t seen = store_.Version();
    auto d = GetObject<v1::Deployment>(store_, recorded.deployment_id);
    if (!d) return absl::NotFoundError("the deployment was removed");
    const v1::DeploymentIntent* i = FindIntent(*d, recorded.sequence);
    // Trimmed from the list: applied long ago (many intents since).
    if (i == nullptr || i->applied()) {
      if (i != nullptr && !i->error().empty()) {
        const int code = i->error_code() != 0
                             ? i->error_code()
                             : static_cast<int>(absl::StatusCode::kFailedPrecondition);
        return absl::Status(static_cast<absl::StatusCode>(code), i->error());
      }
      return *d;
    }
    if (intent_pass_) {
      intent_pass_();
      continue;
    }
    // Not applied in time (a controller far behind): the intent stays recorded and is applied
    // later; the caller sees it pending.
    if (absl::Now() >= deadline) return *d;
    store_.WaitForVersion(seen, std::min(deadline - absl::Now(), absl::Milliseconds(200)));
  }
}

grpc::Status ControlService::DeploymentAction(const std::string& name_or_id,
                                              v1::DeploymentAction action, bool full,
                                              v1::Deployment* resp) {
  v1::DeploymentIntent intent;
  intent.set_action(action);
  intent.set_full(full);
  auto recorded = RecordIntent(name_or_id, intent, /*finished_too=*/false);
  if (!recorded.ok()) return ToGrpc(recorded.status());
  auto d = AwaitIntent(*recorded);
  if (!d.ok()) return ToGrpc(d.status());
  *resp = *d;
  return grpc::Status::OK;
}

grpc::Status ControlService::PromoteRollout(grpc::ServerContext* ctx, const v1::PromoteRequest* req,
                                            v1::Deployment* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/PromoteRollout");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  return DeploymentAction(req->name_or_id(), v1::DEPLOYMENT_ACTION_PROMOTE, req->full(), resp);
}

grpc::Status ControlService::AbortRollout(grpc::ServerContext* ctx, const v1::RolloutRequest* req,
                                          v1::Deployment* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/AbortRollout");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  return DeploymentAction(req->name_or_id(), v1::DEPLOYMENT_ACTION_ABORT, false, resp);
}

grpc::Status ControlService::RollbackService(grpc::ServerContext* ctx,
                                             const v1::RollbackServiceRequest* req,
                                             v1::Service* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/RollbackService");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (req->to_revision() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("to_revision: must be 0 (the previous revision) or a kept "
                                     "revision number, got ",
                                     req->to_revision()));
  }
  auto svc = shared_.FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  // What can be checked here is checked here, for a precise error; the controller decides the
  // rest (a switch back or a rolling rollback) when it applies the intent.
  if (req->to_revision() != 0) {
    std::string kept;
    bool found = false;
    for (const auto& r : ServiceRevisions(svc->id())) {
      found = found || r.number() == req->to_revision();
      absl::StrAppend(&kept, kept.empty() ? "" : ", ", r.number());
    }
    if (!found) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("to-revision: revision ", req->to_revision(), " of service \"",
                       svc->spec().name(), "\" is not kept (kept: ", kept, ")"));
    }
    if (req->to_revision() == svc->revision() && !ActiveDeployment(svc->id())) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("service \"", svc->spec().name(),
                                       "\" already runs revision ", req->to_revision()));
    }
    // The old revision's ports may have been taken by another service since. (Without
    // --to-revision the controller picks the revision; a port taken meanwhile then shows as a
    // publish error of the service, retried with backoff.)
    for (const auto& r : ServiceRevisions(svc->id())) {
      if (r.number() != req->to_revision()) continue;
      v1::ServiceSpec spec = svc->spec();
      *spec.mutable_template_() = r.template_();
      if (auto s = CheckPorts(spec, &svc->spec()); !s.ok()) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            absl::StrCat("revision ", req->to_revision(), ": ", s.message()));
      }
    }
  }
  if (!LatestDeployment(svc->id())) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("service \"", svc->spec().name(),
                                     "\" has no previous revision to roll back to"));
  }
  v1::DeploymentIntent intent;
  intent.set_action(v1::DEPLOYMENT_ACTION_ROLLBACK);
  intent.set_to_revision(req->to_revision());
  intent.set_cause(req->change_cause());
  auto recorded = RecordIntent(svc->id(), intent, /*finished_too=*/true);
  if (!recorded.ok()) return ToGrpc(recorded.status());
  auto d = AwaitIntent(*recorded);
  if (!d.ok()) return ToGrpc(d.status());
  auto now_svc = shared_.FindService(svc->id());
  if (!now_svc.ok()) return ToGrpc(now_svc.status());
  *resp = *now_svc;
  return grpc::Status::OK;
}

grpc::Status ControlService::PauseRollout(grpc::ServerContext* ctx, const v1::RolloutRequest* req,
                                          v1::Deployment* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/PauseRollout");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  return DeploymentAction(req->name_or_id(), v1::DEPLOYMENT_ACTION_PAUSE, false, resp);
}

grpc::Status ControlService::ResumeRollout(grpc::ServerContext* ctx, const v1::RolloutRequest* req,
                                           v1::Deployment* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ResumeRollout");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  return DeploymentAction(req->name_or_id(), v1::DEPLOYMENT_ACTION_RESUME, false, resp);
}

grpc::Status ControlService::GetRollout(grpc::ServerContext* ctx, const v1::RolloutRequest* req,
                                        v1::Deployment* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetRollout");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  auto svc = shared_.FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  auto all = ServiceDeployments(svc->id());
  if (all.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("service \"", svc->spec().name(), "\" has had no rollout"));
  }
  *resp = all.front();
  return grpc::Status::OK;
}

grpc::Status ControlService::ListDeployments(grpc::ServerContext* ctx,
                                             const v1::RolloutRequest* req,
                                             v1::ListDeploymentsResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ListDeployments");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = CorruptKindError(store_, Kind::kDeployment); !s.ok()) return ToGrpc(s);
  auto svc = shared_.FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  for (auto& d : ServiceDeployments(svc->id())) *resp->add_deployments() = std::move(d);
  return grpc::Status::OK;
}

grpc::Status ControlService::ListRevisions(grpc::ServerContext* ctx,
                                           const v1::ListRevisionsRequest* req,
                                           v1::ListRevisionsResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ListRevisions");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = CorruptKindError(store_, Kind::kRevision); !s.ok()) return ToGrpc(s);
  auto svc = shared_.FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  for (auto& r : ServiceRevisions(svc->id())) *resp->add_revisions() = std::move(r);
  return grpc::Status::OK;
}

grpc::Status ControlService::GetRevision(grpc::ServerContext* ctx,
                                         const v1::GetRevisionRequest* req, v1::Revision* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetRevision");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  auto svc = shared_.FindService(req->name_or_id());
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

grpc::Status ControlService::DeleteService(grpc::ServerContext* ctx,
                                           const v1::DeleteServiceRequest* req,
                                           v1::DeleteServiceResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/DeleteService");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  std::string id;
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(store_,
                      [&]() -> absl::StatusOr<std::vector<Mutation>> {
                        auto svc = shared_.FindService(req->name_or_id());
                        if (!svc.ok()) {
                          auto corrupt = FindCorrupt(store_, Kind::kService, req->name_or_id());
                          if (!corrupt) return svc.status();
                          // Removal is the way out of a corrupt service: what is known of it (id,
                          // name) is enough to delete it with its revisions, deployments and tasks.
                          svc = v1::Service();
                          svc->set_id(corrupt->id);
                          svc->mutable_spec()->set_name(corrupt->name);
                          svc->set_version(corrupt->version);
                        }
                        id = svc->id();
                        std::vector<Mutation> m = {DeleteMutation(*svc, svc->version())};
                        for (const auto& r : ServiceRevisions(svc->id()))
                          m.push_back(DeleteMutation(r));
                        for (const auto& d : ServiceDeployments(svc->id()))
                          m.push_back(DeleteMutation(d));
                        // What does not fit in one commit of this store (etcd's transaction
                        // limit) is left to the controller, which stops and forgets what a
                        // deleted service left behind, in parts.
                        const size_t fit = store_.MaxMutationsPerCommit() - 1;
                        for (const auto& t : ListObjects<v1::Task>(store_)) {
                          if (m.size() >= fit) break;
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
                        if (m.size() > fit)
                          m.erase(m.begin() + static_cast<std::ptrdiff_t>(fit), m.end());
                        m.push_back(events_.Make("service", svc->id(), svc->spec().name(),
                                                 "deleted", "removed", svc->id()));
                        return m;
                      },
                      {absl::StatusCode::kNotFound});
  if (!v.ok()) return ToGrpc(v.status());
  resp->set_id(id);
  return grpc::Status::OK;
}

grpc::Status ControlService::ScaleService(grpc::ServerContext* ctx,
                                          const v1::ScaleServiceRequest* req, v1::Service* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ScaleService");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = ValidateReplicas(req->replicas()); !s.ok()) return ToGrpc(s);
  auto svc = shared_.FindService(req->name_or_id());
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

grpc::Status ControlService::ServiceLogs(grpc::ServerContext* ctx,
                                         const v1::ServiceLogsRequest* req,
                                         grpc::ServerWriter<v1::LogLine>* writer) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ServiceLogs");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (req->tail() > limits::kMaxLogTail) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("tail: must be 0 (all)..", limits::kMaxLogTail, ", got ", req->tail()));
  }
  auto svc = shared_.FindService(req->name_or_id());
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
  // The lines of the tasks that could be read are sent; the first live task that could not be
  // read is the call's error, so that a worker's failure is not an empty, successful answer.
  grpc::Status first_error;  // guarded by write_mu
  std::vector<std::thread> followers;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::mutex ctx_mu;
  // A dead task's log goes with its directory (--task-dir-retention) or its node: best effort.
  // A task that has not started has no log yet.
  auto fail = [&](const v1::Task& task, const v1::Node& node, grpc::StatusCode code,
                  absl::string_view why) {
    if (IsTerminal(task.status().state())) return;
    if (code == grpc::NOT_FOUND && task.status().state() < v1::TASK_STATE_RUNNING) return;
    std::lock_guard<std::mutex> lock(write_mu);
    if (!first_error.ok()) return;
    first_error = grpc::Status(code == grpc::NOT_FOUND ? grpc::NOT_FOUND : grpc::UNAVAILABLE,
                               absl::StrCat("logs of task ", task.id(), " on node ", node.name(),
                                            " (", node.agent_addr(), "): ", why));
  };
  auto stream_task = [&](const v1::Task& task, bool follow) {
    auto node = GetObject<v1::Node>(store_, task.node_id());
    if (!node || node->agent_addr().empty()) return;
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (shared_.node_credentials) {
      auto mtls = shared_.node_credentials(node->id());
      if (!mtls.ok()) {
        fail(task, *node, grpc::UNAVAILABLE, mtls.status().message());
        return;
      }
      creds = std::move(*mtls);
    }
    auto channel = grpc::CreateChannel(node->agent_addr(), creds);
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
    bool client_gone = false;
    while (reader->Read(&line)) {
      line.set_slot(task.slot());
      std::lock_guard<std::mutex> lock(write_mu);
      if (!writer->Write(line)) {
        client_gone = true;
        break;
      }
    }
    if (client_gone) raw->TryCancel();
    grpc::Status status = reader->Finish();
    // A follower cancelled at the end of a follow, or the client gone: not the task's failure.
    if (status.ok() || client_gone || (follow && status.error_code() == grpc::CANCELLED)) return;
    fail(task, *node, status.error_code(), status.error_message());
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
    while (!ctx->IsCancelled() && !shared_.shutting_down) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    {
      std::lock_guard<std::mutex> lock(ctx_mu);
      for (auto& c : contexts) c->TryCancel();
    }
    for (auto& th : followers) th.join();
  }
  std::lock_guard<std::mutex> lock(write_mu);
  return first_error;
}

grpc::Status ControlService::ListTasks(grpc::ServerContext* ctx, const v1::ListTasksRequest* req,
                                       v1::ListTasksResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ListTasks");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = CorruptKindError(store_, Kind::kTask); !s.ok()) return ToGrpc(s);
  std::string service_id, node_id;
  if (!req->service().empty()) {
    auto s = shared_.FindService(req->service());
    if (!s.ok()) return ToGrpc(s.status());
    service_id = s->id();
  }
  if (!req->node().empty()) {
    auto n = shared_.FindNode(req->node());
    if (!n.ok()) return ToGrpc(n.status());
    node_id = n->id();
  }
  std::vector<v1::Task> tasks;
  if (service_id.empty()) {
    tasks = ListObjects<v1::Task>(store_);
  } else {
    // One service's tasks, not a parse of every task in the cluster.
    for (const std::string& id : lookup_.TaskIdsOf(service_id)) {
      if (auto t = GetObject<v1::Task>(store_, id)) tasks.push_back(std::move(*t));
    }
  }
  std::sort(tasks.begin(), tasks.end(), [](const auto& a, const auto& b) {
    if (a.service_name() != b.service_name()) return a.service_name() < b.service_name();
    if (a.slot() != b.slot()) return a.slot() < b.slot();
    if (a.node_id() != b.node_id()) return a.node_id() < b.node_id();
    return FromProtoTime(a.created_at()) > FromProtoTime(b.created_at());
  });
  for (auto& t : tasks) {
    if (!service_id.empty() && t.service_id() != service_id) continue;
    if (!node_id.empty() && t.node_id() != node_id) continue;
    if (req->state() != v1::TASK_STATE_UNSPECIFIED && t.status().state() != req->state()) continue;
    *resp->add_tasks() = std::move(t);
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::GetTask(grpc::ServerContext* ctx, const v1::GetTaskRequest* req,
                                     v1::Task* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetTask");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  auto t = GetObject<v1::Task>(store_, req->id());
  if (!t) {
    if (auto c = FindCorrupt(store_, Kind::kTask, req->id())) return ToGrpc(CorruptObjectError(*c));
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("task \"", req->id(), "\" not found"));
  }
  *resp = *t;
  return grpc::Status::OK;
}

grpc::Status ControlService::ListNodes(grpc::ServerContext* ctx, const v1::ListNodesRequest*,
                                       v1::ListNodesResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/ListNodes");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (auto s = CorruptKindError(store_, Kind::kNode); !s.ok()) return ToGrpc(s);
  auto nodes = ListObjects<v1::Node>(store_);
  std::sort(nodes.begin(), nodes.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  for (auto& n : nodes) {
    shared_.FillLiveness(&n);
    *resp->add_nodes() = std::move(n);
  }
  if (shared_.managers) {
    // The nodes come from memory; the managers from etcd, which may be out of reach: the
    // nodes are listed all the same, with the reason the managers are not.
    auto managers = shared_.managers();
    if (managers.ok()) {
      for (auto& m : *managers) *resp->add_managers() = std::move(m);
    } else {
      resp->set_managers_error(std::string(managers.status().message()));
    }
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::GetNode(grpc::ServerContext* ctx, const v1::GetNodeRequest* req,
                                     v1::Node* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetNode");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  auto n = shared_.FindNode(req->name_or_id());
  if (!n.ok()) return ToGrpc(n.status());
  *resp = *n;
  shared_.FillLiveness(resp);
  return grpc::Status::OK;
}

grpc::Status ControlService::UpdateNode(grpc::ServerContext* ctx, const v1::UpdateNodeRequest* req,
                                        v1::Node* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/UpdateNode");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  const v1::NodeAvailability availability = req->availability();
  if (availability == v1::NODE_AVAILABILITY_UNSPECIFIED) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "availability: required: active, pause or drain");
  }
  if (!v1::NodeAvailability_IsValid(availability)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("availability: must be active, pause or drain, got ",
                                     static_cast<int>(availability)));
  }
  v1::Node next;
  std::string what;
  bool unchanged = false;
  absl::StatusOr<uint64_t> v =
      CommitWithRetry(store_, [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto node = shared_.FindNode(req->name_or_id());
        if (!node.ok()) return node.status();
        if (req->expected_version() != 0 && req->expected_version() != node->version()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "node \"", node->name(), "\" changed since version ", req->expected_version(),
              " (now ", node->version(), "); read it again and retry"));
        }
        next = *node;
        unchanged = node->availability() == availability;
        if (unchanged) return std::vector<Mutation>{};
        next.set_availability(availability);
        const std::string was = NodeAvailabilityName(node->availability());
        const std::string now = NodeAvailabilityName(availability);
        what = absl::StrCat("availability ", now, " (was ", was, ")");
        if (availability == v1::NODE_AVAILABILITY_DRAIN) {
          absl::StrAppend(&what, ": its tasks move to other nodes");
        } else if (availability == v1::NODE_AVAILABILITY_PAUSE) {
          absl::StrAppend(&what, ": no new tasks");
        }
        return std::vector<Mutation>{PutMutation(next, node->version()),
                                     events_.Make("node", next.id(), next.name(), now, what)};
      });
  if (!v.ok()) return ToGrpc(v.status());
  if (!unchanged) {
    spdlog::info("node {} ({}): {}", next.name(), next.id(), what);
    next.set_version(*v);
  }
  shared_.FillLiveness(&next);
  *resp = next;
  return grpc::Status::OK;
}

grpc::Status ControlService::RemoveNode(grpc::ServerContext* ctx, const v1::RemoveNodeRequest* req,
                                        v1::RemoveNodeResponse* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/RemoveNode");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  v1::Node node;
  int moved = 0;
  absl::Time revoked_at;
  absl::StatusOr<uint64_t> v = CommitWithRetry(
      store_,
      [&]() -> absl::StatusOr<std::vector<Mutation>> {
        auto found = shared_.FindNode(req->name_or_id());
        if (!found.ok()) return found.status();
        node = *found;
        if (node.state() == v1::NODE_STATE_READY && !req->force()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "node \"", node.name(),
              "\" is ready (its worker is running): stop its worker and wait until "
              "`warren node ls` shows it down, or drain it and remove it with --force"));
        }
        const absl::Time now = clock_.Now();
        std::vector<Mutation> m = {DeleteMutation(node, node.version())};
        // Its subnet is free for the next node that registers.
        if (auto release = ReleaseNodeSubnet(store_, node)) m.push_back(std::move(*release));
        moved = 0;
        for (const auto& t : ListObjects<v1::Task>(store_)) {
          if (t.node_id() != node.id() || IsTerminal(t.status().state())) continue;
          // Orphaned like the tasks of a node that went down: the reconciler replaces them.
          v1::Task lost = t;
          auto* st = lost.mutable_status();
          st->set_state(v1::TASK_STATE_ORPHANED);
          st->set_message(absl::StrCat("node ", node.name(), " was removed"));
          *st->mutable_timestamp() = ToProtoTime(now);
          *st->mutable_finished_at() = ToProtoTime(now);
          m.push_back(PutMutation(lost, t.version()));
          moved++;
        }
        m.push_back(events_.Make("node", node.id(), node.name(), "removed",
                                 absl::StrCat("removed", req->force() ? " (forced)" : "", "; ",
                                              moved, " tasks rescheduled")));
        // Its certificates go with it, in the same commit: a removed node never comes back
        // under its id.
        revoked_at = now;
        auto revoke = RevokeNodeMutation(store_, node.id(), now, now + shared_.revocation_keep);
        if (!revoke.ok()) return revoke.status();
        if (*revoke) m.push_back(std::move(**revoke));
        return m;
      },
      {absl::StatusCode::kNotFound});
  if (!v.ok()) return ToGrpc(v.status());
  // The handshakes and every call (open streams at their next wake-up) consult this list.
  if (shared_.revoked) {
    shared_.revoked->RevokeNode(node.id(), revoked_at, revoked_at + shared_.revocation_keep);
  }
  spdlog::info("node {} ({}) removed{}; {} tasks rescheduled", node.name(), node.id(),
               req->force() ? " (forced)" : "", moved);
  resp->set_id(node.id());
  return grpc::Status::OK;
}

grpc::Status ControlService::WatchEvents(grpc::ServerContext* ctx,
                                         const v1::WatchEventsRequest* req,
                                         grpc::ServerWriter<v1::Event>* writer) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/WatchEvents");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  std::string service_id;
  if (!req->service().empty()) {
    auto s = shared_.FindService(req->service());
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
  while (!ctx->IsCancelled() && !shared_.shutting_down) {
    for (const v1::Event& e : reader.Next(absl::Milliseconds(500))) {
      if (!writer->Write(e)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::GetEndpoints(grpc::ServerContext* ctx,
                                          const v1::GetEndpointsRequest* req,
                                          v1::ServiceEndpoints* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetEndpoints");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  if (!shared_.routes || !shared_.traffic) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no traffic controller");
  }
  auto svc = shared_.FindService(req->name_or_id());
  if (!svc.ok()) return ToGrpc(svc.status());
  const auto [routing_version, route] = shared_.routes->Route(svc->id());
  resp->set_service(svc->spec().name());
  resp->set_routing_version(routing_version);
  *resp->mutable_ports() = svc->spec().template_().ports();
  std::map<int64_t, const v1::RevisionRoute*> routed_revs;
  std::set<std::string> routed_tasks;
  if (route) {
    for (const auto& r : route->revisions()) {
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
  auto totals = shared_.traffic->Totals(svc->id());
  auto recent = shared_.traffic->Recent(svc->id(), absl::Minutes(1));
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

grpc::Status ControlService::GetVersion(grpc::ServerContext* ctx, const v1::GetVersionRequest*,
                                        v1::VersionInfo* resp) {
  auto allowed = shared_.Authorize(ctx, "/warren.v1.Control/GetVersion");
  if (!allowed.ok()) return ToGrpc(allowed.status());
  resp->set_version(std::string(WarrenVersion()));
  resp->set_api(v1::VersionInfo::descriptor()->file()->package());
  return grpc::Status::OK;
}

}  // namespace warren
