#ifndef WARREN_MANAGER_API_SERVICE_H_
#define WARREN_MANAGER_API_SERVICE_H_

#include <atomic>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "manager/events.h"
#include "manager/node_liveness.h"
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
  ApiService(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
             ApiOptions options);

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

 private:
  absl::StatusOr<v1::Service> FindService(const std::string& name_or_id) const;
  absl::StatusOr<v1::Node> FindNode(const std::string& name_or_id) const;
  void FillLiveness(v1::Node* node) const;

  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  NodeLiveness& liveness_;
  const ApiOptions options_;
  std::atomic<bool> shutting_down_{false};
};

// absl::Status -> grpc::Status, code for code.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace warren

#endif  // WARREN_MANAGER_API_SERVICE_H_
