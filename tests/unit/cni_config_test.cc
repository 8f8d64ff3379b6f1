#include "worker/cni_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"

namespace warren {
namespace {

TEST(CniConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateCniOptions(CriOptions{}).ok()); }

TEST(CniConfigTest, BadValuesNameTheFlag) {
  auto expect_error = [](CriOptions o, const std::string& flag) {
    absl::Status s = ValidateCniOptions(o);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(flag), std::string::npos) << s;
  };
  CriOptions o;
  o.cni_subnet = "10.88.0.0";
  expect_error(o, "--cni-subnet");
  o.cni_subnet = "10.88.0.1/16";
  expect_error(o, "host bits");
  o.cni_subnet = "10.88.0.0/30";
  expect_error(o, "--cni-subnet");
  o.cni_subnet = "127.5.0.0/16";
  expect_error(o, "loopback");
  o = CriOptions{};
  o.cni_bridge = "a-very-long-bridge-name";
  expect_error(o, "--cni-bridge");
  o = CriOptions{};
  o.cni_network = "bad name";
  expect_error(o, "--cni-network");
  o = CriOptions{};
  o.cni_conf_dir = "relative/dir";
  expect_error(o, "--cni-conf-dir");
  o = CriOptions{};
  o.socket = "";
  expect_error(o, "--cri-socket");
}

TEST(CniConfigTest, ConfigListIsABridgeWithHostLocalIpam) {
  CriOptions o;
  o.cni_network = "warren-test";
  o.cni_bridge = "wtest0";
  o.cni_subnet = "10.201.7.0/24";
  auto j = nlohmann::json::parse(CniConfigList(o, /*masquerade=*/false));
  EXPECT_EQ(j["name"], "warren-test");
  ASSERT_EQ(j["plugins"].size(), 1u);
  const auto& b = j["plugins"][0];
  EXPECT_EQ(b["type"], "bridge");
  EXPECT_EQ(b["bridge"], "wtest0");
  EXPECT_EQ(b["isGateway"], true);
  EXPECT_EQ(b["ipMasq"], false);
  EXPECT_EQ(b["ipam"]["type"], "host-local");
  EXPECT_EQ(b["ipam"]["ranges"][0][0]["subnet"], "10.201.7.0/24");
  // The gateway (on the bridge) first, then the pods up to the last but one.
  EXPECT_EQ(b["ipam"]["ranges"][0][0]["gateway"], "10.201.7.1");
  EXPECT_EQ(b["ipam"]["ranges"][0][0]["rangeStart"], "10.201.7.2");
  EXPECT_EQ(b["ipam"]["ranges"][0][0]["rangeEnd"], "10.201.7.254");
  EXPECT_FALSE(b["ipam"].contains("dataDir"));
  EXPECT_EQ(nlohmann::json::parse(CniConfigList(o, true))["plugins"][0]["ipMasq"], true);
  o.cni_subnet = "10.88.0.0/16";
  const auto wide = nlohmann::json::parse(CniConfigList(o, false))["plugins"][0]["ipam"];
  EXPECT_EQ(wide["ranges"][0][0]["rangeEnd"], "10.88.255.254");
  // A worker of a routed network keeps host-local's state in its own data dir.
  const auto own = nlohmann::json::parse(CniConfigList(o, false, "/var/lib/w1/cni-ipam"));
  EXPECT_EQ(own["plugins"][0]["ipam"]["dataDir"], "/var/lib/w1/cni-ipam");
}

TEST(CniConfigTest, WritesOnceAndRewritesOnChange) {
  CriOptions o;
  o.cni_conf_dir = (std::filesystem::path(::testing::TempDir()) / "cni-config-test").string();
  std::filesystem::remove_all(o.cni_conf_dir);
  auto path = WriteCniConfig(o, false);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, o.cni_conf_dir + "/10-warren.conflist");
  auto read = [&] {
    std::ifstream in(*path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  EXPECT_EQ(read(), CniConfigList(o, false));
  auto mtime = std::filesystem::last_write_time(*path);
  ASSERT_TRUE(WriteCniConfig(o, false).ok());
  EXPECT_EQ(std::filesystem::last_write_time(*path), mtime);
  o.cni_subnet = "10.99.0.0/16";
  ASSERT_TRUE(WriteCniConfig(o, false).ok());
  EXPECT_EQ(read(), CniConfigList(o, false));
  EXPECT_FALSE(std::filesystem::exists(*path + ".tmp"));
  std::filesystem::remove_all(o.cni_conf_dir);
}

}  // namespace
}  // namespace warren
