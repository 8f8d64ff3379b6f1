#include "cli/cli.h"
#include "common/heap.h"
#include "http/descriptor_budget.h"

int main(int argc, char** argv) {
  warren::ApplyProcessDefaults();  // before any thread starts
  // The default soft limit (often 1024) is far below what a node serving many connections
  // needs; the hard limit is what the administrator allows.
  warren::RaiseFileLimit();
  return warren::RunCli(argc, argv);
}
