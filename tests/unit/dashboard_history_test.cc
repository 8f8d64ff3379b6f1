// The dashboard's chart history (src/ui/history.h): which services are sampled, for how long,
// and how much is kept. Times are explicit (no clock, no thread).
#include "ui/history.h"

#include "gtest/gtest.h"

namespace warren::ui {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

v1::ServiceEndpoints Endpoints(int stable_weight, double canary_errors) {
  v1::ServiceEndpoints ep;
  auto* r1 = ep.add_revisions();
  r1->set_revision(1);
  r1->set_weight(stable_weight);
  r1->mutable_recent()->set_latency_p99_seconds(0.012);
  auto* r2 = ep.add_revisions();
  r2->set_revision(2);
  r2->set_weight(100 - stable_weight);
  r2->set_recent_error_rate(canary_errors);
  auto* preview = ep.add_revisions();
  preview->set_revision(3);
  preview->set_preview(true);
  return ep;
}

TEST(TrafficHistoryTest, SamplesWatchedServicesPerRevisionWithoutPreview) {
  TrafficHistory h;
  int weight = 80;
  auto endpoints = [&](const std::string& id) -> std::optional<v1::ServiceEndpoints> {
    if (id != "svc-a") return std::nullopt;
    return Endpoints(weight, 4.5);
  };
  auto active = [](const std::string&) { return true; };
  h.Sample(kT0, endpoints, active);
  EXPECT_TRUE(h.Samples("svc-a").empty()) << "not watched yet";
  h.Watch("svc-a", kT0);
  h.Sample(kT0 + absl::Seconds(2), endpoints, active);
  weight = 50;
  h.Sample(kT0 + absl::Seconds(4), endpoints, active);
  const std::vector<TrafficSample> s = h.Samples("svc-a");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].time, kT0 + absl::Seconds(2));
  EXPECT_EQ(s[0].weight.at(1), 80);
  EXPECT_EQ(s[0].weight.at(2), 20);
  EXPECT_EQ(s[1].weight.at(1), 50);
  EXPECT_DOUBLE_EQ(s[1].error_rate.at(2), 4.5);
  EXPECT_DOUBLE_EQ(s[1].p99_ms.at(1), 12);
  EXPECT_FALSE(s[1].weight.contains(3)) << "preview traffic is not on the charts";
}

TEST(TrafficHistoryTest, StopsSamplingATailAfterTheDeploymentEndsAndKeepsTheSamples) {
  HistoryOptions o;
  o.tail = absl::Seconds(60);
  TrafficHistory h(o);
  bool running = true;
  auto endpoints = [](const std::string&) -> std::optional<v1::ServiceEndpoints> {
    return Endpoints(100, 0);
  };
  auto active = [&](const std::string&) { return running; };
  h.Watch("svc", kT0);
  for (int i = 0; i <= 10; ++i) h.Sample(kT0 + absl::Seconds(2 * i), endpoints, active);
  running = false;  // ended at 20 s
  for (int i = 11; i <= 60; ++i) h.Sample(kT0 + absl::Seconds(2 * i), endpoints, active);
  EXPECT_EQ(h.watched(), 0u);
  const std::vector<TrafficSample> s = h.Samples("svc");
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.back().time, kT0 + absl::Seconds(80)) << "sampled until 60 s after the end";
  EXPECT_EQ(s.size(), 41u);
}

TEST(TrafficHistoryTest, DropsSamplesOlderThanTheRetentionAndTheStalestService) {
  HistoryOptions o;
  o.retention = absl::Minutes(10);
  o.max_services = 2;
  TrafficHistory h(o);
  auto endpoints = [](const std::string&) -> std::optional<v1::ServiceEndpoints> {
    return Endpoints(100, 0);
  };
  auto active = [](const std::string&) { return true; };
  h.Watch("a", kT0);
  for (int i = 0; i < 400; ++i) h.Sample(kT0 + absl::Seconds(2 * i), endpoints, active);
  std::vector<TrafficSample> s = h.Samples("a");
  EXPECT_EQ(s.size(), 301u) << "10 minutes of samples every 2 s";
  EXPECT_GE(s.front().time, kT0 + absl::Seconds(798 - 600));

  // A third service pushes out the one sampled longest ago.
  TrafficHistory h2(o);
  const std::vector<std::string> ids = {"a", "b", "c"};
  for (size_t i = 0; i < ids.size(); ++i) {
    h2.Watch(ids[i], kT0);
    // Only the newest service is active: the others stop being sampled after the tail.
    auto only = [&, i](const std::string& id) { return id == ids[i]; };
    h2.Sample(kT0 + absl::Minutes(2 * i + 1), endpoints, only);
  }
  EXPECT_TRUE(h2.Samples("a").empty());
  EXPECT_FALSE(h2.Samples("b").empty());
  EXPECT_FALSE(h2.Samples("c").empty());
}

TEST(TrafficHistoryTest, NoRoutingYetMeansNoSample) {
  TrafficHistory h;
  h.Watch("svc", kT0);
  h.Sample(
      kT0, [](const std::string&) -> std::optional<v1::ServiceEndpoints> { return std::nullopt; },
      [](const std::string&) { return true; });
  EXPECT_TRUE(h.Samples("svc").empty());
  EXPECT_EQ(h.watched(), 1u);
}

}  // namespace
}  // namespace warren::ui
