// Routing table deltas (issue 18): after the first whole table, a change to one service sends
// that service's route, not the cluster's; the worker rebuilds the same table from them.
#include "common/routing_delta.h"

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/time_util.h"
#include "gtest/gtest.h"
#include "manager/traffic.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

class RoutingDeltaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // A service whose one task runs (no health check: routed at once).
  void AddService(int i) {
    v1::Service s;
    s.set_id("svc" + std::to_string(i));
    s.mutable_spec()->set_name("web" + std::to_string(i));
    s.mutable_spec()->set_replicas(1);
    s.set_revision(1);
    v1::Task t;
    t.set_id("task" + std::to_string(i));
    t.set_service_id(s.id());
    t.set_revision(1);
    t.set_slot(1);
    t.set_node_id("n1");
    t.set_desired_state(v1::TASK_STATE_RUNNING);
    t.set_address("127.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
    t.set_port(8080);
    *t.mutable_created_at() = ToProtoTime(clock_.Now());
    t.mutable_status()->set_state(v1::TASK_STATE_RUNNING);
    *t.mutable_status()->mutable_started_at() = ToProtoTime(clock_.Now());
    ASSERT_TRUE(store_
                    ->Commit({PutMutation(s, Mutation::kMustNotExist),
                              PutMutation(t, Mutation::kMustNotExist)})
                    .ok());
  }

  // The task of service i moves to another address (a replacement, as far as routes go).
  void MoveTask(int i, const std::string& address) {
    auto t = GetObject<v1::Task>(*store_, "task" + std::to_string(i));
    ASSERT_TRUE(t.has_value());
    t->set_address(address);
    ASSERT_TRUE(store_->Commit({PutMutation(*t, t->version())}).ok());
  }

  void RemoveService(int i) {
    auto s = GetObject<v1::Service>(*store_, "svc" + std::to_string(i));
    auto t = GetObject<v1::Task>(*store_, "task" + std::to_string(i));
    ASSERT_TRUE(s.has_value() && t.has_value());
    ASSERT_TRUE(
        store_->Commit({DeleteMutation(*s, s->version()), DeleteMutation(*t, t->version())}).ok());
  }

  void AddIngress(const std::string& name, const std::string& host, const std::string& path,
                  const std::string& service, int port = 0) {
    v1::Ingress in;
    in.set_id("ing-" + name);
    in.mutable_spec()->set_name(name);
    in.mutable_spec()->set_host(host);
    in.mutable_spec()->set_path(path);
    in.mutable_spec()->set_service(service);
    in.mutable_spec()->set_port(port);
    in.set_service_id("stale-id");
    ASSERT_TRUE(store_->Commit({PutMutation(in, Mutation::kMustNotExist)}).ok());
  }

  void RemoveIngress(const std::string& name) {
    auto in = GetObjectByName<v1::Ingress>(*store_, name);
    ASSERT_TRUE(in.has_value());
    ASSERT_TRUE(store_->Commit({DeleteMutation(*in, in->version())}).ok());
  }

  // What a watching worker holds after the cache's next update.
  void Follow(RoutingTableCache& cache, v1::RoutingTable* held) {
    RoutingTableCache::Update next = cache.Since(held->version());
    if (next.delta || next.table) {
      ASSERT_TRUE(ApplyRoutingTable(next.delta ? *next.delta : *next.table, held).ok());
    }
    EXPECT_EQ(held->SerializeAsString(), cache.Get()->SerializeAsString());
  }

  testing_util::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(RoutingDeltaTest, OneServiceChangeSendsOneRoute) {
  constexpr int kServices = 300;
  for (int i = 0; i < kServices; ++i) AddService(i);
  RoutingTableCache cache(*store_, clock_);
  RoutingTableCache::Update first = cache.Since(0);
  ASSERT_FALSE(first.delta.has_value()) << "the first table goes whole";
  ASSERT_EQ(first.table->services_size(), kServices);
  v1::RoutingTable held;
  ASSERT_TRUE(ApplyRoutingTable(*first.table, &held).ok());

  MoveTask(7, "127.9.9.9");
  const uint64_t built = cache.tables_built();
  RoutingTableCache::Update next = cache.Since(held.version());
  EXPECT_EQ(cache.tables_built(), built) << "a delta copies the changed route, not the table";
  EXPECT_EQ(next.table, nullptr);
  ASSERT_TRUE(next.delta.has_value());
  EXPECT_TRUE(next.delta->delta());
  EXPECT_EQ(next.delta->base_version(), held.version());
  ASSERT_EQ(next.delta->services_size(), 1) << "one service changed, one route goes out";
  EXPECT_EQ(next.delta->services(0).service_id(), "svc7");
  ASSERT_TRUE(ApplyRoutingTable(*next.delta, &held).ok());
  EXPECT_EQ(held.SerializeAsString(), cache.Get()->SerializeAsString())
      << "the worker holds what a whole table would have given it";
}

TEST_F(RoutingDeltaTest, ADeltaSpanningSeveralTablesCarriesEachChangeOnceAndRemovals) {
  for (int i = 0; i < 20; ++i) AddService(i);
  RoutingTableCache cache(*store_, clock_);
  v1::RoutingTable held;
  ASSERT_TRUE(ApplyRoutingTable(*cache.Since(0).table, &held).ok());
  // Three tables published while this stream was busy.
  MoveTask(3, "127.9.9.3");
  cache.Get();
  MoveTask(3, "127.9.9.4");
  cache.Get();
  RemoveService(5);
  AddService(25);
  RoutingTableCache::Update next = cache.Since(held.version());
  ASSERT_TRUE(next.delta.has_value());
  ASSERT_EQ(next.delta->services_size(), 2);  // svc3 (its latest route) and the new svc25
  ASSERT_EQ(next.delta->removed_service_ids_size(), 1);
  EXPECT_EQ(next.delta->removed_service_ids(0), "svc5");
  ASSERT_TRUE(ApplyRoutingTable(*next.delta, &held).ok());
  EXPECT_EQ(held.SerializeAsString(), cache.Get()->SerializeAsString());
}

// A stream further behind than the cache remembers, or one that holds a version the cache
// never published, gets the whole table.
TEST_F(RoutingDeltaTest, AnUnknownBaseGetsTheWholeTable) {
  for (int i = 0; i < 3; ++i) AddService(i);
  RoutingTableCache cache(*store_, clock_);
  const uint64_t v1 = cache.Get()->version();
  EXPECT_FALSE(cache.Since(v1 + 12345).delta.has_value());
  for (int i = 0; i < 300; ++i) {
    MoveTask(1, "127.9." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
    cache.Get();
  }
  RoutingTableCache::Update late = cache.Since(v1);
  EXPECT_FALSE(late.delta.has_value()) << "the cache keeps the last 256 tables' changes";
  EXPECT_EQ(late.table->services_size(), 3);
  RoutingTableCache::Update current = cache.Since(cache.Get()->version());
  EXPECT_FALSE(current.delta.has_value()) << "nothing to send";
  EXPECT_EQ(current.table, nullptr);
}

TEST_F(RoutingDeltaTest, IngressCreateAndRemoveReachAWatchingWorker) {
  for (int i = 0; i < 3; ++i) AddService(i);
  RoutingTableCache cache(*store_, clock_);
  v1::RoutingTable held;
  Follow(cache, &held);
  EXPECT_EQ(held.ingresses_size(), 0);

  AddIngress("shop-api", "shop.example.com", "/api", "web2", 8081);
  AddIngress("shop", "shop.example.com", "/", "web1");
  AddIngress("blog", "blog.example.com", "/", "web0");
  const uint64_t before = held.version();
  Follow(cache, &held);
  EXPECT_GT(held.version(), before) << "an ingress alone makes a new table";
  ASSERT_EQ(held.ingresses_size(), 3);
  // By host, then path.
  EXPECT_EQ(held.ingresses(0).name(), "blog");
  EXPECT_EQ(held.ingresses(1).name(), "shop");
  EXPECT_EQ(held.ingresses(2).name(), "shop-api");
  EXPECT_EQ(held.ingresses(2).host(), "shop.example.com");
  EXPECT_EQ(held.ingresses(2).path(), "/api");
  EXPECT_EQ(held.ingresses(2).service_id(), "svc2") << "the service now named web2";
  EXPECT_EQ(held.ingresses(2).target_port(), 8081);
  EXPECT_FALSE(held.ingresses(2).tls());

  // A change to one service's tasks still carries every ingress.
  MoveTask(1, "127.9.9.1");
  RoutingTableCache::Update next = cache.Since(held.version());
  ASSERT_TRUE(next.delta.has_value());
  EXPECT_EQ(next.delta->services_size(), 1);
  EXPECT_EQ(next.delta->ingresses_size(), 3);
  ASSERT_TRUE(ApplyRoutingTable(*next.delta, &held).ok());

  RemoveIngress("shop");
  Follow(cache, &held);
  ASSERT_EQ(held.ingresses_size(), 2);
  EXPECT_EQ(held.ingresses(0).name(), "blog");
  EXPECT_EQ(held.ingresses(1).name(), "shop-api");
}

// A rule follows its service's name: removed, the rule routes nowhere; created again (a new
// id), the rule reaches it without being written again.
TEST_F(RoutingDeltaTest, AnIngressFollowsItsServiceByName) {
  AddService(1);
  AddIngress("shop", "shop.example.com", "/", "web1");
  RoutingTableCache cache(*store_, clock_);
  v1::RoutingTable held;
  Follow(cache, &held);
  ASSERT_EQ(held.ingresses_size(), 1);
  EXPECT_EQ(held.ingresses(0).service_id(), "svc1");
  RemoveService(1);
  Follow(cache, &held);
  ASSERT_EQ(held.ingresses_size(), 1);
  EXPECT_EQ(held.ingresses(0).service_id(), "stale-id");
  v1::Service s;
  s.set_id("svc1-again");
  s.mutable_spec()->set_name("web1");
  ASSERT_TRUE(store_->Commit({PutMutation(s, Mutation::kMustNotExist)}).ok());
  Follow(cache, &held);
  ASSERT_EQ(held.ingresses_size(), 1);
  EXPECT_EQ(held.ingresses(0).service_id(), "svc1-again");
}

TEST(ApplyRoutingTableTest, ADeltaThatDoesNotFollowChangesNothing) {
  v1::RoutingTable held;
  held.set_version(10);
  held.add_services()->set_service_id("a");
  v1::RoutingTable delta;
  delta.set_delta(true);
  delta.set_version(12);
  delta.set_base_version(11);
  delta.add_removed_service_ids("a");
  const std::string before = held.SerializeAsString();
  absl::Status s = ApplyRoutingTable(delta, &held);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("does not follow the held version 10"), std::string::npos) << s;
  EXPECT_EQ(held.SerializeAsString(), before);
}

// Issue 13: the routed nodes ride on the table. A node that comes, goes down or comes back
// moves the version, and a delta carries the whole list, which a following worker holds.
TEST_F(RoutingDeltaTest, RoutedNodesFollowTheirStateAndReachAWatchingWorker) {
  RoutingTableCache cache(*store_, clock_);
  AddService(1);
  v1::RoutingTable held;
  Follow(cache, &held);
  EXPECT_EQ(held.peers_size(), 0);
  auto put = [&](const std::string& id, const std::string& subnet, v1::NodeState state) {
    auto n = GetObject<v1::Node>(*store_, id);
    v1::Node node = n ? *n : v1::Node();
    node.set_id(id);
    node.set_name(id);
    node.set_network("vxlan");
    node.set_subnet(subnet);
    node.set_advertise_addr("192.0.2." + id.substr(1));
    node.set_state(state);
    ASSERT_TRUE(
        store_->Commit({PutMutation(node, n ? n->version() : Mutation::kMustNotExist)}).ok());
  };
  put("n1", "10.99.0.0/24", v1::NODE_STATE_READY);
  put("n2", "10.99.1.0/24", v1::NODE_STATE_READY);
  const uint64_t before = held.version();
  Follow(cache, &held);
  EXPECT_GT(held.version(), before);
  ASSERT_EQ(held.peers_size(), 2);
  EXPECT_EQ(held.peers(1).advertise_addr(), "192.0.2.2");
  EXPECT_EQ(held.services_size(), 1);

  put("n2", "10.99.1.0/24", v1::NODE_STATE_DOWN);
  Follow(cache, &held);
  ASSERT_EQ(held.peers_size(), 1);
  EXPECT_EQ(held.peers(0).node_id(), "n1");
  EXPECT_EQ(held.services_size(), 1);
  put("n2", "10.99.1.0/24", v1::NODE_STATE_READY);
  Follow(cache, &held);
  EXPECT_EQ(held.peers_size(), 2);

  // n1 drained: it stays while its task runs (the task drains its connections through the
  // route), and leaves once the task stopped.
  auto n1 = GetObject<v1::Node>(*store_, "n1");
  ASSERT_TRUE(n1.has_value());
  n1->set_availability(v1::NODE_AVAILABILITY_DRAIN);
  ASSERT_TRUE(store_->Commit({PutMutation(*n1, n1->version())}).ok());
  Follow(cache, &held);
  EXPECT_EQ(held.peers_size(), 2);
  auto task = GetObject<v1::Task>(*store_, "task1");
  ASSERT_TRUE(task.has_value());
  task->set_desired_state(v1::TASK_STATE_SHUTDOWN);
  task->mutable_status()->set_state(v1::TASK_STATE_SHUTDOWN);
  ASSERT_TRUE(store_->Commit({PutMutation(*task, task->version())}).ok());
  Follow(cache, &held);
  ASSERT_EQ(held.peers_size(), 1);
  EXPECT_EQ(held.peers(0).node_id(), "n2");
}

TEST(ApplyRoutingTableTest, ADeltasIngressesReplaceTheHeldOnes) {
  v1::RoutingTable held;
  held.set_version(10);
  held.add_ingresses()->set_name("old");
  v1::RoutingTable delta;
  delta.set_delta(true);
  delta.set_version(11);
  delta.set_base_version(10);
  delta.add_ingresses()->set_name("new");
  ASSERT_TRUE(ApplyRoutingTable(delta, &held).ok());
  ASSERT_EQ(held.ingresses_size(), 1);
  EXPECT_EQ(held.ingresses(0).name(), "new");
  EXPECT_EQ(held.version(), 11u);
}

}  // namespace
}  // namespace warren
