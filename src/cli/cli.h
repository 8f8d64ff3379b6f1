#ifndef WARREN_CLI_CLI_H_
#define WARREN_CLI_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "cli/rollout_follow.h"

namespace warren {

// The `warren` command line: server roles (cluster init, manager, worker) and client commands.
int RunCli(int argc, char** argv);

// Same, with the arguments (args[0] is the program name) and output streams given, for tests.
// Exit codes: 0 success, 1 failed request or bad input file, 2 usage error.
// Commands that follow a rollout (`service update`, `service rollback`, `service rollout status
// --watch`) exit 1 when it failed or was rolled back; see FollowRollout.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// Same, with the clock, sleeping, Ctrl-C and terminal detection of the follow loop given.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const FollowEnv& env);

}  // namespace warren

#endif  // WARREN_CLI_CLI_H_
