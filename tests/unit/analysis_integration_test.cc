// The analysis inside a manager (fake clock, simulated workers): windows that survive a
// manager restart, latency windows merged over nodes, Prometheus queries that never block the
// control loop, and blue kept as the proxies' fallback after a blue/green switch.
#include <deque>

#include "absl/strings/str_cat.h"
#include "http/http_server.h"
#include "rollout_sim.h"
#include "test_util.h"

namespace warren::sim {
namespace {

using testing_util::WaitFor;

std::optional<v1::AnalysisResult> Check(Sim& sim, const std::string& check) {
  auto d = sim.Rollout("web");
  if (!d) return std::nullopt;
  for (const auto& r : d->analysis()) {
    if (r.check() == check) return r;
  }
  return std::nullopt;
}

std::optional<v1::RevisionRoute> RouteOf(Sim& sim, int64_t revision) {
  const v1::RoutingTable table = sim.Routes();
  for (const auto& s : table.services()) {
    for (const auto& r : s.revisions()) {
      if (r.revision() == revision) return r;
    }
  }
  return std::nullopt;
}

TEST(BlueGreenFallbackTest, BlueStaysInTheRoutingTableAsFallbackAfterTheSwitch) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(2, "blue-green");
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 2; }));
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Live(2) == 2 && sim.Serving(2) == 2; }));
  if (!sim.Rollout("web")->switched()) {
    EXPECT_FALSE(RouteOf(sim, 1)->fallback()) << "before the switch blue takes the traffic";
  }
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->switched(); }));
  auto blue = RouteOf(sim, 1), green = RouteOf(sim, 2);
  ASSERT_TRUE(blue && green);
  EXPECT_EQ(blue->weight(), 0);
  EXPECT_TRUE(blue->fallback()) << "green's 5xx can be answered from blue";
  EXPECT_EQ(blue->endpoints_size(), 2);
  EXPECT_EQ(green->weight(), 100);
  EXPECT_FALSE(green->fallback());
  // Rolled back: green is no fallback for blue.
  v1::RollbackServiceRequest req;
  req.set_name_or_id("web");
  v1::Service out;
  ASSERT_TRUE(sim.api().RollbackService(nullptr, &req, &out).ok());
  EXPECT_EQ(RouteOf(sim, 1)->weight(), 100);
  EXPECT_FALSE(RouteOf(sim, 1)->fallback());
  if (auto g = RouteOf(sim, 2)) {
    EXPECT_FALSE(g->fallback());
  }
}

// A canary step had requests before the manager restarted; the restarted manager judges the
// step from them (separate worker: its proxies kept counting; hybrid: they restarted too and
// the window's checkpoint in the store holds what was seen).
class AnalysisRestartTest : public testing::TestWithParam<bool> {};

TEST_P(AnalysisRestartTest, JudgesTheRequestsSeenBeforeTheRestart) {
  const bool hybrid = GetParam();
  Sim sim;
  v1::ServiceSpec spec = Progressive(4, "canary");
  auto* uc = spec.mutable_update_config();
  uc->add_canary_steps(50);
  uc->add_canary_steps(100);
  *uc->mutable_canary_window() = ToProtoDuration(absl::Minutes(5));
  uc->set_min_requests(100);
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 4; }));
  int per_step = 20;
  sim.traffic_gen = [&](int64_t revision, int weight) -> std::pair<int, int> {
    if (weight == 0) return {0, 0};
    if (revision != 2) return {per_step, 0};
    return {per_step, per_step * 3 / 10};  // the canary fails 30 %
  };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 50; }));
  for (int i = 0; i < 4; ++i) sim.Step();  // 80 canary requests: too few to judge yet
  per_step = 0;
  // Hybrid mode loses what came after the last checkpoint; let one be written.
  for (int i = 0; i < 3; ++i) sim.Step();
  ASSERT_EQ(Check(sim, "requests")->value(), 80);
  // Not a failure (the state WAITING comes with the analysis module in the engine, phase 2).
  ASSERT_FALSE(Check(sim, "requests")->passed());

  sim.Restart(/*proxy_restarts=*/hybrid);
  for (int i = 0; i < 4; ++i) sim.Step();
  EXPECT_EQ(Check(sim, "requests")->value(), 80) << "the restarted manager forgot the window";
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PROGRESSING);
  // 20 more requests make 100: judged on all of them at once.
  per_step = 20;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") != v1::DEPLOYMENT_PHASE_PROGRESSING; }));
  auto d = *sim.Rollout("web");
  EXPECT_EQ(d.rollback_reason(), "error_rate");
  EXPECT_NE(d.reason().find("error_rate 30 exceeds 10: 30 5xx and 0 connect errors in 100"),
            std::string::npos)
      << d.reason();
}

INSTANTIATE_TEST_SUITE_P(Modes, AnalysisRestartTest, testing::Bool(),
                         [](const auto& info) { return info.param ? "hybrid" : "separate"; });

// Node 2's proxy saw slow canary requests before the step (not the window's) and a few slow
// ones in it; node 1 many fast ones. The window's p99 is that of all the window's requests:
// under the limit. (Taking the worst node's cumulative p99 failed this canary.)
TEST(LatencyWindowTest, P99IsOfTheWindowsRequestsMergedOverNodes) {
  Sim sim;
  v1::ServiceSpec spec = Progressive(4, "canary");
  auto* uc = spec.mutable_update_config();
  uc->add_canary_steps(50);
  uc->add_canary_steps(100);
  *uc->mutable_canary_window() = ToProtoDuration(absl::Seconds(5));
  *uc->mutable_max_latency() = ToProtoDuration(absl::Milliseconds(100));
  sim.Create(spec);
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 4; }));
  const std::string service_id = sim.Service("web").id();
  auto report_node2 = [&](uint64_t slow) {
    v1::TrafficStatsReport r;
    r.set_node_id("node-2");
    r.set_counters_instance(9);
    for (double b : {0.01, 0.1, 1.0, 5.0}) r.add_latency_bounds_seconds(b);
    auto* s = r.add_services();
    s->set_service_id(service_id);
    s->set_service("web");
    auto* t = s->add_revisions();
    t->set_revision(2);
    t->set_requests(slow);
    t->set_responses_2xx(slow);
    t->set_latency_count(slow);
    t->set_latency_sum_seconds(2.0 * slow);
    t->set_latency_p99_seconds(slow > 0 ? 2.0 : 0);  // what a proxy used to send
    for (uint64_t n : {0ul, 0ul, 0ul, slow, 0ul}) t->add_latency_buckets(n);
    sim.Report(r);
  };
  report_node2(50);
  sim.traffic_gen = [](int64_t, int weight) -> std::pair<int, int> { return {weight, 0}; };
  ToV2(&spec);
  ASSERT_TRUE(sim.Update(spec).ok());
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Rollout("web")->weight() == 50; }));
  double worst_p99 = 0;
  int steps = 0;
  ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") != v1::DEPLOYMENT_PHASE_PROGRESSING; },
                           400,
                           [&] {
                             if (++steps == 6)
                               report_node2(53);  // after 300 fast requests: 1 % of the window
                             if (auto c = Check(sim, "latency_p99"))
                               worst_p99 = std::max(worst_p99, c->value());
                           }));
  EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_SUCCEEDED) << sim.Rollout("web")->reason();
  EXPECT_GT(worst_p99, 0);
  EXPECT_LE(worst_p99, 0.1);
}

// A Prometheus that holds every answer until the test lets it go: while it holds, the
// control loop keeps making passes (they return; a pass that waited would still be inside
// the query) and shows the query check as waiting.
class HeldPrometheus {
 public:
  HeldPrometheus() {
    HttpServerOptions o;
    auto s = HttpServer::StartAsync(
        "127.0.0.1:0",
        [this](const HttpRequest&, HttpServer::Responder respond) {
          absl::MutexLock lock(&mu_);
          asked_++;
          if (value_) {
            respond(Answer(*value_));
          } else {
            held_.push_back(std::move(respond));
          }
        },
        o);
    EXPECT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  ~HeldPrometheus() { Release(0); }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", server_->port()); }
  int asked() const {
    absl::MutexLock lock(&mu_);
    return asked_;
  }
  int held() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }
  // Answers the held queries and every later one with `v`.
  void Release(double v) {
    absl::MutexLock lock(&mu_);
    if (!value_) value_ = v;
    for (auto& r : held_) r(Answer(*value_));
    held_.clear();
  }

 private:
  static HttpResponse Answer(double v) {
    return HttpResponse::Text(
        200, absl::StrCat(R"({"status":"success","data":{"resultType":"scalar","result":[1,")", v,
                          R"("]}})"));
  }
  mutable absl::Mutex mu_;
  int asked_ = 0;
  std::optional<double> value_;
  std::vector<HttpServer::Responder> held_;
  std::unique_ptr<HttpServer> server_;
};

TEST(QueryExecutorTest, TheControlLoopNeverWaitsForPrometheus) {
  for (double value : {0.5, 5.0}) {
    Sim sim;
    HeldPrometheus prom;  // after sim: answers what it holds before the manager goes
    sim.SetPrometheusUrl(prom.url(), absl::Seconds(60));
    v1::ServiceSpec spec = CanaryWithQuery(2);
    sim.Create(spec);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 2; }));
    sim.traffic_gen = [](int64_t, int w) -> std::pair<int, int> { return {w / 5 + 1, 0}; };
    ToV2(&spec);
    ASSERT_TRUE(sim.Update(spec).ok());
    ASSERT_TRUE(sim.RunUntil([&] {
      auto q = Check(sim, "query");
      return q && q->state() == v1::ANALYSIS_STATE_WAITING;
    }));
    ASSERT_TRUE(WaitFor([&] { return prom.held() == 1; }));
    for (int i = 0; i < 20; ++i) sim.Step();  // ten seconds of passes
    EXPECT_EQ(prom.held(), 1) << "every pass returned while the answer was still held";
    EXPECT_EQ(prom.asked(), 1) << "one query per step, not one per pass";
    EXPECT_EQ(sim.Phase("web"), v1::DEPLOYMENT_PHASE_PROGRESSING);
    EXPECT_EQ(sim.Rollout("web")->weight(), 50) << "the step waits for the query";
    EXPECT_EQ(Check(sim, "query")->state(), v1::ANALYSIS_STATE_WAITING);
    EXPECT_NE(Check(sim, "query")->detail().find("waiting for Prometheus"), std::string::npos);

    prom.Release(value);
    const auto want =
        value < 1.0 ? v1::DEPLOYMENT_PHASE_SUCCEEDED : v1::DEPLOYMENT_PHASE_ROLLED_BACK;
    ASSERT_TRUE(WaitFor([&] {
      sim.Step();
      return sim.Phase("web") == want;
    })) << value
        << ": " << v1::DeploymentPhase_Name(sim.Phase("web"));
    if (value > 1.0) {
      EXPECT_NE(sim.Rollout("web")->reason().find("query 5 exceeds 1"), std::string::npos)
          << sim.Rollout("web")->reason();
    } else {
      EXPECT_EQ(prom.asked(), 2) << "step 2 asked again: a step never reuses another's answer";
    }
  }
}

// --- TrafficStats ------------------------------------------------------------------------------

v1::TrafficStatsReport Report(const std::string& node, uint64_t instance, uint64_t fast,
                              uint64_t slow, uint64_t errors = 0) {
  v1::TrafficStatsReport r;
  r.set_node_id(node);
  r.set_counters_instance(instance);
  for (double b : {0.01, 0.1, 1.0}) r.add_latency_bounds_seconds(b);
  auto* s = r.add_services();
  s->set_service_id("svc");
  auto* t = s->add_revisions();
  t->set_revision(1);
  t->set_requests(fast + slow);
  t->set_responses_5xx(errors);
  t->set_responses_2xx(fast + slow - errors);
  t->set_latency_count(fast + slow);
  for (uint64_t n : {fast, 0ul, 0ul, slow}) t->add_latency_buckets(n);
  return r;
}

TEST(TrafficStatsTest, WindowsAndNodesMergeAsHistograms) {
  FakeClock clock;
  TrafficStats stats(clock);
  stats.Report(Report("a", 1, 0, 100));  // slow, long ago
  clock.Advance(absl::Minutes(2));
  stats.Report(Report("a", 1, 1000, 100));
  stats.Report(Report("b", 1, 0, 5));
  auto recent = stats.Recent("svc", absl::Minutes(1));
  // b's first report is what its proxy had counted before: it is in the totals, and the
  // window that began with it holds only a's new 1000 fast requests.
  EXPECT_EQ(recent[1].requests(), 1000u);
  EXPECT_LT(recent[1].latency_p99_seconds(), 0.01);
  clock.Advance(absl::Seconds(10));
  stats.Report(Report("b", 1, 0, 10));
  recent = stats.Recent("svc", absl::Minutes(1));
  EXPECT_EQ(recent[1].requests(), 1005u);
  EXPECT_LT(recent[1].latency_p99_seconds(), 0.01) << "0.5 % slow on another node";
  auto totals = stats.Totals("svc");
  EXPECT_EQ(totals[1].requests(), 1110u);
  EXPECT_GE(totals[1].latency_p99_seconds(), 1.0) << "110 of 1110 were slow";
}

TEST(TrafficStatsTest, CountersThatStartAgainAreNotLost) {
  FakeClock clock;
  TrafficStats stats(clock);
  stats.Report(Report("a", 1, 500, 0));
  clock.Advance(absl::Seconds(1));
  stats.Report(Report("a", 2, 30, 0));  // the worker restarted
  EXPECT_EQ(stats.Totals("svc")[1].requests(), 530u);
  clock.Advance(absl::Seconds(1));
  stats.Report(Report("a", 2, 10, 0));  // same run, the service's proxy was made again
  EXPECT_EQ(stats.Totals("svc")[1].requests(), 540u);
  clock.Advance(absl::Seconds(1));
  stats.Report(Report("a", 2, 600, 0));  // a new run that already counted past the old
  EXPECT_EQ(stats.Totals("svc")[1].requests(), 1130u);
  stats.Report(Report("a", 3, 600, 0));  // same numbers, new run: all new
  EXPECT_EQ(stats.Totals("svc")[1].requests(), 1730u);
  EXPECT_EQ(stats.Recent("svc", absl::Seconds(2))[1].requests(), 1200u);
  analysis::TrafficSnapshot s = stats.Snapshot("svc");
  ASSERT_EQ(s.nodes.count("a"), 1u);
  EXPECT_EQ(s.nodes["a"].instance, 3u);
  EXPECT_EQ(s.nodes["a"].latest[1].requests, 600u);
  EXPECT_TRUE(s.nodes["a"].first.empty()) << "a new run counted everything after this manager";
  EXPECT_TRUE(stats.Snapshot("other").nodes.empty());
}

}  // namespace
}  // namespace warren::sim
