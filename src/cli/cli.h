#ifndef WARREN_CLI_CLI_H_
#define WARREN_CLI_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace warren {

// The `warren` command line: server roles (cluster init, manager, worker) and client commands.
int RunCli(int argc, char** argv);

// Same, with the arguments (args[0] is the program name) and output streams given, for tests.
// Exit codes: 0 success, 1 failed request or bad input file, 2 usage error.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace warren

#endif  // WARREN_CLI_CLI_H_
