#include "worker/fake_driver.h"

#include "absl/time/clock.h"

namespace warren {

void FakeDriver::SetListener(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

absl::StatusOr<std::vector<std::string>> FakeDriver::Recover() {
  absl::MutexLock lock(&mu_);
  if (failing_recovers_ > 0) {
    failing_recovers_--;
    return absl::UnavailableError("fake runtime: Too many open files");
  }
  std::vector<std::string> ids;
  for (auto& [id, entry] : recoverable_) {
    specs_[id] = entry.first;
    tasks_[id] = entry.second;
    ids.push_back(id);
  }
  recoverable_.clear();
  return ids;
}

void FakeDriver::AddRecoverable(const TaskRunSpec& spec, const TaskRuntimeState& state) {
  absl::MutexLock lock(&mu_);
  recoverable_[spec.task_id] = {spec, state};
}

void FakeDriver::FailRecover(int n) {
  absl::MutexLock lock(&mu_);
  failing_recovers_ = n;
}

absl::Status FakeDriver::Start(const TaskRunSpec& spec) {
  absl::MutexLock lock(&mu_);
  auto fail = failing_commands_.find(spec.spec.command());
  if (fail != failing_commands_.end()) return absl::FailedPreconditionError(fail->second);
  TaskRuntimeState st;
  st.phase = TaskRuntimeState::Phase::kRunning;
  st.pid = next_pid_++;
  st.started_at = absl::Now();
  tasks_[spec.task_id] = st;
  specs_[spec.task_id] = spec;
  return absl::OkStatus();
}

absl::Status FakeDriver::Stop(std::string_view task_id, absl::Duration) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second.phase == TaskRuntimeState::Phase::kExited) {
    return absl::OkStatus();
  }
  it->second.phase = TaskRuntimeState::Phase::kExited;
  it->second.has_exit_code = true;
  it->second.exit_code = 143;
  it->second.finished_at = absl::Now();
  return absl::OkStatus();
}

void FakeDriver::Remove(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  if (auto it = tasks_.find(task_id); it != tasks_.end()) tasks_.erase(it);
  if (auto it = specs_.find(task_id); it != specs_.end()) specs_.erase(it);
}

std::optional<TaskRuntimeState> FakeDriver::Inspect(std::string_view task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> FakeDriver::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [id, st] : tasks_) out.push_back(id);
  return out;
}

absl::StatusOr<ExecResult> FakeDriver::Exec(std::string_view task_id,
                                            const std::vector<std::string>&, absl::Duration) {
  absl::MutexLock lock(&mu_);
  ExecResult r;
  r.exit_code = exec_exit_code_;
  r.output = !exec_output_.empty() ? exec_output_ : exec_exit_code_ == 0 ? "ok" : "failing";
  return r;
}

void FakeDriver::Crash(const std::string& task_id, int exit_code) {
  Listener listener;
  TaskRuntimeState st;
  {
    absl::MutexLock lock(&mu_);
    auto it = tasks_.find(task_id);
    if (it == tasks_.end() || it->second.phase == TaskRuntimeState::Phase::kExited) return;
    it->second.phase = TaskRuntimeState::Phase::kExited;
    it->second.has_exit_code = true;
    it->second.exit_code = exit_code;
    it->second.finished_at = absl::Now();
    st = it->second;
    listener = listener_;
  }
  if (listener) listener(task_id, st);
}

void FakeDriver::SetExecExitCode(int code) {
  absl::MutexLock lock(&mu_);
  exec_exit_code_ = code;
}

void FakeDriver::SetExecOutput(const std::string& output) {
  absl::MutexLock lock(&mu_);
  exec_output_ = output;
}

void FakeDriver::FailStartsOf(const std::string& command, const std::string& error) {
  absl::MutexLock lock(&mu_);
  failing_commands_[command] = error;
}

int FakeDriver::Running() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [id, st] : tasks_) {
    if (st.phase != TaskRuntimeState::Phase::kExited) n++;
  }
  return n;
}

std::map<std::string, TaskRunSpec> FakeDriver::Specs() const {
  absl::MutexLock lock(&mu_);
  return {specs_.begin(), specs_.end()};
}

}  // namespace warren
