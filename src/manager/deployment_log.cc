#include "manager/deployment_log.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/enum_names.h"
#include "common/logging.h"

namespace warren {
namespace {

std::string Phase(v1::DeploymentPhase phase) {
  absl::string_view full = v1::DeploymentPhase_Name(phase);
  absl::ConsumePrefix(&full, "DEPLOYMENT_PHASE_");
  std::string name = absl::AsciiStrToLower(full);
  for (char& c : name) {
    if (c == '_') c = '-';
  }
  return name;
}

}  // namespace

void LogDeploymentTransition(const v1::Deployment& before, const v1::Deployment& after) {
  const std::string phase = Phase(after.phase());
  const std::string revisions = absl::StrCat(after.from_revision(), "->", after.to_revision());
  const std::string what = absl::StrCat(
      after.rollback() ? "rollback " : "deployment ", after.id(), " of service ",
      after.service_name(), " (",
      after.strategy() == v1::DEPLOYMENT_STRATEGY_UNSPECIFIED ? "rolling"
                                                              : DisplayName(after.strategy()),
      ", revision ", after.from_revision(), " -> ", after.to_revision(), ")");
  const std::vector<LogField> fields = {{"service", after.service_name()},
                                        {"deployment", after.id()},
                                        {"revision", revisions},
                                        {"phase", phase}};
  if (before.phase() != after.phase()) {
    std::string msg = absl::StrCat(what, ": ", Phase(before.phase()), " -> ", phase);
    if (!after.reason().empty()) absl::StrAppend(&msg, ": ", after.reason());
    const bool bad = after.phase() == v1::DEPLOYMENT_PHASE_ROLLING_BACK ||
                     after.phase() == v1::DEPLOYMENT_PHASE_FAILED;
    LogWithFields(bad ? spdlog::level::warn : spdlog::level::info, msg, fields);
  }
  if (after.strategy() == v1::DEPLOYMENT_STRATEGY_CANARY &&
      (before.step() != after.step() || before.weight() != after.weight())) {
    LogWithFields(
        spdlog::level::info,
        absl::StrCat(what, ": canary step ", after.step() + 1, ", weight ", after.weight(), "%"),
        fields);
  }
  if (before.switched() != after.switched()) {
    LogWithFields(spdlog::level::info,
                  absl::StrCat(what, after.switched() ? ": production traffic switched to green"
                                                      : ": production traffic back on blue"),
                  fields);
  }
  if (before.batch() != after.batch() || before.updated() != after.updated() ||
      before.available() != after.available()) {
    LogWithFields(
        spdlog::level::debug,
        absl::StrCat(what, ": batch ", after.batch(), ", updated ", after.updated(), "/",
                     after.total(), ", available ", after.available(), "/", after.total()),
        fields);
  }
}

}  // namespace warren
