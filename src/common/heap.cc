#include "common/heap.h"

#include <malloc.h>

#include "absl/synchronization/mutex.h"

namespace warren {

void ReturnFreeHeapToOs() { malloc_trim(0); }

void ApplyProcessDefaults() {
  // glibc gives each busy thread its own malloc arena; with gRPC's thread pool that multiplies
  // the heap's high-water mark (manager RSS 81 MiB vs about 60 MiB with one arena, 1,000
  // services x 3 tasks, see docs/benchmarks.md). The warren binary and proxy_server_bench link
  // jemalloc, where this (and ReturnFreeHeapToOs) does nothing; other programs on warren_core
  // (the tests) keep glibc's malloc.
  mallopt(M_ARENA_MAX, 1);
  // Debian builds Abseil without NDEBUG, so every absl::Mutex acquisition would also record the
  // lock order in a global graph (with stack traces) to report deadlocks: a cost on every lock
  // of every request. The unit tests keep the check; the binary does not.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace warren
