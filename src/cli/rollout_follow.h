#ifndef WARREN_CLI_ROLLOUT_FOLLOW_H_
#define WARREN_CLI_ROLLOUT_FOLLOW_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren {

// The outside world of a command that follows a rollout: time, sleeping, Ctrl-C and the
// terminal. Tests swap in a fake clock whose sleep advances it, so nothing sleeps for real.
struct FollowEnv {
  std::function<absl::Time()> now;
  std::function<void(absl::Duration)> sleep;
  // True once the user asked to stop following (Ctrl-C).
  std::function<bool()> interrupted;
  // Install a SIGINT handler that makes `interrupted` true while following.
  bool catch_sigint = false;
  // Redraw the progress line in place; otherwise print it only when it changes.
  bool tty = false;
  absl::Duration poll_interval = absl::Milliseconds(200);
  // After the rollout ends, wait this long (real time) for its last events to arrive.
  absl::Duration event_grace = absl::Milliseconds(300);
  // Added to the progress deadline: with no visible change for that long, stop following.
  absl::Duration deadline_margin = absl::Seconds(30);

  // Wall clock, real sleep, SIGINT, and whether standard output is a terminal.
  static FollowEnv Real();
};

struct FollowRequest {
  // Name or id, for GetRollout, the event filter and messages.
  std::string service;
  // Wait for a deployment other than this one (the service's latest before the change);
  // empty: follow whatever the latest deployment is.
  std::string previous_deployment_id;
  // A rollback of a blue/green or canary rollout flips that same deployment back instead of
  // starting a new one: follow it when it is rolling back (or rolled back).
  bool rollback = false;
  // Follow a blue/green or canary rollout to its end, not only until all traffic is on the new
  // revision (`rollout status --watch`: the analysis after the switch is what it waits for).
  bool until_end = false;
  // Bound before the deployment (and its own progress deadline) is known.
  absl::Duration progress_deadline = absl::Minutes(10);
  // Events stamped at or after this time are shown.
  absl::Time events_since;
};

// How long a rollout of `strategy` may show no change before a follower gives up (before the
// margin): the progress deadline, or a canary window / blue-green scale-down delay when
// longer, since those pass with nothing to show.
absl::Duration RolloutQuietLimit(const std::string& strategy, const v1::UpdateConfig& config);

// Polls GetRollout every env.poll_interval, prints the progress line and the service's events
// as they happen, and the outcome. Returns the exit code: 0 succeeded (or paused by request),
// 1 rolled back / failed / superseded / paused by the failure action / no progress within the
// deadline / request error, 130 when interrupted (the rollout itself goes on).
int FollowRollout(v1::Control::Stub& stub, const FollowRequest& req, const FollowEnv& env,
                  std::ostream& out, std::ostream& err);

}  // namespace warren

#endif  // WARREN_CLI_ROLLOUT_FOLLOW_H_
