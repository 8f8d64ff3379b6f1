// The descriptor budget of the data plane and the flags of the listener limits.

#include <sys/resource.h>

#include <cstdint>

#include "cli/listener_flags.h"
#include "fd_exhaustion.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/descriptor_budget.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

TEST(DescriptorBudgetTest, LeasesNeverExceedTheLimitAndReturnTheirUnits) {
  DescriptorBudget budget(5);
  DescriptorBudget::Lease a = budget.TryAcquire(2);
  DescriptorBudget::Lease b = budget.TryAcquire(2);
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
  EXPECT_FALSE(budget.TryAcquire(2));  // 4 + 2 > 5
  EXPECT_EQ(budget.in_use(), 4);
  DescriptorBudget::Lease c = budget.TryAcquire(1);
  EXPECT_TRUE(c);
  EXPECT_EQ(budget.in_use(), 5);
  a = std::move(c);  // the lease moved over is returned
  EXPECT_EQ(budget.in_use(), 3);
  b.Reset();
  EXPECT_EQ(budget.in_use(), 1);
  {
    DescriptorBudget::Lease scoped = budget.TryAcquire(4);
    EXPECT_TRUE(scoped);
  }
  EXPECT_EQ(budget.in_use(), 1);
}

TEST(DescriptorBudgetTest, DataPlaneGetsTheLimitMinusTheReserveButAtLeastHalf) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_NE(rl.rlim_cur, RLIM_INFINITY);
  const auto limit = static_cast<int64_t>(rl.rlim_cur);
  const int64_t saved = DescriptorBudget::DataPlane().limit();
  EXPECT_EQ(ConfigureDataPlaneBudget(limit / 4), limit - limit / 4);
  EXPECT_EQ(DescriptorBudget::DataPlane().limit(), limit - limit / 4);
  EXPECT_EQ(ConfigureDataPlaneBudget(limit), limit / 2);
  EXPECT_EQ(ConfigureDataPlaneBudget(0), limit);
  DescriptorBudget::DataPlane().SetLimit(saved);
}

// In a child: the test runner's own limit stays as it is.
TEST(DescriptorBudgetTest, RaiseFileLimitRaisesTheSoftLimitToTheHardOne) {
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= 256) GTEST_SKIP() << rl.rlim_max;
  const int code = testing_util::RunInChild([&] {
    rlimit low = rl;
    low.rlim_cur = 256;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) return 10;
    const int64_t raised = RaiseFileLimit();
    rlimit now{};
    if (getrlimit(RLIMIT_NOFILE, &now) != 0) return 11;
    if (now.rlim_cur != rl.rlim_max) return 12;
    const int64_t want =
        rl.rlim_max == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(rl.rlim_max);
    return raised == want ? 0 : 13;
  });
  EXPECT_EQ(code, 0) << "10/11: limits not set up; 12: soft limit not raised; 13: wrong result";
}

TEST(ListenerFlagsTest, DefaultsAndValues) {
  ProxyLimits limits;
  ASSERT_TRUE(FinishProxyLimitFlags(ProxyLimitFlags{}, &limits).ok());
  EXPECT_EQ(limits.header_timeout, absl::Seconds(10));
  EXPECT_EQ(limits.idle_timeout, absl::Seconds(60));
  EXPECT_EQ(limits.max_connections, 10000);
  ASSERT_TRUE(FinishProxyLimitFlags({"2s", "0s", 7}, &limits).ok());
  EXPECT_EQ(limits.header_timeout, absl::Seconds(2));
  EXPECT_EQ(limits.idle_timeout, absl::ZeroDuration());
  EXPECT_EQ(limits.max_connections, 7);
}

TEST(ListenerFlagsTest, BadValuesNameTheFlag) {
  ProxyLimits limits;
  absl::Status s = FinishProxyLimitFlags({"soon", "", 1}, &limits);
  EXPECT_THAT(s.message(), HasSubstr("--proxy-header-timeout"));
  s = FinishProxyLimitFlags({"", "-1s", 1}, &limits);
  EXPECT_THAT(s.message(), HasSubstr("--proxy-idle-timeout"));
  s = FinishProxyLimitFlags({"", "", 0}, &limits);
  EXPECT_THAT(s.message(), HasSubstr("--proxy-max-connections: must be 1..1000000, got 0"));
  EXPECT_THAT(CheckReservedFds(-1).message(), HasSubstr("--reserved-fds"));
  EXPECT_TRUE(CheckReservedFds(0).ok());
}

}  // namespace
}  // namespace warren
