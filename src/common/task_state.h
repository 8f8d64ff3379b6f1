#ifndef WARREN_COMMON_TASK_STATE_H_
#define WARREN_COMMON_TASK_STATE_H_

#include <string>

#include "warren/v1/objects.pb.h"

namespace warren {

// A terminal task never runs again; a replacement is a new task.
inline bool IsTerminal(v1::TaskState s) {
  switch (s) {
    case v1::TASK_STATE_COMPLETE:
    case v1::TASK_STATE_FAILED:
    case v1::TASK_STATE_SHUTDOWN:
    case v1::TASK_STATE_REJECTED:
    case v1::TASK_STATE_ORPHANED:
      return true;
    default:
      return false;
  }
}

// A task the manager still wants running that has not ended: it holds its slot.
inline bool IsLive(const v1::Task& t) {
  return t.desired_state() == v1::TASK_STATE_RUNNING && !IsTerminal(t.status().state());
}

// "running", "healthy", "ready": enum names without their prefix, lower case ("-" for
// unspecified).
std::string TaskStateName(v1::TaskState s);
std::string HealthStateName(v1::HealthState s);
std::string NodeStateName(v1::NodeState s);
// "active", "pause", "drain" (unspecified, as stored before availability existed: "active").
std::string NodeAvailabilityName(v1::NodeAvailability a);

// A node the scheduler may give new tasks: ready and active.
inline bool TakesNewTasks(const v1::Node& n) {
  return n.state() == v1::NODE_STATE_READY &&
         (n.availability() == v1::NODE_AVAILABILITY_ACTIVE ||
          n.availability() == v1::NODE_AVAILABILITY_UNSPECIFIED);
}

// A task that serves: running, and healthy when it has a health check.
inline bool IsServing(const v1::Task& t) {
  if (t.status().state() != v1::TASK_STATE_RUNNING) return false;
  auto h = t.status().health().state();
  return h == v1::HEALTH_STATE_HEALTHY || h == v1::HEALTH_STATE_NONE ||
         (h == v1::HEALTH_STATE_UNSPECIFIED && !t.spec().has_health_check());
}

}  // namespace warren

#endif  // WARREN_COMMON_TASK_STATE_H_
