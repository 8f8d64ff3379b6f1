#ifndef WARREN_MANAGER_ROLLOUT_INTENTS_H_
#define WARREN_MANAGER_ROLLOUT_INTENTS_H_

// User actions on a deployment (pause, resume, promote, abort, rollback) are intents: the API
// records one on the deployment (AddIntent) and returns once the controller has applied it
// (ApplyIntents, at the start of its next pass over that deployment). Only the controller
// changes a deployment's state, so a user action never loses a race with it.

#include <cstdint>

#include "manager/rollout/rollout.h"

namespace warren {

// Applied intents kept on a deployment, for the API to read their result.
inline constexpr int kKeptIntents = 8;

// Appends `intent` as the deployment's next request and returns its sequence number.
uint64_t AddIntent(v1::Deployment* d, v1::DeploymentIntent intent);

// The intent with `sequence`, or null.
const v1::DeploymentIntent* FindIntent(const v1::Deployment& d, uint64_t sequence);

// Applies the pending intents of `step`'s deployment in order, through the named transitions;
// each one is marked applied with its result or the reason it could not be.
void ApplyIntents(const PassInput& in, RolloutStep* step);

}  // namespace warren

#endif  // WARREN_MANAGER_ROLLOUT_INTENTS_H_
