#include "cli/completion.h"

#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace warren {
namespace {

// What completes after one command path ("" for the program itself, "service rollout").
struct CommandWords {
  std::set<std::string> commands;
  // Values a positional argument allows (`completion bash|zsh`).
  std::set<std::string> arguments;
  std::set<std::string> options;
  // Options that take a value, with the values allowed when the option lists them.
  std::map<std::string, std::vector<std::string>> value_options;
};

// The values of an IsMember check, from the option's type name: "TEXT:{table,json,yaml}".
std::vector<std::string> AllowedValues(const CLI::Option& opt) {
  const std::string type = opt.get_type_name();
  const size_t open = type.find(":{");
  if (open == std::string::npos) return {};
  const size_t close = type.find('}', open);
  if (close == std::string::npos) return {};
  return absl::StrSplit(type.substr(open + 2, close - open - 2), ',', absl::SkipEmpty());
}

void Collect(const CLI::App& app, const std::string& path, const CommandWords* inherited,
             std::map<std::string, CommandWords>* out) {
  CommandWords words;
  // Options of the commands above apply too: the CLI lets them follow a subcommand
  // (`warren service ls --manager HOST`).
  if (inherited != nullptr) {
    words.options = inherited->options;
    words.value_options = inherited->value_options;
  }
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_positional() && opt->get_lnames().empty() && opt->get_snames().empty()) {
      for (const std::string& v : AllowedValues(*opt)) words.arguments.insert(v);
      continue;
    }
    std::vector<std::string> names;
    for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : opt->get_snames()) names.push_back("-" + s);
    for (const std::string& n : names) {
      words.options.insert(n);
      if (opt->get_type_size_max() > 0) words.value_options[n] = AllowedValues(*opt);
    }
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty()) continue;
    words.commands.insert(sub->get_name());
    for (const std::string& alias : sub->get_aliases()) words.commands.insert(alias);
  }
  (*out)[path] = words;
  const CommandWords& mine = (*out)[path];
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name().empty()) continue;
    const std::string sub_path = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    Collect(*sub, sub_path, &mine, out);
    for (const std::string& alias : sub->get_aliases()) {
      Collect(*sub, path.empty() ? alias : path + " " + alias, &mine, out);
    }
  }
}

std::map<std::string, CommandWords> Tree(const CLI::App& app) {
  std::map<std::string, CommandWords> tree;
  Collect(app, "", nullptr, &tree);
  return tree;
}

// Command and option names are plain words ([A-Za-z0-9_-]); anything else is quoted for the
// shell all the same.
std::string Quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string Words(const std::set<std::string>& words) { return Quote(absl::StrJoin(words, " ")); }

// The shell functions both scripts share (POSIX `case`, which bash and zsh read alike):
//   _warren_commands PATH        commands of a command path
//   _warren_words PATH           what completes after it: its commands, or the values its
//                                argument allows
//   _warren_options PATH         its options
//   _warren_takes_value PATH OPT whether OPT takes a value there
//   _warren_values PATH OPT      the values OPT allows
//   _warren_path WORD...         the command path the words (after the program name) select
std::string SharedFunctions(const CLI::App& app) {
  const std::map<std::string, CommandWords> tree = Tree(app);
  std::string commands, words_after, options, takes_value, values;
  for (const auto& [path, words] : tree) {
    const std::string key = Quote(path);
    if (!words.commands.empty()) {
      absl::StrAppend(&commands, "    ", key, ") echo ", Words(words.commands), " ;;\n");
    }
    std::set<std::string> after = words.commands;
    after.insert(words.arguments.begin(), words.arguments.end());
    if (!after.empty()) {
      absl::StrAppend(&words_after, "    ", key, ") echo ", Words(after), " ;;\n");
    }
    absl::StrAppend(&options, "    ", key, ") echo ", Words(words.options), " ;;\n");
    for (const auto& [opt, allowed] : words.value_options) {
      const std::string pair = Quote(path + "|" + opt);
      absl::StrAppend(&takes_value, "    ", pair, ") return 0 ;;\n");
      if (!allowed.empty()) {
        absl::StrAppend(&values, "    ", pair, ") echo ", Quote(absl::StrJoin(allowed, " ")),
                        " ;;\n");
      }
    }
  }
  return absl::StrCat("_warren_commands() {\n  case \"$1\" in\n", commands, "  esac\n}\n\n",
                      "_warren_words() {\n  case \"$1\" in\n", words_after, "  esac\n}\n\n",
                      "_warren_options() {\n  case \"$1\" in\n", options, "  esac\n}\n\n",
                      "_warren_takes_value() {\n  case \"$1|$2\" in\n", takes_value,
                      "  esac\n  return 1\n}\n\n", "_warren_values() {\n  case \"$1|$2\" in\n",
                      values, "  esac\n}\n\n",
                      R"sh(_warren_path() {
  local cmdpath="" skip=0 word
  for word in "$@"; do
    if [ "$skip" = 1 ]; then
      skip=0
      continue
    fi
    case "$word" in
      -*=*) ;;
      -*) if _warren_takes_value "$cmdpath" "$word"; then skip=1; fi ;;
      *)
        case " $(_warren_commands "$cmdpath") " in
          *" $word "*) cmdpath="${cmdpath:+$cmdpath }$word" ;;
        esac
        ;;
    esac
  done
  echo "$cmdpath"
}
)sh");
}

int PrintCompletion(const CLI::App& app, const CommandEnv& env, const std::string& shell) {
  *env.out << (shell == "zsh" ? ZshCompletion(app) : BashCompletion(app));
  return 0;
}

}  // namespace

std::string BashCompletion(const CLI::App& app) {
  return absl::StrCat(
      R"sh(# bash completion for warren, generated by `warren completion bash` from its command tree.
# Load it with:  source <(warren completion bash)
# or install it: warren completion bash > /etc/bash_completion.d/warren

)sh",
      SharedFunctions(app), R"sh(
_warren() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" cmdpath
  if [ "$COMP_CWORD" -gt 1 ]; then prev="${COMP_WORDS[COMP_CWORD-1]}"; fi
  cmdpath="$(_warren_path "${COMP_WORDS[@]:1:COMP_CWORD-1}")"
  COMPREPLY=()
  if [ -n "$prev" ] && [[ "$prev" == -* ]] && [[ "$prev" != *=* ]] &&
    _warren_takes_value "$cmdpath" "$prev"; then
#A value : the allowed ones, else the shell's default (file names).
    COMPREPLY=($(compgen -W "$(_warren_values "$cmdpath" "$prev")" -- "$cur"))
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_warren_options "$cmdpath")" -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -W "$(_warren_words "$cmdpath")" -- "$cur"))
  return 0
}

complete -o default -F _warren warren
)sh");
}

std::string ZshCompletion(const CLI::App& app) {
  return absl::StrCat(R"sh(#compdef warren
# zsh completion for warren, generated by `warren completion zsh` from its command tree.
# Load it with:  source <(warren completion zsh)   (after compinit)
# or install it: warren completion zsh > "${fpath[1]}/_warren"

)sh",
                      SharedFunctions(app), R"sh(
_warren() {
  local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" cmdpath
  local -a candidates
  cmdpath="$(_warren_path "${(@)words[2,CURRENT-1]}")"
  if (( CURRENT > 2 )) && [[ "$prev" == -* && "$prev" != *=* ]] &&
    _warren_takes_value "$cmdpath" "$prev"; then
    candidates=(${=$(_warren_values "$cmdpath" "$prev")})
    if (( ${#candidates} == 0 )); then
      _files
      return
    fi
  elif [[ "$cur" == -* ]]; then
    candidates=(${=$(_warren_options "$cmdpath")})
  else
    candidates=(${=$(_warren_words "$cmdpath")})
    if (( ${#candidates} == 0 )); then
      _files
      return
    fi
  fi
  compadd -a candidates
}

if
  [["${funcstack[1]}" == "_warren"]]; then
  _warren "$@"
else
  compdef _warren warren
fi
)sh");
}

void AddCompletionCommand(CLI::App* app, const CommandEnv& env, std::function<int()>* action) {
  auto shell = std::make_shared<std::string>();
  CLI::App* completion = app->add_subcommand(
      "completion", "Print a shell completion script (bash or zsh); see docs/cli.md");
  completion->add_option("SHELL", *shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));
  completion->callback([app, env, action, shell] {
    *action = [app, env, shell] { return PrintCompletion(*app, env, *shell); };
  });
}

}  // namespace warren
