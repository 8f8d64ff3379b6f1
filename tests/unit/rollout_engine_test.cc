// The deployment engine's plumbing: enum display names in JSON/YAML, the upgrade of objects
// written with string fields, the one commit-retry helper, and user intents that never lose a
// race with the controller.
#include <atomic>

#include "common/enum_names.h"
#include "common/spec.h"
#include "forwarding_store.h"
#include "gmock/gmock.h"
#include "manager/commit_retry.h"
#include "manager/rollout/intents.h"
#include "manager/rollout/legacy.h"
#include "rollout_sim.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

TEST(EnumNamesTest, JsonAndYamlShowTheDisplayNames) {
  v1::Deployment d;
  d.set_strategy(v1::DEPLOYMENT_STRATEGY_BLUE_GREEN);
  d.set_rollback_reason(v1::ROLLBACK_REASON_HEALTH_CHECK);
  d.set_phase(v1::DEPLOYMENT_PHASE_ROLLED_BACK);
  v1::DeploymentIntent* i = d.add_intents();
  i->set_action(v1::DEPLOYMENT_ACTION_PROMOTE);
  const std::string json = ToJson(d);
  EXPECT_THAT(json, HasSubstr("\"strategy\": \"blue-green\""));
  EXPECT_THAT(json, HasSubstr("\"rollbackReason\": \"health_check\""));
  EXPECT_THAT(json, HasSubstr("\"action\": \"promote\""));
  // Enums that were never strings keep their names.
  EXPECT_THAT(json, HasSubstr("\"phase\": \"DEPLOYMENT_PHASE_ROLLED_BACK\""));
  v1::ListRevisionsResponse revs;
  revs.add_revisions()->set_outcome(v1::REVISION_OUTCOME_ROLLED_BACK);
  EXPECT_THAT(ToYaml(revs), HasSubstr("outcome: rolled-back\n"));

  EXPECT_EQ(DisplayName(v1::REVISION_OUTCOME_IN_PROGRESS), "in-progress");
  EXPECT_EQ(DisplayName(v1::DEPLOYMENT_STRATEGY_UNSPECIFIED), "-");
  EXPECT_EQ(ParseDisplayName<v1::DeploymentStrategy>("canary"), v1::DEPLOYMENT_STRATEGY_CANARY);
  EXPECT_EQ(ParseDisplayName<v1::DeploymentStrategy>("bogus"), std::nullopt);
}

// Appends a length-delimited field to serialized protobuf bytes (the old string fields).
void AppendString(std::string* bytes, int field, const std::string& value) {
  bytes->push_back(static_cast<char>((field << 3) | 2));
  bytes->push_back(static_cast<char>(value.size()));
  bytes->append(value);
}

TEST(LegacyFieldsTest, StringsWrittenByAnOlderVersionBecomeEnums) {
  v1::Deployment d;
  d.set_id("d1");
  std::string bytes = d.SerializeAsString();
  AppendString(&bytes, 6, "canary");
  AppendString(&bytes, 11, "error_rate");
  v1::Deployment parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.strategy(), v1::DEPLOYMENT_STRATEGY_UNSPECIFIED);
  EXPECT_TRUE(UpgradeLegacyFields(&parsed));
  EXPECT_EQ(parsed.strategy(), v1::DEPLOYMENT_STRATEGY_CANARY);
  EXPECT_EQ(parsed.rollback_reason(), v1::ROLLBACK_REASON_ERROR_RATE);
  EXPECT_FALSE(UpgradeLegacyFields(&parsed)) << "nothing left to upgrade";

  v1::Revision r;
  r.set_number(2);
  bytes = r.SerializeAsString();
  AppendString(&bytes, 8, "blue-green");
  AppendString(&bytes, 9, "rolled-back");
  ASSERT_TRUE(r.ParseFromString(bytes));
  EXPECT_TRUE(UpgradeLegacyFields(&r));
  EXPECT_EQ(r.strategy(), v1::DEPLOYMENT_STRATEGY_BLUE_GREEN);
  EXPECT_EQ(r.outcome(), v1::REVISION_OUTCOME_ROLLED_BACK);
}

TEST(LegacyFieldsTest, TheControllerUpgradesAnOlderDataDir) {
  sim::Sim sim;
  v1::ServiceSpec spec = sim::WebSpec(1);
  ASSERT_TRUE(sim.CreateServing(spec));
  // Revision 1 as an older binary stored it: outcome "created" in field 9, no enum.
  v1::Revision r = ListObjects<v1::Revision>(sim.store()).front();
  r.clear_outcome();
  r.clear_strategy();
  std::string bytes = r.SerializeAsString();
  AppendString(&bytes, 9, "created");
  Mutation m;
  m.kind = Kind::kRevision;
  m.id = r.id();
  m.data = bytes;
  ASSERT_TRUE(sim.store().Commit({m}).ok());
  sim.Step();
  EXPECT_EQ(ListObjects<v1::Revision>(sim.store()).front().outcome(), v1::REVISION_OUTCOME_CREATED);
}

class CommitRetryTest : public ::testing::Test {
 protected:
  sim::Sim sim_;
};

TEST_F(CommitRetryTest, ALostRaceIsDecidedAgainOnFreshReads) {
  Store& store = sim_.store();
  v1::Node n;
  n.set_id("n1");
  n.set_name("retry-node");
  ASSERT_TRUE(store.Commit({PutMutation(n, Mutation::kMustNotExist)}).ok());
  int attempts = 0;
  auto v = CommitWithRetry(store, [&]() -> absl::StatusOr<std::vector<Mutation>> {
    auto current = GetObject<v1::Node>(store, "n1");
    // Another writer gets in between the first two reads and their commits.
    if (++attempts <= 2) {
      v1::Node other = *current;
      other.set_message(absl::StrCat("other ", attempts));
      EXPECT_TRUE(store.Commit({PutMutation(other, current->version())}).ok());
    }
    v1::Node mine = *current;
    mine.set_role("mine");
    return std::vector<Mutation>{PutMutation(mine, current->version())};
  });
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(attempts, 3);
  auto stored = GetObject<v1::Node>(store, "n1");
  EXPECT_EQ(stored->role(), "mine");
  EXPECT_EQ(stored->message(), "other 2");
}

TEST_F(CommitRetryTest, GivesUpWithAbortedAndPassesOtherErrorsThrough) {
  Store& store = sim_.store();
  v1::Node e;
  e.set_id("n1");
  e.set_name("retry-node");
  ASSERT_TRUE(store.Commit({PutMutation(e, Mutation::kMustNotExist)}).ok());
  int attempts = 0;
  auto always_stale = [&]() -> absl::StatusOr<std::vector<Mutation>> {
    ++attempts;
    return std::vector<Mutation>{PutMutation(e, 12345)};
  };
  auto v = CommitWithRetry(store, always_stale);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(attempts, kDefaultCommitAttempts);
  auto invalid = CommitWithRetry(store, []() -> absl::StatusOr<std::vector<Mutation>> {
    return absl::InvalidArgumentError("replicas: must be 0 or more");
  });
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing to write is no error.
  EXPECT_TRUE(CommitWithRetry(store, [] {
                return absl::StatusOr<std::vector<Mutation>>(std::vector<Mutation>{});
              }).ok());
}

// A store that lets a "controller" write to a deployment between a handler's read and its
// commit, once.
class RacingStore : public testing_util::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<bool> race{false};
  absl::StatusOr<uint64_t> Commit(const std::vector<Mutation>& mutations) override {
    for (const Mutation& m : mutations) {
      if (m.kind != Kind::kDeployment || !race.exchange(false)) continue;
      auto d = GetObject<v1::Deployment>(inner_, m.id);
      d->set_reason("the controller wrote first");
      EXPECT_TRUE(inner_.Commit({PutMutation(*d, d->version())}).ok());
    }
    return inner_.Commit(mutations);
  }
};

TEST(IntentTest, APromoteThatLosesARaceWithTheControllerStillApplies) {
  sim::Sim sim;
  v1::ServiceSpec spec = sim::WebSpec(4);
  spec.mutable_update_config()->set_strategy("canary");
  *spec.mutable_update_config()->mutable_canary_window() = ToProtoDuration(absl::Hours(1));
  ASSERT_TRUE(sim.CreateServing(spec));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 10; }));

  RacingStore racing(sim.store());
  EventLog events(racing, sim.clock());
  NodeLiveness liveness(sim.clock());
  ManagerApi api(racing, sim.clock(), events, liveness, ApiOptions{});
  api.SetIntentPass([&] { sim.Step(absl::Milliseconds(10)); });
  racing.race = true;
  v1::PromoteRequest req;
  req.set_name_or_id("web");
  v1::Deployment d;
  grpc::Status s = api.control().PromoteRollout(nullptr, &req, &d);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(racing.race) << "the race happened";
  EXPECT_EQ(d.step(), 1);
  ASSERT_EQ(d.intents_size(), 1);
  EXPECT_TRUE(d.intents(0).applied());
  EXPECT_EQ(d.intents(0).result(), "promoted to step 2/4: 25% of traffic on revision 2");
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 25; }));
}

TEST(IntentTest, AnIntentThatCannotApplySaysWhy) {
  sim::Sim sim;
  v1::ServiceSpec spec = sim::WebSpec(2);
  ASSERT_TRUE(sim.CreateServing(spec));
  (*spec.mutable_template_()->mutable_env())["VERSION"] = "v2";
  ASSERT_TRUE(sim.Update(spec).ok());
  v1::PromoteRequest req;
  req.set_name_or_id("web");
  v1::Deployment d;
  grpc::Status s = sim.api().PromoteRollout(nullptr, &req, &d);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no blue/green or canary rollout to promote"));
  // Recorded and answered: the deployment keeps the intent with its error.
  auto stored = *sim.Rollout("web");
  ASSERT_EQ(stored.intents_size(), 1);
  EXPECT_TRUE(stored.intents(0).applied());
  EXPECT_FALSE(stored.intents(0).error().empty());
}

}  // namespace
}  // namespace warren
