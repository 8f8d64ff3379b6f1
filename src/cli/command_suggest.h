#ifndef WARREN_CLI_COMMAND_SUGGEST_H_
#define WARREN_CLI_COMMAND_SUGGEST_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"

namespace warren {

// Optimal string alignment distance: an insertion, a deletion, a substitution or a swap of two
// neighbouring characters costs 1 each ("stauts" is 1 away from "status").
int EditDistance(std::string_view a, std::string_view b);

// The candidate nearest to `typed` if it is close enough to be a typo of it, else "". Ties go
// to the first candidate.
std::string NearestCommand(std::string_view typed, const std::vector<std::string>& candidates);

// For a parse that failed (`app` as CLI11 left it): when the deepest command reached takes
// commands and was given none or an unknown one, the message to print ("unknown command
// 'servce' for 'warren'; did you mean 'service'?", or the list of its commands). nullopt for
// every other usage error.
std::optional<std::string> UnknownCommandError(const CLI::App& app);

}  // namespace warren

#endif  // WARREN_CLI_COMMAND_SUGGEST_H_
