#ifndef WARREN_WORKER_PROCESS_DRIVER_H_
#define WARREN_WORKER_PROCESS_DRIVER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/processes.h"
#include "worker/log_files.h"
#include "worker/runtime_driver.h"

namespace warren {

// Runs tasks as host processes, each under its own warren-shim (src/shim/shim.cc). Each task
// is the leader of its own session and process group, so stopping it signals everything it
// started. Per task the driver keeps, under `state_dir`:
//   <task_id>/state       JSON: pids and kernel start times of task and shim, env (removed by
//                         Remove)
//   <task_id>/output.log  stdout and stderr, written by the shim, rotated by size into
//                         output.log.1, ... (kept by Remove)
//   <task_id>/exit        the task's wait status, written by the shim when it exits
// Destroying the driver leaves running tasks alone: a worker restart must not kill them; the
// next driver adopts them with Recover().
// Environment variable naming the state dir of the driver that started a task.
inline constexpr char kStateDirVariable[] = "WARREN_WORKER_STATE_DIR";

// warren-shim in the directory of the running executable.
std::string DefaultShimPath();

class ProcessDriver : public RuntimeDriver {
 public:
  struct Options {
    // How often the monitor thread looks for exited tasks.
    absl::Duration poll_interval = absl::Milliseconds(20);
    // Exec output beyond this many bytes is dropped.
    size_t exec_output_limit = 4096;
    // Reads /proc/<pid>/stat (tests inject failures here); null: ReadProcStat.
    std::function<absl::StatusOr<ProcStat>(int pid)> read_proc_stat;
    // The supervisor every task runs under; empty: warren-shim beside the running binary.
    std::string shim_path;
    // Size cap and rotation of each task's output.log (done by the shim).
    LogLimits log_limits;
  };

  explicit ProcessDriver(std::string state_dir, Clock& clock = RealClock::Get());
  ProcessDriver(std::string state_dir, Clock& clock, Options options);
  ~ProcessDriver() override;

  ProcessDriver(const ProcessDriver&) = delete;
  ProcessDriver& operator=(const ProcessDriver&) = delete;

  std::string Name() const override { return "process"; }
  void SetListener(Listener listener) override;
  // Adopts every task in the state dir whose process is still alive (same pid and kernel start
  // time). Tasks whose process is gone (no such pid, or another start time) are reported to
  // the listener as exited, with no exit code. A process that /proc cannot tell about just now
  // is adopted as running, and checked again by the monitor; a state file that cannot be read
  // just now makes the call fail (UNAVAILABLE) with nothing decided.
  absl::StatusOr<std::vector<std::string>> Recover() override;
  // Errors: INVALID_ARGUMENT for a bad task id or missing command, ALREADY_EXISTS for a known
  // task id, NOT_FOUND / PERMISSION_DENIED / FAILED_PRECONDITION when the command cannot be
  // executed. A task that failed to execute stays known (phase kExited, with the error) until
  // Remove; the listener is not called for it since Start already returned the error.
  absl::Status Start(const TaskRunSpec& spec) override;
  absl::Status Stop(std::string_view task_id, absl::Duration timeout) override;
  // A task still running is killed (SIGKILL to its group) before it is forgotten.
  void Remove(std::string_view task_id) override;
  std::optional<TaskRuntimeState> Inspect(std::string_view task_id) const override;
  std::vector<std::string> List() const override;
  // Runs in its own process group with the task's environment; NOT_FOUND for unknown tasks,
  // FAILED_PRECONDITION for exited ones. A single argv element runs through /bin/sh -c.
  absl::StatusOr<ExecResult> Exec(std::string_view task_id, const std::vector<std::string>& argv,
                                  absl::Duration timeout) override;
  std::string LogPath(std::string_view task_id) const override;

 private:
  struct Task {
    std::string id;
    int pid = 0;
    uint64_t start_ticks = 0;
    // Not our child (taken over by Recover): its exit can only be observed, not waited for.
    bool adopted = false;
    // /proc could not be read at the last check (warned once).
    bool proc_unreadable = false;
    // The task's warren-shim (0: started before there was one): the task's parent, which
    // records its exit status in <task dir>/exit.
    int shim_pid = 0;
    uint64_t shim_start_ticks = 0;
    bool shim_reaped = false;
    std::map<std::string, std::string> env;
    TaskRuntimeState state;
  };
  struct Exit {
    bool has_exit_code = false;
    int exit_code = 0;
    std::string error;
    absl::Time finished_at = absl::InfinitePast();
  };

  std::string TaskDir(std::string_view task_id) const;
  // Returns the exit of a running task, or nullopt while it runs or nothing is known (a /proc
  // read that failed for another reason than the process being gone). Reaps our children.
  std::optional<Exit> CheckExit(Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<Exit> CheckExitWithoutShim(Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The exit the shim recorded; nullopt when there is none (yet).
  absl::StatusOr<std::optional<Exit>> RecordedExit(const Task& task) const;
  absl::StatusOr<ProcStat> ProcStatOf(int pid) const;
  void MonitorLoop();
  // Records the exit in the task's state and queues it for the listener.
  void MarkExited(Task& task, const Exit& exit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeliverEvents() ABSL_LOCKS_EXCLUDED(mu_);
  void PushEvent(const Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Signals the task's process group, but only while the leader is verifiably the task's
  // process (an adopted leader that is gone may have had its pid reused). False when that
  // could not be verified just now (/proc unreadable): nothing was sent.
  bool SignalGroup(const Task& task, int sig) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // SignalGroup, retried until `deadline` (real time) while unverifiable; true once sent or
  // the task exited.
  bool SignalGroupUntil(Task& task, int sig, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Kills processes carrying this driver's state-dir marker that belong to no running task;
  // while /proc cannot be fully read, it stays due and the monitor calls it again.
  void SweepUntracked() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string state_dir_;
  Clock& clock_;
  Options options_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Task>, std::less<>> tasks_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, TaskRuntimeState>> events_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool sweep_due_ ABSL_GUARDED_BY(mu_) = false;
  bool sweep_warned_ ABSL_GUARDED_BY(mu_) = false;

  // Serializes listener calls so phase changes arrive in order.
  absl::Mutex listener_mu_;
  Listener listener_ ABSL_GUARDED_BY(listener_mu_);

  std::thread monitor_;
};

}  // namespace warren

#endif  // WARREN_WORKER_PROCESS_DRIVER_H_
