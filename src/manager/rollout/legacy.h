#ifndef WARREN_MANAGER_ROLLOUT_LEGACY_H_
#define WARREN_MANAGER_ROLLOUT_LEGACY_H_

#include "warren/v1/objects.pb.h"

namespace warren {

// Deployments and revisions written before strategy, outcome and rollback reason became enums
// carry them as strings in field numbers that are now reserved; protobuf keeps them as unknown
// fields. These move them into the enum fields (and drop the strings); true when something
// changed. The controller runs them over the store once per pass until nothing is left.
bool UpgradeLegacyFields(v1::Deployment* d);
bool UpgradeLegacyFields(v1::Revision* r);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_LEGACY_H_
