#include "worker/process_driver.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "fd_exhaustion.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/descriptor_budget.h"
#include "nlohmann/json.hpp"

namespace warren {
namespace {

namespace fs = std::filesystem;
using Phase = TaskRuntimeState::Phase;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Generous bound for anything that waits on a real process; tests normally finish far sooner.
constexpr absl::Duration kWait = absl::Seconds(10);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool ProcessGone(int pid) {
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  return absl::IsNotFound(stat.status()) ||
         (stat.ok() && (stat->state == 'Z' || stat->state == 'X'));
}

std::vector<std::string> Adopted(absl::StatusOr<std::vector<std::string>> ids) {
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<std::string>();
}

// Polls `done` until it holds or kWait passes.
template <typename F>
bool Eventually(F done) {
  absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

class Recorder {
 public:
  RuntimeDriver::Listener Listener() {
    return [this](const std::string& id, const TaskRuntimeState& state) {
      absl::MutexLock lock(&mu_);
      events_.push_back({id, state});
    };
  }
  // Waits for the first event of `id` with `phase`.
  std::optional<TaskRuntimeState> WaitFor(const std::string& id, Phase phase) {
    absl::MutexLock lock(&mu_);
    std::optional<TaskRuntimeState> found;
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& [eid, state] : events_) {
        if (eid == id && state.phase == phase) {
          found = state;
          return true;
        }
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&cond), kWait);
    return found;
  }
  std::vector<Phase> Phases(const std::string& id) {
    absl::MutexLock lock(&mu_);
    std::vector<Phase> out;
    for (const auto& [eid, state] : events_) {
      if (eid == id) out.push_back(state.phase);
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<std::string, TaskRuntimeState>> events_ ABSL_GUARDED_BY(mu_);
};

TaskRunSpec ShellTask(const std::string& id, const std::string& script,
                      std::map<std::string, std::string> env = {}) {
  TaskRunSpec spec;
  spec.task_id = id;
  spec.spec.set_command("/bin/sh");
  spec.spec.add_args("-c");
  spec.spec.add_args(script);
  spec.env = std::move(env);
  return spec;
}

class ProcessDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "warren-pd-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    driver_ = NewDriver();
  }
  void TearDown() override {
    if (driver_) {
      for (const std::string& id : driver_->List()) {
        EXPECT_TRUE(driver_->Stop(id, absl::Milliseconds(100)).ok());
      }
      driver_.reset();
    }
    fs::remove_all(dir_);
  }
  std::unique_ptr<ProcessDriver> NewDriver() {
    auto driver = std::make_unique<ProcessDriver>(dir_ + "/tasks");
    driver->SetListener(recorder_.Listener());
    return driver;
  }
  // Waits until the task's log contains `text` (so e.g. a trap is installed).
  bool LogContains(const std::string& id, const std::string& text) {
    return Eventually(
        [&] { return ReadFile(driver_->LogPath(id)).find(text) != std::string::npos; });
  }

  std::string dir_;
  Recorder recorder_;
  std::unique_ptr<ProcessDriver> driver_;
};

TEST_F(ProcessDriverTest, ReportsExitCodeAndCapturesLog) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "cat; echo out; echo err >&2; exit 3")).ok());
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_TRUE(exited->has_exit_code);
  EXPECT_EQ(exited->exit_code, 3);
  EXPECT_EQ(exited->error, "");
  EXPECT_GT(exited->pid, 0);
  EXPECT_GE(exited->finished_at, exited->started_at);
  EXPECT_THAT(recorder_.Phases("t1"), ElementsAre(Phase::kRunning, Phase::kExited));
  // stdin is /dev/null, so cat returns at once.
  EXPECT_EQ(ReadFile(driver_->LogPath("t1")), "out\nerr\n");
  EXPECT_EQ(driver_->LogPath("t1"), dir_ + "/tasks/t1/output.log");
  EXPECT_EQ(driver_->Inspect("t1")->phase, Phase::kExited);
  EXPECT_THAT(driver_->List(), ElementsAre("t1"));
}

TEST_F(ProcessDriverTest, TaskSeesOnlyItsOwnEnvironment) {
  setenv("WARREN_TEST_SHOULD_NOT_LEAK", "1", 1);
  ASSERT_TRUE(
      driver_->Start(ShellTask("t1", "env", {{"FOO", "bar baz"}, {"WARREN_PORT", "9000"}})).ok());
  ASSERT_TRUE(recorder_.WaitFor("t1", Phase::kExited).has_value());
  std::string log = ReadFile(driver_->LogPath("t1"));
  EXPECT_THAT(log, HasSubstr("FOO=bar baz\n"));
  EXPECT_THAT(log, HasSubstr("WARREN_PORT=9000\n"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("PATH=", getenv("PATH"), "\n")));
  EXPECT_THAT(log, Not(HasSubstr("WARREN_TEST_SHOULD_NOT_LEAK")));
  unsetenv("WARREN_TEST_SHOULD_NOT_LEAK");
}

TEST_F(ProcessDriverTest, CommandIsLookedUpInTaskPath) {
  TaskRunSpec spec;
  spec.task_id = "t1";
  spec.spec.set_command("sh");
  spec.spec.add_args("-c");
  spec.spec.add_args("echo found");
  spec.env = {{"PATH", "/nonexistent:/bin:/usr/bin"}};
  ASSERT_TRUE(driver_->Start(spec).ok());
  ASSERT_TRUE(recorder_.WaitFor("t1", Phase::kExited).has_value());
  EXPECT_EQ(ReadFile(driver_->LogPath("t1")), "found\n");
}

TEST_F(ProcessDriverTest, ReportsDeathBySignal) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "kill -9 $$")).ok());
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_TRUE(exited->has_exit_code);
  EXPECT_EQ(exited->exit_code, 128 + 9);
  EXPECT_EQ(exited->error, "killed by signal 9 (SIGKILL)");
}

TEST_F(ProcessDriverTest, MissingBinaryIsAStartFailure) {
  TaskRunSpec spec;
  spec.task_id = "t1";
  spec.spec.set_command("warren-no-such-binary-xyz");
  absl::Status status = driver_->Start(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("warren-no-such-binary-xyz"));
  EXPECT_THAT(status.message(), HasSubstr("not found in PATH"));
  std::optional<TaskRuntimeState> state = driver_->Inspect("t1");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->phase, Phase::kExited);
  EXPECT_FALSE(state->has_exit_code);
  EXPECT_THAT(state->error, HasSubstr("not found"));
  EXPECT_THAT(ReadFile(driver_->LogPath("t1")), HasSubstr("cannot start task"));

  // An explicit path goes through execve; its errno comes back from the child.
  spec.task_id = "t2";
  spec.spec.set_command(dir_ + "/missing/bin");
  status = driver_->Start(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));

  std::string not_exec = dir_ + "/not-executable";
  std::ofstream(not_exec) << "#!/bin/sh\necho hi\n";
  chmod(not_exec.c_str(), 0644);
  spec.task_id = "t3";
  spec.spec.set_command(not_exec);
  status = driver_->Start(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(status.message(), HasSubstr("Permission denied"));
  // No exit was reported for failed starts: Start's error is the report.
  EXPECT_THAT(recorder_.Phases("t1"), IsEmpty());
}

TEST_F(ProcessDriverTest, RejectsBadSpecs) {
  EXPECT_EQ(driver_->Start(ShellTask("", "true")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver_->Start(ShellTask("../escape", "true")).code(),
            absl::StatusCode::kInvalidArgument);
  TaskRunSpec no_command;
  no_command.task_id = "t0";
  absl::Status status = driver_->Start(no_command);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("spec.command"));
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "sleep 30")).ok());
  EXPECT_EQ(driver_->Start(ShellTask("t1", "true")).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(ProcessDriverTest, StopSendsTermFirst) {
  ASSERT_TRUE(driver_
                  ->Start(ShellTask("t1",
                                    "trap 'echo bye; exit 0' TERM; echo ready; "
                                    "while :; do sleep 0.05; done"))
                  .ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  ASSERT_TRUE(driver_->Stop("t1", kWait).ok());
  std::optional<TaskRuntimeState> state = driver_->Inspect("t1");
  EXPECT_EQ(state->phase, Phase::kExited);
  EXPECT_EQ(state->exit_code, 0);
  EXPECT_THAT(ReadFile(driver_->LogPath("t1")), HasSubstr("bye"));
  // Stopping again, or stopping an unknown task, is fine.
  EXPECT_TRUE(driver_->Stop("t1", kWait).ok());
  EXPECT_TRUE(driver_->Stop("unknown", kWait).ok());
}

TEST_F(ProcessDriverTest, StopKillsATaskThatIgnoresTerm) {
  ASSERT_TRUE(
      driver_->Start(ShellTask("t1", "trap '' TERM; echo ready; while :; do sleep 0.05; done"))
          .ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  absl::Time before = absl::Now();
  ASSERT_TRUE(driver_->Stop("t1", absl::Milliseconds(200)).ok());
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(200));
  std::optional<TaskRuntimeState> state = driver_->Inspect("t1");
  EXPECT_EQ(state->phase, Phase::kExited);
  EXPECT_EQ(state->exit_code, 128 + 9);
  EXPECT_EQ(state->error, "killed by signal 9 (SIGKILL)");
  ASSERT_TRUE(recorder_.WaitFor("t1", Phase::kExited).has_value());
}

TEST_F(ProcessDriverTest, StopKillsTheWholeProcessGroup) {
  std::string pid_file = dir_ + "/child.pid";
  ASSERT_TRUE(driver_
                  ->Start(ShellTask("t1", absl::StrCat("trap '' TERM; sleep 300 & echo $! > ",
                                                       pid_file, "; echo ready; wait")))
                  .ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  int child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file)), &child));
  ASSERT_FALSE(ProcessGone(child));
  ASSERT_TRUE(driver_->Stop("t1", absl::Milliseconds(200)).ok());
  EXPECT_TRUE(Eventually([&] { return ProcessGone(child); }));
}

TEST_F(ProcessDriverTest, LeftoverChildrenDieWithTheTask) {
  std::string pid_file = dir_ + "/child.pid";
  ASSERT_TRUE(
      driver_->Start(ShellTask("t1", absl::StrCat("sleep 300 & echo $! > ", pid_file))).ok());
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 0);
  int child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file)), &child));
  EXPECT_TRUE(Eventually([&] { return ProcessGone(child); }));
}

TEST_F(ProcessDriverTest, StopDoesNotBlockOtherTasks) {
  ASSERT_TRUE(driver_
                  ->Start(ShellTask("stubborn",
                                    "trap '' TERM; echo ready; "
                                    "while :; do sleep 0.05; done"))
                  .ok());
  ASSERT_TRUE(LogContains("stubborn", "ready"));
  std::thread stopper([&] { EXPECT_TRUE(driver_->Stop("stubborn", kWait).ok()); });
  // While Stop waits out its long timeout, another task still starts and its exit is seen.
  ASSERT_TRUE(driver_->Start(ShellTask("quick", "exit 5")).ok());
  std::optional<TaskRuntimeState> quick = recorder_.WaitFor("quick", Phase::kExited);
  ASSERT_TRUE(quick.has_value());
  EXPECT_EQ(quick->exit_code, 5);
  EXPECT_EQ(driver_->Inspect("stubborn")->phase, Phase::kRunning);
  kill(-driver_->Inspect("stubborn")->pid, SIGKILL);
  stopper.join();
}

TEST_F(ProcessDriverTest, RecoverAdoptsTasksOfAnEarlierDriver) {
  ASSERT_TRUE(
      driver_->Start(ShellTask("t1", "echo ready; while :; do sleep 0.05; done", {{"A", "1"}}))
          .ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  int pid = driver_->Inspect("t1")->pid;
  driver_.reset();  // A worker restart: the task keeps running.
  ASSERT_FALSE(ProcessGone(pid));

  driver_ = NewDriver();
  EXPECT_THAT(Adopted(driver_->Recover()), ElementsAre("t1"));
  std::optional<TaskRuntimeState> state = driver_->Inspect("t1");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->phase, Phase::kRunning);
  EXPECT_EQ(state->pid, pid);
  // Recovering twice adopts nothing new.
  EXPECT_THAT(Adopted(driver_->Recover()), IsEmpty());

  // The task's environment survived the restart.
  absl::StatusOr<ExecResult> exec = driver_->Exec("t1", {"echo A=$A"}, kWait);
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->output, "A=1\n");

  ASSERT_TRUE(driver_->Stop("t1", kWait).ok());
  EXPECT_TRUE(ProcessGone(pid));
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());

  driver_->Remove("t1");
  EXPECT_FALSE(driver_->Inspect("t1").has_value());
  EXPECT_FALSE(fs::exists(dir_ + "/tasks/t1/state"));
  EXPECT_TRUE(fs::exists(dir_ + "/tasks/t1/output.log"));
  EXPECT_THAT(Adopted(driver_->Recover()), IsEmpty());
}

void WriteState(const std::string& task_dir, int pid, uint64_t start_ticks) {
  fs::create_directories(task_dir);
  nlohmann::json state = {{"task_id", fs::path(task_dir).filename().string()},
                          {"pid", pid},
                          {"start_ticks", start_ticks},
                          {"started_at_unix_nanos", 0},
                          {"env", std::map<std::string, std::string>{}}};
  std::ofstream(task_dir + "/state") << state.dump();
}

TEST_F(ProcessDriverTest, RecoverReportsGoneTasksAsExited) {
  // Our own pid with another start time: the pid was reused by an unrelated process.
  WriteState(dir_ + "/tasks/reused", getpid(), 1);
  fs::create_directories(dir_ + "/tasks/corrupt");
  std::ofstream(dir_ + "/tasks/corrupt/state") << "{not json";

  EXPECT_THAT(Adopted(driver_->Recover()), IsEmpty());
  std::optional<TaskRuntimeState> reused = recorder_.WaitFor("reused", Phase::kExited);
  ASSERT_TRUE(reused.has_value());
  EXPECT_FALSE(reused->has_exit_code);
  EXPECT_EQ(reused->error, "exited while adopted; exit code unknown");
  std::optional<TaskRuntimeState> corrupt = recorder_.WaitFor("corrupt", Phase::kExited);
  ASSERT_TRUE(corrupt.has_value());
  EXPECT_THAT(corrupt->error, HasSubstr("unreadable"));
  EXPECT_THAT(driver_->List(), ElementsAre("corrupt", "reused"));
}

TEST_F(ProcessDriverTest, AdoptedProcessThatIsNotOurChild) {
  // The shell prints its background child's pid and exits, so the sleep is reparented away
  // from this process: only /proc can tell when it ends.
  FILE* pipe = popen("sleep 300 >/dev/null 2>&1 & echo $!", "r");
  ASSERT_NE(pipe, nullptr);
  char buf[32] = {};
  ASSERT_NE(fgets(buf, sizeof(buf), pipe), nullptr);
  pclose(pipe);
  int pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(buf), &pid));
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  ASSERT_TRUE(stat.ok()) << stat.status();
  WriteState(dir_ + "/tasks/orphan", pid, stat->start_ticks);

  EXPECT_THAT(Adopted(driver_->Recover()), ElementsAre("orphan"));
  EXPECT_EQ(driver_->Inspect("orphan")->phase, Phase::kRunning);
  kill(pid, SIGKILL);
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("orphan", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_FALSE(exited->has_exit_code);
  EXPECT_EQ(exited->error, "exited while adopted; exit code unknown");
}

TEST_F(ProcessDriverTest, ExecRunsWithTaskEnvironment) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "sleep 30", {{"GREETING", "hello"}})).ok());
  absl::StatusOr<ExecResult> result = driver_->Exec("t1", {"echo $GREETING; exit 4"}, kWait);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 4);
  EXPECT_EQ(result->output, "hello\n");
  EXPECT_FALSE(result->timed_out);

  result = driver_->Exec("t1", {"/bin/sh", "-c", "echo to-stderr >&2"}, kWait);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->output, "to-stderr\n");

  result = driver_->Exec("t1", {"head -c 10000 /dev/zero"}, kWait);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->output.size(), 4096u);

  EXPECT_EQ(driver_->Exec("nope", {"true"}, kWait).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->Exec("t1", {}, kWait).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(driver_->Exec("t1", {"/no/such/binary"}, kWait)->exit_code, 127);
  EXPECT_EQ(driver_->Exec("t1", {"/no/such/binary", "arg"}, kWait).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ProcessDriverTest, ExecTimeoutKillsItsProcessGroup) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "sleep 30")).ok());
  std::string pid_file = dir_ + "/exec-child.pid";
  absl::StatusOr<ExecResult> result = driver_->Exec(
      "t1", {absl::StrCat("sleep 300 & echo $! > ", pid_file, "; echo started; wait")},
      absl::Milliseconds(200));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->timed_out);
  EXPECT_EQ(result->output, "started\n");
  int child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file)), &child));
  EXPECT_TRUE(Eventually([&] { return ProcessGone(child); }));
}

TEST_F(ProcessDriverTest, RemoveKillsARunningTask) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "sleep 30")).ok());
  int pid = driver_->Inspect("t1")->pid;
  driver_->Remove("t1");
  EXPECT_TRUE(ProcessGone(pid));
  EXPECT_THAT(driver_->List(), IsEmpty());
  EXPECT_FALSE(fs::exists(dir_ + "/tasks/t1/state"));
}

}  // namespace
}  // namespace warren

namespace warren {
namespace {

TEST_F(ProcessDriverTest, RecoverKillsTaskProcessesItCannotAdopt) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "echo ready; while :; do sleep 0.05; done", {})).ok());
  ASSERT_TRUE(driver_->Start(ShellTask("t2", "echo ready; while :; do sleep 0.05; done", {})).ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  ASSERT_TRUE(LogContains("t2", "ready"));
  int pid1 = driver_->Inspect("t1")->pid;
  int pid2 = driver_->Inspect("t2")->pid;
  driver_.reset();
  // The worker died after fork() but before t2's state file was written.
  fs::remove(dir_ + "/tasks/t2/state");
  driver_ = NewDriver();
  EXPECT_THAT(Adopted(driver_->Recover()), ElementsAre("t1"));
  for (int i = 0; i < 200 && !ProcessGone(pid2); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(ProcessGone(pid2)) << "an untracked task process is not left running";
  EXPECT_FALSE(ProcessGone(pid1));
  ASSERT_TRUE(driver_->Stop("t1", kWait).ok());
}

}  // namespace
}  // namespace warren

namespace warren {
namespace {

using testing_util::FdExhaustion;
using testing_util::RunInChild;

// Issue 17 D4: while descriptors ran short the worker could not read /proc and declared its
// healthy tasks "exited while adopted". Out of descriptors, nothing is known about a task:
// adoption waits, the monitor keeps the task running, and only a real exit ends it.
TEST_F(ProcessDriverTest, OutOfDescriptorsNeverMakesATaskDead) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "echo ready; while :; do sleep 0.05; done")).ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  const int pid = driver_->Inspect("t1")->pid;
  driver_.reset();  // a worker restart

  const int code = RunInChild([&] {
    std::atomic<int> failed_reads{0};
    ProcessDriver::Options options;
    options.read_proc_stat = [&](int p) {
      absl::StatusOr<ProcStat> stat = ReadProcStat(p);
      if (!stat.ok() && !absl::IsNotFound(stat.status())) failed_reads++;
      return stat;
    };
    Recorder recorder;
    ProcessDriver driver(dir_ + "/tasks", RealClock::Get(), options);
    driver.SetListener(recorder.Listener());
    auto exited = [&] {
      std::vector<Phase> phases = recorder.Phases("t1");
      return std::find(phases.begin(), phases.end(), Phase::kExited) != phases.end();
    };
    {
      FdExhaustion no_fds;
      absl::StatusOr<std::vector<std::string>> r = driver.Recover();
      if (r.ok() || !absl::IsUnavailable(r.status())) return 10;  // decided blind
      if (!driver.List().empty()) return 11;
    }
    absl::StatusOr<std::vector<std::string>> r = driver.Recover();
    if (!r.ok() || *r != std::vector<std::string>{"t1"}) return 12;
    {
      FdExhaustion no_fds;
      // The monitor polls every 20 ms: many checks fail while descriptors are short.
      if (!Eventually([&] { return failed_reads >= 10 || exited(); })) return 13;
    }
    if (exited()) return 14;  // a transient error was taken as the task's death
    if (driver.Inspect("t1")->phase != Phase::kRunning) return 15;
    kill(-pid, SIGKILL);
    std::optional<TaskRuntimeState> state = recorder.WaitFor("t1", Phase::kExited);
    return state.has_value() ? 0 : 16;
  });
  EXPECT_EQ(code, 0) << "10/11: Recover decided without its state files; 12: no adoption "
                        "afterwards; 13: /proc never failed; 14/15: declared dead while out of "
                        "descriptors; 16: the real exit was missed";
  kill(-pid, SIGKILL);
}

// The worker raises its soft descriptor limit to the hard one at start (a million under some
// service managers); its tasks and health check commands keep the limit it was started with.
TEST_F(ProcessDriverTest, TasksGetTheDescriptorLimitTheWorkerWasStartedWith) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= 512) GTEST_SKIP() << rl.rlim_max;
  driver_.reset();
  const int code = RunInChild([&] {
    rlimit low = rl;
    low.rlim_cur = 512;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) return 10;
    if (RaiseFileLimit() <= 512) return 11;
    ProcessDriver driver(dir_ + "/tasks");
    if (!driver.Start(ShellTask("t1", "echo limit=$(ulimit -Sn); exec sleep 30")).ok()) return 12;
    Eventually([&] { return absl::StrContains(ReadFile(driver.LogPath("t1")), "\n"); });
    absl::StatusOr<ExecResult> exec = driver.Exec("t1", {"ulimit -Sn"}, kWait);
    (void)driver.Stop("t1", absl::Milliseconds(100));
    if (ReadFile(driver.LogPath("t1")) != "limit=512\n") return 13;
    if (!exec.ok() || exec->output != "512\n") return 14;
    return 0;
  });
  EXPECT_EQ(code, 0) << "10/11: limits not set up; 12: no start; 13: the task's limit; 14: the "
                        "health check command's limit";
}

// Stopping an adopted task signals its group only once /proc confirms the leader is still
// the task's process; while /proc cannot be read it retries instead of giving up.
TEST_F(ProcessDriverTest, StopOfAnAdoptedTaskWaitsForProcToAnswer) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "echo ready; while :; do sleep 0.05; done")).ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  const int pid = driver_->Inspect("t1")->pid;
  driver_.reset();

  std::atomic<int> failures_left{25};
  ProcessDriver::Options options;
  options.read_proc_stat = [&](int p) -> absl::StatusOr<ProcStat> {
    if (failures_left.fetch_sub(1) > 0) return absl::UnavailableError("Too many open files");
    return ReadProcStat(p);
  };
  driver_ = std::make_unique<ProcessDriver>(dir_ + "/tasks", RealClock::Get(), options);
  driver_->SetListener(recorder_.Listener());
  EXPECT_THAT(Adopted(driver_->Recover()), ElementsAre("t1"));
  EXPECT_TRUE(driver_->Stop("t1", kWait).ok());
  EXPECT_TRUE(ProcessGone(pid));
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
}

TEST(ProcessesTest, ProcReadErrorsAreNotTheAbsenceOfAProcess) {
  EXPECT_TRUE(ReadProcStat(getpid()).ok());
  EXPECT_TRUE(absl::IsNotFound(ReadProcStat(0).status()));
  // A pid beyond pid_max never exists.
  EXPECT_TRUE(absl::IsNotFound(ReadProcStat(1 << 30).status()));
  const int code = RunInChild([] {
    FdExhaustion no_fds;
    if (!absl::IsUnavailable(ReadProcStat(getpid()).status())) return 1;
    if (!absl::IsUnavailable(ForEachProcessEnvironment([](int, std::string_view) {}))) return 2;
    return 0;
  });
  EXPECT_EQ(code, 0) << "1: ReadProcStat, 2: ForEachProcessEnvironment took EMFILE for an answer";
}

}  // namespace
}  // namespace warren

namespace warren {
namespace {

// Issue 17 D11: an adopted process is not the worker's child, so its exit code was lost
// ("exited while adopted; exit code unknown"). Its warren-shim records it.
TEST_F(ProcessDriverTest, AdoptedTaskReportsItsExitCode) {
  const std::string go = dir_ + "/go";
  ASSERT_TRUE(driver_
                  ->Start(ShellTask("t1", absl::StrCat("echo ready; while [ ! -e ", go,
                                                       " ]; do sleep 0.02; done; exit 3")))
                  .ok());
  ASSERT_TRUE(LogContains("t1", "ready"));
  driver_.reset();  // a worker restart: the task keeps running
  driver_ = NewDriver();
  EXPECT_THAT(Adopted(driver_->Recover()), ElementsAre("t1"));
  std::ofstream(go) << "now";
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_TRUE(exited->has_exit_code) << exited->error;
  EXPECT_EQ(exited->exit_code, 3);

  // Killed after adoption: the signal is known too.
  ASSERT_TRUE(driver_->Start(ShellTask("t2", "echo ready; while :; do sleep 0.05; done")).ok());
  ASSERT_TRUE(LogContains("t2", "ready"));
  const int pid = driver_->Inspect("t2")->pid;
  driver_.reset();
  driver_ = NewDriver();
  EXPECT_THAT(Adopted(driver_->Recover()), ElementsAre("t2"));
  kill(pid, SIGKILL);
  exited = recorder_.WaitFor("t2", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_EQ(exited->exit_code, 137);
  EXPECT_EQ(exited->error, "killed by signal 9 (SIGKILL)");
}

// A task that exited while no worker ran is reported with its exit code at adoption.
TEST_F(ProcessDriverTest, TaskThatExitedWhileTheWorkerWasDownKeepsItsExitCode) {
  const std::string go = dir_ + "/go";
  ASSERT_TRUE(driver_
                  ->Start(ShellTask(
                      "t1", absl::StrCat("while [ ! -e ", go, " ]; do sleep 0.02; done; exit 5")))
                  .ok());
  driver_.reset();
  std::ofstream(go) << "now";
  ASSERT_TRUE(Eventually([&] { return fs::exists(dir_ + "/tasks/t1/exit"); }));
  driver_ = NewDriver();
  EXPECT_THAT(Adopted(driver_->Recover()), IsEmpty());
  std::optional<TaskRuntimeState> exited = recorder_.WaitFor("t1", Phase::kExited);
  ASSERT_TRUE(exited.has_value());
  EXPECT_TRUE(exited->has_exit_code);
  EXPECT_EQ(exited->exit_code, 5);
}

// Issue 17 D7: `yes` filled a 20 MB data dir in under 5 s. The shim drains the output at full
// speed and rotates it: the log set never holds more than max_files * max_size bytes.
TEST_F(ProcessDriverTest, ChattyTaskOutputStaysUnderTheCap) {
  ProcessDriver::Options options;
  options.log_limits = {/*max_size=*/64 << 10, /*max_files=*/3};
  driver_ = std::make_unique<ProcessDriver>(dir_ + "/tasks", RealClock::Get(), options);
  driver_->SetListener(recorder_.Listener());
  TaskRunSpec spec;
  spec.task_id = "chatty";
  spec.spec.set_command("yes");
  spec.spec.add_args("a fairly long line of output from a task that never stops talking");
  ASSERT_TRUE(driver_->Start(spec).ok());
  const std::string base = driver_->LogPath("chatty");
  const uintmax_t cap = 3 * (64 << 10);
  int rotations = 0;
  ino_t last_inode = 0;
  uintmax_t most = 0;
  // Sample while it rotates again and again (bounded by kWait).
  EXPECT_TRUE(Eventually([&] {
    uintmax_t total = 0;
    for (const std::string& f : LogFileSet(base)) {
      // A file rotated away between the listing and this call has no size (not -1).
      std::error_code ec;
      const uintmax_t size = fs::file_size(f, ec);
      if (!ec) total += size;
    }
    most = std::max(most, total);
    EXPECT_LE(total, cap);
    EXPECT_FALSE(fs::exists(base + ".3"));
    struct stat st;
    if (stat(base.c_str(), &st) == 0 && st.st_ino != last_inode) {
      rotations += last_inode != 0 ? 1 : 0;
      last_inode = st.st_ino;
    }
    return rotations >= 20;
  })) << "the log rotated only "
      << rotations << " times";
  EXPECT_LE(most, cap);
  EXPECT_EQ(driver_->Inspect("chatty")->phase, Phase::kRunning);
  // No rotated-away file is held open (its space would stay in use).
  const int shim = nlohmann::json::parse(ReadFile(dir_ + "/tasks/chatty/state"))["shim_pid"];
  for (const auto& fd : fs::directory_iterator(absl::StrCat("/proc/", shim, "/fd"))) {
    std::error_code ec;
    EXPECT_THAT(fs::read_symlink(fd.path(), ec).string(), Not(HasSubstr("(deleted)")));
  }
  ASSERT_TRUE(driver_->Stop("chatty", kWait).ok());
  // What is kept is whole lines of the newest output.
  EXPECT_THAT(ReadFile(base), HasSubstr("a fairly long line of output"));
}

TEST_F(ProcessDriverTest, MissingShimIsAClearStartError) {
  ProcessDriver::Options options;
  options.shim_path = dir_ + "/no-such-warren-shim";
  driver_ = std::make_unique<ProcessDriver>(dir_ + "/tasks", RealClock::Get(), options);
  absl::Status s = driver_->Start(ShellTask("t1", "true"));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("no-such-warren-shim"));
  EXPECT_THAT(ReadFile(driver_->LogPath("t1")), HasSubstr("cannot start task"));
}

}  // namespace
}  // namespace warren

namespace warren {
namespace {

// Issue 17 D10: task environments can hold credentials; a task's files are its owner's only.
TEST_F(ProcessDriverTest, TaskFilesAreTheWorkersOnly) {
  ASSERT_TRUE(driver_->Start(ShellTask("t1", "echo out; exit 2", {{"TOKEN", "secret"}})).ok());
  ASSERT_TRUE(recorder_.WaitFor("t1", Phase::kExited).has_value());
  const fs::path dir = dir_ + "/tasks/t1";
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
  for (const char* file : {"state", "output.log", "exit"}) {
    EXPECT_EQ(fs::status(dir / file).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write)
        << file;
  }
}

}  // namespace
}  // namespace warren
