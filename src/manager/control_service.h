#ifndef WARREN_MANAGER_CONTROL_SERVICE_H_
#define WARREN_MANAGER_CONTROL_SERVICE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "manager/api_shared.h"
#include "manager/list_paging.h"
#include "manager/port_index.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

// The user-facing gRPC API (the CLI, the dashboard): services, rollouts, tasks, nodes, events.
// Every write is validated first and committed atomically with its events, so a rejected
// request stores nothing.
class ControlService final : public v1::Control::Service {
 public:
  explicit ControlService(ApiShared& shared);

  grpc::Status CreateService(grpc::ServerContext*, const v1::CreateServiceRequest*,
                             v1::Service*) override;
  grpc::Status GetService(grpc::ServerContext*, const v1::GetServiceRequest*,
                          v1::Service*) override;
  grpc::Status ListServices(grpc::ServerContext*, const v1::ListServicesRequest*,
                            v1::ListServicesResponse*) override;
  grpc::Status UpdateService(grpc::ServerContext*, const v1::UpdateServiceRequest*,
                             v1::Service*) override;
  grpc::Status DeleteService(grpc::ServerContext*, const v1::DeleteServiceRequest*,
                             v1::DeleteServiceResponse*) override;
  grpc::Status ScaleService(grpc::ServerContext*, const v1::ScaleServiceRequest*,
                            v1::Service*) override;
  grpc::Status ServiceLogs(grpc::ServerContext*, const v1::ServiceLogsRequest*,
                           grpc::ServerWriter<v1::LogLine>*) override;
  grpc::Status RollbackService(grpc::ServerContext*, const v1::RollbackServiceRequest*,
                               v1::Service*) override;
  grpc::Status PauseRollout(grpc::ServerContext*, const v1::RolloutRequest*,
                            v1::Deployment*) override;
  grpc::Status ResumeRollout(grpc::ServerContext*, const v1::RolloutRequest*,
                             v1::Deployment*) override;
  grpc::Status GetRollout(grpc::ServerContext*, const v1::RolloutRequest*,
                          v1::Deployment*) override;
  grpc::Status ListDeployments(grpc::ServerContext*, const v1::RolloutRequest*,
                               v1::ListDeploymentsResponse*) override;
  grpc::Status ListRevisions(grpc::ServerContext*, const v1::ListRevisionsRequest*,
                             v1::ListRevisionsResponse*) override;
  grpc::Status GetRevision(grpc::ServerContext*, const v1::GetRevisionRequest*,
                           v1::Revision*) override;
  grpc::Status PromoteRollout(grpc::ServerContext*, const v1::PromoteRequest*,
                              v1::Deployment*) override;
  grpc::Status AbortRollout(grpc::ServerContext*, const v1::RolloutRequest*,
                            v1::Deployment*) override;
  grpc::Status ListTasks(grpc::ServerContext*, const v1::ListTasksRequest*,
                         v1::ListTasksResponse*) override;
  grpc::Status GetTask(grpc::ServerContext*, const v1::GetTaskRequest*, v1::Task*) override;
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse*) override;
  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest*, v1::Node*) override;
  grpc::Status UpdateNode(grpc::ServerContext*, const v1::UpdateNodeRequest*, v1::Node*) override;
  grpc::Status RemoveNode(grpc::ServerContext*, const v1::RemoveNodeRequest*,
                          v1::RemoveNodeResponse*) override;
  grpc::Status WatchEvents(grpc::ServerContext*, const v1::WatchEventsRequest*,
                           grpc::ServerWriter<v1::Event>*) override;
  grpc::Status GetEndpoints(grpc::ServerContext*, const v1::GetEndpointsRequest*,
                            v1::ServiceEndpoints*) override;
  grpc::Status GetVersion(grpc::ServerContext*, const v1::GetVersionRequest*,
                          v1::VersionInfo*) override;

  // Tests on a fake clock: instead of waiting for the controller's thread, a rollout action
  // runs this (one controller pass) until its intent is applied.
  void SetIntentPass(std::function<void()> pass) { intent_pass_ = std::move(pass); }

  // Services the port checks compared a spec with, summed over all checks (their work).
  uint64_t port_check_work() ABSL_LOCKS_EXCLUDED(ports_mu_) {
    absl::MutexLock lock(&ports_mu_);
    return ports_.services_examined();
  }

 private:
  // The published ports live nodes report they cannot listen on (never stored).
  void FillPublishErrors(v1::Service* svc) const;

  // Appends to `m` the new deployment for current -> next and returns it. A rollout still in
  // progress is ended by the controller (superseded) in its next pass.
  v1::Deployment StartRollout(const v1::Service& current, const v1::Service& next,
                              const std::string& cause, absl::Time now, std::vector<Mutation>* m);
  // Deletes the oldest revisions beyond the history limit, never the current ones.
  void PruneRevisions(const v1::Service& next, int64_t keep_also, std::vector<Mutation>* m);
  std::vector<v1::Revision> ServiceRevisions(const std::string& service_id) const;
  // Newest first.
  std::vector<v1::Deployment> ServiceDeployments(const std::string& service_id) const;
  std::optional<v1::Deployment> ActiveDeployment(const std::string& service_id) const;
  std::optional<v1::Deployment> LatestDeployment(const std::string& service_id) const;

  // A user action is recorded as an intent on the service's active deployment (or, with
  // `finished_too`, its latest one) and applied by the controller.
  struct RecordedIntent {
    v1::Service service;
    std::string deployment_id;
    uint64_t sequence = 0;
  };
  absl::StatusOr<RecordedIntent> RecordIntent(const std::string& name_or_id,
                                              v1::DeploymentIntent intent, bool finished_too);
  // The deployment once the controller applied the intent (its error as the status), or as it
  // is when that takes longer than options_.intent_wait.
  absl::StatusOr<v1::Deployment> AwaitIntent(const RecordedIntent& recorded);
  grpc::Status DeploymentAction(const std::string& name_or_id, v1::DeploymentAction action,
                                bool full, v1::Deployment* resp);
  // Published-port conflicts of `spec` with the other services (CheckPortConflicts), except
  // one that `current` (the stored spec of the service being changed) already had.
  absl::Status CheckPorts(const v1::ServiceSpec& spec, const v1::ServiceSpec* current)
      ABSL_LOCKS_EXCLUDED(ports_mu_);

  ApiShared& shared_;
  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  NodeLiveness& liveness_;
  const ApiOptions& options_;
  ManagerMetrics* const metrics_;
  PublishErrorBoard& publish_errors_;
  // (mutable: a cache the const readers bring up to date.)
  mutable ServiceLookup lookup_{store_};
  std::function<void()> intent_pass_;
  // Serializes the port checks; an update holds it across its commit, a create reserves its
  // ports in `ports_` instead.
  absl::Mutex ports_mu_;
  PortIndex ports_ ABSL_GUARDED_BY(ports_mu_){store_};
};

}  // namespace warren

#endif  // WARREN_MANAGER_CONTROL_SERVICE_H_
