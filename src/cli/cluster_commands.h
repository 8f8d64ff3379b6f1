#ifndef WARREN_CLI_CLUSTER_COMMANDS_H_
#define WARREN_CLI_CLUSTER_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"

namespace warren {

// `warren cluster status`, `warren cluster backup FILE` and `warren cluster restore FILE
// --data-dir DIR` under `cluster` (see docs/cli.md and docs/operations.md, "Backup and
// restore").
void AddClusterAdminCommands(CLI::App* cluster, const CommandEnv& env,
                             std::function<int()>* action);

}  // namespace warren

#endif  // WARREN_CLI_CLUSTER_COMMANDS_H_
