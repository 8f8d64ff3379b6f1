#include "common/routing_delta.h"

#include <algorithm>
#include <set>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace warren {

absl::Status ApplyRoutingTable(const v1::RoutingTable& received, v1::RoutingTable* held) {
  if (!received.delta()) {
    *held = received;
    return absl::OkStatus();
  }
  if (received.base_version() != held->version()) {
    return absl::FailedPreconditionError(
        absl::StrCat("routing delta from version ", received.base_version(),
                     " does not follow the held version ", held->version()));
  }
  absl::flat_hash_map<std::string, const v1::ServiceRoute*> changed;
  for (const v1::ServiceRoute& r : received.services()) changed[r.service_id()] = &r;
  const std::set<std::string> removed(received.removed_service_ids().begin(),
                                      received.removed_service_ids().end());
  // The held table is sorted; it stays so unless a service is added or renamed.
  bool resort = false;
  v1::RoutingTable next;
  next.set_version(received.version());
  *next.mutable_ingresses() = received.ingresses();
  *next.mutable_peers() = received.peers();
  next.mutable_services()->Reserve(held->services_size() + received.services_size());
  for (v1::ServiceRoute& r : *held->mutable_services()) {
    if (removed.contains(r.service_id())) continue;
    if (auto it = changed.find(r.service_id()); it != changed.end()) {
      resort = resort || it->second->name() != r.name();
      *next.add_services() = *it->second;
      changed.erase(it);
    } else {
      *next.add_services() = std::move(r);
    }
  }
  for (const auto& [id, r] : changed) *next.add_services() = *r;
  if (resort || !changed.empty()) {
    std::sort(next.mutable_services()->begin(), next.mutable_services()->end(),
              [](const v1::ServiceRoute& a, const v1::ServiceRoute& b) {
                return a.name() != b.name() ? a.name() < b.name() : a.service_id() < b.service_id();
              });
  }
  *held = std::move(next);
  return absl::OkStatus();
}

}  // namespace warren
