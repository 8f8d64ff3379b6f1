#ifndef WARREN_MANAGER_API_SERVICE_H_
#define WARREN_MANAGER_API_SERVICE_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "manager/events.h"
#include "manager/manager_metrics.h"
#include "manager/node_liveness.h"
#include "manager/publish_errors.h"
#include "manager/secret_service.h"
#include "manager/traffic.h"
#include "store/store.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

struct ApiOptions {
  absl::Duration node_timeout = absl::Seconds(15);
  // How many revisions of a service are kept.
  int history_limit = 10;
  // How long a rollout action (pause, promote, rollback...) waits for the controller to apply
  // it before returning it as pending.
  absl::Duration intent_wait = absl::Seconds(10);
};

// The manager's gRPC API. Every write is validated first and committed atomically with its
// events, so a rejected request stores nothing.
class ApiService final : public v1::Warren::Service {
 public:
  // `metrics` may be null (tests).
  ApiService(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
             ApiOptions options, ManagerMetrics* metrics = nullptr);

  // Ends the long-lived streams (watch, logs) so the server can shut down.
  void Shutdown() { shutting_down_ = true; }

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
  grpc::Status RegisterNode(grpc::ServerContext*, const v1::RegisterNodeRequest*,
                            v1::Node*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse*) override;
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse*) override;
  grpc::Status GetNode(grpc::ServerContext*, const v1::GetNodeRequest*, v1::Node*) override;
  grpc::Status UpdateNode(grpc::ServerContext*, const v1::UpdateNodeRequest*, v1::Node*) override;
  grpc::Status RemoveNode(grpc::ServerContext*, const v1::RemoveNodeRequest*,
                          v1::RemoveNodeResponse*) override;
  grpc::Status WatchEvents(grpc::ServerContext*, const v1::WatchEventsRequest*,
                           grpc::ServerWriter<v1::Event>*) override;
  grpc::Status WatchAssignments(grpc::ServerContext*, const v1::WatchAssignmentsRequest*,
                                grpc::ServerWriter<v1::Assignments>*) override;
  grpc::Status ReportTaskStatus(grpc::ServerContext*, const v1::ReportTaskStatusRequest*,
                                v1::ReportTaskStatusResponse*) override;
  grpc::Status WatchRoutes(grpc::ServerContext*, const v1::WatchRoutesRequest*,
                           grpc::ServerWriter<v1::RoutingTable>*) override;
  grpc::Status ReportTrafficStats(grpc::ServerContext*, const v1::TrafficStatsReport*,
                                  v1::ReportTrafficStatsResponse*) override;
  grpc::Status GetEndpoints(grpc::ServerContext*, const v1::GetEndpointsRequest*,
                            v1::ServiceEndpoints*) override;
  grpc::Status GetVersion(grpc::ServerContext*, const v1::GetVersionRequest*,
                          v1::VersionInfo*) override;

  // Tests on a fake clock: instead of waiting for the controller's thread, a rollout action
  // runs this (one controller pass) until its intent is applied.
  void SetIntentPass(std::function<void()> pass) { intent_pass_ = std::move(pass); }

  // The traffic pieces (owned by the server); without them the traffic RPCs are unavailable.
  void SetTraffic(RoutingTableCache* routes, TrafficStats* stats) {
    routes_ = routes;
    traffic_ = stats;
  }

  // The key secrets are opened with for the workers' assignments. Set once, before serving.
  void SetSecretKey(ClusterKeyFn key) { secret_key_ = std::move(key); }

 private:
  absl::StatusOr<v1::Service> FindService(const std::string& name_or_id) const;
  absl::StatusOr<v1::Node> FindNode(const std::string& name_or_id) const;
  void FillLiveness(v1::Node* node) const;
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
  absl::Status CheckPorts(const v1::ServiceSpec& spec, const v1::ServiceSpec* current) const;

  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  NodeLiveness& liveness_;
  const ApiOptions options_;
  ManagerMetrics* metrics_;
  RoutingTableCache* routes_ = nullptr;
  TrafficStats* traffic_ = nullptr;
  std::atomic<bool> shutting_down_{false};
  ClusterKeyFn secret_key_;
  std::function<void()> intent_pass_;
  PublishErrorBoard publish_errors_;
  // Serializes the port check and commit of service writes (create, update, rollback).
  absl::Mutex ports_mu_;
};

// absl::Status -> grpc::Status, code for code.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace warren

#endif  // WARREN_MANAGER_API_SERVICE_H_
