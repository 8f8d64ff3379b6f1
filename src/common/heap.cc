#include "common/heap.h"

#include <malloc.h>

namespace warren {

void ReturnFreeHeapToOs() { malloc_trim(0); }

}  // namespace warren
