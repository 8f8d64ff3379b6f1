// Default addresses of the roles (issue 11 D5, D6): a manager and workers on one machine do
// not want the same DNS address, and an automatic address that cannot be had turns DNS off
// with a warning instead of stopping the node.
#include "common/role_defaults.h"

#include "common/bind_probe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

TEST(RoleDefaultsTest, WorkerDnsIsOnTheFirstAddressOfItsRange) {
  EXPECT_EQ(*WorkerDnsAddr("127.1.0.0/16"), "127.1.0.0:53");
  EXPECT_EQ(*WorkerDnsAddr("127.2.0.0/16"), "127.2.0.0:53");
  EXPECT_EQ(*WorkerDnsAddr("127.9.4.7/24"), "127.9.4.0:53");
  EXPECT_NE(*WorkerDnsAddr("127.1.0.0/16"), kManagerDnsAddr);
  absl::StatusOr<std::string> bad = WorkerDnsAddr("nonsense");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("address-range"));
}

TEST(RoleDefaultsTest, ExplicitAddressIsKeptAsGiven) {
  DnsAddrChoice c = ChooseDnsAddr("127.0.0.1:5353", kManagerDnsAddr);
  EXPECT_EQ(c.addr, "127.0.0.1:5353");
  EXPECT_EQ(c.warning, "");
  EXPECT_EQ(ChooseDnsAddr("", kManagerDnsAddr).addr, "");
}

TEST(RoleDefaultsTest, AutomaticAddressInUseTurnsDnsOffWithAWarning) {
  auto holder = HttpServer::Start(
      "127.0.0.1:0", [](const HttpRequest&) { return HttpResponse::Text(200, "someone else\n"); });
  ASSERT_TRUE(holder.ok()) << holder.status();
  const std::string taken = "127.0.0.1:" + std::to_string((*holder)->port());
  DnsAddrChoice c = ChooseDnsAddr(kAutoDnsAddr, taken);
  EXPECT_EQ(c.addr, "");
  EXPECT_THAT(c.warning, HasSubstr("service DNS is off: " + taken + " is in use"));
  EXPECT_THAT(c.warning, HasSubstr("--dns-addr"));
  EXPECT_EQ(ProbeBind(taken, /*udp=*/true).code(), absl::StatusCode::kAlreadyExists);
  // A free automatic address is used.
  EXPECT_EQ(ChooseDnsAddr(kAutoDnsAddr, "127.0.0.1:0").addr, "127.0.0.1:0");
}

}  // namespace
}  // namespace warren
