#ifndef WARREN_COMMON_HEAP_H_
#define WARREN_COMMON_HEAP_H_

namespace warren {

// Hands the heap's free pages back to the kernel (glibc's malloc_trim). Memory freed by a
// burst of work stays resident otherwise, scattered between live objects. Takes the allocator's
// lock while it walks the free chunks: call it after bursts, not in a loop.
void ReturnFreeHeapToOs();

}  // namespace warren

#endif  // WARREN_COMMON_HEAP_H_
