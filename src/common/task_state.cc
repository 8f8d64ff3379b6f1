#include "common/task_state.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace warren {
namespace {

std::string StripPrefix(const std::string& name, absl::string_view prefix) {
  absl::string_view v = name;
  if (absl::StartsWith(v, prefix)) v.remove_prefix(prefix.size());
  std::string out = absl::AsciiStrToLower(v);
  return out == "unspecified" ? "-" : out;
}

}  // namespace

std::string TaskStateName(v1::TaskState s) {
  return StripPrefix(v1::TaskState_Name(s), "TASK_STATE_");
}
std::string HealthStateName(v1::HealthState s) {
  return StripPrefix(v1::HealthState_Name(s), "HEALTH_STATE_");
}
std::string NodeStateName(v1::NodeState s) {
  return StripPrefix(v1::NodeState_Name(s), "NODE_STATE_");
}

std::string NodeAvailabilityName(v1::NodeAvailability a) {
  if (a == v1::NODE_AVAILABILITY_UNSPECIFIED) return "active";
  return StripPrefix(v1::NodeAvailability_Name(a), "NODE_AVAILABILITY_");
}

}  // namespace warren
