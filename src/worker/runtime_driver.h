#ifndef WARREN_WORKER_RUNTIME_DRIVER_H_
#define WARREN_WORKER_RUNTIME_DRIVER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// Everything a driver needs to start one task.
struct TaskRunSpec {
  std::string task_id;
  std::string service_name;
  int64_t revision = 0;
  v1::TaskTemplate spec;
  // The task's own address and port (loopback for the process runtime).
  std::string address;
  int port = 0;
  // Full environment of the task: the template's env plus WARREN_* variables.
  std::map<std::string, std::string> env;
  // The task's secrets directory (a tmpfs; files named by target), empty when it has none.
  // Process tasks find it in WARREN_SECRETS_DIR; containers get it read-only at /run/secrets.
  std::string secrets_dir;
};

// What a driver observed of a task.
struct TaskRuntimeState {
  enum class Phase { kStarting, kRunning, kExited };
  Phase phase = Phase::kStarting;
  int pid = 0;
  bool has_exit_code = false;
  int exit_code = 0;
  // Why the task could not start or why it died (signal, adoption without exit code...).
  std::string error;
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  // The address the runtime gave the task (cri: the pod sandbox IP); empty when the
  // scheduler's address (TaskRunSpec::address) is used.
  std::string address;
  // While starting: what the driver is doing ("pulling image ..."), shown in the task status.
  std::string message;
};

struct ExecResult {
  int exit_code = -1;
  std::string output;  // stdout+stderr, truncated
  bool timed_out = false;
};

// Runs tasks on a worker. Implementations: process (host processes), cri (containers).
// Thread-safe; Stop blocks up to the stop timeout, so callers run it off the main loop.
class RuntimeDriver {
 public:
  using Listener = std::function<void(const std::string& task_id, const TaskRuntimeState&)>;

  virtual ~RuntimeDriver() = default;
  virtual std::string Name() const = 0;

  // Called on every phase change, and while starting when the message changes (from a driver
  // thread).
  virtual void SetListener(Listener listener) = 0;

  // Finds tasks left running by an earlier life of this worker (from its state dir) and
  // takes them over. Returns their ids. UNAVAILABLE when the runtime's state could not be
  // read just now (out of descriptors or memory, runtime not answering): nothing was decided
  // about any task, and a later call tries again. A task is only ever declared gone on proof.
  virtual absl::StatusOr<std::vector<std::string>> Recover() = 0;

  // Starts a task. Returns once the task was spawned (phase kRunning) or failed to start.
  virtual absl::Status Start(const TaskRunSpec& spec) = 0;

  // Stops a task: SIGTERM (or the runtime's equivalent), then a forced kill after `timeout`.
  // Returns once the task is gone. OK for unknown or already exited tasks.
  virtual absl::Status Stop(std::string_view task_id, absl::Duration timeout) = 0;

  // Forgets an exited task and removes its runtime state (not its logs).
  virtual void Remove(std::string_view task_id) = 0;

  virtual std::optional<TaskRuntimeState> Inspect(std::string_view task_id) const = 0;

  // Ids of every task the driver knows (running or exited, not removed).
  virtual std::vector<std::string> List() const = 0;

  // Runs argv with the task's environment (exec health checks).
  virtual absl::StatusOr<ExecResult> Exec(std::string_view task_id,
                                          const std::vector<std::string>& argv,
                                          absl::Duration timeout) = 0;

  // Path of the task's combined stdout/stderr log.
  virtual std::string LogPath(std::string_view task_id) const = 0;

  // True when the runtime gives tasks their addresses (the node registers no address range
  // and tasks report TaskRuntimeState::address).
  virtual bool AssignsAddresses() const { return false; }

  // The address tasks use as their DNS server when the worker must serve DNS there (cri: the
  // pods' gateway); empty when tasks use the host's resolver. May change with UseNodeSubnet.
  virtual std::string TaskDnsServer() const { return ""; }

  // A routed node network (docs/networking.md): the node's subnet from the manager, given
  // after every registration and before any task of it starts. A runtime that gives tasks
  // their addresses sets up its network on it (cri: the pods' CNI bridge) and is ready to
  // start tasks when this returns OK. Runtimes whose addresses the worker assigns ignore it.
  virtual absl::Status UseNodeSubnet(const std::string& subnet) { return absl::OkStatus(); }

  // True when LogPath holds the CRI log format ("<time> <stream> <P|F> <text>" per line)
  // rather than plain text.
  virtual bool CriLogFormat() const { return false; }
};

}  // namespace warren

#endif  // WARREN_WORKER_RUNTIME_DRIVER_H_
