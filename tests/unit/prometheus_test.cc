#include "manager/prometheus.h"

#include <atomic>

#include "gtest/gtest.h"
#include "http/http_server.h"
#include "rollout_sim.h"

namespace warren {
namespace {

TEST(PrometheusTest, ParsesVectorAndScalarResults) {
  auto v = ParsePrometheusResponse(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.25"]}]}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_DOUBLE_EQ(*v, 0.25);
  auto s = ParsePrometheusResponse(
      R"({"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(*s, 7);
  EXPECT_EQ(
      ParsePrometheusResponse(R"({"status":"success","data":{"resultType":"vector","result":[]}})")
          .status()
          .code(),
      absl::StatusCode::kNotFound);
  EXPECT_FALSE(ParsePrometheusResponse(R"({"status":"error","error":"bad query"})").ok());
  EXPECT_FALSE(ParsePrometheusResponse("not json").ok());
}

// A Prometheus stand-in on loopback answering every query with `value`.
class FakePrometheus {
 public:
  explicit FakePrometheus(double value) : value_(value) {
    auto s = HttpServer::Start("127.0.0.1:0", [this](const HttpRequest& req) {
      last_query_ = req.QueryParam("query").value_or("");
      return HttpResponse::Text(
          200,
          absl::StrCat(
              R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,")",
              value_.load(), R"("]}]}})"));
    });
    EXPECT_TRUE(s.ok());
    server_ = std::move(*s);
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", server_->port()); }
  std::string last_query() const { return last_query_; }
  void set(double v) { value_ = v; }

 private:
  std::atomic<double> value_;
  std::string last_query_;
  std::unique_ptr<HttpServer> server_;
};

TEST(PrometheusTest, QueriesAServer) {
  FakePrometheus prom(0.5);
  auto v = QueryPrometheus(prom.url(), "sum(rate(errors[1m])) / 2", absl::Seconds(2));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_DOUBLE_EQ(*v, 0.5);
  EXPECT_EQ(prom.last_query(), "sum(rate(errors[1m])) / 2");
  EXPECT_FALSE(QueryPrometheus("ftp://x", "up", absl::Seconds(1)).ok());
  auto refused = QueryPrometheus("http://127.0.0.1:1", "up", absl::Seconds(1));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
}

TEST(PrometheusTest, CanaryQueryCheckGatesPromotion) {
  for (double value : {0.5, 5.0}) {
    FakePrometheus prom(value);
    sim::Sim sim;
    sim.SetPrometheusUrl(prom.url());
    v1::ServiceSpec spec = sim::CanaryWithQuery(2);
    sim.Create(spec);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Available() == 2; }));
    sim.traffic_gen = [](int64_t, int w) -> std::pair<int, int> { return {w / 5 + 1, 0}; };
    sim::ToV2(&spec);
    ASSERT_TRUE(sim.Update(spec).ok());
    const auto want =
        value < 1.0 ? v1::DEPLOYMENT_PHASE_SUCCEEDED : v1::DEPLOYMENT_PHASE_ROLLED_BACK;
    ASSERT_TRUE(sim.RunUntil([&] { return sim.Phase("web") == want; })) << value;
    if (value > 1.0) {
      EXPECT_NE(sim.Rollout("web")->reason().find("query 5 exceeds 1"), std::string::npos)
          << sim.Rollout("web")->reason();
    }
    EXPECT_EQ(prom.last_query(), "errors_ratio");
  }
}

}  // namespace
}  // namespace warren
