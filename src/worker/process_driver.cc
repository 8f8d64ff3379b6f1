#include "worker/process_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
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
#include "http/descriptor_budget.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "worker/child_setup.h"

namespace warren {
namespace {

namespace fs = std::filesystem;
using Phase = TaskRuntimeState::Phase;

// Abseil here is built with its own string_view type.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr char kAdoptedExitError[] = "exited while adopted; exit code unknown";
constexpr char kNoExitRecorded[] =
    "exited; exit code unknown (its warren-shim ended without recording it)";
constexpr char kDefaultPath[] = "/usr/local/bin:/usr/bin:/bin";

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
// /dev/null, stdout+stderr on `out_fd` and, when `pass_fd` >= 0, that descriptor as fd 3, and
// execs `path`. Exec failures come back through a close-on-exec pipe, so they are errors here
// rather than an exit code of the child.
absl::StatusOr<pid_t> SpawnProcess(const std::string& path, const std::vector<std::string>& argv,
                                   const std::map<std::string, std::string>& env, int out_fd,
                                   int pass_fd = -1) {
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
    ResetSignalsForExec();
    setsid();
    // The worker's own umask keeps its data dir private; the shim and the task get the one the
    // worker was started with (the shim creates the task's files with explicit modes).
    RestoreTaskUmask();
    // Out of the way of 0..3 first (all async-signal-safe).
    int ew = fcntl(err_write.get(), F_DUPFD_CLOEXEC, 10);
    int pass = pass_fd >= 0 ? fcntl(pass_fd, F_DUPFD, 10) : -1;
    dup2(devnull.get(), 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    int keep = 3;
    if (pass >= 0) {
      dup2(pass, 3);
      keep = 4;
    }
    close_range(keep, ew - 1, 0);
    close_range(ew + 1, ~0U, 0);
    // Last: the descriptors above were placed under the worker's own (raised) limit.
    RestoreTaskFileLimit();
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

// Writes `content` to `path` (mode 0600) through a temporary file and a rename.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) return absl::InternalError(absl::StrCat("write ", tmp, ": ", ErrnoText(errno)));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("write ", tmp, ": ", n < 0 ? ErrnoText(errno) : "short write"));
    }
    done += static_cast<size_t>(n);
  }
  fd.Reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

// Reads exactly `size` bytes within `timeout`; false on EOF, error or timeout.
bool ReadFully(int fd, void* out, size_t size, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char* p = static_cast<char*>(out);
  while (size > 0) {
    pollfd pfd = {fd, POLLIN, 0};
    int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (wait_ms <= 0) return false;
    int r = poll(&pfd, 1, static_cast<int>(wait_ms));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string DefaultShimPath() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("warren-shim") : (self.parent_path() / "warren-shim").string();
}

ProcessDriver::ProcessDriver(std::string state_dir, Clock& clock)
    : ProcessDriver(std::move(state_dir), clock, Options()) {}

ProcessDriver::ProcessDriver(std::string state_dir, Clock& clock, Options options)
    : state_dir_(std::move(state_dir)), clock_(clock), options_(std::move(options)) {
  if (options_.shim_path.empty()) options_.shim_path = DefaultShimPath();
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

absl::StatusOr<ProcStat> ProcessDriver::ProcStatOf(int pid) const {
  return options_.read_proc_stat ? options_.read_proc_stat(pid) : ReadProcStat(pid);
}

std::optional<ProcessDriver::Exit> ProcessDriver::CheckExit(Task& task) {
  if (task.shim_pid <= 0) return CheckExitWithoutShim(task);
  // Nothing is known while /proc or the exit file cannot be read: the task keeps its state
  // (issue 17 D4: out of descriptors, healthy tasks were declared dead).
  auto unknown = [&](const absl::Status& status) -> std::optional<Exit> {
    if (!task.proc_unreadable) {
      spdlog::warn("task {}: cannot check its process ({}); will retry", task.id,
                   std::string(status.message()));
    }
    task.proc_unreadable = true;
    return std::nullopt;
  };
  if (!task.adopted && !task.shim_reaped) {
    // The shim is our child: it exits right after recording the task's exit.
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_PID, task.shim_pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno != ECHILD) return std::nullopt;
      task.shim_reaped = true;  // reaped elsewhere: observe it through /proc like an adopted one
    } else if (info.si_pid != task.shim_pid) {
      return std::nullopt;
    } else {
      absl::StatusOr<std::optional<Exit>> recorded = RecordedExit(task);
      if (!recorded.ok()) return unknown(recorded.status());
      int ignored;
      while (waitpid(task.shim_pid, &ignored, 0) < 0 && errno == EINTR) {
      }
      task.shim_reaped = true;
      task.proc_unreadable = false;
      if (*recorded) return *recorded;
      // The shim died without recording an exit (killed): the task may run on without it.
    }
  }
  // Not our child (adopted after a restart): /proc tells whether the shim still runs.
  absl::StatusOr<ProcStat> shim = ProcStatOf(task.shim_pid);
  if (!shim.ok() && !absl::IsNotFound(shim.status())) return unknown(shim.status());
  const bool shim_alive = shim.ok() && shim->start_ticks == task.shim_start_ticks;
  if (shim_alive && shim->state != 'Z' && shim->state != 'X') {
    task.proc_unreadable = false;
    return std::nullopt;
  }
  if (shim_alive) {
    // A zombie shim: ours to reap only if an earlier driver in this process started it.
    waitpid(task.shim_pid, nullptr, WNOHANG);
  }
  absl::StatusOr<std::optional<Exit>> recorded = RecordedExit(task);
  if (!recorded.ok()) return unknown(recorded.status());
  if (*recorded) {
    task.proc_unreadable = false;
    return *recorded;
  }
  // No record: the shim was killed. The task is its own judge now.
  absl::StatusOr<ProcStat> stat = ProcStatOf(task.pid);
  if (!stat.ok() && !absl::IsNotFound(stat.status())) return unknown(stat.status());
  task.proc_unreadable = false;
  if (stat.ok() && stat->start_ticks == task.start_ticks && stat->state != 'Z' &&
      stat->state != 'X') {
    return std::nullopt;
  }
  return Exit{false, 0, kNoExitRecorded};
}

absl::StatusOr<std::optional<ProcessDriver::Exit>> ProcessDriver::RecordedExit(
    const Task& task) const {
  absl::StatusOr<std::string> content = ReadWholeFile(TaskDir(task.id) + "/exit", 4096);
  if (absl::IsNotFound(content.status())) return std::optional<Exit>();
  if (!content.ok()) return content.status();
  Exit exit;
  try {
    nlohmann::json j = nlohmann::json::parse(*content);
    ExitFromStatus(j.at("wait_status").get<int>(), &exit.has_exit_code, &exit.exit_code,
                   &exit.error);
    if (j.contains("finished_at_unix_nanos")) {
      exit.finished_at = absl::FromUnixNanos(j["finished_at_unix_nanos"].get<int64_t>());
    }
  } catch (const std::exception& e) {
    exit = Exit{false, 0, absl::StrCat("exit record unreadable: ", e.what())};
  }
  return std::optional<Exit>(exit);
}

std::optional<ProcessDriver::Exit> ProcessDriver::CheckExitWithoutShim(Task& task) {
  // Started by a worker from before warren-shim: only /proc tells, and never an exit code.
  absl::StatusOr<ProcStat> stat = ProcStatOf(task.pid);
  if (!stat.ok() && !absl::IsNotFound(stat.status())) {
    if (!task.proc_unreadable) {
      spdlog::warn("task {}: cannot check pid {} ({}); will retry", task.id, task.pid,
                   std::string(stat.status().message()));
    }
    task.proc_unreadable = true;
    return std::nullopt;
  }
  task.proc_unreadable = false;
  if (!stat.ok() || stat->start_ticks != task.start_ticks) {
    return Exit{false, 0, kAdoptedExitError};
  }
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

void ProcessDriver::MarkExited(Task& task, const Exit& exit) {
  task.state.phase = Phase::kExited;
  task.state.has_exit_code = exit.has_exit_code;
  task.state.exit_code = exit.exit_code;
  task.state.error = exit.error;
  task.state.finished_at =
      exit.finished_at != absl::InfinitePast() ? exit.finished_at : clock_.Now();
  PushEvent(task);
}

void ProcessDriver::MonitorLoop() {
  uint64_t passes = 0;
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
        MarkExited(*task, *exit);
      }
    }
    DeliverEvents();
    // An incomplete sweep for untracked processes is retried about once a second.
    if (++passes % 50 == 0) SweepUntracked();
    absl::MutexLock lock(&mu_);
    auto wake = [](ProcessDriver* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
      return d->stopping_ || !d->events_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(+wake, this), options_.poll_interval);
  }
}

bool ProcessDriver::SignalGroup(const Task& task, int sig) {
  if (task.state.phase != Phase::kRunning || task.pid <= 0) return true;
  // The leader is the shim's child (or, adopted, nobody's we know): its pid could be reused
  // once reaped, so its identity is checked first. A zombie leader is being reaped and its
  // group killed by the shim.
  if (task.shim_pid > 0 || task.adopted) {
    absl::StatusOr<ProcStat> stat = ProcStatOf(task.pid);
    if (!stat.ok()) return absl::IsNotFound(stat.status());
    if (stat->start_ticks != task.start_ticks) return true;
    if (task.shim_pid > 0 && (stat->state == 'Z' || stat->state == 'X')) return true;
  }
  if (kill(-task.pid, sig) != 0 && errno == ESRCH) {
    // Not a group leader after all (should not happen); signal the process itself.
    kill(task.pid, sig);
  }
  return true;
}

bool ProcessDriver::SignalGroupUntil(Task& task, int sig, absl::Time deadline) {
  auto gone = [](Task* t) { return t->state.phase == Phase::kExited; };
  while (!SignalGroup(task, sig)) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    if (mu_.AwaitWithTimeout(absl::Condition(+gone, &task),
                             std::min(left, absl::Milliseconds(20)))) {
      return true;
    }
  }
  return true;
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

  const std::string dir = TaskDir(spec.task_id);
  std::error_code ec;
  fs::create_directories(state_dir_, ec);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(absl::InternalError(absl::StrCat("create task dir ", dir, ": ", ErrnoText(errno))));
  }
  unlink((dir + "/exit").c_str());  // a record of another run must not be taken for this one
  std::string log_path = LogPath(spec.task_id);
  // The shim writes the task's output; this descriptor is the shim's own stderr and carries
  // the reason a task could not start.
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
  // The task runs under warren-shim, its parent for life: it drains and rotates the output
  // and records the exit status in the task dir, so the exit code survives a worker restart.
  int sock[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) != 0) {
    return fail(absl::InternalError("socketpair: " + ErrnoText(errno)));
  }
  Fd report(sock[0]);
  Fd shim_end(sock[1]);
  std::vector<std::string> argv = {options_.shim_path,
                                   dir,
                                   absl::StrCat(options_.log_limits.max_size),
                                   absl::StrCat(std::max(1, options_.log_limits.max_files)),
                                   "--",
                                   *path,
                                   spec.spec.command()};
  argv.insert(argv.end(), spec.spec.args().begin(), spec.spec.args().end());
  absl::StatusOr<pid_t> shim_pid =
      SpawnProcess(options_.shim_path, argv, task->env, log.get(), shim_end.get());
  if (!shim_pid.ok()) {
    absl::Status error = absl::FailedPreconditionError(
        absl::StrCat("starting the task's supervisor: ", shim_pid.status().message()));
    log_error(error);
    return fail(error);
  }
  shim_end.Reset();
  auto reap_shim = [&] {
    int status;
    while (waitpid(*shim_pid, &status, 0) < 0 && errno == EINTR) {
    }
  };
  int32_t started[2] = {0, 0};  // task pid, exec errno
  if (!ReadFully(report.get(), started, sizeof(started), absl::Seconds(30))) {
    kill(*shim_pid, SIGKILL);
    reap_shim();
    absl::Status error = absl::InternalError(absl::StrCat(
        options_.shim_path, " did not start the task (its message, if any, is in ", log_path, ")"));
    log_error(error);
    return fail(error);
  }
  const pid_t pid = started[0];
  if (started[1] != 0) {
    reap_shim();
    absl::Status error = ExecError(*path, started[1]);
    log_error(error);
    return fail(error);
  }
  // Until the acknowledgement the shim does not reap the task, so /proc/<pid> exists even if
  // it already exited. Without its start time the task could never be adopted: a /proc that
  // cannot be read fails the start.
  auto stat_of = [&](int p) {
    absl::StatusOr<ProcStat> stat = ProcStatOf(p);
    for (int attempt = 0; !stat.ok() && attempt < 20; ++attempt) {
      absl::SleepFor(absl::Milliseconds(10));
      stat = ProcStatOf(p);
    }
    return stat;
  };
  absl::StatusOr<ProcStat> stat = stat_of(pid);
  absl::StatusOr<ProcStat> shim_stat = stat_of(*shim_pid);
  absl::Time started_at = clock_.Now();
  absl::Status written = !stat.ok() ? stat.status() : shim_stat.status();
  if (written.ok()) {
    nlohmann::json state = {
        {"task_id", spec.task_id},
        {"pid", pid},
        {"start_ticks", stat->start_ticks},
        {"shim_pid", *shim_pid},
        {"shim_start_ticks", shim_stat->start_ticks},
        {"started_at_unix_nanos", absl::ToUnixNanos(started_at)},
        {"env", task->env},
    };
    written = WriteFileAtomically(dir + "/state", state.dump());
  }
  if (!written.ok()) {
    // Without its state file the task could not be adopted after a restart: do not run it.
    kill(-pid, SIGKILL);
    report.Reset();
    reap_shim();
    absl::Status error = absl::UnavailableError(
        absl::StrCat("recording the task for a later adoption: ", written.message()));
    log_error(error);
    return fail(error);
  }
  char ack = 1;
  ssize_t ignored = write(report.get(), &ack, 1);
  (void)ignored;
  report.Reset();

  absl::MutexLock lock(&mu_);
  task->pid = pid;
  task->start_ticks = stat->start_ticks;
  task->shim_pid = *shim_pid;
  task->shim_start_ticks = shim_stat->start_ticks;
  task->state.pid = pid;
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

  const absl::Time term_until = absl::Now() + timeout;
  if (SignalGroupUntil(*task, SIGTERM, term_until) &&
      mu_.AwaitWithTimeout(absl::Condition(+gone, task.get()),
                           std::max(absl::ZeroDuration(), term_until - absl::Now()))) {
    return absl::OkStatus();
  }
  SignalGroupUntil(*task, SIGKILL, absl::Now() + absl::Seconds(60));
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

absl::StatusOr<std::vector<std::string>> ProcessDriver::Recover() {
  // First read everything; only then decide. A state file that cannot be read just now fails
  // the whole call before any task was adopted or declared gone, so calling again is safe.
  std::vector<std::string> ids;
  {
    std::error_code ec;
    fs::directory_iterator dir(state_dir_, ec);
    if (ec == std::errc::no_such_file_or_directory) return ids;  // nothing ran before
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("listing ", state_dir_, ": ", ec.message(), " (no task was touched)"));
    }
    for (; dir != fs::directory_iterator(); dir.increment(ec)) {
      if (ec) break;
      std::error_code type_ec;
      if (dir->is_directory(type_ec)) ids.push_back(dir->path().filename().string());
    }
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("listing ", state_dir_, ": ", ec.message(), " (no task was touched)"));
    }
  }
  std::sort(ids.begin(), ids.end());

  std::vector<std::shared_ptr<Task>> found;
  std::map<std::string, std::string> corrupt;  // task id -> why
  for (const std::string& id : ids) {
    {
      absl::MutexLock lock(&mu_);
      if (tasks_.contains(id)) continue;
    }
    const std::string path = TaskDir(id) + "/state";
    absl::StatusOr<std::string> content = ReadWholeFile(path);
    if (absl::IsNotFound(content.status())) continue;  // a directory of logs only
    if (!content.ok()) {
      return absl::UnavailableError(
          absl::StrCat(content.status().message(), " (no task was touched)"));
    }
    auto task = std::make_shared<Task>();
    task->id = id;
    task->adopted = true;
    task->state.phase = Phase::kRunning;
    try {
      nlohmann::json state = nlohmann::json::parse(*content);
      task->pid = state.at("pid").get<int>();
      task->start_ticks = state.at("start_ticks").get<uint64_t>();
      task->state.started_at =
          absl::FromUnixNanos(state.at("started_at_unix_nanos").get<int64_t>());
      task->env = state.at("env").get<std::map<std::string, std::string>>();
      // Absent in the state of tasks started before warren-shim.
      task->shim_pid = state.value("shim_pid", 0);
      task->shim_start_ticks = state.value("shim_start_ticks", uint64_t{0});
    } catch (const std::exception& e) {
      corrupt[id] = absl::StrCat("state file ", path, " unreadable: ", e.what());
    }
    task->state.pid = task->pid;
    found.push_back(std::move(task));
  }

  std::vector<std::string> adopted;
  {
    absl::MutexLock lock(&mu_);
    for (auto& task : found) {
      if (tasks_.contains(task->id)) continue;
      std::optional<Exit> exit;
      if (auto it = corrupt.find(task->id); it != corrupt.end()) {
        exit = Exit{false, 0, it->second};
      } else {
        // A /proc that cannot be read adopts the task as running: the monitor checks again.
        exit = CheckExit(*task);
        if (!exit) {
          // The shim records the task's exit and then exits itself: a worker restarting in
          // between must not adopt a task that is over. (Once only: the monitor sees the shim
          // go and reads the record then.)
          absl::StatusOr<std::optional<Exit>> recorded = RecordedExit(*task);
          if (recorded.ok() && *recorded) exit = *recorded;
        }
      }
      tasks_[task->id] = task;
      if (exit) {
        MarkExited(*task, *exit);
      } else {
        adopted.push_back(task->id);
      }
    }
    sweep_due_ = true;
  }
  // Processes of the tasks it did not adopt go.
  SweepUntracked();
  return adopted;
}

void ProcessDriver::SweepUntracked() {
  // A worker killed between fork() and writing the state file leaves a task process nobody
  // knows: it would hold its address and port forever. Its environment names this driver's
  // state dir and its task id; everything of ours that belongs to no known task goes.
  {
    absl::MutexLock lock(&mu_);
    if (!sweep_due_) return;
  }
  const std::string marker =
      absl::StrCat(kStateDirVariable, "=", fs::absolute(state_dir_).string());
  std::vector<std::pair<int, std::string>> ours;  // pid, task id
  absl::Status scanned = ForEachProcessEnvironment([&](int pid, std::string_view env) {
    bool marked = false;
    std::string task_id;
    for (absl::string_view var : absl::StrSplit(absl::string_view(env.data(), env.size()), '\0')) {
      if (var == marker) marked = true;
      if (absl::StartsWith(var, "WARREN_TASK_ID=")) {
        task_id = std::string(var.substr(sizeof("WARREN_TASK_ID=") - 1));
      }
    }
    if (marked) ours.emplace_back(pid, std::move(task_id));
  });
  absl::MutexLock lock(&mu_);
  // Decided under the lock: a task started since the scan is in tasks_ by now.
  for (const auto& [pid, task_id] : ours) {
    auto it = tasks_.find(task_id);
    if (it != tasks_.end() && it->second->state.phase != Phase::kExited) continue;
    spdlog::warn("killing untracked process {} of task {} (left by an earlier worker)", pid,
                 task_id.empty() ? "?" : task_id);
    kill(pid, SIGKILL);
  }
  if (scanned.ok()) {
    sweep_due_ = false;
  } else if (!sweep_warned_) {
    // Not knowing is no reason to kill: the rest of the sweep waits for /proc to answer.
    sweep_warned_ = true;
    spdlog::warn("looking for untracked task processes: {}; will retry",
                 std::string(scanned.message()));
  }
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
