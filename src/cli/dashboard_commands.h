#ifndef WARREN_CLI_DASHBOARD_COMMANDS_H_
#define WARREN_CLI_DASHBOARD_COMMANDS_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"

namespace warren {

// `warren dashboard token [--ttl 1h] [--role admin|read-only] [-q]`: a short-lived login token
// for the web dashboard and the URL that opens it (docs/dashboard.md, "Access").
void AddDashboardCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action);

}  // namespace warren

#endif  // WARREN_CLI_DASHBOARD_COMMANDS_H_
