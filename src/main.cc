#include <malloc.h>

#include "absl/synchronization/mutex.h"
#include "cli/cli.h"
#include "http/descriptor_budget.h"

int main(int argc, char** argv) {
  // glibc gives each busy thread its own malloc arena; with gRPC's thread pool that multiplies
  // the heap's high-water mark (manager RSS 81 MiB vs about 60 MiB with one arena, 1,000 services x
  // 3 tasks, see docs/benchmarks.md). Set before any thread starts.
  mallopt(M_ARENA_MAX, 1);
  // Debian builds Abseil without NDEBUG, so every absl::Mutex acquisition would also record the
  // lock order in a global graph (with stack traces) to report deadlocks: a cost on every lock
  // of every request. The unit tests keep the check; the binary does not.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // The default soft limit (often 1024) is far below what a node serving many connections
  // needs; the hard limit is what the administrator allows.
  warren::RaiseFileLimit();
  return warren::RunCli(argc, argv);
}
