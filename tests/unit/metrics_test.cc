#include "http/metrics.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_http_client.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CounterWithLabelsAndEscaping) {
  Registry r;
  auto& family =
      r.AddCounter("warren_requests_total", "Requests.\nBy code \\ path.", {"code", "path"});
  family.WithLabels({"200", "/a"}).Inc();
  family.WithLabels({"200", "/a"}).Inc(2);
  family.WithLabels({"500", "say \"hi\"\\\n"}).Inc(0.5);
  family.WithLabels({"500", "/b"}).Inc(-3);  // ignored: counters only go up
  EXPECT_EQ(r.Render(),
            "# HELP warren_requests_total Requests.\\nBy code \\\\ path.\n"
            "# TYPE warren_requests_total counter\n"
            "warren_requests_total{code=\"200\",path=\"/a\"} 3\n"
            "warren_requests_total{code=\"500\",path=\"/b\"} 0\n"
            "warren_requests_total{code=\"500\",path=\"say \\\"hi\\\"\\\\\\n\"} 0.5\n");
}

TEST(MetricsTest, GaugeSetIncDecAndUnlabeledDefaultsToZero) {
  Registry r;
  auto& g = r.AddGauge("warren_tasks", "Tasks.");
  EXPECT_EQ(r.Render(), "# HELP warren_tasks Tasks.\n# TYPE warren_tasks gauge\nwarren_tasks 0\n");
  Gauge& child = g.WithLabels({});
  child.Set(10);
  child.Inc();
  child.Dec(2.5);
  EXPECT_DOUBLE_EQ(child.Value(), 8.5);
  EXPECT_EQ(r.Render(),
            "# HELP warren_tasks Tasks.\n# TYPE warren_tasks gauge\nwarren_tasks 8.5\n");
  child.Set(-std::numeric_limits<double>::infinity());
  EXPECT_THAT(r.Render(), HasSubstr("warren_tasks -Inf\n"));
  child.Set(std::nan(""));
  EXPECT_THAT(r.Render(), HasSubstr("warren_tasks NaN\n"));
}

TEST(MetricsTest, HistogramBucketsSumCount) {
  Registry r;
  auto& h = r.AddHistogram("warren_latency_seconds", "Latency.", {"rev"}, {0.1, 0.5, 1});
  Histogram& one = h.WithLabels({"1"});
  one.Observe(0.05);
  one.Observe(0.1);  // bounds are inclusive
  one.Observe(0.7);
  one.Observe(3);
  EXPECT_EQ(r.Render(),
            "# HELP warren_latency_seconds Latency.\n"
            "# TYPE warren_latency_seconds histogram\n"
            "warren_latency_seconds_bucket{rev=\"1\",le=\"0.1\"} 2\n"
            "warren_latency_seconds_bucket{rev=\"1\",le=\"0.5\"} 2\n"
            "warren_latency_seconds_bucket{rev=\"1\",le=\"1\"} 3\n"
            "warren_latency_seconds_bucket{rev=\"1\",le=\"+Inf\"} 4\n"
            "warren_latency_seconds_sum{rev=\"1\"} 3.85\n"
            "warren_latency_seconds_count{rev=\"1\"} 4\n");
}

TEST(MetricsTest, UnlabeledHistogramAndDefaultBuckets) {
  Registry r;
  r.AddHistogram("h", "H.", {});
  std::string out = r.Render();
  EXPECT_THAT(out, HasSubstr("h_bucket{le=\"0.005\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("h_bucket{le=\"10\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"));
}

TEST(MetricsTest, FamiliesSortedAndEmptyLabeledFamiliesOmitted) {
  Registry r;
  r.AddCounter("b_total", "B.");
  r.AddGauge("a", "A.");
  r.AddCounter("c_total", "C.", {"x"});  // no child yet: nothing to export
  EXPECT_EQ(r.Render(),
            "# HELP a A.\n# TYPE a gauge\na 0\n"
            "# HELP b_total B.\n# TYPE b_total counter\nb_total 0\n");
}

TEST(MetricsTest, ReRegisteringReturnsTheSameFamily) {
  Registry r;
  auto& a = r.AddCounter("x_total", "X.", {"k"});
  auto& b = r.AddCounter("x_total", "X.", {"k"});
  EXPECT_EQ(&a, &b);
  a.WithLabels({"v"}).Inc();
  EXPECT_EQ(b.WithLabels({"v"}).Value(), 1);
}

TEST(MetricsTest, RemoveChildAndFamily) {
  Registry r;
  auto& g = r.AddGauge("g", "G.", {"task"});
  g.WithLabels({"t1"}).Set(1);
  g.WithLabels({"t2"}).Set(2);
  g.Remove({"t1"});
  EXPECT_EQ(r.Render(), "# HELP g G.\n# TYPE g gauge\ng{task=\"t2\"} 2\n");
  r.Remove("g");
  EXPECT_EQ(r.Render(), "");
}

TEST(MetricsTest, CallbackGaugeEvaluatedAtScrape) {
  Registry r;
  double weight = 10;
  r.AddCallbackGauge("warren_canary_weight", "Weight.", {"service", "revision"}, [&] {
    return Registry::Samples{{{"web", "2"}, weight}, {{"web", "1"}, 100 - weight}};
  });
  EXPECT_EQ(r.Render(),
            "# HELP warren_canary_weight Weight.\n"
            "# TYPE warren_canary_weight gauge\n"
            "warren_canary_weight{service=\"web\",revision=\"1\"} 90\n"
            "warren_canary_weight{service=\"web\",revision=\"2\"} 10\n");
  weight = 25;
  EXPECT_THAT(r.Render(), HasSubstr("revision=\"2\"} 25\n"));
  // Registering again replaces the function (a restarted component).
  r.AddCallbackGauge("warren_canary_weight", "Weight.", {"service", "revision"},
                     [] { return Registry::Samples{}; });
  EXPECT_EQ(r.Render(), "");
}

TEST(MetricsTest, CallbackCounterAndBadSampleIsVisible) {
  Registry r;
  r.AddCallbackCounter("warren_proxy_requests_total", "Requests.", {"revision"}, [] {
    return Registry::Samples{{{"1"}, 7}, {{"1", "extra"}, 1}};
  });
  EXPECT_EQ(r.Render(),
            "# HELP warren_proxy_requests_total Requests.\n"
            "# TYPE warren_proxy_requests_total counter\n"
            "# warren: dropped a sample of warren_proxy_requests_total with 2 label values for 1 "
            "labels\n"
            "warren_proxy_requests_total{revision=\"1\"} 7\n");
}

TEST(MetricsTest, ConcurrentIncrementsAreNotLost) {
  Registry r;
  auto& c = r.AddCounter("n_total", "N.", {"t"});
  auto& h = r.AddHistogram("d", "D.", {}, {1});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.WithLabels({"x"}).Inc();
        h.WithLabels({}).Observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.WithLabels({"x"}).Value(), 40000);
  Histogram::Snapshot s = h.WithLabels({}).Get();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_EQ(s.sum, 20000);
}

TEST(MetricsDeathTest, ProgrammingErrorsAbortWithTheMetricName) {
  Registry r;
  r.AddCounter("dup_total", "D.", {"a"});
  EXPECT_DEATH(r.AddGauge("dup_total", "D.", {"a"}), "dup_total: already registered as a counter");
  EXPECT_DEATH(r.AddCounter("bad-name", "B."), "invalid metric name \"bad-name\"");
  EXPECT_DEATH(r.AddCounter("ok_total", "B.", {"__x"}), "ok_total: invalid label name");
  EXPECT_DEATH(r.AddHistogram("h", "H.", {"le"}), "h: invalid label name \"le\"");
  EXPECT_DEATH(r.AddHistogram("h2", "H.", {}, {1, 1}), "h2: histogram buckets");
  auto& f = r.AddCounter("two_total", "T.", {"a", "b"});
  EXPECT_DEATH(f.WithLabels({"x"}), "two_total: WithLabels got 1 values for labels \\[a,b\\]");
}

TEST(MetricsTest, HandlerServesMetricsHealthAndReadiness) {
  Registry r;
  r.AddCounter("hits_total", "Hits.").WithLabels({}).Inc(3);
  std::atomic<bool> ready{false};
  auto server = HttpServer::Start("127.0.0.1:0", MetricsHandler(r, [&] { return ready.load(); }));
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();

  auto metrics = test::HttpGet("127.0.0.1", port, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->Header("Content-Type"), kPrometheusContentType);
  EXPECT_EQ(metrics->body, "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total 3\n");

  auto health = test::HttpGet("127.0.0.1", port, "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok");

  auto not_ready = test::HttpGet("127.0.0.1", port, "/readyz");
  ASSERT_TRUE(not_ready.ok());
  EXPECT_EQ(not_ready->status, 503);
  ready = true;
  auto is_ready = test::HttpGet("127.0.0.1", port, "/readyz");
  ASSERT_TRUE(is_ready.ok());
  EXPECT_EQ(is_ready->status, 200);

  auto missing = test::HttpGet("127.0.0.1", port, "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  auto post = test::HttpDo("127.0.0.1", port, "POST", "/metrics");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST(MetricsTest, DefaultRegistryIsOneInstance) {
  EXPECT_EQ(&DefaultRegistry(), &DefaultRegistry());
}

}  // namespace
}  // namespace warren
