// The analysis module (src/manager/analysis/): histograms, counters, windows and verdicts as
// pure functions over plain inputs, table-driven.
#include <deque>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "gtest/gtest.h"
#include "manager/analysis/counters.h"
#include "manager/analysis/deployment.h"
#include "manager/analysis/histogram.h"
#include "manager/analysis/verdict.h"
#include "manager/analysis/window.h"

namespace warren::analysis {
namespace {

const std::vector<double> kBounds = {0.001, 0.01, 0.1, 1};

Histogram H(std::vector<uint64_t> counts) { return {kBounds, std::move(counts)}; }

// Requests and 5xx, with every request in bucket `bucket` of kBounds.
Counters C(uint64_t requests, uint64_t errors = 0, size_t bucket = 1) {
  Counters c;
  c.requests = requests;
  c.responses_5xx = errors;
  c.responses_2xx = requests - errors;
  c.latency_count = requests;
  c.latency = H({0, 0, 0, 0, 0});
  c.latency.counts[bucket] = requests;
  return c;
}

TEST(HistogramTest, Quantiles) {
  struct Case {
    std::string name;
    Histogram h;
    double q;
    double want;
  };
  const std::vector<Case> cases = {
      {"empty", H({0, 0, 0, 0, 0}), 0.99, 0},
      {"no histogram", {}, 0.99, 0},
      {"all in the first bucket", H({100, 0, 0, 0, 0}), 0.99, 0.00099},
      {"interpolated in the second bucket", H({0, 100, 0, 0, 0}), 0.5, 0.0055},
      {"1 % slow does not move the p99", H({0, 99, 0, 1, 0}), 0.99, 0.01},
      {"2 % slow does", H({0, 98, 0, 2, 0}), 0.99, 0.55},
      {"above every bound is reported at the last", H({0, 0, 0, 0, 10}), 0.99, 1},
  };
  for (const auto& c : cases) EXPECT_NEAR(Quantile(c.h, c.q), c.want, 1e-9) << c.name;
}

TEST(HistogramTest, MergeAndSubtract) {
  Histogram a = H({1, 2, 3, 4, 5});
  MergeInto(&a, H({1, 1, 1, 1, 1}));
  EXPECT_EQ(a, H({2, 3, 4, 5, 6}));
  Histogram empty;
  MergeInto(&empty, a);
  EXPECT_EQ(empty, a) << "an empty histogram takes the other's bounds";
  // Other bounds: each bucket goes to the first bound at or above its own, never lower.
  Histogram other{{0.005, 0.05, 2}, {10, 20, 30, 40}};
  Histogram merged = H({0, 0, 0, 0, 0});
  MergeInto(&merged, other);
  EXPECT_EQ(merged, H({0, 10, 20, 0, 70}));

  EXPECT_EQ(*Subtract(H({3, 3, 3, 3, 3}), H({1, 2, 3, 0, 0})), H({2, 1, 0, 3, 3}));
  EXPECT_EQ(*Subtract(H({3, 3, 3, 3, 3}), Histogram{}), H({3, 3, 3, 3, 3}));
  EXPECT_FALSE(Subtract(H({3, 3, 3, 3, 3}), H({4, 0, 0, 0, 0}))) << "a bucket went down";
  EXPECT_FALSE(Subtract(H({3, 3, 3, 3, 3}), other)) << "other bounds";
}

TEST(CountersTest, GrowthDetectsCountersThatStartedAgain) {
  struct Case {
    std::string name;
    Counters later, earlier;
    bool restarted;
  };
  Counters fewer_buckets = C(10, 0, 1);
  fewer_buckets.latency.counts[1] = 5;  // a bucket went down while the totals grew
  const std::vector<Case> cases = {
      {"grew", C(10, 2), C(4, 1), false},
      {"unchanged", C(4, 1), C(4, 1), false},
      {"requests went down", C(3), C(4), true},
      {"errors went down", C(10, 0), C(4, 1), true},
      {"a latency bucket went down", fewer_buckets, C(8, 0, 2), true},
  };
  for (const auto& c : cases) {
    auto g = Growth(c.later, c.earlier);
    EXPECT_EQ(!g.has_value(), c.restarted) << c.name;
    Counters got = GrowthOrRestart(c.later, c.earlier);
    EXPECT_EQ(got.requests, c.restarted ? c.later.requests : c.later.requests - c.earlier.requests)
        << c.name;
  }
  Counters g = *Growth(C(10, 2, 3), C(4, 1, 3));
  EXPECT_EQ(g.requests, 6u);
  EXPECT_EQ(g.responses_5xx, 1u);
  EXPECT_EQ(g.latency, H({0, 0, 0, 6, 0}));
  EXPECT_DOUBLE_EQ(ErrorRate(g), 100.0 / 6);
}

TEST(CountersTest, ProtoRoundTripWithReportBounds) {
  v1::RevisionTraffic t = ToProto(7, C(100, 3, 2));
  EXPECT_GT(t.latency_p99_seconds(), 0.01);
  EXPECT_EQ(FromProto(t), C(100, 3, 2));
  // A report sends the bounds once: buckets alone take them from there.
  t.clear_latency_bounds_seconds();
  EXPECT_EQ(FromProto(t, kBounds), C(100, 3, 2));
  // Buckets that do not fit the bounds are dropped, not misread.
  EXPECT_TRUE(FromProto(t, {0.5}).latency.counts.empty());
}

// --- verdicts ----------------------------------------------------------------------------------

Thresholds Defaults() {
  Thresholds t;
  t.min_requests = 50;
  return t;
}

TEST(JudgeTest, Table) {
  struct Case {
    std::string name;
    Thresholds t;
    WindowInput in;
    Decision want;
    // (check, state) that must appear.
    std::vector<std::pair<std::string, CheckState>> checks;
    std::string reason_has = "";
  };
  Thresholds latency = Defaults();
  latency.max_latency = absl::Milliseconds(50);
  Thresholds relative = Defaults();
  relative.max_error_rate_increase = 2;
  Thresholds thin_pass = Defaults();
  thin_pass.thin_traffic = ThinTraffic::kPass;
  Thresholds thin_fail = Defaults();
  thin_fail.thin_traffic = ThinTraffic::kFail;
  Thresholds query = Defaults();
  query.query = "errors";
  query.query_threshold = 1;
  Counters slow = C(100, 0, 3);
  const std::vector<Case> cases = {
      {"waiting for traffic is no failure",
       Defaults(),
       {.candidate = C(10, 9)},
       Decision::kObserve,
       {{"requests", CheckState::kWaiting}}},
      {"an error rate over the threshold fails before the window ends",
       Defaults(),
       {.candidate = C(100, 30)},
       Decision::kFail,
       {{"requests", CheckState::kPassed}, {"error_rate", CheckState::kFailed}},
       "error_rate 30 exceeds 10"},
      {"healthy traffic passes at the window's end",
       Defaults(),
       {.candidate = C(100, 5), .window_over = true},
       Decision::kPass,
       {{"error_rate", CheckState::kPassed}}},
      {"healthy traffic before the window's end keeps observing",
       Defaults(),
       {.candidate = C(100, 5)},
       Decision::kObserve,
       {{"error_rate", CheckState::kPassed}}},
      {"thin traffic extends the window",
       Defaults(),
       {.candidate = C(10), .window_over = true},
       Decision::kObserve,
       {{"requests", CheckState::kWaiting}}},
      {"thin traffic passes under pass",
       thin_pass,
       {.candidate = C(10), .window_over = true},
       Decision::kPass,
       {{"requests", CheckState::kWaiting}}},
      {"thin traffic fails under fail",
       thin_fail,
       {.candidate = C(10), .window_over = true},
       Decision::kFail,
       {{"requests", CheckState::kWaiting}},
       "only 10 requests in the window (min 50)"},
      {"a stable that fails too excuses the canary",
       relative,
       {.candidate = C(100, 9), .stable = C(1000, 80), .window_over = true},
       Decision::kPass,
       {{"error_rate_increase", CheckState::kPassed}}},
      {"an increase over stable fails",
       relative,
       {.candidate = C(100, 9), .stable = C(1000, 10)},
       Decision::kFail,
       {{"error_rate", CheckState::kPassed}, {"error_rate_increase", CheckState::kFailed}},
       "error_rate_increase 8 exceeds 2"},
      {"a fast window passes the latency check",
       latency,
       {.candidate = C(100, 0, 1), .window_over = true},
       Decision::kPass,
       {{"latency_p99", CheckState::kPassed}}},
      {"a slow window fails it",
       latency,
       {.candidate = slow},
       Decision::kFail,
       {{"latency_p99", CheckState::kFailed}},
       "latency_p99 0.991 exceeds 0.05"},
      {"no latency observations keep it waiting",
       latency,
       {.candidate = Counters{.requests = 100, .responses_2xx = 100}, .window_over = true},
       Decision::kObserve,
       {{"latency_p99", CheckState::kWaiting}}},
      {"a pending query waits at the window's end",
       query,
       {.candidate = C(100), .window_over = true, .query = QueryOutcome::Pending()},
       Decision::kObserve,
       {{"query", CheckState::kWaiting}}},
      {"a query under its threshold passes",
       query,
       {.candidate = C(100), .window_over = true, .query = QueryOutcome::Value(0.5)},
       Decision::kPass,
       {{"query", CheckState::kPassed}}},
      {"a query over its threshold fails",
       query,
       {.candidate = C(100), .window_over = true, .query = QueryOutcome::Value(5)},
       Decision::kFail,
       {{"query", CheckState::kFailed}},
       "query 5 exceeds 1: errors"},
      {"a query that cannot run fails",
       query,
       {.candidate = C(100),
        .window_over = true,
        .query = QueryOutcome::Error("no --prometheus-url configured")},
       Decision::kFail,
       {{"query", CheckState::kFailed}},
       "query could not run: no --prometheus-url"},
      {"without traffic checks the query alone decides: pending",
       query,
       {.candidate = C(100, 100), .traffic_checks = false, .query = QueryOutcome::Pending()},
       Decision::kObserve,
       {{"query", CheckState::kWaiting}}},
      {"without traffic checks the query alone decides: under its threshold",
       query,
       {.candidate = C(100, 100), .traffic_checks = false, .query = QueryOutcome::Value(0.5)},
       Decision::kPass,
       {{"query", CheckState::kPassed}}},
      {"without traffic checks the query alone decides: over it",
       query,
       {.traffic_checks = false, .query = QueryOutcome::Value(5)},
       Decision::kFail,
       {{"query", CheckState::kFailed}},
       "query 5 exceeds 1: errors"},
      {"without traffic checks and without a query there is nothing to wait for",
       Defaults(),
       {.candidate = C(0), .traffic_checks = false},
       Decision::kPass,
       {}},
      {"the query is not asked before the window's end",
       query,
       {.candidate = C(100), .query = QueryOutcome::Value(5)},
       Decision::kObserve,
       {}},
  };
  for (const auto& c : cases) {
    Verdict v = Judge(c.t, c.in);
    EXPECT_EQ(v.decision, c.want) << c.name << ": " << v.reason;
    for (const auto& [check, state] : c.checks) {
      bool found = false;
      for (const auto& r : v.checks) {
        if (r.check != check) continue;
        found = true;
        EXPECT_EQ(r.state, state) << c.name << ": " << check << ": " << r.detail;
      }
      EXPECT_TRUE(found) << c.name << ": no " << check << " check";
    }
    if (!c.reason_has.empty()) {
      EXPECT_NE(v.reason.find(c.reason_has), std::string::npos) << c.name << ": " << v.reason;
      EXPECT_EQ(v.rollback_reason,
                c.reason_has.starts_with("latency_p99") ? "latency" : "error_rate")
          << c.name;
    }
    if (!c.in.traffic_checks) {
      for (const auto& r : v.checks) EXPECT_EQ(r.check, "query") << c.name;
    }
    if (!c.in.window_over && c.in.traffic_checks) {
      for (const auto& r : v.checks) EXPECT_NE(r.check, "query") << c.name;
    }
  }
}

TEST(JudgeTest, WaitingIsItsOwnStateInTheStoredResults) {
  Verdict v = Judge(Defaults(), {.candidate = C(10)});
  const absl::Time now = absl::FromUnixSeconds(1000);
  std::vector<v1::AnalysisResult> r = ToProto(v.checks, now);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].state(), v1::ANALYSIS_STATE_WAITING);
  EXPECT_FALSE(r[0].passed());
  EXPECT_EQ(r[0].detail(), "waiting for traffic: 10 of 50 requests");
  EXPECT_EQ(FromProtoTime(r[0].time()), now);
}

TEST(JudgeTest, ThresholdsFromConfigFillDefaults) {
  v1::UpdateConfig c;
  Thresholds t = ThresholdsFrom(c);
  EXPECT_EQ(t.failure_threshold, 10);
  EXPECT_EQ(t.min_requests, 50);
  EXPECT_FALSE(t.max_error_rate_increase);
  EXPECT_EQ(t.max_latency, absl::ZeroDuration());
  EXPECT_EQ(t.thin_traffic, ThinTraffic::kExtend);
  c.set_failure_threshold(5);
  c.set_min_requests(7);
  c.set_max_error_rate_increase(1.5);
  *c.mutable_max_latency() = ToProtoDuration(absl::Milliseconds(300));
  c.set_thin_traffic("fail");
  c.set_analysis_query("q");
  c.set_analysis_threshold(2);
  t = ThresholdsFrom(c);
  EXPECT_EQ(t.failure_threshold, 5);
  EXPECT_EQ(t.min_requests, 7);
  EXPECT_EQ(*t.max_error_rate_increase, 1.5);
  EXPECT_EQ(t.max_latency, absl::Milliseconds(300));
  EXPECT_EQ(t.thin_traffic, ThinTraffic::kFail);
  EXPECT_EQ(t.query, "q");
  EXPECT_EQ(t.query_threshold, 2);
}

// --- windows -----------------------------------------------------------------------------------

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

NodeCounters Node(uint64_t instance, RevisionCounters latest, RevisionCounters first = {}) {
  return {.instance = instance, .latest = std::move(latest), .first = std::move(first)};
}

TEST(WindowTest, TrafficIsWhatEveryNodeCountedSinceTheWindowOpened) {
  TrafficSnapshot s;
  s.nodes["a"] = Node(1, {{2, C(100, 1)}, {1, C(500)}});
  s.nodes["b"] = Node(7, {{2, C(40)}});
  v1::AnalysisWindow w = OpenWindow(kT0, s, {1, 2});
  EXPECT_EQ(WindowTraffic(w, s)[2].requests, 0u) << "what came before the window is not in it";
  s.nodes["a"].latest[2] = C(160, 11);
  s.nodes["b"].latest[2] = C(70);
  RevisionCounters t = WindowTraffic(w, s);
  EXPECT_EQ(t[2].requests, 90u);
  EXPECT_EQ(t[2].responses_5xx, 10u);
  EXPECT_EQ(t[1].requests, 0u);
  EXPECT_EQ(t.count(3), 0u) << "only the window's revisions";
  // A checkpoint changes nothing about the figure, only where it is kept.
  Checkpoint(&w, s, kT0 + absl::Seconds(5));
  EXPECT_EQ(WindowTraffic(w, s)[2].requests, 90u);
  EXPECT_EQ(FromProtoTime(w.checkpoint_at()), kT0 + absl::Seconds(5));
  s.nodes["a"].latest[2] = C(200, 11);
  EXPECT_EQ(WindowTraffic(w, s)[2].requests, 130u);
}

TEST(WindowTest, SurvivesRestartsOfTheManagerAndOfTheProxies) {
  struct Case {
    std::string name;
    // The snapshot a restarted manager has (node "a" had counted 1000 at the checkpoint, of
    // which 300 in the window).
    TrafficSnapshot after;
    uint64_t want;
  };
  auto snap = [](std::map<std::string, NodeCounters> nodes) {
    TrafficSnapshot s;
    s.nodes = std::move(nodes);
    return s;
  };
  const std::vector<Case> cases = {
      {"no report yet: the checkpoint alone", snap({}), 300},
      {"the proxies kept counting (separate worker)", snap({{"a", Node(1, {{2, C(1100)}})}}), 400},
      {"the proxy restarted too (hybrid): counts from 0", snap({{"a", Node(2, {{2, C(50)}})}}),
       350},
      {"same instance but counters went down: counted again", snap({{"a", Node(1, {{2, C(20)}})}}),
       320},
      {"a node the checkpoint does not know counts from its first report",
       snap({{"b", Node(1, {{2, C(5000)}}, {{2, C(4990)}})}}), 310},
  };
  TrafficSnapshot before;
  before.nodes["a"] = Node(1, {{2, C(700)}});
  for (const auto& c : cases) {
    v1::AnalysisWindow w = OpenWindow(kT0, before, {2});
    TrafficSnapshot at_checkpoint;
    at_checkpoint.nodes["a"] = Node(1, {{2, C(1000)}});
    Checkpoint(&w, at_checkpoint, kT0 + absl::Seconds(30));
    // The stored form is all a restarted manager has.
    v1::AnalysisWindow stored;
    ASSERT_TRUE(stored.ParseFromString(w.SerializeAsString()));
    EXPECT_EQ(WindowTraffic(stored, c.after)[2].requests, c.want) << c.name;
    // And a checkpoint taken by the restarted manager keeps node "a" even when it has not
    // reported yet.
    Checkpoint(&stored, c.after, kT0 + absl::Seconds(40));
    EXPECT_EQ(WindowTraffic(stored, c.after)[2].requests, c.want) << c.name;
    bool has_a = false;
    for (const auto& n : stored.nodes()) has_a |= n.node_id() == "a";
    EXPECT_TRUE(has_a) << c.name;
  }
}

TEST(WindowTest, LatencyOfTheWindowMergesNodesByBucket) {
  TrafficSnapshot s;
  // Node b served 50 slow requests before the window: they are not the window's.
  s.nodes["a"] = Node(1, {{2, C(0)}});
  s.nodes["b"] = Node(1, {{2, C(50, 0, 4)}});
  v1::AnalysisWindow w = OpenWindow(kT0, s, {2});
  Counters a = C(1000, 0, 1);
  Counters b = C(50, 0, 4);
  b.requests += 5;
  b.latency.counts[4] += 5;  // 5 slow in the window, against 1000 fast on node a
  s.nodes["a"].latest[2] = a;
  s.nodes["b"].latest[2] = b;
  Counters t = WindowTraffic(w, s)[2];
  EXPECT_EQ(t.latency.Total(), 1005u);
  EXPECT_LT(LatencyP99(t), 0.01) << "0.5 % slow requests do not make the p99";
  // Taking the worst node's p99 (the old way) would have said over a second.
  EXPECT_GE(LatencyP99(*Growth(b, C(50, 0, 4))), 1.0);
}

TEST(WindowTest, SyncOpensChecksPointsAndCloses) {
  TrafficSnapshot s;
  s.nodes["a"] = Node(1, {{2, C(10)}});
  bool has = false;
  v1::AnalysisWindow w;
  EXPECT_FALSE(SyncWindow(std::nullopt, s, kT0, false, {1, 2}, &has, &w));
  EXPECT_TRUE(SyncWindow(kT0, s, kT0, false, {1, 2}, &has, &w)) << "opens";
  ASSERT_TRUE(has);
  EXPECT_EQ(FromProtoTime(w.started_at()), kT0);
  EXPECT_FALSE(SyncWindow(kT0, s, kT0 + absl::Seconds(1), true, {1, 2}, &has, &w))
      << "nothing counted: no write";
  s.nodes["a"].latest[2] = C(20);
  EXPECT_FALSE(SyncWindow(kT0, s, kT0 + absl::Milliseconds(500), true, {1, 2}, &has, &w))
      << "at most once a second";
  EXPECT_FALSE(SyncWindow(kT0, s, kT0 + absl::Seconds(2), false, {1, 2}, &has, &w))
      << "on its own only every kCheckpointPeriod";
  EXPECT_TRUE(SyncWindow(kT0, s, kT0 + absl::Seconds(2), true, {1, 2}, &has, &w))
      << "rides along with a write";
  EXPECT_EQ(w.seen(1).requests(), 10u);
  s.nodes["a"].latest[2] = C(25);
  EXPECT_TRUE(
      SyncWindow(kT0, s, kT0 + absl::Seconds(2) + kCheckpointPeriod, false, {1, 2}, &has, &w));
  EXPECT_EQ(w.seen(1).requests(), 15u);
  const absl::Time next_step = kT0 + absl::Seconds(20);
  EXPECT_TRUE(SyncWindow(next_step, s, next_step, false, {1, 2}, &has, &w)) << "a new window";
  EXPECT_EQ(w.seen(1).requests(), 0u);
  EXPECT_TRUE(SyncWindow(std::nullopt, s, next_step, false, {1, 2}, &has, &w)) << "closes";
  EXPECT_FALSE(has);
}

TEST(WindowTest, SamplesGiveSlidingWindowsInBoundedMemory) {
  std::deque<Sample> samples;
  Counters total;
  // Ten nodes report every second for 20 minutes: 100 requests each.
  for (int s = 0; s < 1200; ++s) {
    for (int n = 0; n < 10; ++n) {
      const absl::Time t = kT0 + absl::Seconds(s) + absl::Milliseconds(n * 100);
      Add(&total, C(100));
      samples.push_back({t, {{2, total}}});
      ThinSamples(&samples, t, absl::Minutes(10));
    }
  }
  EXPECT_LT(samples.size(), 200u);
  EXPECT_GE(samples.size(), 150u);
  const absl::Time now = samples.back().time;
  EXPECT_GE(now - samples.front().time, absl::Minutes(9));
  // The last minute holds about 60 x 10 reports of 100.
  const uint64_t minute = GrowthSince(samples, now - absl::Minutes(1), {{2, total}})[2].requests;
  EXPECT_NEAR(static_cast<double>(minute), 60000, 1000);
  // Older windows are as exact as the 10 s spacing.
  const uint64_t five = GrowthSince(samples, now - absl::Minutes(5), {{2, total}})[2].requests;
  EXPECT_NEAR(static_cast<double>(five), 300000, 10000);
  EXPECT_EQ(GrowthSince({}, now, {{2, total}})[2].requests, total.requests);
}

TEST(WindowTest, SlidingWindowNeverReachesBeforeItsFloor) {
  const absl::Time first_batch = kT0 + absl::Seconds(30);
  EXPECT_EQ(SlidingWindowStart(first_batch, kT0 + absl::Seconds(40), absl::Minutes(1)),
            first_batch);
  EXPECT_EQ(SlidingWindowStart(first_batch, kT0 + absl::Minutes(5), absl::Minutes(1)),
            kT0 + absl::Minutes(4));
}

// --- the deployment's window ---------------------------------------------------------------

v1::Deployment Dep(const std::string& strategy, v1::DeploymentPhase phase) {
  v1::Deployment d;
  d.set_strategy(strategy);
  d.set_phase(phase);
  d.set_from_revision(1);
  d.set_to_revision(2);
  *d.mutable_config()->mutable_canary_window() = ToProtoDuration(absl::Seconds(30));
  return d;
}

TEST(DeploymentWindowTest, WhichWindowRunsAndItsQueryStage) {
  v1::Deployment canary = Dep("canary", v1::DEPLOYMENT_PHASE_PROGRESSING);
  canary.set_step(1);
  v1::Deployment waiting_for_tasks = canary;  // the step's weight is not applied yet
  canary.set_weight(25);
  *canary.mutable_step_started_at() = ToProtoTime(kT0);
  v1::Deployment paused = canary;
  paused.set_phase(v1::DEPLOYMENT_PHASE_PAUSED);
  v1::Deployment rolling_back = canary;
  rolling_back.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
  v1::Deployment before_switch = Dep("blue-green", v1::DEPLOYMENT_PHASE_PROGRESSING);
  v1::Deployment switched = before_switch;
  switched.set_switched(true);
  *switched.mutable_switched_at() = ToProtoTime(kT0);
  v1::Deployment rolling = Dep("rolling", v1::DEPLOYMENT_PHASE_PROGRESSING);
  struct Case {
    std::string name;
    const v1::Deployment& d;
    absl::Time now;
    std::optional<absl::Time> want;
    std::string stage;
  };
  const absl::Time later = kT0 + absl::Seconds(10);
  const std::vector<Case> cases = {
      {"a canary step from its weight on", canary, later, kT0, "step 1"},
      {"a paused step keeps its window", paused, later, kT0, "step 1"},
      {"no window before the weight is applied", waiting_for_tasks, later, std::nullopt, "step 1"},
      {"none while rolling back", rolling_back, later, std::nullopt, "step 1"},
      {"blue/green before the switch", before_switch, later, std::nullopt, "pre-switch"},
      {"blue/green after it", switched, later, kT0, "post-switch"},
      {"until the window's end", switched, kT0 + absl::Seconds(30), std::nullopt, "post-switch"},
      {"rolling updates have none (yet)", rolling, later, std::nullopt, "rollout"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(WindowStart(c.d, c.now), c.want) << c.name;
    EXPECT_EQ(QueryStage(c.d), c.stage) << c.name;
  }
}

TEST(DeploymentWindowTest, KeptInTheDeploymentAndReadBackOnlyForItsOwnStart) {
  TrafficSnapshot s;
  s.nodes["a"] = Node(1, {{2, C(100)}});
  v1::Deployment d = Dep("canary", v1::DEPLOYMENT_PHASE_PROGRESSING);
  EXPECT_FALSE(SyncDeploymentWindow(&d, s, kT0, false)) << "no window runs";
  EXPECT_FALSE(d.has_analysis_window());
  d.set_weight(10);
  *d.mutable_step_started_at() = ToProtoTime(kT0);
  EXPECT_TRUE(SyncDeploymentWindow(&d, s, kT0, false));
  ASSERT_TRUE(d.has_analysis_window());
  s.nodes["a"].latest[2] = C(130, 3);
  auto t = StoredWindowTraffic(d, kT0, s);
  ASSERT_TRUE(t);
  EXPECT_EQ((*t)[2].requests, 30u);
  EXPECT_EQ((*t)[2].responses_5xx, 3u);
  EXPECT_FALSE(StoredWindowTraffic(d, kT0 + absl::Seconds(1), s)) << "another window";
  EXPECT_TRUE(SyncDeploymentWindow(&d, s, kT0 + kCheckpointPeriod, false)) << "a checkpoint";
  EXPECT_EQ(d.analysis_window().seen(1).requests(), 30u);
  d.set_phase(v1::DEPLOYMENT_PHASE_SUCCEEDED);
  EXPECT_TRUE(SyncDeploymentWindow(&d, s, kT0 + absl::Seconds(6), false)) << "dropped";
  EXPECT_FALSE(d.has_analysis_window());
  EXPECT_FALSE(StoredWindowTraffic(d, kT0, s));
}

}  // namespace
}  // namespace warren::analysis
