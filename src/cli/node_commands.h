#ifndef WARREN_CLI_NODE_COMMANDS_H_
#define WARREN_CLI_NODE_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"

namespace warren {

// Under `node`: `update --availability active|pause|drain`, its shorthands `drain`, `cordon`
// (pause) and `uncordon` (active), and `rm [--force]`.
void AddNodeCommands(CLI::App* node, const CommandEnv& env, std::function<int()>* action);

}  // namespace warren

#endif  // WARREN_CLI_NODE_COMMANDS_H_
