#include "common/grpc_services.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <mutex>

namespace warren {

void EnableStandardGrpcServices() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Both are process-wide switches read when a ServerBuilder is built.
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

}  // namespace warren
