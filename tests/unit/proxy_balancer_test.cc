#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/balancer.h"

namespace warren {
namespace {

v1::Endpoint Ep(const std::string& task, int last_octet) {
  v1::Endpoint e;
  e.set_task_id(task);
  e.set_address("127.0.0." + std::to_string(last_octet));
  e.set_port(8080);
  return e;
}

// Revisions given as (revision, weight, endpoint count, preview).
struct Rev {
  int64_t revision;
  int weight;
  int endpoints;
  bool preview = false;
  bool fallback = false;
};

v1::ServiceRoute Route(const std::vector<Rev>& revs) {
  v1::ServiceRoute r;
  r.set_service_id("svc1");
  r.set_name("web");
  int octet = 1;
  for (const Rev& rev : revs) {
    v1::RevisionRoute* rr = r.add_revisions();
    rr->set_revision(rev.revision);
    rr->set_weight(rev.weight);
    rr->set_preview(rev.preview);
    rr->set_fallback(rev.fallback);
    for (int i = 0; i < rev.endpoints; ++i) {
      *rr->add_endpoints() =
          Ep("r" + std::to_string(rev.revision) + "t" + std::to_string(i), octet++);
    }
  }
  return r;
}

std::map<int64_t, int> CountRevisions(Balancer& b, int picks) {
  std::map<int64_t, int> counts;
  for (int i = 0; i < picks; ++i) {
    auto lease = b.Pick();
    EXPECT_TRUE(lease.ok()) << lease.status();
    if (lease.ok()) ++counts[lease->revision()];
  }
  return counts;
}

TEST(BalancerTest, SmoothWeightedRoundRobinIsExact) {
  Balancer b;
  b.Update(Route({{1, 10, 2}, {2, 90, 3}}));
  // Every window of 100 consecutive picks has exactly 10 of revision 1.
  for (int window = 0; window < 100; ++window) {
    auto counts = CountRevisions(b, 100);
    ASSERT_EQ(counts[1], 10) << "window " << window;
    ASSERT_EQ(counts[2], 90) << "window " << window;
  }
}

TEST(BalancerTest, ExactForOtherSplits) {
  {
    Balancer b;
    b.Update(Route({{1, 33, 1}, {2, 67, 1}}));
    auto counts = CountRevisions(b, 10000);
    EXPECT_EQ(counts[1], 3300);
    EXPECT_EQ(counts[2], 6700);
  }
  {
    Balancer b;
    b.Update(Route({{1, 20, 1}, {2, 30, 2}, {3, 50, 1}}));
    auto counts = CountRevisions(b, 10000);
    EXPECT_EQ(counts[1], 2000);
    EXPECT_EQ(counts[2], 3000);
    EXPECT_EQ(counts[3], 5000);
  }
  {
    // Smoothness: 1/99 never bunches the rare revision.
    Balancer b;
    b.Update(Route({{1, 1, 1}, {2, 99, 1}}));
    auto counts = CountRevisions(b, 100);
    EXPECT_EQ(counts[1], 1);
  }
}

TEST(BalancerTest, EndpointChangesKeepTheSplitExact) {
  Balancer b;
  b.Update(Route({{1, 10, 2}, {2, 90, 2}}));
  auto first = CountRevisions(b, 37);
  b.Update(Route({{1, 10, 1}, {2, 90, 3}}));  // same weights, other endpoints
  auto second = CountRevisions(b, 63);
  EXPECT_EQ(first[1] + second[1], 10);
}

TEST(BalancerTest, ZeroWeightAndPreviewRevisionsAreNeverPicked) {
  Balancer b;
  b.Update(Route({{1, 0, 2}, {2, 100, 1}, {3, 50, 2, /*preview=*/true}}));
  auto counts = CountRevisions(b, 1000);
  EXPECT_EQ(counts[2], 1000);
  EXPECT_EQ(counts.size(), 1u);
}

// Blue after a blue/green switch: weight 0, never picked, but where green's 5xx go.
TEST(BalancerTest, FallbackRevisionOnlyTakesRetries) {
  Balancer b;
  b.Update(Route({{1, 0, 2, false, /*fallback=*/true}, {2, 100, 2}}));
  auto counts = CountRevisions(b, 100);
  EXPECT_EQ(counts[2], 100);
  EXPECT_EQ(counts.size(), 1u);
  auto retry = b.PickOtherRevision(2);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->revision(), 1);
  // Nothing retries from the fallback back to green, or onto a weight-0 revision that is no
  // fallback.
  b.Update(Route({{1, 0, 2}, {2, 100, 2}}));
  EXPECT_TRUE(absl::IsNotFound(b.PickOtherRevision(2).status()));
  // A revision with weight is preferred over a fallback.
  b.Update(Route({{1, 0, 1, false, true}, {2, 90, 1}, {3, 10, 1}}));
  retry = b.PickOtherRevision(3);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->revision(), 2);
  // Only fallback endpoints: the service has no endpoint for new requests.
  b.Update(Route({{1, 0, 2, false, true}, {2, 100, 0}}));
  EXPECT_TRUE(absl::IsUnavailable(b.Pick().status()));
  BalancerOptions o;
  o.preview = true;
  Balancer preview(o);
  preview.Update(Route({{1, 0, 2, false, true}, {2, 0, 2, true}}));
  EXPECT_TRUE(absl::IsNotFound(preview.PickOtherRevision(2).status()));
}

TEST(BalancerTest, PreviewModePicksOnlyThePreviewRevision) {
  BalancerOptions o;
  o.preview = true;
  Balancer b(o);
  b.Update(Route({{1, 100, 2}, {2, 0, 2, /*preview=*/true}}));
  auto counts = CountRevisions(b, 100);
  EXPECT_EQ(counts[2], 100);
  EXPECT_EQ(counts.size(), 1u);

  Balancer no_preview(o);
  no_preview.Update(Route({{1, 100, 2}}));
  EXPECT_TRUE(absl::IsUnavailable(no_preview.Pick().status()));
}

TEST(BalancerTest, NoEndpointsIsUnavailable) {
  Balancer b;
  EXPECT_TRUE(absl::IsUnavailable(b.Pick().status()));
  b.Update(Route({{1, 100, 0}}));
  EXPECT_TRUE(absl::IsUnavailable(b.Pick().status()));
}

TEST(BalancerTest, RevisionWithoutEndpointsGivesItsShareToTheOthers) {
  Balancer b;
  b.Update(Route({{1, 50, 0}, {2, 50, 1}}));
  auto counts = CountRevisions(b, 100);
  EXPECT_EQ(counts[2], 100);
}

TEST(BalancerTest, LeastRequestPrefersTheIdleEndpoint) {
  Balancer b;
  b.Update(Route({{1, 100, 3}}));
  auto a = b.Pick();
  ASSERT_TRUE(a.ok());
  auto busy1 = b.Pick();
  ASSERT_TRUE(busy1.ok());
  // Two endpoints now have one request each; the third is idle.
  EXPECT_NE(a->key(), busy1->key());
  auto c = b.Pick();
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->key(), a->key());
  EXPECT_NE(c->key(), busy1->key());
  // Release the first: it is the only one with zero in flight.
  std::string free_key = a->key();
  a->Release();
  for (int i = 0; i < 5; ++i) {
    auto next = b.Pick();
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->key(), free_key);
    // The lease is released at the end of the iteration, so the endpoint is free again.
  }
  // Hold many on one endpoint: the others take the traffic.
  std::vector<Balancer::Lease> held;
  for (int i = 0; i < 10; ++i) held.push_back(Balancer::Lease(b.Endpoints()[0]));
  for (int i = 0; i < 20; ++i) {
    auto next = b.Pick();
    ASSERT_TRUE(next.ok());
    EXPECT_NE(next->key(), b.Endpoints()[0]->key);
  }
}

TEST(BalancerTest, TiesAreRoundRobin) {
  Balancer b;
  b.Update(Route({{1, 100, 3}}));
  std::map<std::string, int> counts;
  for (int i = 0; i < 300; ++i) {
    auto l = b.Pick();
    ASSERT_TRUE(l.ok());
    ++counts[l->key()];
  }
  ASSERT_EQ(counts.size(), 3u);
  for (const auto& [key, n] : counts) EXPECT_EQ(n, 100) << key;
}

TEST(BalancerTest, RoundRobinPolicyIgnoresLoad) {
  BalancerOptions o;
  o.policy = BalancePolicy::kRoundRobin;
  Balancer b(o);
  b.Update(Route({{1, 100, 2}}));
  std::vector<Balancer::Lease> held;
  std::map<std::string, int> counts;
  for (int i = 0; i < 10; ++i) {
    auto l = b.Pick();
    ASSERT_TRUE(l.ok());
    ++counts[l->key()];
    held.push_back(std::move(*l));  // in-flight load would steer least-request
  }
  ASSERT_EQ(counts.size(), 2u);
  for (const auto& [key, n] : counts) EXPECT_EQ(n, 5) << key;
}

TEST(BalancerTest, EjectedEndpointIsSkippedForThePeriod) {
  FakeClock clock;
  BalancerOptions o;
  o.clock = &clock;
  o.ejection_period = absl::Seconds(5);
  Balancer b(o);
  b.Update(Route({{1, 100, 2}}));
  std::string bad = b.Endpoints()[0]->key;
  b.Eject(bad);
  EXPECT_TRUE(b.IsEjected(bad));
  for (int i = 0; i < 20; ++i) {
    auto l = b.Pick();
    ASSERT_TRUE(l.ok());
    EXPECT_NE(l->key(), bad);
  }
  clock.Advance(absl::Seconds(4));
  for (int i = 0; i < 20; ++i) EXPECT_NE(b.Pick()->key(), bad);
  clock.Advance(absl::Seconds(1));
  EXPECT_FALSE(b.IsEjected(bad));
  std::map<std::string, int> counts;
  for (int i = 0; i < 20; ++i) ++counts[b.Pick()->key()];
  EXPECT_EQ(counts[bad], 10);
}

TEST(BalancerTest, AllEjectedStillPicks) {
  FakeClock clock;
  BalancerOptions o;
  o.clock = &clock;
  Balancer b(o);
  b.Update(Route({{1, 100, 2}}));
  for (const auto& ep : b.Endpoints()) b.Eject(ep->key);
  auto l = b.Pick();
  EXPECT_TRUE(l.ok()) << l.status();
}

TEST(BalancerTest, EjectedRevisionDoesNotGetItsShare) {
  FakeClock clock;
  BalancerOptions o;
  o.clock = &clock;
  Balancer b(o);
  b.Update(Route({{1, 50, 1}, {2, 50, 1}}));
  for (const auto& ep : b.Endpoints()) {
    if (ep->revision == 1) b.Eject(ep->key);
  }
  auto counts = CountRevisions(b, 100);
  EXPECT_EQ(counts[2], 100);
}

TEST(BalancerTest, PickExcludesTheFailedEndpoint) {
  Balancer b;
  b.Update(Route({{1, 100, 2}}));
  auto first = b.Pick();
  ASSERT_TRUE(first.ok());
  std::string failed = first->key();
  for (int i = 0; i < 10; ++i) {
    auto again = b.Pick({&failed, 1});
    ASSERT_TRUE(again.ok());
    EXPECT_NE(again->key(), failed);
  }
  Balancer one;
  one.Update(Route({{1, 100, 1}}));
  std::string only = one.Endpoints()[0]->key;
  EXPECT_TRUE(absl::IsNotFound(one.Pick({&only, 1}).status()));
}

TEST(BalancerTest, RemovedEndpointsAreMarkedAndInFlightKept) {
  Balancer b;
  v1::ServiceRoute route = Route({{1, 100, 2}});
  b.Update(route);
  auto lease = b.Pick();
  ASSERT_TRUE(lease.ok());
  std::string leased = lease->key();
  // Drop the leased endpoint.
  v1::ServiceRoute smaller = route;
  auto* eps = smaller.mutable_revisions(0)->mutable_endpoints();
  for (int i = 0; i < eps->size(); ++i) {
    if (Balancer::EndpointKey(eps->Get(i)) == leased) {
      eps->DeleteSubrange(i, 1);
      break;
    }
  }
  b.Update(smaller);
  EXPECT_TRUE(lease->removed());
  EXPECT_EQ(lease->state()->in_flight.load(), 1);
  for (int i = 0; i < 10; ++i) EXPECT_NE(b.Pick()->key(), leased);
  // The survivor keeps its identity (and its counters) across the update.
  auto survivor = b.Endpoints();
  ASSERT_EQ(survivor.size(), 1u);
  EXPECT_FALSE(survivor[0]->removed.load());
  lease->Release();
}

}  // namespace
}  // namespace warren
