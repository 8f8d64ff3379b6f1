#ifndef WARREN_COMMON_PROCESSES_H_
#define WARREN_COMMON_PROCESSES_H_

#include <functional>
#include <string>
#include <string_view>

namespace warren {

// Calls `fn(pid, environ)` for every process but this one and init that it may read;
// `environ` is /proc/PID/environ: KEY=VALUE entries separated by NUL bytes.
void ForEachProcessEnvironment(const std::function<void(int pid, std::string_view environ)>& fn);

// SIGKILLs every process whose environment contains `marker` (e.g. "WARREN_E2E_RUN=/tmp/x"):
// the task processes of one test or benchmark run. Returns how many.
int KillProcessesWithEnv(const std::string& marker);

}  // namespace warren

#endif  // WARREN_COMMON_PROCESSES_H_
