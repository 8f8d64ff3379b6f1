// Issue 11's command-line basics: unknown commands, versions, completion, -q, the ERROR column
// and `service inspect -o yaml` read back by `apply -f`.
#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cli.h"
#include "cli/command_suggest.h"
#include "cli/output.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "in_process_cluster.h"
#include "nlohmann/json.hpp"
#include "test_subprocess.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::CliClusterTest;
using testing_util::WaitFor;

std::string Version() { return std::string(WarrenVersion()); }

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result RunAlone(std::vector<std::string> args) {
  std::ostringstream out, err;
  args.insert(args.begin(), "warren");
  int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(CommandSuggestTest, EditDistance) {
  EXPECT_EQ(EditDistance("service", "service"), 0);
  EXPECT_EQ(EditDistance("servce", "service"), 1);
  EXPECT_EQ(EditDistance("stauts", "status"), 1);  // a swap of neighbours is one edit
  EXPECT_EQ(EditDistance("", "ls"), 2);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
}

TEST(CommandSuggestTest, NearestOnlyWhenCloseEnough) {
  const std::vector<std::string> commands = {"create", "inspect", "ls", "ps", "rm", "update"};
  EXPECT_EQ(NearestCommand("lss", commands), "ls");
  EXPECT_EQ(NearestCommand("inspec", commands), "inspect");
  EXPECT_EQ(NearestCommand("updte", commands), "update");
  EXPECT_EQ(NearestCommand("insp", commands), "inspect");  // a prefix
  EXPECT_EQ(NearestCommand("frobnicate", commands), "");
  EXPECT_EQ(NearestCommand("xy", commands), "");  // two letters from anything else
}

TEST(CliBasicsTest, UnknownCommandSuggestsTheNearestAtEveryLevel) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"servce", "ls"}, "error: unknown command 'servce'; did you mean 'service'?\n"},
           {{"service", "lss"},
            "error: unknown command 'lss' for 'warren service'; did you mean 'ls'?\n"},
           {{"service", "rollout", "stauts", "web"},
            "error: unknown command 'stauts' for 'warren service rollout'; did you mean "
            "'status'?\n"},
           {{"--manager", "127.0.0.1:1", "node", "inspec", "n1"},
            "error: unknown command 'inspec' for 'warren node'; did you mean 'inspect'?\n"},
           {{"stack", "deplyo"},
            "error: unknown command 'deplyo' for 'warren stack'; did you mean 'deploy'?\n"},
       }) {
    Result r = RunAlone(c.args);
    EXPECT_EQ(r.code, 2) << c.want;
    EXPECT_EQ(r.err, c.want);
    EXPECT_EQ(r.out, "");
  }
  Result far = RunAlone({"frobnicate"});
  EXPECT_EQ(far.code, 2);
  EXPECT_THAT(far.err, HasSubstr("unknown command 'frobnicate'; the commands are: "));
  EXPECT_THAT(far.err, HasSubstr("service"));
  Result none = RunAlone({"service"});
  EXPECT_EQ(none.code, 2);
  EXPECT_THAT(none.err, HasSubstr("'warren service' needs a command: "));
  EXPECT_THAT(none.err, HasSubstr("create"));
  // Other usage errors keep their own message.
  Result bogus = RunAlone({"service", "ls", "--bogus"});
  EXPECT_EQ(bogus.code, 2);
  EXPECT_THAT(bogus.err, HasSubstr("--bogus"));
  EXPECT_THAT(bogus.err, Not(HasSubstr("unknown command")));
}

TEST(CliBasicsTest, VersionFlagPrintsOnlyThisProgramsVersion) {
  Result r = RunAlone({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, absl::StrCat("warren ", Version(), "\n"));
  // From CMake's project version, not a placeholder.
  EXPECT_THAT(Version(), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
}

TEST(CliBasicsTest, VersionWithoutAManagerPrintsTheClientAndFails) {
  Result r = RunAlone({"--manager", "127.0.0.1:1", "version"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, absl::StrCat("Client: warren ", Version(), "\n"));
  EXPECT_THAT(r.err, HasSubstr("cannot reach the manager at 127.0.0.1:1"));
}

TEST(CliBasicsTest, DashboardTokenFlagsAreCheckedBeforeAnyCall) {
  Result r = RunAlone({"--manager", "127.0.0.1:1", "dashboard", "token", "--ttl", "48h"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "error: --ttl: must be 1m..24h, got 48h\n");
  r = RunAlone({"--manager", "127.0.0.1:1", "dashboard", "token", "--ttl", "soon"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--ttl: "));
  r = RunAlone({"--manager", "127.0.0.1:1", "dashboard", "token", "--role", "root"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "error: --role: expected \"admin\" or \"read-only\", got \"root\"\n");
}

// A plaintext manager has no dashboard login: the CLI says so.
TEST_F(CliClusterTest, DashboardTokenFromAPlaintextManagerSaysThereIsNoLogin) {
  EXPECT_EQ(Run({"dashboard", "token"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("the dashboard has no login without TLS"));
}

TEST_F(CliClusterTest, VersionShowsClientAndServer) {
  ASSERT_EQ(Run({"version"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), absl::StrCat("Client: warren ", Version(), "\nServer: warren ", Version(),
                                     " (manager ", manager_->api_addr(), ", API warren.v1)\n"));
  ASSERT_EQ(Run({"version", "-o", "json"}), 0) << err_.str();
  nlohmann::json j = nlohmann::json::parse(out_.str());
  EXPECT_EQ(j["client"]["version"], Version());
  EXPECT_EQ(j["server"]["version"], Version());
  EXPECT_EQ(j["server"]["api"], "warren.v1");
  EXPECT_EQ(j["server"]["address"], manager_->api_addr());
  ASSERT_EQ(Run({"version", "-o", "yaml"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr(absl::StrCat("server:\n  version: ", Version())));
}

// Completes `line` (the cursor at its end) with the bash script as a user's shell would load it.
std::vector<std::string> BashComplete(const std::string& script_path, const std::string& line) {
  std::vector<std::string> words = absl::StrSplit(line, ' ');
  std::string comp_words;
  for (const std::string& w : words) absl::StrAppend(&comp_words, " '", w, "'");
  const std::string program =
      absl::StrCat("source '", script_path, "' || exit 3; COMP_WORDS=(", comp_words,
                   "); COMP_CWORD=", words.size() - 1, "; COMP_LINE='", line,
                   "'; COMP_POINT=", line.size(), "; _warren; printf '%s\\n' \"${COMPREPLY[@]}\"");
  auto bash = test::Subprocess::Start({"/bin/bash", "--norc", "--noprofile", "-c", program},
                                      {{"PATH", "/usr/bin:/bin"}});
  EXPECT_TRUE(bash.ok()) << bash.status();
  if (!bash.ok()) return {};
  absl::StatusOr<int> code = (*bash)->Wait(absl::Seconds(30));
  EXPECT_TRUE(code.ok() && *code == 0) << (*bash)->Stderr();
  std::vector<std::string> out = absl::StrSplit((*bash)->Stdout(), '\n', absl::SkipEmpty());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(CliBasicsTest, BashCompletionFromTheCommandTree) {
  Result script = RunAlone({"completion", "bash"});
  ASSERT_EQ(script.code, 0) << script.err;
  testing_util::TempDir dir;
  const std::string path = dir.str() + "/warren.bash";
  std::ofstream(path) << script.out;

  EXPECT_THAT(BashComplete(path, "warren ser"), ElementsAre("service"));
  EXPECT_THAT(BashComplete(path, "warren s"), ElementsAre("secret", "service", "stack"));
  EXPECT_THAT(BashComplete(path, "warren service rollout st"), ElementsAre("status"));
  // Option values are skipped: --manager takes one.
  EXPECT_THAT(BashComplete(path, "warren --manager 127.0.0.1:1 no"), ElementsAre("node"));
  EXPECT_THAT(BashComplete(path, "warren service ls --q"), ElementsAre("--quiet"));
  // Options of the commands above apply below them.
  EXPECT_THAT(BashComplete(path, "warren service ls --man"), ElementsAre("--manager"));
  // The values an option allows.
  EXPECT_THAT(BashComplete(path, "warren service ls -o "), ElementsAre("json", "table", "yaml"));
  EXPECT_THAT(BashComplete(path, "warren completion "), ElementsAre("bash", "zsh"));
  // A positional argument is not a command: the path stays `service ps`.
  EXPECT_THAT(BashComplete(path, "warren service ps web --no"), ElementsAre("--no-trunc"));
}

TEST(CliBasicsTest, ZshCompletionIsGeneratedFromTheSameTree) {
  Result script = RunAlone({"completion", "zsh"});
  ASSERT_EQ(script.code, 0) << script.err;
  EXPECT_THAT(script.out, ::testing::StartsWith("#compdef warren\n"));
  EXPECT_THAT(script.out, HasSubstr("compadd -a candidates"));
  EXPECT_THAT(script.out, HasSubstr("'service rollout') echo "));
  Result bad = RunAlone({"completion", "fish"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("fish"));
}

TEST(OutputTest, ShortenCell) {
  EXPECT_EQ(ShortenCell("short", 10), "short");
  EXPECT_EQ(ShortenCell("line one\nline two", 60), "line one line two");
  EXPECT_EQ(ShortenCell("abcdefghijklmnop", 10), "abcdefg...");
  // Never cut inside a UTF-8 sequence: "é" is two bytes.
  EXPECT_EQ(ShortenCell("abcdef\xc3\xa9zzzz", 10), "abcdef...");
}

TEST(OutputTest, TasksTableShowsTheErrorShortened) {
  v1::ListTasksResponse tasks;
  v1::Task* t = tasks.add_tasks();
  t->set_id("t1");
  t->set_slot(1);
  t->set_desired_state(v1::TASK_STATE_RUNNING);
  t->mutable_status()->set_state(v1::TASK_STATE_FAILED);
  const std::string error =
      "exec /no/such/program: No such file or directory (check the command and the PATH)";
  t->mutable_status()->set_error(error);
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  std::string table = RenderTasks(tasks, {}, OutputFormat::kTable, now);
  EXPECT_THAT(table, HasSubstr("ERROR\n"));
  EXPECT_THAT(table, HasSubstr(ShortenCell(error)));
  EXPECT_THAT(table, Not(HasSubstr(error)));
  EXPECT_THAT(RenderTasks(tasks, {}, OutputFormat::kTable, now, /*no_trunc=*/true),
              HasSubstr(error));
  EXPECT_THAT(RenderTasks(tasks, {}, OutputFormat::kJson, now), HasSubstr(error));
  EXPECT_EQ(RenderTaskIds(tasks), "t1\n");
}

TEST_F(CliClusterTest, ServicePsShowsExecFailuresAndUnschedulableReasons) {
  Worker& w = AddWorker("w1", "127.41.0.0/16", {{"zone", "eu"}});
  w.driver->FailStartsOf("/no/such/program",
                         "exec \"/no/such/program\": No such file or directory; check the "
                         "command and the worker's PATH");
  ASSERT_EQ(Run({"service", "create", "broken", "--command", "/no/such/program", "--restart-delay",
                 "1h"}),
            0)
      << err_.str();
  ASSERT_EQ(Run({"service", "create", "nowhere", "--command", "app", "--constraint",
                 "node.labels.zone==us"}),
            0)
      << err_.str();
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("broken")) {
      if (!t.status().error().empty()) return true;
    }
    return false;
  }));
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("nowhere")) {
      if (!t.status().error().empty()) return true;
    }
    return false;
  }));

  ASSERT_EQ(Run({"service", "ps", "broken"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("ERROR"));
  EXPECT_THAT(out_.str(), HasSubstr("exec \"/no/such/program\": No such file or directory"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("worker's PATH")));  // shortened
  ASSERT_EQ(Run({"service", "ps", "broken", "--no-trunc"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("worker's PATH"));
  ASSERT_EQ(Run({"service", "ps", "broken", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("worker's PATH"));

  ASSERT_EQ(Run({"service", "ps", "nowhere"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("no suitable node: no ready node satisfies constraint"));
  ASSERT_EQ(Run({"service", "ps", "nowhere", "--no-trunc"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("no suitable node: no ready node satisfies constraint "
                                    "node.labels.zone==us"));
}

TEST_F(CliClusterTest, QuietListsIdsOnly) {
  Worker& w = AddWorker("w1", "127.42.0.0/16");
  ASSERT_EQ(Run({"service", "create", "web", "--command", "app", "--replicas", "2"}), 0)
      << err_.str();
  const std::string web_id(absl::StripTrailingAsciiWhitespace(out_.str()));
  ASSERT_EQ(Run({"service", "create", "api", "--command", "app", "--label",
                 "com.docker.stack.namespace=shop"}),
            0)
      << err_.str();
  const std::string api_id(absl::StripTrailingAsciiWhitespace(out_.str()));
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2; }));

  ASSERT_EQ(Run({"service", "ls", "-q"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), absl::StrCat(api_id, "\n", web_id, "\n"));  // by name: api, web
  ASSERT_EQ(Run({"service", "ps", "web", "--quiet"}), 0) << err_.str();
  std::vector<std::string> ids = absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(ids.size(), 2u);
  for (const auto& t : Tasks("web")) EXPECT_THAT(ids, ::testing::Contains(t.id()));
  ASSERT_EQ(Run({"node", "ls", "-q"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), w.agent->node_id() + "\n");
  ASSERT_EQ(Run({"stack", "ls", "-q"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "shop\n");
}

TEST_F(CliClusterTest, InspectYamlAppliesBackUnchanged) {
  AddWorker("w1", "127.43.0.0/16", {{"zone", "eu"}});
  ASSERT_EQ(Run({"service",
                 "create",
                 "web",
                 "--command",
                 "app",
                 "--arg",
                 "--listen",
                 "--arg",
                 "0.0.0.0:8080",
                 "--replicas",
                 "3",
                 "--env",
                 "A=1",
                 "--env",
                 "EQ=a=b",
                 "--publish",
                 "9000:8080",
                 "--health-http",
                 "/healthz",
                 "--health-interval",
                 "1500ms",
                 "--health-retries",
                 "4",
                 "--health-start-period",
                 "1m30s",
                 "--restart-condition",
                 "on-failure",
                 "--restart-max-attempts",
                 "5",
                 "--restart-delay",
                 "2s",
                 "--cpus",
                 "0.25",
                 "--memory",
                 "64M",
                 "--label",
                 "team=core",
                 "--container-label",
                 "tier=front",
                 "--constraint",
                 "node.labels.zone==eu",
                 "--stop-timeout",
                 "20s",
                 "--drain-timeout",
                 "3s",
                 "--parallelism",
                 "0",
                 "--max-surge",
                 "25%",
                 "--max-unavailable",
                 "1",
                 "--update-order",
                 "stop-first",
                 "--update-delay",
                 "5s",
                 "--min-ready",
                 "2s",
                 "--failure-action",
                 "pause",
                 "--max-failure-ratio",
                 "0.5",
                 "--rollback-parallelism",
                 "2",
                 "--history-limit",
                 "4"}),
            0)
      << err_.str();
  const v1::Service before = GetService("web");
  for (const std::string format : {"yaml", "json"}) {
    SCOPED_TRACE(format);
    ASSERT_EQ(Run({"service", "inspect", "web", "-o", format}), 0) << err_.str();
    const std::string path = absl::StrCat(dir_.str(), "/web.", format);
    std::ofstream(path) << out_.str();
    ASSERT_EQ(Run({"apply", "-f", path, "--dry-run"}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "web: unchanged\n");
    ASSERT_EQ(Run({"apply", "-f", path}), 0) << err_.str();
    EXPECT_EQ(out_.str(), "web: unchanged\n");
    const v1::Service after = GetService("web");
    EXPECT_EQ(after.revision(), before.revision());
    EXPECT_EQ(after.version(), before.version());
  }

  // Edited, the same file is an update of what changed.
  ASSERT_EQ(Run({"service", "inspect", "web", "-o", "yaml"}), 0) << err_.str();
  std::string yaml = out_.str();
  const size_t at = yaml.find("replicas: 3");
  ASSERT_NE(at, std::string::npos) << yaml;
  yaml.replace(at, 11, "replicas: 2");
  const std::string edited = dir_.str() + "/edited.yaml";
  std::ofstream(edited) << yaml;
  ASSERT_EQ(Run({"apply", "-f", edited}), 0) << err_.str();
  const v1::Service scaled = GetService("web");
  EXPECT_EQ(scaled.spec().replicas(), 2);
  v1::ServiceSpec want = before.spec();
  want.set_replicas(2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(scaled.spec(), want))
      << scaled.spec().DebugString();

  // A typo among the manager's fields is still an error.
  const std::string typo = dir_.str() + "/typo.yaml";
  std::ofstream(typo) << "id: x\nrevison: 3\nspec:\n  name: web\n";
  EXPECT_EQ(Run({"apply", "-f", typo}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("unknown field \"revison\""));
}

}  // namespace
}  // namespace warren
