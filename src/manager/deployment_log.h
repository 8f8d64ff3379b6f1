#ifndef WARREN_MANAGER_DEPLOYMENT_LOG_H_
#define WARREN_MANAGER_DEPLOYMENT_LOG_H_

#include "warren/v1/objects.pb.h"

namespace warren {

// Logs what a committed deployment step changed: a new phase, a canary step, the blue/green
// switch at info (with service, deployment, revision and phase fields), batch progress at
// debug. `before` is the deployment as it was read, `after` as it was committed.
void LogDeploymentTransition(const v1::Deployment& before, const v1::Deployment& after);

}  // namespace warren

#endif  // WARREN_MANAGER_DEPLOYMENT_LOG_H_
