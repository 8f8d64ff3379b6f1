#ifndef WARREN_COMMON_HEAP_H_
#define WARREN_COMMON_HEAP_H_

namespace warren {

// Hands the heap's free pages back to the kernel (glibc's malloc_trim). Memory freed by a
// burst of work stays resident otherwise, scattered between live objects. Takes the allocator's
// lock while it walks the free chunks: call it after bursts, not in a loop.
void ReturnFreeHeapToOs();

// What every Warren process sets before its first thread (the binary's main and the benchmarks
// that stand in for a part of it): one malloc arena, and no mutex deadlock detection.
void ApplyProcessDefaults();

}  // namespace warren

#endif  // WARREN_COMMON_HEAP_H_
