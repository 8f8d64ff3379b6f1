#ifndef WARREN_TESTS_UNIT_GRPC_PROBE_H_
#define WARREN_TESTS_UNIT_GRPC_PROBE_H_

// What a generic gRPC tool does against a Warren endpoint, written with nothing of Warren's:
// a raw grpc.health.v1.Health/Check call (the request and answer encoded by hand) and a
// server-reflection client (grpc.reflection.v1alpha, the messages built from their
// descriptors in the generated pool, as grpcurl does from the reflection answers).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/message.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

namespace warren::testing_util {

struct HealthAnswer {
  grpc::Status status;
  // grpc.health.v1.HealthCheckResponse.ServingStatus: 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN.
  int serving_status = 0;
};

inline bool NextTag(grpc::CompletionQueue& cq, void* want) {
  void* tag = nullptr;
  bool ok = false;
  return cq.Next(&tag, &ok) && tag == want && ok;
}

// grpc.health.v1.Health/Check for `service` ("" is the server as a whole).
inline HealthAnswer HealthCheck(const std::string& addr, const std::string& service,
                                std::chrono::seconds timeout = std::chrono::seconds(5)) {
  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  google::protobuf::UnknownFieldSet request;
  if (!service.empty()) request.AddLengthDelimited(1, service);  // HealthCheckRequest.service
  std::string bytes;
  request.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request_buffer(&slice, 1);

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request_buffer, &cq);
  call->StartCall();
  grpc::ByteBuffer response_buffer;
  HealthAnswer answer;
  int tag = 0;
  call->Finish(&response_buffer, &answer.status, &tag);
  NextTag(cq, &tag);
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  if (!answer.status.ok()) return answer;
  std::vector<grpc::Slice> slices;
  response_buffer.Dump(&slices);
  std::string response;
  for (const auto& s : slices) response.append(reinterpret_cast<const char*>(s.begin()), s.size());
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(response)) return answer;
  for (int i = 0; i < fields.field_count(); ++i) {
    if (fields.field(i).number() == 1 &&  // HealthCheckResponse.status
        fields.field(i).type() == google::protobuf::UnknownField::TYPE_VARINT) {
      answer.serving_status = static_cast<int>(fields.field(i).varint());
    }
  }
  return answer;
}

// The services a server lists through reflection (ServerReflectionInfo, list_services "*");
// nullopt with `error` set when the call fails.
inline std::optional<std::vector<std::string>> ReflectionListServices(const std::string& addr,
                                                                      std::string* error) {
  using google::protobuf::DescriptorPool;
  using google::protobuf::Message;
  using google::protobuf::MessageFactory;
  const auto* pool = DescriptorPool::generated_pool();
  const auto* request_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* response_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  if (request_type == nullptr || response_type == nullptr) {
    *error = "the reflection messages are not in the generated pool";
    return std::nullopt;
  }
  std::unique_ptr<Message> request(
      MessageFactory::generated_factory()->GetPrototype(request_type)->New());
  request->GetReflection()->SetString(request.get(), request_type->FindFieldByName("list_services"),
                                      "*");
  std::string bytes;
  request->SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request_buffer(&slice, 1);

  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  int start = 0, write = 0, done = 0, read = 0, finish = 0;
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  bool ok = true;
  call->StartCall(&start);
  ok = ok && NextTag(cq, &start);
  if (ok) call->Write(request_buffer, &write);
  ok = ok && NextTag(cq, &write);
  if (ok) call->WritesDone(&done);
  ok = ok && NextTag(cq, &done);
  if (ok) call->Read(&response_buffer, &read);
  const bool got = ok && NextTag(cq, &read);
  call->Finish(&status, &finish);
  NextTag(cq, &finish);
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  if (!got) {
    *error = "no answer: " + status.error_message();
    return std::nullopt;
  }
  std::vector<grpc::Slice> slices;
  response_buffer.Dump(&slices);
  std::string response_bytes;
  for (const auto& s : slices) {
    response_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  std::unique_ptr<Message> response(
      MessageFactory::generated_factory()->GetPrototype(response_type)->New());
  if (!response->ParseFromString(response_bytes)) {
    *error = "the answer does not parse";
    return std::nullopt;
  }
  const auto* list_field = response_type->FindFieldByName("list_services_response");
  if (!response->GetReflection()->HasField(*response, list_field)) {
    *error = "no list_services_response in " + response->ShortDebugString();
    return std::nullopt;
  }
  const Message& list = response->GetReflection()->GetMessage(*response, list_field);
  const auto* service_field = list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
    const Message& svc = list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(
        svc.GetReflection()->GetString(svc, svc.GetDescriptor()->FindFieldByName("name")));
  }
  return names;
}

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_GRPC_PROBE_H_
