#ifndef WARREN_MANAGER_DISPATCHER_SERVICE_H_
#define WARREN_MANAGER_DISPATCHER_SERVICE_H_

#include "manager/api_shared.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

// The worker-facing gRPC API: registration, heartbeats, assignments, status reports, routes and
// traffic counters. Callers are nodes acting for themselves.
class DispatcherService final : public v1::Dispatcher::Service {
 public:
  explicit DispatcherService(ApiShared& shared);

  grpc::Status RegisterNode(grpc::ServerContext*, const v1::RegisterNodeRequest*,
                            v1::Node*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse*) override;
  grpc::Status WatchAssignments(grpc::ServerContext*, const v1::WatchAssignmentsRequest*,
                                grpc::ServerWriter<v1::Assignments>*) override;
  grpc::Status ReportTaskStatus(grpc::ServerContext*, const v1::ReportTaskStatusRequest*,
                                v1::ReportTaskStatusResponse*) override;
  grpc::Status WatchRoutes(grpc::ServerContext*, const v1::WatchRoutesRequest*,
                           grpc::ServerWriter<v1::RoutingTable>*) override;
  grpc::Status ReportTrafficStats(grpc::ServerContext*, const v1::TrafficStatsReport*,
                                  v1::ReportTrafficStatsResponse*) override;
  // The TLS ingress rules' certificates and opened keys (managers and workers only).
  grpc::Status GetIngressCertificates(grpc::ServerContext*,
                                      const v1::GetIngressCertificatesRequest*,
                                      v1::GetIngressCertificatesResponse*) override;

 private:
  ApiShared& shared_;
  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  NodeLiveness& liveness_;
  const ApiOptions& options_;
  PublishErrorBoard& publish_errors_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_DISPATCHER_SERVICE_H_
