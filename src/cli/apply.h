#ifndef WARREN_CLI_APPLY_H_
#define WARREN_CLI_APPLY_H_

#include <functional>
#include <string>
#include <vector>

#include "cli/command_env.h"
#include "warren/v1/api.grpc.pb.h"
#include "warren/v1/objects.pb.h"

namespace warren {

struct ApplyRequest {
  // As read (defaults are filled here).
  std::vector<v1::ServiceSpec> specs;
  // Names the i-th spec in error messages, e.g. "services.yaml: service 2 (web)".
  std::function<std::string(size_t i, const v1::ServiceSpec& spec)> describe;
  // Where the specs come from (a file name), for the dry run's diff.
  std::string source;
  // Recorded with each new revision.
  std::string change_cause;
  bool dry_run = false;
};

// `warren apply`'s create-or-update: every spec is defaulted and validated, every change is
// checked by the manager (a server-side dry run) before any is made, then each service is
// created, updated (only when it differs from the stored spec) or left alone, printing
// "NAME: created (ID)", "NAME: updated (revision N)" or "NAME: unchanged". With dry_run,
// prints "create", "unchanged" or "update" and a diff instead. The exit code: 0, or 1 after
// printing the first error.
int ApplyServices(v1::Control::Stub& stub, const ApplyRequest& request, const CommandEnv& env);

}  // namespace warren

#endif  // WARREN_CLI_APPLY_H_
