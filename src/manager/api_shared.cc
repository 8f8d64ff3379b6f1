#include "manager/api_shared.h"

#include "absl/strings/str_cat.h"
#include "common/time_util.h"
#include "security/revocation.h"
#include "store/typed_store.h"

namespace warren {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // A refusal's reason (security::kRefusalPayloadUrl) is what a client acts on, not the message.
  auto reason = s.GetPayload(security::kRefusalPayloadUrl);
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()),
                      reason ? std::string(*reason) : std::string());
}

absl::StatusOr<v1::Service> ApiShared::FindService(const std::string& name_or_id) const {
  if (name_or_id.empty()) return absl::InvalidArgumentError("service: a name or id is required");
  if (auto s = GetObjectByName<v1::Service>(store, name_or_id)) return *s;
  if (auto s = GetObject<v1::Service>(store, name_or_id)) return *s;
  if (auto c = FindCorrupt(store, Kind::kService, name_or_id)) return CorruptObjectError(*c);
  return absl::NotFoundError(absl::StrCat("service \"", name_or_id, "\" not found"));
}

absl::StatusOr<v1::Node> ApiShared::FindNode(const std::string& name_or_id) const {
  if (name_or_id.empty()) return absl::InvalidArgumentError("node: a name or id is required");
  if (auto n = GetObjectByName<v1::Node>(store, name_or_id)) return *n;
  if (auto n = GetObject<v1::Node>(store, name_or_id)) return *n;
  if (auto c = FindCorrupt(store, Kind::kNode, name_or_id)) return CorruptObjectError(*c);
  return absl::NotFoundError(absl::StrCat("node \"", name_or_id, "\" not found"));
}

void ApiShared::FillLiveness(v1::Node* node) const {
  if (liveness.Heard(node->id())) {
    *node->mutable_last_heartbeat() = ToProtoTime(liveness.LastSeen(node->id()));
  }
}

}  // namespace warren
