// `node update/drain/cordon/uncordon/rm` and `service restart` against an in-process manager
// with workers on the fake runtime.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/task_state.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "in_process_cluster.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using testing_util::CliClusterTest;
using testing_util::WaitFor;

// Live tasks of `service` per node id.
std::map<std::string, int> LiveByNode(const std::vector<v1::Task>& tasks) {
  std::map<std::string, int> out;
  for (const auto& t : tasks) {
    if (t.desired_state() == v1::TASK_STATE_RUNNING && !IsTerminal(t.status().state())) {
      out[t.node_id()]++;
    }
  }
  return out;
}

TEST_F(CliClusterTest, DrainMovesTasksAndCordonStopsPlacement) {
  Worker& w1 = AddWorker("w1", "127.44.0.0/16");
  ASSERT_EQ(Run({"service", "create", "web", "--command", "app", "--replicas", "4"}), 0)
      << err_.str();
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 4; }));
  Worker& w2 = AddWorker("w2", "127.45.0.0/16");

  ASSERT_EQ(Run({"node", "drain", "w1", "--wait", "--timeout", "60s"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("w1: availability drain (4 tasks to move)\n"));
  EXPECT_THAT(out_.str(), HasSubstr("w1: drained\n"));
  EXPECT_EQ(w1.driver->Running(), 0);
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 4; }));
  EXPECT_EQ(w2.driver->Running(), 4);
  auto live = LiveByNode(Tasks("web"));
  EXPECT_EQ(live.size(), 1u);
  EXPECT_EQ(live[w2.agent->node_id()], 4);

  ASSERT_EQ(Run({"node", "ls"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("AVAILABILITY"));
  EXPECT_THAT(out_.str(), ::testing::ContainsRegex("w1 +worker +ready +drain"));
  ASSERT_EQ(Run({"node", "inspect", "w1", "-o", "json"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"availability\": \"NODE_AVAILABILITY_DRAIN\""));

  // Cordoned (paused): w2 keeps its tasks, and new ones wait for a node that takes them.
  ASSERT_EQ(Run({"node", "cordon", "w2"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "w2: availability pause\n");
  ASSERT_EQ(Run({"service", "scale", "web=5"}), 0) << err_.str();
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& t : Tasks("web")) {
      if (t.slot() == 5 && absl::StrContains(t.status().error(), "no node takes new tasks")) {
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ(w2.driver->Running(), 4);
  ASSERT_EQ(Run({"node", "uncordon", "w1"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "w1: availability active\n");
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 5; }));
  EXPECT_EQ(w1.driver->Running(), 1);

  ASSERT_EQ(Run({"node", "update", "w2", "--availability", "active"}), 0) << err_.str();
  EXPECT_EQ(Run({"node", "update", "w2", "--availability", "gone"}), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--availability"));
  EXPECT_EQ(Run({"node", "drain", "nope"}), 1);
  EXPECT_EQ(err_.str(), "error: node \"nope\" not found\n");
}

TEST_F(CliClusterTest, RemoveRefusesAReadyNodeUnlessForced) {
  Worker& w1 = AddWorker("w1", "127.46.0.0/16");
  AddWorker("w2", "127.47.0.0/16");
  ASSERT_EQ(Run({"service", "create", "web", "--command", "app", "--replicas", "2"}), 0)
      << err_.str();
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 2; }));

  EXPECT_EQ(Run({"node", "rm", "w1"}), 1);
  EXPECT_THAT(err_.str(), HasSubstr("node \"w1\" is ready (its worker is running)"));
  EXPECT_THAT(err_.str(), HasSubstr("--force"));
  ASSERT_EQ(Run({"node", "ls", "-q"}), 0);
  EXPECT_THAT(out_.str(), HasSubstr(w1.agent->node_id()));

  const std::string w1_id = w1.agent->node_id();
  w1.agent->Stop();  // gone for good: nothing registers it again
  ASSERT_EQ(Run({"node", "rm", "--force", "w1"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "w1\n");
  ASSERT_EQ(Run({"node", "ls", "-q"}), 0);
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr(w1_id)));
  // Its tasks run elsewhere.
  ASSERT_TRUE(WaitFor([&] {
    auto live = LiveByNode(Tasks("web"));
    return live.size() == 1 && live.count(w1_id) == 0 && RunningCount("web") == 2;
  }));
  EXPECT_EQ(Run({"node", "rm", "w1"}), 1);
  EXPECT_EQ(err_.str(), "error: node \"w1\" not found\n");
}

class CliClusterShortTimeoutTest : public CliClusterTest {
 protected:
  CliClusterShortTimeoutTest() { node_timeout_ = absl::Seconds(1); }
};

TEST_F(CliClusterShortTimeoutTest, RemoveADownNode) {
  Worker& w1 = AddWorker("w1", "127.48.0.0/16");
  w1.agent->Stop();
  ASSERT_TRUE(WaitFor([&] {
    Run({"node", "ls"});
    return absl::StrContains(out_.str(), "down");
  }));
  ASSERT_EQ(Run({"node", "rm", "w1"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "w1\n");
}

TEST_F(CliClusterTest, RestartReplacesEveryTaskWithTheSameTemplate) {
  AddWorker("w1", "127.49.0.0/16");
  ASSERT_EQ(
      Run({"service", "create", "web", "--command", "app", "--replicas", "3", "--env", "A=1"}), 0)
      << err_.str();
  ASSERT_TRUE(WaitFor([&] { return RunningCount("web") == 3; }));
  std::set<std::string> before;
  for (const auto& t : Tasks("web")) before.insert(t.id());
  const v1::Service original = GetService("web");

  // Follows the rolling update to its end.
  ASSERT_EQ(Run({"service", "restart", "web"}), 0) << err_.str() << out_.str();
  EXPECT_THAT(out_.str(), HasSubstr("web: restarting every task (revision 2)\n"));
  EXPECT_THAT(out_.str(), HasSubstr("succeeded"));
  const v1::Service restarted = GetService("web");
  EXPECT_EQ(restarted.revision(), 2);
  EXPECT_EQ(restarted.spec().template_().force_update(), 1u);
  v1::TaskTemplate same = restarted.spec().template_();
  same.clear_force_update();
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(same, original.spec().template_()));
  ASSERT_TRUE(WaitFor([&] {
    int fresh = 0;
    for (const auto& t : Tasks("web")) {
      if (t.desired_state() == v1::TASK_STATE_RUNNING && !before.count(t.id()) &&
          t.status().state() == v1::TASK_STATE_RUNNING && t.revision() == 2) {
        fresh++;
      }
    }
    return fresh == 3 && RunningCount("web") == 3;
  }));

  // `update --force` is the same; with other flags it changes them too.
  ASSERT_EQ(Run({"service", "update", "web", "--force", "-d"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: restarting every task (revision 3)\n");
  ASSERT_EQ(Run({"service", "update", "web", "--force", "--env", "B=2", "-d"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "web: updated (revision 4)\n");
  EXPECT_EQ(GetService("web").spec().template_().force_update(), 3u);
  ASSERT_EQ(Run({"service", "history", "web"}), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("service restart web"));
  EXPECT_EQ(Run({"service", "restart", "nope"}), 1);
  EXPECT_EQ(err_.str(), "error: service \"nope\" not found\n");
}

}  // namespace
}  // namespace warren
