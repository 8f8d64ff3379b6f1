#ifndef WARREN_CLI_SECRET_COMMANDS_H_
#define WARREN_CLI_SECRET_COMMANDS_H_

#include <functional>
#include <istream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/command_env.h"

namespace warren {

// `secret create NAME (-f FILE | -)`, `secret update NAME (-f FILE | -)`, `secret ls`,
// `secret inspect NAME` (metadata only) and `secret rm NAME...`.
void AddSecretCommands(CLI::App* app, const CommandEnv& env, std::function<int()>* action);

// A secret's value from `-f FILE` or, with `from_stdin`, from `in`. INVALID_ARGUMENT naming
// the flag for both or neither, an unreadable file, or a value over 500 KiB (read no further).
absl::StatusOr<std::string> ReadSecretValue(const std::string& file, bool from_stdin,
                                            std::istream& in);

}  // namespace warren

#endif  // WARREN_CLI_SECRET_COMMANDS_H_
