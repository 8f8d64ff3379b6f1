#ifndef WARREN_COMMON_ROUTING_DELTA_H_
#define WARREN_COMMON_ROUTING_DELTA_H_

#include "absl/status/status.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Applies a routing table received from the manager to the one a worker holds: a full table
// replaces it; a delta (issue 18) must follow the held version (`base_version`), replaces the
// routes it carries, adds the new ones and drops `removed_service_ids`; its ingresses replace
// the held ones. The result is ordered
// by name as the manager's full table is, so the proxies, DNS and published ports see the
// same table either way. FAILED_PRECONDITION (nothing changed) when a delta does not follow:
// the caller asks for a full table again.
absl::Status ApplyRoutingTable(const v1::RoutingTable& received, v1::RoutingTable* held);

}  // namespace warren

#endif  // WARREN_COMMON_ROUTING_DELTA_H_
