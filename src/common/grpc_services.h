#ifndef WARREN_COMMON_GRPC_SERVICES_H_
#define WARREN_COMMON_GRPC_SERVICES_H_

namespace warren {

// The standard health service (grpc.health.v1.Health) and server reflection
// (grpc.reflection.v1alpha) on every gRPC server built after this call, so generic gRPC tools
// (health probes, grpcurl-like clients) work against the manager's API and the workers' agent
// endpoints. Idempotent; call before creating a grpc::ServerBuilder.
void EnableStandardGrpcServices();

}  // namespace warren

#endif  // WARREN_COMMON_GRPC_SERVICES_H_
