// Task addresses another program holds (issue 11 D8): the worker starts the task on the next
// free address of its range instead of leaving it to crash-loop, or says clearly that the port
// is taken everywhere it looked.
#include "worker/task_address.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

// The node's other tasks' addresses, counting how often they were asked for.
AddressesInUse InUse(std::set<std::string> addresses, int* asked = nullptr) {
  return [addresses = std::move(addresses), asked] {
    if (asked) ++*asked;
    return addresses;
  };
}

// A probe that finds the given host:port pairs taken.
BindProbe Taken(std::set<std::string> taken, std::vector<std::string>* asked = nullptr) {
  return [taken = std::move(taken), asked](const std::string& host_port) {
    if (asked) asked->push_back(host_port);
    if (taken.contains(host_port)) return absl::AlreadyExistsError("Address already in use");
    return absl::OkStatus();
  };
}

TEST(TaskAddressTest, FreeAssignedAddressIsKeptWithoutListingTheNodesTasks) {
  std::vector<std::string> asked;
  int listed = 0;
  auto ip = PickTaskAddress("127.1.0.5", {8080}, "127.1.0.0/16", InUse({"127.1.0.9"}, &listed),
                            Taken({}, &asked));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, "127.1.0.5");
  EXPECT_EQ(asked, std::vector<std::string>{"127.1.0.5:8080"});
  EXPECT_EQ(listed, 0);  // a pass over every task of the node, for nothing
}

TEST(TaskAddressTest, TakenAddressMovesToTheNextFreeOneNotUsedByTheNode) {
  int listed = 0;
  auto ip =
      PickTaskAddress("127.1.0.5", {8080, 9000}, "127.1.0.0/16", InUse({"127.1.0.7"}, &listed),
                      Taken({"127.1.0.5:8080", "127.1.0.6:9000"}));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, "127.1.0.8");  // .6 has 9000 taken, .7 is another task's
  EXPECT_EQ(listed, 1);
}

TEST(TaskAddressTest, WrapsAroundTheRangeWithoutItsEnds) {
  // 127.1.0.0/30: hosts .1 and .2 only.
  auto ip =
      PickTaskAddress("127.1.0.2", {8080}, "127.1.0.0/30", InUse({}), Taken({"127.1.0.2:8080"}));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, "127.1.0.1");
}

TEST(TaskAddressTest, PortTakenEverywhereIsAClearError) {
  std::set<std::string> taken;
  for (int i = 1; i < 255; ++i) taken.insert("127.1.0." + std::to_string(i) + ":8080");
  std::vector<std::string> asked;
  auto ip =
      PickTaskAddress("127.1.0.1", {8080}, "127.1.0.0/16", InUse({}), Taken(taken, &asked), 4);
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ip.status().message(), HasSubstr("port 8080 is taken on 127.1.0.1"));
  EXPECT_THAT(ip.status().message(), HasSubstr("Address already in use"));
  EXPECT_THAT(ip.status().message(), HasSubstr("next 3 addresses of 127.1.0.0/16"));
  EXPECT_EQ(asked.size(), 4u);
}

TEST(TaskAddressTest, AddressOutsideTheRangeIsRefused) {
  EXPECT_EQ(
      PickTaskAddress("127.2.0.1", {8080}, "127.1.0.0/16", InUse({}), Taken({})).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace warren
