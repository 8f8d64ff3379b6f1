#ifndef WARREN_CLI_VERSION_COMMAND_H_
#define WARREN_CLI_VERSION_COMMAND_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"

namespace warren {

// `warren --version` (this program's version, nothing asked of the manager) and
// `warren version [-o json|yaml]` (this program's version and the manager's; exit 1 when the
// manager cannot be asked, after printing the client's part).
void AddVersionCommand(CLI::App* app, const CommandEnv& env, std::function<int()>* action);

}  // namespace warren

#endif  // WARREN_CLI_VERSION_COMMAND_H_
