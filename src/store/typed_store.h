#ifndef WARREN_STORE_TYPED_STORE_H_
#define WARREN_STORE_TYPED_STORE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"
#include "store/store.h"
#include "warren/v1/ingress.pb.h"
#include "warren/v1/objects.pb.h"
#include "warren/v1/secrets.pb.h"
#include "warren/v1/security.pb.h"

namespace warren {

// Maps each stored message type to its kind, unique name and id.
template <typename T>
struct ObjectTraits;

template <>
struct ObjectTraits<v1::Service> {
  static constexpr Kind kKind = Kind::kService;
  static std::string Name(const v1::Service& s) { return s.spec().name(); }
};
template <>
struct ObjectTraits<v1::Task> {
  static constexpr Kind kKind = Kind::kTask;
  static std::string Name(const v1::Task&) { return ""; }
};
template <>
struct ObjectTraits<v1::Node> {
  static constexpr Kind kKind = Kind::kNode;
  static std::string Name(const v1::Node& n) { return n.name(); }
};
template <>
struct ObjectTraits<v1::Revision> {
  static constexpr Kind kKind = Kind::kRevision;
  static std::string Name(const v1::Revision&) { return ""; }
};
template <>
struct ObjectTraits<v1::Deployment> {
  static constexpr Kind kKind = Kind::kDeployment;
  static std::string Name(const v1::Deployment&) { return ""; }
};
template <>
struct ObjectTraits<v1::Ingress> {
  static constexpr Kind kKind = Kind::kIngress;
  static std::string Name(const v1::Ingress& i) { return i.spec().name(); }
};
template <>
struct ObjectTraits<v1::Event> {
  static constexpr Kind kKind = Kind::kEvent;
  static std::string Name(const v1::Event&) { return ""; }
};

template <>
struct ObjectTraits<v1::Secret> {
  static constexpr Kind kKind = Kind::kSecret;
  static std::string Name(const v1::Secret& s) { return s.name(); }
};
template <>
struct ObjectTraits<v1::ClusterNetwork> {
  static constexpr Kind kKind = Kind::kClusterNetwork;
  static std::string Name(const v1::ClusterNetwork&) { return ""; }
};
template <>
struct ObjectTraits<v1::SubnetClaim> {
  static constexpr Kind kKind = Kind::kSubnetClaim;
  static std::string Name(const v1::SubnetClaim&) { return ""; }
};
// The one ClusterSecurity object's store id.
inline constexpr std::string_view kClusterSecurityId = "cluster";
// The one ClusterNetwork object's store id.
inline constexpr std::string_view kClusterNetworkId = "cluster";

// Event ids are numbers; their store ids are zero-padded so that id order is numeric order.
inline std::string EventStoreId(uint64_t id) {
  std::string s = std::to_string(id);
  return std::string(20 - s.size(), '0') + s;
}

template <typename T>
std::string StoreId(const T& obj) {
  if constexpr (std::is_same_v<T, v1::Event>) {
    return EventStoreId(obj.id());
  } else if constexpr (std::is_same_v<T, v1::ClusterNetwork>) {
    return std::string(kClusterNetworkId);
  } else if constexpr (std::is_same_v<T, v1::SubnetClaim>) {
    return obj.subnet();
  } else {
    return obj.id();
  }
}

// The store's check of an object's data (SqliteStoreOptions::parse): it parses as the kind's
// message, and the id and name it declares.
absl::StatusOr<ObjectIdentity> ParseStoredObject(Kind kind, std::string_view data);

// Parses a stored object and stamps its resource version. A store opened with
// ParseStoredObject never holds data that fails here; without it, the failure is logged.
template <typename T>
std::optional<T> Decode(const StoredObject& so) {
  T msg;
  if (!msg.ParseFromString(so.data)) {
    spdlog::error("store: {} {} (version {}) does not parse as {}; left out", KindName(so.kind),
                  so.id, so.version, T::descriptor()->full_name());
    return std::nullopt;
  }
  if constexpr (!std::is_same_v<T, v1::Event>) msg.set_version(so.version);
  return msg;
}

template <typename T>
std::optional<T> GetObject(const Store& store, std::string_view id) {
  auto so = store.Get(ObjectTraits<T>::kKind, id);
  if (!so) return std::nullopt;
  return Decode<T>(*so);
}

template <typename T>
std::optional<T> GetObjectByName(const Store& store, std::string_view name) {
  auto so = store.GetByName(ObjectTraits<T>::kKind, name);
  if (!so) return std::nullopt;
  return Decode<T>(*so);
}

template <typename T>
std::vector<T> ListObjects(const Store& store) {
  std::vector<T> out;
  for (const auto& so : store.List(ObjectTraits<T>::kKind)) {
    if (auto msg = Decode<T>(so)) out.push_back(std::move(*msg));
  }
  return out;
}

// A write of `obj`. expected_version 0 skips the check; use Mutation::kMustNotExist to create.
template <typename T>
Mutation PutMutation(const T& obj, uint64_t expected_version = 0) {
  Mutation m;
  m.kind = ObjectTraits<T>::kKind;
  m.id = StoreId(obj);
  m.name = ObjectTraits<T>::Name(obj);
  m.data = obj.SerializeAsString();
  m.expected_version = expected_version;
  return m;
}

template <typename T>
Mutation DeleteMutation(const T& obj, uint64_t expected_version = 0) {
  Mutation m;
  m.kind = ObjectTraits<T>::kKind;
  m.id = StoreId(obj);
  m.expected_version = expected_version;
  return m;
}

}  // namespace warren

#endif  // WARREN_STORE_TYPED_STORE_H_
