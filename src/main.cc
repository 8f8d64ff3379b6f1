#include "cli/cli.h"

int main(int argc, char** argv) { return warren::RunCli(argc, argv); }
