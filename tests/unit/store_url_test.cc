#include "store/store_url.h"

#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(StoreUrlTest, SqliteIsTheDefaultAndEtcdListsItsMembers) {
  EXPECT_TRUE(ParseStoreUrl("")->empty());
  EXPECT_TRUE(ParseStoreUrl("sqlite")->empty());
  EXPECT_THAT(*ParseStoreUrl("etcd://10.0.0.1:2379"), ElementsAre("10.0.0.1:2379"));
  EXPECT_THAT(*ParseStoreUrl("etcd://a:2379,b.example:2379,[::1]:2379"),
              ElementsAre("a:2379", "b.example:2379", "[::1]:2379"));
}

TEST(StoreUrlTest, BadUrlsSayWhatIsAllowed) {
  struct Case {
    std::string url;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {"postgres://db:5432", "use etcd://HOST:PORT[,HOST:PORT...]"},
           {"etcd:/a:1", "is not a store"},
           {"etcd://", "empty etcd endpoint"},
           {"etcd://a:2379,,b:2379", "empty etcd endpoint"},
           {"etcd://a", "etcd endpoint \"a\": no port"},
           {"etcd://a:0", "from 1 to 65535"},
           {"etcd://a:2379,a:2379", "listed twice"},
           {"etcd://http://a:2379", "etcd endpoint \"http://a:2379\""},
       }) {
    auto r = ParseStoreUrl(c.url);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.url;
    EXPECT_THAT(r.status().message(), HasSubstr(c.want)) << c.url;
  }
}

TEST(StoreFlagsTest, UsageErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {{"warren", "manager", "--store", "etcd://a"}, "--store: etcd endpoint \"a\": no port"},
           {{"warren", "cluster", "init", "--store", "mysql://x"}, "--store: \"mysql://x\""},
           {{"warren", "manager", "--etcd-ca", "/etc/hosts"}, "--etcd-ca is for an etcd store"},
           {{"warren", "manager", "--store", "etcd://a:1", "--etcd-ca", "/nonexistent/ca.pem"},
            "--etcd-ca /nonexistent/ca.pem: cannot be read"},
           {{"warren", "manager", "--store", "etcd://a:1", "--etcd-cert", "/etc/hosts"},
            "--etcd-cert and --etcd-key go together"},
           {{"warren", "manager", "--store", "etcd://a:1", "--etcd-cert", "/etc/hosts",
             "--etcd-key", "/etc/hosts"},
            "give the etcd members' CA with --etcd-ca"},
           {{"warren", "manager", "--store", "etcd://a:1", "--etcd-prefix", "warren"},
            "--etcd-prefix \"warren\": must start and end with '/'"},
           {{"warren", "manager", "--store", "etcd://a:1", "--leader-ttl", "1500ms"},
            "--leader-ttl: must be whole seconds"},
           {{"warren", "manager", "--store", "etcd://a:1", "--leader-ttl", "soon"},
            "--leader-ttl: invalid duration"},
           {{"warren", "manager", "--store", "etcd://a:1", "--etcd-compaction-interval", "10s"},
            "--etcd-compaction-interval \"10s\": must be 0 (never compact) or from 1m to 168h"},
           {{"warren", "manager", "--store", "etcd://a:1", "--etcd-compaction-interval", "often"},
            "--etcd-compaction-interval: invalid duration"},
       }) {
    std::ostringstream out, err;
    EXPECT_EQ(RunCli(c.args, out, err), 2) << c.want;
    EXPECT_THAT(err.str(), HasSubstr(c.want));
  }
}

}  // namespace
}  // namespace warren
