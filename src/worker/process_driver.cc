#include "worker/process_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/data_dir.h"
#include "common/processes.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using Phase = TaskRuntimeState::Phase;

// Abseil here is built with its own string_view type.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kAdoptedExitError[] = "exited while adopted; exit code unknown";
constexpr char kDefaultPath[] = "/usr/local/bin:/usr/bin:/bin";

std::string ErrnoText(int err) {
  const char* desc = strerrordesc_np(err);
  return desc != nullptr ? desc : absl::StrCat("errno ", err);
}

std::string SignalText(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat(sig, " (SIG", abbrev, ")") : absl::StrCat(sig);
}

absl::Status ExecError(const std::string& path, int err) {
  std::string msg = absl::StrCat("exec \"", path, "\": ", ErrnoText(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    default:
      return absl::FailedPreconditionError(msg);
  }
}

// Descriptor that closes itself.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

absl::Status ValidateTaskId(std::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError("task_id: must not be empty");
  if (id == "." || id == ".." || id.size() > 200 ||
      id.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task_id: must be a file name (no '/', not '.' or '..'), got \"", AV(id), "\""));
  }
  return absl::OkStatus();
}

// The task sees only its own environment; PATH and HOME come from the worker when not given so
// that ordinary commands still resolve.
std::map<std::string, std::string> TaskEnv(const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> out = env;
  for (const char* name : {"PATH", "HOME"}) {
    if (out.contains(name)) continue;
    if (const char* value = getenv(name); value != nullptr) out[name] = value;
  }
  return out;
}

// Looks the command up in the task's PATH (execvp would use the worker's PATH instead).
absl::StatusOr<std::string> ResolveCommand(const std::string& command,
                                           const std::map<std::string, std::string>& env) {
  if (command.find('/') != std::string::npos) return command;
  auto it = env.find("PATH");
  std::string path = it != env.end() ? it->second : kDefaultPath;
  bool found_not_executable = false;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", command);
    struct stat st;
    if (stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    found_not_executable = true;
  }
  if (found_not_executable) {
    return absl::PermissionDeniedError(
        absl::StrCat("command \"", command, "\": found in PATH but not executable"));
  }
  return absl::NotFoundError(
      absl::StrCat("command \"", command, "\": not found in PATH (", path, ")"));
}

// Forks a child that becomes the leader of a new session and process group, with stdin on
// /dev/null and stdout+stderr on `out_fd`, and execs `path`. Exec failures come back through a
// close-on-exec pipe, so they are errors here rather than an exit code of the child.
absl::StatusOr<pid_t> SpawnProcess(const std::string& path, const std::vector<std::string>& argv,
                                   const std::map<std::string, std::string>& env, int out_fd) {
  // Everything the child touches is prepared before fork: after fork only async-signal-safe
  // calls are allowed.
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> argv_ptrs;
  for (const auto& a : argv) argv_ptrs.push_back(const_cast<char*>(a.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  for (const auto& e : env_strings) env_ptrs.push_back(const_cast<char*>(e.c_str()));
  env_ptrs.push_back(nullptr);

  Fd devnull(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull.get() < 0) return absl::InternalError("open /dev/null: " + ErrnoText(errno));
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe: " + ErrnoText(errno));
  Fd err_read(pipe_fds[0]);
  Fd err_write(pipe_fds[1]);

  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork: " + ErrnoText(errno));
  if (pid == 0) {
    // The worker may block or ignore signals (SIGPIPE, usually); the task starts clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
    setsid();
    RestoreTaskUmask();  // the worker's own umask keeps its data dir private
    dup2(devnull.get(), 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    int ew = err_write.get();
    if (ew > 3) close_range(3, ew - 1, 0);
    close_range(ew + 1, ~0U, 0);
    execve(path.c_str(), argv_ptrs.data(), env_ptrs.data());
    int err = errno;
    ssize_t ignored = write(ew, &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }
  err_write.Reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_read.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return ExecError(path, child_errno);
  }
  return pid;
}

void ExitFromStatus(int status, bool* has_exit_code, int* exit_code, std::string* error) {
  if (WIFEXITED(status)) {
    *has_exit_code = true;
    *exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    *has_exit_code = true;
    *exit_code = 128 + WTERMSIG(status);
    *error = "killed by signal " + SignalText(WTERMSIG(status));
  }
}

// Reaps `pid` if it has exited, after killing whatever is left of its process group. While the
// leader is an unreaped zombie its pid (and so the group id) cannot be reused, which makes the
// group kill safe. Returns nullopt while it runs, the wait status when reaped, or -1 when the
// process is not our child (ECHILD).
std::optional<int> ReapIfExited(pid_t pid) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno == ECHILD) return -1;
    return std::nullopt;
  }
  if (info.si_pid != pid) return std::nullopt;
  kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

}  // namespace

std::optional<ProcStat> ReadProcStat(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  if (!in) return std::nullopt;
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may contain spaces or ')'.
  size_t close_paren = content.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(content).substr(close_paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  if (fields.size() < 20 || fields[0].empty()) return std::nullopt;
  ProcStat stat;
  stat.state = fields[0][0];
  if (!absl::SimpleAtoi(fields[19], &stat.start_ticks)) return std::nullopt;
  return stat;
}

ProcessDriver::ProcessDriver(std::string state_dir, Clock& clock)
    : ProcessDriver(std::move(state_dir), clock, Options()) {}

ProcessDriver::ProcessDriver(std::string state_dir, Clock& clock, Options options)
    : state_dir_(std::move(state_dir)), clock_(clock), options_(options) {
  monitor_ = std::thread([this] { MonitorLoop(); });
}

ProcessDriver::~ProcessDriver() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  monitor_.join();
}

void ProcessDriver::SetListener(Listener listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

std::string ProcessDriver::TaskDir(std::string_view task_id) const {
  return absl::StrCat(state_dir_, "/", AV(task_id));
}

std::string ProcessDriver::LogPath(std::string_view task_id) const {
  return absl::StrCat(TaskDir(task_id), "/output.log");
}

void ProcessDriver::PushEvent(const Task& task) { events_.emplace_back(task.id, task.state); }

void ProcessDriver::DeliverEvents() {
  absl::MutexLock listener_lock(&listener_mu_);
  while (true) {
    std::pair<std::string, TaskRuntimeState> event;
    {
      absl::MutexLock lock(&mu_);
      if (events_.empty()) return;
      event = std::move(events_.front());
      events_.pop_front();
    }
    if (listener_) listener_(event.first, event.second);
  }
}

std::optional<ProcessDriver::Exit> ProcessDriver::CheckExit(const Task& task) {
  if (task.adopted) {
    // Check identity first: if the pid now belongs to another process, waitid could reap a
    // stranger.
    std::optional<ProcStat> stat = ReadProcStat(task.pid);
    if (!stat || stat->start_ticks != task.start_ticks) return Exit{false, 0, kAdoptedExitError};
    // An earlier driver in this same process started it: it is our child after all.
    std::optional<int> status = ReapIfExited(task.pid);
    if (!status) return std::nullopt;
    if (*status >= 0) {
      Exit exit;
      ExitFromStatus(*status, &exit.has_exit_code, &exit.exit_code, &exit.error);
      return exit;
    }
    if (stat->state == 'Z' || stat->state == 'X') return Exit{false, 0, kAdoptedExitError};
    return std::nullopt;
  }
  std::optional<int> status = ReapIfExited(task.pid);
  if (!status) return std::nullopt;
  if (*status < 0) {
    return Exit{false, 0, "process was reaped outside the driver; exit code unknown"};
  }
  Exit exit;
  ExitFromStatus(*status, &exit.has_exit_code, &exit.exit_code, &exit.error);
  return exit;
}

void ProcessDriver::MonitorLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      // Reaping happens under mu_ so that SignalGroup (also under mu_) never signals a group
      // whose leader was already reaped.
      for (auto& [id, task] : tasks_) {
        if (task->state.phase != Phase::kRunning) continue;
        std::optional<Exit> exit = CheckExit(*task);
        if (!exit) continue;
        task->state.phase = Phase::kExited;
        task->state.has_exit_code = exit->has_exit_code;
        task->state.exit_code = exit->exit_code;
        task->state.error = exit->error;
        task->state.finished_at = clock_.Now();
        PushEvent(*task);
      }
    }
    DeliverEvents();
    absl::MutexLock lock(&mu_);
    auto wake = [](ProcessDriver* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
      return d->stopping_ || !d->events_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(+wake, this), options_.poll_interval);
  }
}

void ProcessDriver::SignalGroup(const Task& task, int sig) {
  if (task.state.phase != Phase::kRunning || task.pid <= 0) return;
  if (task.adopted) {
    std::optional<ProcStat> stat = ReadProcStat(task.pid);
    if (!stat || stat->start_ticks != task.start_ticks) return;
  }
  if (kill(-task.pid, sig) != 0 && errno == ESRCH) {
    // Not a group leader after all (should not happen); signal the process itself.
    kill(task.pid, sig);
  }
}

absl::Status ProcessDriver::Start(const TaskRunSpec& spec) {
  if (absl::Status s = ValidateTaskId(spec.task_id); !s.ok()) return s;
  if (spec.spec.command().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", spec.task_id, ": spec.command: required by the process runtime"));
  }
  auto task = std::make_shared<Task>();
  task->id = spec.task_id;
  task->env = TaskEnv(spec.env);
  // Marks the task's processes as this driver's, so a later Recover finds them even when the
  // worker died before the state file was written.
  task->env[kStateDirVariable] = fs::absolute(state_dir_).string();
  task->env.try_emplace("WARREN_TASK_ID", spec.task_id);
  task->state.phase = Phase::kStarting;
  {
    absl::MutexLock lock(&mu_);
    if (tasks_.contains(spec.task_id)) {
      return absl::AlreadyExistsError(absl::StrCat("task ", spec.task_id, ": already known"));
    }
    tasks_[spec.task_id] = task;
  }
  auto fail = [&](absl::Status status) {
    absl::MutexLock lock(&mu_);
    task->state.phase = Phase::kExited;
    task->state.error = std::string(status.message());
    task->state.finished_at = clock_.Now();
    return status;
  };

  std::error_code ec;
  fs::create_directories(TaskDir(spec.task_id), ec);
  if (ec) {
    return fail(absl::InternalError(
        absl::StrCat("create task dir ", TaskDir(spec.task_id), ": ", ec.message())));
  }
  std::string log_path = LogPath(spec.task_id);
  Fd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (log.get() < 0) {
    return fail(absl::InternalError(absl::StrCat("open ", log_path, ": ", ErrnoText(errno))));
  }
  auto log_error = [&](const absl::Status& status) {
    // The user reads the log first; the reason the task never ran belongs there too.
    std::string line = absl::StrCat("warren: cannot start task: ", status.message(), "\n");
    ssize_t ignored = write(log.get(), line.data(), line.size());
    (void)ignored;
  };

  absl::StatusOr<std::string> path = ResolveCommand(spec.spec.command(), task->env);
  if (!path.ok()) {
    log_error(path.status());
    return fail(path.status());
  }
  std::vector<std::string> argv = {spec.spec.command()};
  argv.insert(argv.end(), spec.spec.args().begin(), spec.spec.args().end());
  absl::StatusOr<pid_t> pid = SpawnProcess(*path, argv, task->env, log.get());
  if (!pid.ok()) {
    log_error(pid.status());
    return fail(pid.status());
  }
  // The child is not reaped yet, so /proc/<pid> exists even if it already exited.
  std::optional<ProcStat> stat = ReadProcStat(*pid);
  absl::Time started_at = clock_.Now();

  nlohmann::json state = {
      {"task_id", spec.task_id},
      {"pid", *pid},
      {"start_ticks", stat ? stat->start_ticks : 0},
      {"started_at_unix_nanos", absl::ToUnixNanos(started_at)},
      {"env", task->env},
  };
  std::string state_path = TaskDir(spec.task_id) + "/state";
  std::string tmp_path = state_path + ".tmp";
  bool written = false;
  {
    std::ofstream out(tmp_path, std::ios::trunc);
    out << state.dump();
    out.close();
    written = out.good();
  }
  if (!written || rename(tmp_path.c_str(), state_path.c_str()) != 0) {
    // Without its state file the task could not be adopted after a restart: do not run it.
    kill(-*pid, SIGKILL);
    int status;
    while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
    }
    return fail(absl::InternalError(absl::StrCat("write ", state_path, ": failed")));
  }

  absl::MutexLock lock(&mu_);
  task->pid = *pid;
  task->start_ticks = stat ? stat->start_ticks : 0;
  task->state.pid = *pid;
  task->state.phase = Phase::kRunning;
  task->state.started_at = started_at;
  PushEvent(*task);
  return absl::OkStatus();
}

absl::Status ProcessDriver::Stop(std::string_view task_id, absl::Duration timeout) {
  std::shared_ptr<Task> task;
  auto gone = [](Task* t) { return t->state.phase == Phase::kExited; };
  auto not_starting = [](Task* t) { return t->state.phase != Phase::kStarting; };
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return absl::OkStatus();
  task = it->second;
  mu_.Await(absl::Condition(+not_starting, task.get()));
  if (task->state.phase == Phase::kExited) return absl::OkStatus();

  SignalGroup(*task, SIGTERM);
  if (mu_.AwaitWithTimeout(absl::Condition(+gone, task.get()), timeout)) return absl::OkStatus();
  SignalGroup(*task, SIGKILL);
  // SIGKILL cannot be caught, but a process stuck in uninterruptible sleep may take a while.
  if (mu_.AwaitWithTimeout(absl::Condition(+gone, task.get()), absl::Seconds(60))) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      absl::StrCat("task ", AV(task_id), ": pid ", task->pid, " still alive 60s after SIGKILL"));
}

void ProcessDriver::Remove(std::string_view task_id) {
  absl::Status stopped = Stop(task_id, absl::ZeroDuration());
  if (!stopped.ok()) spdlog::warn("remove task {}: {}", task_id, std::string(stopped.message()));
  {
    absl::MutexLock lock(&mu_);
    if (auto it = tasks_.find(task_id); it != tasks_.end()) tasks_.erase(it);
  }
  std::error_code ec;
  fs::remove(TaskDir(task_id) + "/state", ec);
}

std::optional<TaskRuntimeState> ProcessDriver::Inspect(std::string_view task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second->state;
}

std::vector<std::string> ProcessDriver::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  ids.reserve(tasks_.size());
  for (const auto& [id, task] : tasks_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<std::string> ProcessDriver::Recover() {
  std::vector<std::string> adopted;
  std::error_code ec;
  fs::directory_iterator dir(state_dir_, ec);
  if (ec) return adopted;  // No state dir yet: nothing ran before.
  std::vector<std::string> ids;
  for (const auto& entry : dir) {
    if (entry.is_directory(ec) && fs::exists(entry.path() / "state", ec)) {
      ids.push_back(entry.path().filename().string());
    }
  }
  std::sort(ids.begin(), ids.end());

  for (const std::string& id : ids) {
    auto task = std::make_shared<Task>();
    task->id = id;
    task->adopted = true;
    task->state.phase = Phase::kRunning;
    std::string error;
    try {
      std::ifstream in(TaskDir(id) + "/state");
      nlohmann::json state = nlohmann::json::parse(in);
      task->pid = state.at("pid").get<int>();
      task->start_ticks = state.at("start_ticks").get<uint64_t>();
      task->state.started_at =
          absl::FromUnixNanos(state.at("started_at_unix_nanos").get<int64_t>());
      task->env = state.at("env").get<std::map<std::string, std::string>>();
    } catch (const std::exception& e) {
      error = absl::StrCat("state file ", TaskDir(id), "/state unreadable: ", e.what());
    }
    task->state.pid = task->pid;

    absl::MutexLock lock(&mu_);
    if (tasks_.contains(id)) continue;
    std::optional<Exit> exit;
    if (!error.empty()) {
      exit = Exit{false, 0, error};
    } else {
      exit = CheckExit(*task);
    }
    tasks_[id] = task;
    if (exit) {
      task->state.phase = Phase::kExited;
      task->state.has_exit_code = exit->has_exit_code;
      task->state.exit_code = exit->exit_code;
      task->state.error = exit->error;
      task->state.finished_at = clock_.Now();
      PushEvent(*task);
    } else {
      adopted.push_back(id);
    }
  }
  KillUntracked(adopted);
  return adopted;
}

void ProcessDriver::KillUntracked(const std::vector<std::string>& adopted) {
  // A worker killed between fork() and writing the state file leaves a task process nobody
  // knows: it would hold its address and port forever. Its environment names this driver's
  // state dir and its task id; everything of ours that was not adopted goes.
  const std::string marker =
      absl::StrCat(kStateDirVariable, "=", fs::absolute(state_dir_).string());
  std::set<std::string> keep(adopted.begin(), adopted.end());
  ForEachProcessEnvironment([&](int pid, std::string_view env) {
    bool ours = false;
    std::string task_id;
    for (absl::string_view var : absl::StrSplit(absl::string_view(env.data(), env.size()), '\0')) {
      if (var == marker) ours = true;
      if (absl::StartsWith(var, "WARREN_TASK_ID=")) {
        task_id = std::string(var.substr(sizeof("WARREN_TASK_ID=") - 1));
      }
    }
    if (!ours || keep.contains(task_id)) return;
    spdlog::warn("killing untracked process {} of task {} (left by an earlier worker)", pid,
                 task_id.empty() ? "?" : task_id);
    kill(pid, SIGKILL);
  });
}

absl::StatusOr<ExecResult> ProcessDriver::Exec(std::string_view task_id,
                                               const std::vector<std::string>& argv,
                                               absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("argv: must not be empty");
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  std::map<std::string, std::string> env;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end())
      return absl::NotFoundError(absl::StrCat("task ", AV(task_id), ": unknown"));
    if (it->second->state.phase != Phase::kRunning) {
      return absl::FailedPreconditionError(absl::StrCat("task ", AV(task_id), ": not running"));
    }
    env = it->second->env;
  }
  std::vector<std::string> full_argv = argv;
  if (argv.size() == 1) full_argv = {"/bin/sh", "-c", argv[0]};
  absl::StatusOr<std::string> path = ResolveCommand(full_argv[0], env);
  if (!path.ok()) return path.status();

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe: " + ErrnoText(errno));
  Fd out_read(pipe_fds[0]);
  Fd out_write(pipe_fds[1]);
  absl::StatusOr<pid_t> pid = SpawnProcess(*path, full_argv, env, out_write.get());
  if (!pid.ok()) return pid.status();
  out_write.Reset();

  // Exec deadlines are about real processes, so they run on real time.
  absl::Time deadline = absl::Now() + timeout;
  ExecResult result;
  std::optional<int> status;
  bool eof = false;
  char buf[4096];
  while (absl::Now() < deadline) {
    if (!eof) {
      pollfd pfd = {out_read.get(), POLLIN, 0};
      int64_t wait_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now()));
      int r = poll(&pfd, 1, static_cast<int>(wait_ms));
      if (r < 0 && errno != EINTR) break;
      if (r <= 0) continue;
      ssize_t n = read(out_read.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof = true;
        continue;
      }
      size_t room =
          options_.exec_output_limit - std::min(options_.exec_output_limit, result.output.size());
      result.output.append(buf, std::min(room, static_cast<size_t>(n)));
      continue;
    }
    status = ReapIfExited(*pid);
    if (status) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  if (!status) {
    kill(-*pid, SIGKILL);
    int ignored;
    while (waitpid(*pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    result.timed_out = true;
    result.exit_code = -1;
    return result;
  }
  bool has_code = false;
  std::string error;
  ExitFromStatus(*status, &has_code, &result.exit_code, &error);
  return result;
}

}  // namespace warren
