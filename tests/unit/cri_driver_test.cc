#include "worker/cri_driver.h"

#include <gtest/gtest.h>

namespace warren {
namespace {

TEST(DescribePullErrorTest, NamesTheCauseAUserCanActOn) {
  const std::string image = "127.0.0.1:5000/shop/web:2";
  auto describe = [&](grpc::StatusCode code, const std::string& msg) {
    return DescribePullError(image, grpc::Status(code, msg));
  };
  std::string missing = describe(
      grpc::StatusCode::NOT_FOUND,
      "failed to pull and unpack image \"127.0.0.1:5000/shop/web:2\": failed to resolve reference "
      "\"127.0.0.1:5000/shop/web:2\": 127.0.0.1:5000/shop/web:2: not found");
  EXPECT_EQ(missing.rfind("image 127.0.0.1:5000/shop/web:2: not found in its registry (", 0), 0u)
      << missing;
  std::string refused =
      describe(grpc::StatusCode::UNKNOWN,
               "failed to do request: Head \"http://127.0.0.1:5999/v2/x/manifests/1\": dial tcp "
               "127.0.0.1:5999: connect: connection refused");
  EXPECT_NE(refused.find("registry unreachable"), std::string::npos) << refused;
  EXPECT_NE(refused.find("connection refused"), std::string::npos) << refused;
  EXPECT_NE(describe(grpc::StatusCode::UNKNOWN, "unexpected status: 401 Unauthorized")
                .find("refused access"),
            std::string::npos);
  EXPECT_NE(describe(grpc::StatusCode::DEADLINE_EXCEEDED, "context deadline exceeded")
                .find("did not finish in time"),
            std::string::npos);
  EXPECT_NE(
      describe(grpc::StatusCode::UNKNOWN, "layer corrupt").find("pull failed (layer corrupt)"),
      std::string::npos);
}

TEST(ResolvePullPolicyTest, LatestAndUntaggedPullAlwaysOthersWhenMissing) {
  EXPECT_EQ(ResolvePullPolicy("127.0.0.1:5000/web", ""), "always");
  EXPECT_EQ(ResolvePullPolicy("127.0.0.1:5000/web:latest", ""), "always");
  EXPECT_EQ(ResolvePullPolicy("nginx", ""), "always");
  EXPECT_EQ(ResolvePullPolicy("127.0.0.1:5000/web:2", ""), "missing");
  EXPECT_EQ(ResolvePullPolicy("nginx:1.25", ""), "missing");
  EXPECT_EQ(ResolvePullPolicy("r.io/web@sha256:0123", ""), "missing");
  EXPECT_EQ(ResolvePullPolicy("127.0.0.1:5000/web:2", "always"), "always");
  EXPECT_EQ(ResolvePullPolicy("127.0.0.1:5000/web:latest", "never"), "never");
}

TEST(CriDriverTest, UnreachableSocketIsAClearError) {
  CriDriver::Options o;
  o.socket = ::testing::TempDir() + "/no-such-containerd.sock";
  auto d = CriDriver::Connect(o);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("no-such-containerd.sock"), std::string::npos) << d.status();
  EXPECT_NE(d.status().message().find("is containerd running?"), std::string::npos) << d.status();
}

}  // namespace
}  // namespace warren
