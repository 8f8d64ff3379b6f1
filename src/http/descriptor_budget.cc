#include "http/descriptor_budget.h"

#include <sys/resource.h>

#include <algorithm>

namespace warren {

DescriptorBudget& DescriptorBudget::DataPlane() {
  static DescriptorBudget* budget = new DescriptorBudget();
  return *budget;
}

int64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(rl.rlim_cur);
}

int64_t ConfigureDataPlaneBudget(int64_t reserved) {
  rlimit rl{};
  int64_t limit = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    limit = rl.rlim_cur == RLIM_INFINITY ? INT64_MAX / 2 : static_cast<int64_t>(rl.rlim_cur);
  }
  const int64_t budget = std::max(limit - std::max<int64_t>(reserved, 0), limit / 2);
  DescriptorBudget::DataPlane().SetLimit(budget);
  return budget;
}

}  // namespace warren
