// ListServices pages (issue 18): complete, in name order, stable while services are created,
// and bad paging input is refused naming the field.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/node_liveness.h"
#include "store/sqlite_store.h"
#include "test_util.h"

namespace warren {
namespace {

class ListPagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    events_ = std::make_unique<EventLog>(*store_, clock_);
    liveness_ = std::make_unique<NodeLiveness>(clock_);
    api_ = std::make_unique<ManagerApi>(*store_, clock_, *events_, *liveness_, ApiOptions{});
  }

  void Create(const std::string& name) {
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("/bin/true");
    v1::Service out;
    grpc::Status s = api_->control().CreateService(nullptr, &req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status List(const v1::ListServicesRequest& req, v1::ListServicesResponse* resp) {
    return api_->control().ListServices(nullptr, &req, resp);
  }

  testing_util::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<NodeLiveness> liveness_;
  std::unique_ptr<ManagerApi> api_;
};

TEST_F(ListPagingTest, PagesAreCompleteAndStableWhileServicesAreCreated) {
  for (int i = 0; i < 50; ++i) Create(absl::StrCat("svc-", 100 + 2 * i));  // even numbers
  std::vector<std::string> seen;
  v1::ListServicesRequest req;
  req.set_page_size(7);
  int pages = 0;
  int odd = 101;
  do {
    v1::ListServicesResponse resp;
    ASSERT_TRUE(List(req, &resp).ok());
    ASSERT_LE(resp.services_size(), 7);
    for (const auto& s : resp.services()) seen.push_back(s.spec().name());
    req.set_page_token(resp.next_page_token());
    // Creates between pages, before and after the page boundary.
    Create(absl::StrCat("svc-", odd));
    odd += 2;
    ASSERT_LT(++pages, 100);
  } while (!req.page_token().empty());
  // In order, no repeats, and every service that existed before the first page.
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  std::set<std::string> got(seen.begin(), seen.end());
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(got.count(absl::StrCat("svc-", 100 + 2 * i))) << i;
}

TEST_F(ListPagingTest, FiltersByNamePrefixAndCountsRunningTasks) {
  Create("web-1");
  Create("web-2");
  Create("db");
  v1::ListServicesRequest req;
  req.set_name_prefix("web-");
  req.set_with_running_counts(true);
  v1::ListServicesResponse resp;
  ASSERT_TRUE(List(req, &resp).ok());
  ASSERT_EQ(resp.services_size(), 2);
  EXPECT_EQ(resp.services(0).spec().name(), "web-1");
  EXPECT_EQ(resp.next_page_token(), "");
  EXPECT_EQ(resp.running_tasks().size(), 2u);
  EXPECT_EQ(resp.running_tasks().at(resp.services(0).id()), 0);
}

TEST_F(ListPagingTest, BadPagingInputNamesTheField) {
  v1::ListServicesRequest req;
  req.set_page_size(-1);
  v1::ListServicesResponse resp;
  grpc::Status s = List(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("page_size"), std::string::npos) << s.error_message();
  req.set_page_size(10);
  req.set_page_token("not base64!");
  s = List(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("page_token"), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace warren
