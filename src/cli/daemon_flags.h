#ifndef WARREN_CLI_DAEMON_FLAGS_H_
#define WARREN_CLI_DAEMON_FLAGS_H_

#include "CLI/CLI.hpp"
#include "common/logging.h"

namespace warren {

// --log-level and --log-format on a server role (cluster init, manager, worker); the default
// logger is configured as soon as the command line is parsed, before the role starts.
void AddLogFlags(CLI::App* cmd);

}  // namespace warren

#endif  // WARREN_CLI_DAEMON_FLAGS_H_
