#ifndef WARREN_CLI_COMPLETION_H_
#define WARREN_CLI_COMPLETION_H_

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/command_env.h"

namespace warren {

// Shell completion scripts generated from `app`'s command tree (commands, their aliases and
// options, the options that take a value and the values a `check(IsMember(...))` allows), so
// a new command or flag completes without anyone editing a list.
std::string BashCompletion(const CLI::App& app);
std::string ZshCompletion(const CLI::App& app);

// `warren completion bash|zsh`: prints the script for `app` (the whole tree, read when the
// command runs).
void AddCompletionCommand(CLI::App* app, const CommandEnv& env, std::function<int()>* action);

}  // namespace warren

#endif  // WARREN_CLI_COMPLETION_H_
