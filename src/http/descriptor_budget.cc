#include "http/descriptor_budget.h"

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>

namespace warren {

DescriptorBudget& DescriptorBudget::DataPlane() {
  static DescriptorBudget* budget = new DescriptorBudget();
  return *budget;
}

namespace {

// The soft limit RaiseFileLimit found, and whether it raised it; read in forked children, so
// plain values written before any child is forked.
rlim_t task_soft_limit = 0;
volatile sig_atomic_t task_soft_limit_set = 0;

}  // namespace

int64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      task_soft_limit = rl.rlim_cur;
      task_soft_limit_set = 1;
      rl = raised;
    }
  }
  return rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(rl.rlim_cur);
}

void RestoreTaskFileLimit() {
  if (!task_soft_limit_set) return;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = std::min(task_soft_limit, rl.rlim_max);
  setrlimit(RLIMIT_NOFILE, &rl);
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
