#include "store/typed_store.h"

#include "absl/strings/str_cat.h"

namespace warren {
namespace {

template <typename T>
absl::StatusOr<ObjectIdentity> Identity(std::string_view data) {
  T msg;
  if (!msg.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    return absl::DataLossError(absl::StrCat("its data (", data.size(), " bytes) does not parse as ",
                                            std::string(T::descriptor()->full_name())));
  }
  return ObjectIdentity{StoreId(msg), ObjectTraits<T>::Name(msg)};
}

}  // namespace

absl::StatusOr<ObjectIdentity> ParseStoredObject(Kind kind, std::string_view data) {
  switch (kind) {
    case Kind::kService:
      return Identity<v1::Service>(data);
    case Kind::kTask:
      return Identity<v1::Task>(data);
    case Kind::kNode:
      return Identity<v1::Node>(data);
    case Kind::kRevision:
      return Identity<v1::Revision>(data);
    case Kind::kEvent:
      return Identity<v1::Event>(data);
    case Kind::kDeployment:
      return Identity<v1::Deployment>(data);
    case Kind::kClusterSecurity: {
      v1::ClusterSecurity msg;
      if (!msg.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
        return absl::DataLossError(
            absl::StrCat("its data (", data.size(), " bytes) does not parse as ",
                         std::string(v1::ClusterSecurity::descriptor()->full_name())));
      }
      return ObjectIdentity{std::string(kClusterSecurityId), ""};
    }
    case Kind::kSecret:
      return Identity<v1::Secret>(data);
    case Kind::kIngress:
      return Identity<v1::Ingress>(data);
    case Kind::kClusterNetwork:
      return Identity<v1::ClusterNetwork>(data);
    case Kind::kSubnetClaim:
      return Identity<v1::SubnetClaim>(data);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown kind ", static_cast<int>(kind)));
}

}  // namespace warren
