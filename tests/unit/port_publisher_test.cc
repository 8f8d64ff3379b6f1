// Published ports that another program holds (issue 11 D3): retried with backoff on the fake
// clock, logged once, reported until they listen.
#include "worker/port_publisher.h"

#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/http_server.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

class PortPublisherTest : public testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
    // "Another program" holding the port.
    auto holder = HttpServer::Start(
        "127.0.0.1:0", [](const HttpRequest&) { return HttpResponse::Text(200, "not warren\n"); });
    ASSERT_TRUE(holder.ok()) << holder.status();
    holder_ = std::move(*holder);
    port_ = holder_->port();
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }

  int LogLinesWith(const std::string& text) {
    spdlog::default_logger()->flush();
    int n = 0;
    for (absl::string_view l : absl::StrSplit(log_.str(), '\n')) n += absl::StrContains(l, text);
    return n;
  }

  v1::RoutingTable Table(uint64_t version) {
    v1::RoutingTable t;
    t.set_version(version);
    v1::ServiceRoute* r = t.add_services();
    r->set_service_id("s1");
    r->set_name("web");
    v1::Port* p = r->add_ports();
    p->set_target(8080);
    p->set_published(port_);
    p->set_host_ip("127.0.0.1");
    p->set_protocol("tcp");
    return t;
  }

  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream log_;
  std::unique_ptr<HttpServer> holder_;
  int port_ = 0;
  FakeClock clock_;
};

TEST_F(PortPublisherTest, TakenPortIsRetriedWithBackoffLoggedOnceAndReportedUntilItListens) {
  ProxyManager proxies;
  PortPublisher publisher(proxies, clock_, {absl::Seconds(1), absl::Seconds(8)});
  const uint64_t g0 = publisher.generation();
  publisher.Apply(Table(1));
  std::vector<v1::PublishError> f = publisher.Failures();
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].service_name(), "web");
  EXPECT_EQ(f[0].port(), port_);
  EXPECT_EQ(f[0].host_ip(), "127.0.0.1");
  EXPECT_THAT(f[0].error(), testing::HasSubstr("in use"));
  EXPECT_EQ(f[0].attempts(), 1);
  EXPECT_NE(publisher.generation(), g0);
  const uint64_t g1 = publisher.generation();

  // New tables (routing churn) while the port waits for its retry do not bind it again.
  for (uint64_t v = 2; v < 20; ++v) publisher.Apply(Table(v));
  EXPECT_FALSE(publisher.RetryIfDue());
  EXPECT_EQ(publisher.Failures()[0].attempts(), 1);

  // Retries after 1 s, 2 s, 4 s, 8 s, 8 s: still taken, still one warning.
  int attempts = 1;
  for (absl::Duration wait :
       {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4), absl::Seconds(8), absl::Seconds(8)}) {
    clock_.Advance(wait - absl::Milliseconds(1));
    EXPECT_FALSE(publisher.RetryIfDue()) << "retried before " << wait;
    clock_.Advance(absl::Milliseconds(1));
    EXPECT_TRUE(publisher.RetryIfDue());
    EXPECT_EQ(publisher.Failures()[0].attempts(), ++attempts);
  }
  EXPECT_EQ(publisher.generation(), g1);  // same failure: nothing new to report
  EXPECT_EQ(LogLinesWith("cannot publish"), 1);

  // The other program goes away: the next retry binds the port.
  holder_->Stop();
  holder_.reset();
  clock_.Advance(absl::Seconds(8));
  EXPECT_TRUE(publisher.RetryIfDue());
  EXPECT_TRUE(publisher.Failures().empty());
  EXPECT_NE(publisher.generation(), g1);
  EXPECT_EQ(proxies.BoundPort("s1", port_), port_);
  EXPECT_EQ(LogLinesWith("published after 6 failed attempts"), 1);
  proxies.Stop();
}

TEST_F(PortPublisherTest, FailureOfAPortNoLongerPublishedIsDropped) {
  ProxyManager proxies;
  PortPublisher publisher(proxies, clock_);
  publisher.Apply(Table(1));
  ASSERT_EQ(publisher.Failures().size(), 1u);
  v1::RoutingTable empty;
  empty.set_version(2);
  publisher.Apply(empty);
  EXPECT_TRUE(publisher.Failures().empty());
  EXPECT_EQ(LogLinesWith("published after"), 0);
  proxies.Stop();
}

}  // namespace
}  // namespace warren
