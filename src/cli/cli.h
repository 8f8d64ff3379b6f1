#ifndef WARREN_CLI_CLI_H_
#define WARREN_CLI_CLI_H_

namespace warren {

// The `warren` command line: server roles (cluster init, manager, worker) and client commands.
int RunCli(int argc, char** argv);

}  // namespace warren

#endif  // WARREN_CLI_CLI_H_
