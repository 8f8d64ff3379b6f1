#ifndef WARREN_TESTS_UNIT_GRPC_PROBE_H_
#define WARREN_TESTS_UNIT_GRPC_PROBE_H_

// What a generic gRPC tool does against a Warren endpoint, written with nothing of Warren's:
// a raw grpc.health.v1.Health/Check call and a server-reflection client
// (grpc.reflection.v1alpha), their messages encoded and decoded by field number.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.pb.h"
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

// A serialized message with one string field.
inline std::string OneStringField(int number, const std::string& value) {
  google::protobuf::UnknownFieldSet message;
  message.AddLengthDelimited(number, value);
  std::string bytes;
  message.SerializeToString(&bytes);
  return bytes;
}

// The credentials a probe uses: `creds`, or plaintext when null.
inline std::shared_ptr<grpc::ChannelCredentials> ProbeCredentials(
    std::shared_ptr<grpc::ChannelCredentials> creds) {
  return creds != nullptr ? creds : grpc::InsecureChannelCredentials();
}

// grpc.health.v1.Health/Check for `service` ("" is the server as a whole).
inline HealthAnswer HealthCheck(const std::string& addr, const std::string& service,
                                std::chrono::seconds timeout = std::chrono::seconds(5),
                                std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  auto channel = grpc::CreateChannel(addr, ProbeCredentials(std::move(creds)));
  grpc::GenericStub stub(channel);
  // HealthCheckRequest.service
  const std::string bytes = service.empty() ? "" : OneStringField(1, service);
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

// One request on grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo; the answer's
// bytes, or nullopt with `error` set.
inline std::optional<std::string> ReflectionCall(
    const std::string& addr, const std::string& request_bytes, std::string* error,
    std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request_buffer(&slice, 1);
  auto channel = grpc::CreateChannel(addr, ProbeCredentials(std::move(creds)));
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
  std::string response;
  for (const auto& s : slices) response.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return response;
}

// The length-delimited fields numbered `number` of a serialized message.
inline std::vector<std::string> BytesFields(const std::string& message, int number) {
  google::protobuf::UnknownFieldSet fields;
  std::vector<std::string> out;
  if (!fields.ParseFromString(message)) return out;
  for (int i = 0; i < fields.field_count(); ++i) {
    if (fields.field(i).number() == number &&
        fields.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      out.push_back(fields.field(i).length_delimited());
    }
  }
  return out;
}

// The services a server lists through reflection (list_services "*"); nullopt with `error`
// set when the call fails. Field numbers are those of grpc/reflection/v1alpha/reflection.proto.
inline std::optional<std::vector<std::string>> ReflectionListServices(
    const std::string& addr, std::string* error,
    std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  // ServerReflectionRequest.list_services
  auto response = ReflectionCall(addr, OneStringField(7, "*"), error, std::move(creds));
  if (!response) return std::nullopt;
  auto lists = BytesFields(*response, 6);  // ServerReflectionResponse.list_services_response
  if (lists.empty()) {
    *error = "no list_services_response in the answer";
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (const std::string& service : BytesFields(lists[0], 1)) {  // ListServiceResponse.service
    for (const std::string& name : BytesFields(service, 1)) names.push_back(name);
  }
  return names;
}

// The file descriptors a server gives for `symbol` (file_containing_symbol), as a client
// needs them to build requests; nullopt with `error` set when the call fails.
inline std::optional<std::vector<google::protobuf::FileDescriptorProto>> ReflectionFileOf(
    const std::string& addr, const std::string& symbol, std::string* error) {
  // ServerReflectionRequest.file_containing_symbol
  auto response = ReflectionCall(addr, OneStringField(4, symbol), error);
  if (!response) return std::nullopt;
  auto files = BytesFields(*response, 4);  // ServerReflectionResponse.file_descriptor_response
  if (files.empty()) {
    *error = "no file_descriptor_response in the answer";
    return std::nullopt;
  }
  std::vector<google::protobuf::FileDescriptorProto> out;
  for (const std::string& f : BytesFields(files[0], 1)) {  // .file_descriptor_proto
    google::protobuf::FileDescriptorProto file;
    if (!file.ParseFromString(f)) {
      *error = "a file descriptor does not parse";
      return std::nullopt;
    }
    out.push_back(std::move(file));
  }
  return out;
}

}  // namespace warren::testing_util

#endif  // WARREN_TESTS_UNIT_GRPC_PROBE_H_
