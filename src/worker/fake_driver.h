#ifndef WARREN_WORKER_FAKE_DRIVER_H_
#define WARREN_WORKER_FAKE_DRIVER_H_

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "worker/runtime_driver.h"

namespace warren {

// A runtime without processes, for integration tests and benchmarks of the control plane.
// Tasks "run" from Start until Stop or Crash; exec health checks succeed unless told not to.
class FakeDriver : public RuntimeDriver {
 public:
  std::string Name() const override { return "fake"; }
  void SetListener(Listener listener) override;
  absl::StatusOr<std::vector<std::string>> Recover() override;
  absl::Status Start(const TaskRunSpec& spec) override;
  absl::Status Stop(std::string_view task_id, absl::Duration timeout) override;
  void Remove(std::string_view task_id) override;
  std::optional<TaskRuntimeState> Inspect(std::string_view task_id) const override;
  std::vector<std::string> List() const override;
  absl::StatusOr<ExecResult> Exec(std::string_view task_id, const std::vector<std::string>& argv,
                                  absl::Duration timeout) override;
  std::string LogPath(std::string_view task_id) const override { return ""; }

  // Test controls.
  void Crash(const std::string& task_id, int exit_code);
  // Tasks the next Recover adopts, as if an earlier worker had started them.
  void AddRecoverable(const TaskRunSpec& spec, const TaskRuntimeState& state);
  // The next `n` Recover calls fail as a runtime that cannot be read just now.
  void FailRecover(int n);
  void SetExecExitCode(int code);
  // What exec health checks print ("ok" or "failing" unless set).
  void SetExecOutput(const std::string& output);
  // Makes Start fail with this message for commands equal to `command`.
  void FailStartsOf(const std::string& command, const std::string& error);
  int Running() const;
  std::map<std::string, TaskRunSpec> Specs() const;

 private:
  mutable absl::Mutex mu_;
  Listener listener_;
  std::map<std::string, TaskRuntimeState, std::less<>> tasks_;
  std::map<std::string, TaskRunSpec, std::less<>> specs_;
  std::map<std::string, std::string> failing_commands_;
  std::map<std::string, std::pair<TaskRunSpec, TaskRuntimeState>> recoverable_;
  int failing_recovers_ = 0;
  int exec_exit_code_ = 0;
  std::string exec_output_;
  int next_pid_ = 1000;
};

}  // namespace warren

#endif  // WARREN_WORKER_FAKE_DRIVER_H_
