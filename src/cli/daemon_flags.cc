#include "cli/daemon_flags.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace warren {

void AddLogFlags(CLI::App* cmd) {
  // Owned by the command: CLI11 keeps the option's target for the app's life.
  auto options = std::make_shared<LogOptions>();
  cmd->add_option(
         "--log-level", options->level,
         absl::StrCat("Log messages at this level and above: ", absl::StrJoin(kLogLevels, ", ")))
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kLogLevels), std::end(kLogLevels))))
      ->capture_default_str();
  cmd->add_option("--log-format", options->format,
                  "Log lines as text or json (one object per line); UTC timestamps either way")
      ->check(
          CLI::IsMember(std::vector<std::string>(std::begin(kLogFormats), std::end(kLogFormats))))
      ->capture_default_str();
  cmd->parse_complete_callback([options] {
    // The values were checked above; an error here would be a bug in the lists.
    if (absl::Status s = ConfigureLogging(*options); !s.ok()) {
      spdlog::error("{}", std::string(s.message()));
    }
  });
}

}  // namespace warren
