#ifndef WARREN_CLI_STACK_COMMANDS_H_
#define WARREN_CLI_STACK_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"

namespace warren {

// `warren stack deploy|ls|ps|rm`: compose files as Warren services (docs/compose.md).
void AddStackCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action);

}  // namespace warren

#endif  // WARREN_CLI_STACK_COMMANDS_H_
