// Secrets on a worker: per-task tmpfs directories and the CLI's parsing of secret flags.
#include "worker/secret_files.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "cli/secret_commands.h"
#include "cli/service_flags.h"
#include "common/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

constexpr long kTmpfsMagic = 0x01021994;

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SecretFilesTest, EachTaskGetsAPrivateTmpfsRemovedWhenItStops) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  testing_util::TempDir dir;
  SecretFiles files(dir.path() / "secrets");
  auto made = files.Create("task1", {SecretFile{"db", 0400, security::SecretBytes("pw1")},
                                     SecretFile{"api-key", 0440, security::SecretBytes("k2")}});
  ASSERT_TRUE(made.ok()) << made.status();
  struct statfs fs;
  ASSERT_EQ(statfs(made->c_str(), &fs), 0);
  EXPECT_EQ(static_cast<long>(fs.f_type), kTmpfsMagic);
  struct stat st;
  ASSERT_EQ(stat(made->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((std::filesystem::path(*made) / "db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  ASSERT_EQ(stat((std::filesystem::path(*made) / "api-key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0440u);
  EXPECT_EQ(ReadAll(std::filesystem::path(*made) / "db"), "pw1");

  files.Remove("task1");
  EXPECT_FALSE(std::filesystem::exists(*made));
  files.Remove("task1");  // twice is fine
}

TEST(SecretFilesTest, AFileOwnedByAnotherUserIsReachableByThatUserOnly) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs and chown need root";
  testing_util::TempDir dir;
  SecretFiles files(dir.path() / "secrets");
  SecretFile owned{"db", 0400, security::SecretBytes("pw1"), 1000, 2000};
  auto made = files.Create("task1", {owned});
  ASSERT_TRUE(made.ok()) << made.status();
  struct stat st;
  ASSERT_EQ(stat(made->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);  // enter, not list
  ASSERT_EQ(stat((std::filesystem::path(*made) / "db").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 2000u);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  files.Remove("task1");
}

TEST(SecretFilesTest, AStartAfterACrashRemovesTheDirectoriesOfTasksNotRunning) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  testing_util::TempDir dir;
  SecretFiles files(dir.path() / "secrets");
  ASSERT_TRUE(files.Create("gone", {SecretFile{"s", 0400, security::SecretBytes("v")}}).ok());
  ASSERT_TRUE(files.Create("alive", {SecretFile{"s", 0400, security::SecretBytes("v")}}).ok());
  files.RemoveAllExcept({"alive"});
  EXPECT_FALSE(std::filesystem::exists(files.Dir("gone")));
  EXPECT_EQ(ReadAll(files.Dir("alive") / "s"), "v");
  files.RemoveAllExcept({});
  EXPECT_FALSE(std::filesystem::exists(files.Dir("alive")));
}

TEST(SecretFlagTest, ParsesNameTargetAndOctalMode) {
  auto ref = ParseSecretFlag("db,target=password.txt,mode=0440");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->name(), "db");
  EXPECT_EQ(ref->target(), "password.txt");
  EXPECT_EQ(ref->mode(), 0440u);
  EXPECT_EQ(ParseSecretFlag("db")->target(), "");
  EXPECT_THAT(ParseSecretFlag("db,mode=0999").status().message(), HasSubstr("mode:"));
  EXPECT_THAT(ParseSecretFlag("db,owner=x").status().message(), HasSubstr("target=FILE"));
  EXPECT_FALSE(ParseSecretFlag(",target=x").ok());
  auto owned = ParseSecretFlag("db,uid=1000,gid=1001");
  ASSERT_TRUE(owned.ok()) << owned.status();
  EXPECT_EQ(owned->uid(), 1000u);
  EXPECT_EQ(owned->gid(), 1001u);
  EXPECT_THAT(ParseSecretFlag("db,uid=alice").status().message(), HasSubstr("uid:"));
  EXPECT_THAT(ParseSecretFlag("db,gid=-1").status().message(), HasSubstr("gid:"));
  EXPECT_THAT(ParseSecretFlag("db,uid=4294967295").status().message(), HasSubstr("uid:"));
}

TEST(SecretFlagTest, UpdateAddsReplacesAndRemovesReferences) {
  v1::ServiceSpec spec;
  spec.set_name("web");
  spec.set_replicas(1);
  spec.mutable_template_()->set_command("app");
  UpdateFlags flags;
  flags.t.secrets = {"db", "api,target=key"};
  ASSERT_TRUE(ApplyUpdateFlags(flags, &spec).ok());
  ASSERT_EQ(spec.template_().secrets_size(), 2);
  EXPECT_EQ(spec.template_().secrets(0).target(), "db");
  EXPECT_EQ(spec.template_().secrets(0).mode(), 0400u);

  UpdateFlags again;
  again.t.secrets = {"db,mode=0444"};
  again.secret_rm = {"api"};
  ASSERT_TRUE(ApplyUpdateFlags(again, &spec).ok());
  ASSERT_EQ(spec.template_().secrets_size(), 1);
  EXPECT_EQ(spec.template_().secrets(0).mode(), 0444u);

  UpdateFlags bad;
  bad.secret_rm = {"nope"};
  absl::Status s = ApplyUpdateFlags(bad, &spec);
  EXPECT_THAT(s.message(), HasSubstr("--secret-rm"));
  UpdateFlags bad_mode;
  bad_mode.t.secrets = {"db,mode=0600"};
  s = ApplyUpdateFlags(bad_mode, &spec);
  EXPECT_THAT(s.message(), HasSubstr("template.secrets[0].mode"));
  v1::ServiceSpec bad_owner = spec;
  bad_owner.mutable_template_()->mutable_secrets(0)->set_mode(0400);
  bad_owner.mutable_template_()->mutable_secrets(0)->set_gid(UINT32_MAX);
  EXPECT_THAT(ValidateServiceSpec(bad_owner).message(), HasSubstr("template.secrets[0].gid"));
}

TEST(SecretValueTest, ReadsFromAFileOrStdinWithinTheLimit) {
  testing_util::TempDir dir;
  const auto path = dir.path() / "v";
  std::ofstream(path) << "from-file";
  std::istringstream none;
  EXPECT_EQ(*ReadSecretValue(path.string(), false, none), "from-file");
  std::istringstream in("from-stdin");
  EXPECT_EQ(*ReadSecretValue("", true, in), "from-stdin");
  EXPECT_THAT(ReadSecretValue("", false, none).status().message(), HasSubstr("-f FILE"));
  EXPECT_THAT(ReadSecretValue(path.string(), true, none).status().message(), HasSubstr("not both"));
  std::istringstream big(std::string(500 * 1024 + 1, 'x'));
  EXPECT_THAT(ReadSecretValue("", true, big).status().message(), HasSubstr("at most"));
  EXPECT_FALSE(ReadSecretValue((dir.path() / "missing").string(), false, none).ok());
}

}  // namespace
}  // namespace warren
