// The published-port index (issue 18): a create checks its ports against the services that use
// the same port numbers, not against every service, with the same verdicts as
// CheckPortConflicts over the whole cluster; reservations keep concurrent creates apart.
#include "manager/port_index.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/published_ports.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/node_liveness.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

v1::ServiceSpec Spec(const std::string& name, int published = 0, const std::string& host = "",
                     int target = 9000, bool image = false) {
  v1::ServiceSpec spec;
  spec.set_name(name);
  spec.set_replicas(1);
  if (image) {
    spec.mutable_template_()->set_image("registry.example/app:1");
  } else {
    spec.mutable_template_()->set_command("/bin/true");
  }
  if (published > 0) {
    v1::Port* p = spec.mutable_template_()->add_ports();
    p->set_target(target);
    p->set_published(published);
    p->set_host_ip(host);
  }
  return spec;
}

class PortIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Stored as is, without any check (conflicts from before the check existed are possible).
  void Put(const v1::ServiceSpec& spec) {
    v1::Service svc;
    svc.set_id(absl::StrCat("id-", next_id_++));
    *svc.mutable_spec() = spec;
    ASSERT_TRUE(store_->Commit({PutMutation(svc, Mutation::kMustNotExist)}).ok());
  }

  testing_util::TempDir dir_;
  std::unique_ptr<SqliteStore> store_;
  int next_id_ = 1000;
};

TEST_F(PortIndexTest, AgreesWithTheFullCheck) {
  std::mt19937 rng(18);
  const std::vector<int> ports = {8000, 8080, 9000};
  const std::vector<std::string> hosts = {"", "127.0.0.1", "127.0.0.2", "0.0.0.0"};
  auto random_spec = [&](const std::string& name) {
    const int published = rng() % 3 == 0 ? 0 : ports[rng() % ports.size()];
    return Spec(name, published, hosts[rng() % hosts.size()], ports[rng() % ports.size()],
                rng() % 4 == 0);
  };
  PortIndex index(*store_);
  for (int i = 0; i < 40; ++i) {
    Put(random_spec(absl::StrCat("s", i)));
    // Half the checks see a store that changed since the last one (the feed), half do not.
    for (int j = 0; j < 4; ++j) {
      const v1::ServiceSpec spec =
          j % 2 == 0 ? random_spec("new") : random_spec(absl::StrCat("s", rng() % (i + 1)));
      const std::vector<v1::Service> all = ListObjects<v1::Service>(*store_);
      EXPECT_EQ(index.Check(spec, nullptr), CheckPortConflicts(spec, all))
          << "after " << i + 1 << " services, checking " << spec.ShortDebugString();
    }
  }
  // Deleted services free their ports.
  for (const auto& svc : ListObjects<v1::Service>(*store_)) {
    ASSERT_TRUE(store_->Commit({DeleteMutation(svc, svc.version())}).ok());
  }
  EXPECT_TRUE(index.Check(Spec("web", 8000), nullptr).ok());
  EXPECT_EQ(index.size(), 0u);
}

TEST_F(PortIndexTest, ReservationsHoldPortsUntilReleased) {
  PortIndex index(*store_);
  const uint64_t token = index.Reserve(Spec("web", 8000));
  absl::Status s = index.Check(Spec("api", 8000), nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("template.ports[0].published: port 8000"));
  EXPECT_THAT(s.message(), HasSubstr("already published by service \"web\""));
  // A task listening on the reserved port is refused too; another port is fine.
  EXPECT_FALSE(index.Check(Spec("worker", 8001, "", 8000), nullptr).ok());
  EXPECT_TRUE(index.Check(Spec("api", 8001), nullptr).ok());
  index.Release(token);
  EXPECT_TRUE(index.Check(Spec("api", 8000), nullptr).ok());
}

TEST_F(PortIndexTest, AnExistingConflictDoesNotBlockAnUnrelatedChange) {
  Put(Spec("web", 8000));
  Put(Spec("api", 8000));  // stored before the check existed
  PortIndex index(*store_);
  v1::ServiceSpec api = Spec("api", 8000);
  v1::ServiceSpec scaled = api;
  scaled.set_replicas(3);
  EXPECT_TRUE(index.Check(scaled, &api).ok());
  EXPECT_FALSE(index.Check(Spec("api", 8000), nullptr).ok());
}

// Through the API: the work of one create's check does not grow with the number of services.
TEST_F(PortIndexTest, CreateWorkDoesNotGrowWithTheCluster) {
  FakeClock clock;
  EventLog events(*store_, clock);
  NodeLiveness liveness(clock);
  ManagerApi api(*store_, clock, events, liveness, ApiOptions{});
  auto create = [&](const v1::ServiceSpec& spec) {
    v1::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    v1::Service out;
    return api.control().CreateService(nullptr, &req, &out);
  };
  ASSERT_TRUE(create(Spec("web", 8000)).ok());
  ASSERT_TRUE(create(Spec("admin", 8081, "127.0.0.1")).ok());
  auto work_of_one_create = [&](const std::string& name) {
    const uint64_t before = api.control().port_check_work();
    EXPECT_TRUE(create(Spec(name)).ok());
    return api.control().port_check_work() - before;
  };
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(create(Spec(absl::StrCat("a", i))).ok());
  const uint64_t small = work_of_one_create("probe-1");
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(create(Spec(absl::StrCat("b", i))).ok());
  const uint64_t large = work_of_one_create("probe-2");
  EXPECT_EQ(small, large);
  EXPECT_LE(large, 1u);
  // The index still sees every service: a clash is refused by name.
  grpc::Status s = create(Spec("clash", 8000));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("already published by service \"web\""));
  // Publishing on every address the port the other services' tasks listen on (8080 by default).
  grpc::Status t = create(Spec("cover", 8080, "", 9000));
  EXPECT_EQ(t.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(t.error_message(), HasSubstr("the port the tasks of service"));
}

}  // namespace
}  // namespace warren
