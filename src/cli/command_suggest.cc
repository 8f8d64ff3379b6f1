#include "cli/command_suggest.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace warren {
namespace {

// The names (and aliases) of `app`'s commands, sorted.
std::vector<std::string> CommandNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty()) continue;  // option groups
    names.push_back(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) names.push_back(alias);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// "warren service rollout": the path of commands down to `app`.
std::string CommandPath(const CLI::App& app) {
  std::vector<std::string> path;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) path.push_back(a->get_name());
  std::reverse(path.begin(), path.end());
  return absl::StrJoin(path, " ");
}

}  // namespace

int EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string NearestCommand(std::string_view typed, const std::vector<std::string>& candidates) {
  // A third of the word may be wrong, at least one character and at most three; never the
  // whole word (any two-letter word is two edits from any other).
  const int limit = std::clamp(static_cast<int>(typed.size()) / 3, 1, 3);
  std::string best;
  int best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const int distance = EditDistance(typed, c);
    if (distance < best_distance && distance < static_cast<int>(typed.size())) {
      best = c;
      best_distance = distance;
    }
  }
  // A prefix is what a user typing fast leaves: "serv" for "service".
  if (best.empty() && typed.size() >= 2) {
    for (const std::string& c : candidates) {
      if (c.size() > typed.size() && c.compare(0, typed.size(), typed) == 0) return c;
    }
  }
  return best;
}

std::optional<std::string> UnknownCommandError(const CLI::App& app) {
  const CLI::App* deepest = &app;
  for (;;) {
    std::vector<CLI::App*> parsed = deepest->get_subcommands();
    if (parsed.empty()) break;
    deepest = parsed.front();
  }
  const std::vector<std::string> commands = CommandNames(*deepest);
  if (commands.empty()) return std::nullopt;
  // Arguments nobody took end up with the command that gave up on them (with fallthrough,
  // often the top one): the first one not an option is the command that was meant.
  std::string typed;
  for (const std::string& arg : app.remaining(/*recurse=*/true)) {
    if (!arg.empty() && arg[0] != '-') {
      typed = arg;
      break;
    }
  }
  const std::string path = CommandPath(*deepest);
  if (typed.empty()) {
    return absl::StrCat("'", path, "' needs a command: ", absl::StrJoin(commands, ", "), " (see '",
                        path, " --help')");
  }
  // At the top the program's name adds nothing: "unknown command 'servce'".
  const std::string unknown = absl::StrCat(
      "unknown command '", typed, "'", deepest == &app ? "" : absl::StrCat(" for '", path, "'"));
  std::string nearest = NearestCommand(typed, commands);
  if (!nearest.empty()) return absl::StrCat(unknown, "; did you mean '", nearest, "'?");
  return absl::StrCat(unknown, "; the commands are: ", absl::StrJoin(commands, ", "));
}

}  // namespace warren
