#include "cli/cli.h"

namespace warren {
int RunCli(int, char**) { return 0; }
}  // namespace warren
