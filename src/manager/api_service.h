#ifndef WARREN_MANAGER_API_SERVICE_H_
#define WARREN_MANAGER_API_SERVICE_H_

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "manager/events.h"
#include "manager/manager_metrics.h"
#include "manager/node_liveness.h"
#include "manager/traffic.h"
#include "store/store.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

struct ApiOptions {
  absl::Duration node_timeout = absl::Seconds(15);
  // How many revisions of a service are kept.
  int history_limit = 10;
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

  // The traffic pieces (owned by the server); without them the traffic RPCs are unavailable.
  void SetTraffic(RoutingTableCache* routes, TrafficStats* stats) {
    routes_ = routes;
    traffic_ = stats;
  }

 private:
  absl::StatusOr<v1::Service> FindService(const std::string& name_or_id) const;
  absl::StatusOr<v1::Node> FindNode(const std::string& name_or_id) const;
  void FillLiveness(v1::Node* node) const;

  struct StartedRollout {
    std::string deployment_id;
    int64_t from_revision = 0;
    // The unfinished rollout this one replaced.
    std::optional<v1::Deployment> superseded;
  };
  // Appends to `m` the new deployment for current -> next (and the end of any rollout in
  // progress, superseded or rolled back by hand).
  absl::StatusOr<StartedRollout> StartRollout(const v1::Service& current, const v1::Service& next,
                                              const std::string& cause, bool rollback,
                                              absl::Time now, std::vector<Mutation>* m);
  void RecordSuperseded(const StartedRollout& started);
  // Deletes the oldest revisions beyond the history limit, never the current ones.
  void PruneRevisions(const v1::Service& next, int64_t keep_also, std::vector<Mutation>* m);
  std::vector<v1::Revision> ServiceRevisions(const std::string& service_id) const;
  std::vector<v1::Deployment> ServiceDeployments(const std::string& service_id) const;
  std::optional<v1::Deployment> ActiveDeployment(const std::string& service_id) const;
  grpc::Status SetPaused(const std::string& name_or_id, bool pause, v1::Deployment* resp);
  // One attempt of PromoteRollout; ABORTED when the deployment changed since it was read.
  grpc::Status PromoteOnce(const v1::PromoteRequest& req, v1::Deployment* resp);
  // Blue/green and canary: traffic back to the stable revision in one commit.
  grpc::Status AbortProgressive(const v1::Service& svc, const v1::Deployment& active,
                                const std::string& why, v1::Deployment* resp);
  static std::string RolloutStrategy(const v1::ServiceSpec& spec);

  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  NodeLiveness& liveness_;
  const ApiOptions options_;
  ManagerMetrics* metrics_;
  RoutingTableCache* routes_ = nullptr;
  TrafficStats* traffic_ = nullptr;
  std::atomic<bool> shutting_down_{false};
};

// absl::Status -> grpc::Status, code for code.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace warren

#endif  // WARREN_MANAGER_API_SERVICE_H_
