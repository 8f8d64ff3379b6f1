// The daemons' log flags: --log-level filters, --log-format json writes one parseable object per
// line, both formats stamp UTC RFC 3339 times, deployment transitions are logged at info.
#include "common/logging.h"

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <grpc/support/log.h>

#include "absl/strings/str_split.h"
#include "cli/cli.h"
#include "gmock/gmock.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "manager/deployment_log.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

// Routes the default logger into a string for the test; restores level and format after.
class LoggingTest : public testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  }
  void TearDown() override {
    ASSERT_TRUE(ConfigureLogging(LogOptions{}).ok());
    spdlog::set_default_logger(previous_);
  }
  std::vector<std::string> Lines() {
    spdlog::default_logger()->flush();
    std::vector<std::string> out;
    for (absl::string_view l : absl::StrSplit(out_.str(), '\n', absl::SkipEmpty())) {
      out.emplace_back(l);
    }
    return out;
  }

  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream out_;
};

const std::regex kRfc3339Utc(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");

TEST_F(LoggingTest, JsonLinesParseAndLevelsFilter) {
  ASSERT_TRUE(ConfigureLogging({.level = "warn", .format = "json"}).ok());
  spdlog::debug("not shown");
  spdlog::info("not shown either");
  spdlog::warn("disk {} is \"almost\" full\nsecond line", "/var");
  LogWithFields(spdlog::level::err, "rollout failed", {{"service", "web"}, {"deployment", "d2"}});
  LogWithFields(spdlog::level::info, "filtered with fields", {{"service", "web"}});

  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  nlohmann::json warn = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(warn["level"], "warn");
  EXPECT_EQ(warn["msg"], "disk /var is \"almost\" full\nsecond line");
  EXPECT_TRUE(std::regex_match(warn["time"].get<std::string>(), kRfc3339Utc)) << warn["time"];
  EXPECT_FALSE(warn.contains("service"));
  // time, level, msg first: a reader sees the essentials at the start of each line.
  EXPECT_EQ(lines[0].rfind("{\"time\":", 0), 0u) << lines[0];

  nlohmann::json err = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(err["level"], "error");
  EXPECT_EQ(err["msg"], "rollout failed");
  EXPECT_EQ(err["service"], "web");
  EXPECT_EQ(err["deployment"], "d2");
}

TEST_F(LoggingTest, EveryLevelHasItsName) {
  ASSERT_TRUE(ConfigureLogging({.level = "trace", .format = "json"}).ok());
  spdlog::trace("t");
  spdlog::debug("d");
  spdlog::info("i");
  spdlog::warn("w");
  spdlog::error("e");
  std::vector<std::string> levels;
  for (const std::string& l : Lines()) levels.push_back(nlohmann::json::parse(l)["level"]);
  EXPECT_THAT(levels, testing::ElementsAre("trace", "debug", "info", "warn", "error"));
}

TEST_F(LoggingTest, TextHasUtcTimeLevelAndFields) {
  ASSERT_TRUE(ConfigureLogging({.level = "info", .format = "text"}).ok());
  spdlog::debug("hidden");
  LogWithFields(spdlog::level::info, "deployment started",
                {{"service", "web"}, {"reason", "two words"}});
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  const std::regex line(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info +deployment started service=web reason="two words")");
  EXPECT_TRUE(std::regex_match(lines[0], line)) << lines[0];
}

TEST_F(LoggingTest, InvalidJsonTextIsReplacedNotDropped) {
  ASSERT_TRUE(ConfigureLogging({.level = "info", .format = "json"}).ok());
  spdlog::info("task said \xff\xfe");
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(nlohmann::json::parse(lines[0])["msg"].get<std::string>(), HasSubstr("task said"));
}

// gRPC's and protobuf's own messages come out in the chosen format too.
TEST_F(LoggingTest, GrpcAndProtobufMessagesAreJsonLinesToo) {
  ASSERT_TRUE(ConfigureLogging({.level = "info", .format = "json"}).ok());
  gpr_log_verbosity_init();  // what grpc_init does in a server: gRPC logs errors by default
  gpr_log(GPR_ERROR, "listener %s failed", "x");
  GOOGLE_LOG(WARNING) << "field is odd";
  std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  nlohmann::json grpc = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(grpc["level"], "error");
  EXPECT_EQ(grpc["msg"], "grpc: listener x failed");
  EXPECT_THAT(grpc["source"].get<std::string>(), HasSubstr("logging_test.cc:"));
  nlohmann::json pb = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(pb["level"], "warn");
  EXPECT_EQ(pb["msg"], "protobuf: field is odd");
}

TEST_F(LoggingTest, BadValuesNameTheFlag) {
  absl::Status level = ConfigureLogging({.level = "verbose", .format = "text"});
  EXPECT_EQ(level.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(level.message(), HasSubstr("--log-level"));
  EXPECT_THAT(level.message(), HasSubstr("trace, debug, info, warn, error"));
  absl::Status format = ConfigureLogging({.level = "info", .format = "xml"});
  EXPECT_THAT(format.message(), HasSubstr("--log-format"));

  for (const char* role : {"manager", "worker"}) {
    std::ostringstream out, err;
    EXPECT_EQ(RunCli({"warren", role, "--log-level", "verbose"}, out, err), 2) << role;
    EXPECT_THAT(err.str(), HasSubstr("--log-level")) << role;
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"warren", "cluster", "init", "--log-format", "xml"}, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("--log-format"));
}

TEST_F(LoggingTest, DeploymentTransitionsAtInfoBatchesAtDebug) {
  ASSERT_TRUE(ConfigureLogging({.level = "info", .format = "json"}).ok());
  v1::Deployment before;
  before.set_id("d7");
  before.set_service_name("web");
  before.set_strategy(v1::DEPLOYMENT_STRATEGY_CANARY);
  before.set_from_revision(2);
  before.set_to_revision(3);
  before.set_phase(v1::DEPLOYMENT_PHASE_PENDING);
  v1::Deployment after = before;
  after.set_phase(v1::DEPLOYMENT_PHASE_PROGRESSING);
  after.set_weight(10);
  after.set_batch(1);
  LogDeploymentTransition(before, after);
  v1::Deployment batch = after;
  batch.set_batch(2);
  LogDeploymentTransition(after, batch);  // debug only
  v1::Deployment done = batch;
  done.set_phase(v1::DEPLOYMENT_PHASE_ROLLING_BACK);
  done.set_reason("error rate 30% over 10%");
  LogDeploymentTransition(batch, done);

  std::vector<nlohmann::json> lines;
  for (const std::string& l : Lines()) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(lines[0]["level"], "info");
  EXPECT_THAT(lines[0]["msg"].get<std::string>(), HasSubstr("pending -> progressing"));
  EXPECT_EQ(lines[0]["service"], "web");
  EXPECT_EQ(lines[0]["deployment"], "d7");
  EXPECT_EQ(lines[0]["revision"], "2->3");
  EXPECT_EQ(lines[0]["phase"], "progressing");
  EXPECT_THAT(lines[1]["msg"].get<std::string>(), HasSubstr("weight 10%"));
  EXPECT_EQ(lines[2]["level"], "warn");
  EXPECT_THAT(lines[2]["msg"].get<std::string>(),
              HasSubstr("progressing -> rolling-back: error rate 30% over 10%"));
}

}  // namespace
}  // namespace warren
