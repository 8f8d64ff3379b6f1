#include "manager/prometheus.h"

#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "raw_socket.h"
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

// Beast throws std::length_error for a field of 64 KiB or more; out of the query's read it ended
// the manager. A trailer section is buffered whole, so it also grew without bound.
TEST(PrometheusTest, AnOversizedTrailerIsAnErrorNotACrash) {
  int port = 0;
  const int lfd = test::Listen("127.0.0.1", &port);
  std::thread server([lfd] {
    for (int i = 0; i < 2; ++i) {
      const int fd = test::AcceptWithin(lfd, absl::Seconds(10));
      if (fd < 0) return;
      std::string in;
      test::ReadUntil(fd, in, [](const std::string& b) { return b.find("\r\n\r\n") != b.npos; });
      const std::string body =
          R"({"status":"success","data":{"resultType":"scalar","result":[1,"7"]}})";
      test::SendAll(fd, absl::StrCat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                     absl::Hex(body.size()), "\r\n", body, "\r\n0\r\nX-Big: ",
                                     std::string(i == 0 ? 65535 : 2 << 20, 'a'), "\r\n\r\n"));
      std::string rest;
      test::ReadUntilClosed(fd, rest, absl::Seconds(10));
      close(fd);
    }
  });
  const std::string url = absl::StrCat("http://127.0.0.1:", port);
  for (int i = 0; i < 2; ++i) {
    auto v = QueryPrometheus(url, "up", absl::Seconds(5));
    EXPECT_EQ(v.status().code(), absl::StatusCode::kUnavailable) << i << ": " << v.status();
  }
  server.join();
  close(lfd);
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
