#include "worker/registry_auth.h"

#include <gtest/gtest.h>

namespace warren {
namespace {

TEST(RegistryAuthTest, RegistryOfAnImageReference) {
  EXPECT_EQ(RegistryAuth::RegistryOf("127.0.0.1:5000/warren/testapp:1"), "127.0.0.1:5000");
  EXPECT_EQ(RegistryAuth::RegistryOf("registry.example.com/shop/web@sha256:abc"),
            "registry.example.com");
  EXPECT_EQ(RegistryAuth::RegistryOf("localhost/web:2"), "localhost");
  EXPECT_EQ(RegistryAuth::RegistryOf("nginx"), "docker.io");
  EXPECT_EQ(RegistryAuth::RegistryOf("library/nginx:1.25"), "docker.io");
  EXPECT_EQ(RegistryAuth::RegistryOf("docker.io/library/nginx"), "docker.io");
}

TEST(RegistryAuthTest, ReadsDockerConfigEntries) {
  // "ZWRnZTpzM2NyZXQ6eA==" is base64 of "edge:s3cret:x" (a colon in the password is kept).
  auto a = RegistryAuth::Parse(R"({"auths": {
      "https://r.example.com:5000/v2/": {"auth": "ZWRnZTpzM2NyZXQ6eA=="},
      "127.0.0.1:5001": {"username": "ci", "password": "pw"},
      "https://index.docker.io/v1/": {"identitytoken": "tok"}},
    "credsStore": "ignored"})",
                               "test");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->size(), 3u);
  auto c = a->For("r.example.com:5000/shop/web:2");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->username, "edge");
  EXPECT_EQ(c->password, "s3cret:x");
  c = a->For("127.0.0.1:5001/warren/testapp:1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->username, "ci");
  EXPECT_EQ(c->password, "pw");
  c = a->For("nginx:1.25");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->identity_token, "tok");
  EXPECT_FALSE(a->For("127.0.0.1:5000/warren/testapp:1").has_value());
  EXPECT_EQ(RegistryAuth::Parse("{}", "test")->size(), 0u);
}

TEST(RegistryAuthTest, BadFilesNameTheEntry) {
  auto expect_error = [](const std::string& json, const std::string& want) {
    auto a = RegistryAuth::Parse(json, "/etc/warren/auth.json");
    ASSERT_FALSE(a.ok()) << json;
    EXPECT_NE(a.status().message().find("--registry-auth /etc/warren/auth.json"), std::string::npos)
        << a.status();
    EXPECT_NE(a.status().message().find(want), std::string::npos) << a.status();
  };
  expect_error("not json", "not a JSON object");
  expect_error(R"({"auths": []})", "auths: must be an object");
  expect_error(R"({"auths": {"r.io": "x"}})", R"(auths["r.io"]: must be an object)");
  expect_error(R"({"auths": {"r.io": {"auth": "!!!"}}})", R"(auths["r.io"].auth: not base64)");
  expect_error(R"({"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}})", "user:password");
  expect_error(R"({"auths": {"r.io": {"username": 3}}})", ".username: must be a string");
  expect_error(R"({"auths": {"r.io": {}}})", "needs");
  EXPECT_FALSE(RegistryAuth::Load("/nonexistent/auth.json").ok());
}

}  // namespace
}  // namespace warren
