#ifndef WARREN_COMMON_PROCESSES_H_
#define WARREN_COMMON_PROCESSES_H_

// What /proc says about processes. Every reader separates "this process is gone" (NOT_FOUND:
// ENOENT or ESRCH) from "/proc could not be read just now" (UNAVAILABLE: out of descriptors
// or memory, interrupted...): only the first is evidence that a process died.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace warren {

// strerror's description of an errno value ("Too many open files").
std::string ErrnoText(int err);

// Kernel start time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot) and
// its state letter ('Z' zombie, 'X' dead, 'R', 'S', ...).
struct ProcStat {
  uint64_t start_ticks = 0;
  char state = '?';
};
// NOT_FOUND when there is no such process; UNAVAILABLE when /proc could not be read (nothing
// is known about the process then).
absl::StatusOr<ProcStat> ReadProcStat(int pid);

// Reads a whole file with open/read, keeping errno: NOT_FOUND for ENOENT and ESRCH (a /proc
// file of a process that is gone), UNAVAILABLE for errors that may pass (EMFILE, ENFILE,
// ENOMEM, EAGAIN, EINTR, EIO...), PERMISSION_DENIED for EACCES/EPERM. At most `limit` bytes.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t limit = 1 << 20);

// Calls `fn(pid, environ)` for every process but this one and init whose environment it may
// read; `environ` is /proc/PID/environ: KEY=VALUE entries separated by NUL bytes. Processes
// that exit meanwhile or are not ours to read are skipped. UNAVAILABLE when /proc, or the
// environment of some process, could not be read just now: the scan was incomplete.
absl::Status ForEachProcessEnvironment(
    const std::function<void(int pid, std::string_view environ)>& fn);

// SIGKILLs every process whose environment contains `marker` (e.g. "WARREN_E2E_RUN=/tmp/x"):
// the task processes of one test or benchmark run. Returns how many.
int KillProcessesWithEnv(const std::string& marker);

}  // namespace warren

#endif  // WARREN_COMMON_PROCESSES_H_
