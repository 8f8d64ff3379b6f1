// The web dashboard's server side (src/ui/): the JSON the pages read, the server-sent event
// framing, the actions, the request checks and the login, on an in-process manager (SQLite
// store, mutual TLS, real HTTPS on loopback with a session from `warren dashboard token`).
#include "ui/dashboard.h"

#include <nlohmann/json.hpp>
#include <string>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "manager/server.h"
#include "security/client_bundle.h"
#include "security/tls_credentials.h"
#include "store_test_util.h"
#include "test_http_client.h"
#include "test_https_client.h"
#include "test_util.h"
#include "ui/assets.h"
#include "warren/v1/api.grpc.pb.h"
#include "warren/v1/dashboard.grpc.pb.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::TempDir;
using json = nlohmann::json;

class DashboardTest : public testing::Test {
 protected:
  // Mutual TLS (the default) unless `tls` is false; logged in as `role` ("" = not at all).
  void Start(const std::string& metrics_addr = "127.0.0.1:0", bool tls = true,
             const std::string& role = "admin") {
    ManagerOptions o = testing_util::TestManagerOptions(dir_.str(), /*metrics=*/true);
    o.metrics_addr = metrics_addr;
    // The dashboard's own calls carry no client certificate.
    o.tls = tls;
    o.tls_root = home_.str();
    auto m = ManagerServer::Start(o, RealClock::Get());
    ASSERT_TRUE(m.ok()) << m.status();
    manager_ = std::move(*m);
    tls_ = tls;
    if (!tls) {
      stub_ = v1::Control::NewStub(
          grpc::CreateChannel(manager_->api_addr(), grpc::InsecureChannelCredentials()));
      return;
    }
    https_.ca_pem = manager_->authority()->ca().cert_pem();
    auto creds = security::BundleChannelCredentials(manager_->admin_bundle_dir());
    ASSERT_TRUE(creds.ok()) << creds.status();
    channel_ = grpc::CreateChannel(manager_->api_addr(), *creds);
    stub_ = v1::Control::NewStub(channel_);
    if (!role.empty()) {
      ASSERT_NO_FATAL_FAILURE(cookie_ = Login(Token(role)));
    }
  }

  // `warren dashboard token --role ROLE --ttl TTL`.
  std::string Token(const std::string& role, int64_t ttl_seconds = 3600) {
    auto access = v1::DashboardAccess::NewStub(channel_);
    grpc::ClientContext ctx;
    v1::CreateDashboardTokenRequest req;
    req.set_role(role);
    req.set_ttl_seconds(ttl_seconds);
    v1::DashboardToken token;
    grpc::Status s = access->CreateDashboardToken(&ctx, req, &token);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(token.role(), role);
    return token.token();
  }
  // Exchanges the token for a session; returns the Cookie header's value.
  std::string Login(const std::string& token) {
    test::HttpClientResponse r =
        Do("POST", "/ui/api/login", {{"X-Warren-Dashboard", "1"}}, json{{"token", token}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    const std::string set_cookie = r.Header("Set-Cookie").value_or("");
    return set_cookie.substr(0, set_cookie.find(';'));
  }
  void TearDown() override {
    if (manager_) manager_->Shutdown();
  }

  void CreateWeb() {
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name("web");
    req.mutable_spec()->set_replicas(2);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::Port* port = req.mutable_spec()->mutable_template_()->add_ports();
    port->set_target(8080);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::Service out;
    grpc::Status s = stub_->CreateService(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // web's current spec with VERSION=v2, for an update.
  void WebSpecWithV2(v1::UpdateServiceRequest* update) {
    grpc::ClientContext ctx;
    v1::GetServiceRequest get;
    get.set_name_or_id("web");
    v1::Service current;
    ASSERT_TRUE(stub_->GetService(&ctx, get, &current).ok());
    *update->mutable_spec() = current.spec();
    update->mutable_spec()->mutable_template_()->mutable_env()->insert({"VERSION", "v2"});
  }

  void Scale(int replicas) {
    v1::ScaleServiceRequest req;
    req.set_name_or_id("web");
    req.set_replicas(replicas);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::Service out;
    grpc::Status s = stub_->ScaleService(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  // Over HTTPS with the session cookie under TLS; plain HTTP otherwise.
  test::HttpClientResponse Do(const std::string& method, const std::string& path,
                              std::vector<std::pair<std::string, std::string>> headers = {},
                              const std::string& body = "") {
    if (!tls_) return Plain(method, path, headers);
    if (!cookie_.empty()) headers.emplace_back("Cookie", cookie_);
    auto r = test::HttpsDo(manager_->metrics_port(), method, path, body, headers, https_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : test::HttpClientResponse{};
  }
  test::HttpClientResponse Plain(const std::string& method, const std::string& path,
                                 std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto r = test::HttpDo("127.0.0.1", manager_->metrics_port(), method, path, "", headers,
                          absl::Seconds(20));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : test::HttpClientResponse{};
  }
  json GetJson(const std::string& path, int want_status = 200) {
    test::HttpClientResponse r = Do("GET", path);
    EXPECT_EQ(r.status, want_status) << path << ": " << r.body;
    EXPECT_EQ(r.Header("Content-Type").value_or(""), "application/json") << path;
    return json::parse(r.body, nullptr, false);
  }

  TempDir dir_;
  TempDir home_;
  std::unique_ptr<ManagerServer> manager_;
  bool tls_ = true;
  test::HttpsClientOptions https_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string cookie_;
  std::unique_ptr<v1::Control::Stub> stub_;
};

TEST_F(DashboardTest, ServicesListNamesEachServiceWithItsSummary) {
  Start();
  CreateWeb();
  json j = GetJson("/ui/api/services");
  ASSERT_TRUE(j.contains("services")) << j.dump();
  ASSERT_EQ(j["services"].size(), 1u);
  const json& s = j["services"][0];
  EXPECT_EQ(s["name"], "web");
  EXPECT_EQ(s["mode"], "replicated");
  EXPECT_EQ(s["replicas"], 2);
  EXPECT_EQ(s["revision"], 1);
  EXPECT_EQ(s["command"], "app");
  ASSERT_EQ(s["ports"].size(), 1u);
  EXPECT_EQ(s["ports"][0]["target"], 8080);
  for (const char* key : {"desired", "running", "healthy"}) {
    EXPECT_TRUE(s["tasks"].contains(key)) << key;
  }
  // Never deployed: no deployment yet.
  EXPECT_TRUE(s["deployment"].is_null());
}

TEST_F(DashboardTest, ServicePageHasServiceTasksRevisionsAndDeployments) {
  Start();
  CreateWeb();
  json j = GetJson("/ui/api/services/web");
  EXPECT_EQ(j["service"]["spec"]["name"], "web");
  // The API's JSON: lowerCamelCase names, 64-bit numbers as strings, as `-o json` prints.
  ASSERT_EQ(j["revisions"].size(), 1u);
  EXPECT_EQ(j["revisions"][0]["number"], "1");
  EXPECT_EQ(j["revisions"][0]["outcome"], "created");
  EXPECT_EQ(j["revisions"][0]["changeCause"], "create");
  EXPECT_TRUE(j["deployments"].is_array());
  EXPECT_TRUE(j["tasks"].is_array());
  EXPECT_TRUE(j["nodeNames"].is_object());
  EXPECT_TRUE(j.contains("endpoints"));
  for (const json& t : j["tasks"]) {
    EXPECT_EQ(t["serviceName"], "web");
    EXPECT_FALSE(t.contains("spec")) << "the template is on the revision";
  }
}

TEST_F(DashboardTest, CanaryShowsInTheListAndAbortFromTheDashboardEndsIt) {
  Start();
  CreateWeb();
  v1::UpdateServiceRequest update;
  ASSERT_NO_FATAL_FAILURE(WebSpecWithV2(&update));
  v1::UpdateConfig* u = update.mutable_spec()->mutable_update_config();
  u->set_strategy("canary");
  u->add_canary_steps(25);
  u->add_canary_steps(100);
  grpc::ClientContext ctx;
  v1::Service updated;
  grpc::Status st = stub_->UpdateService(&ctx, update, &updated);
  ASSERT_TRUE(st.ok()) << st.error_message();

  json d = GetJson("/ui/api/services")["services"][0]["deployment"];
  ASSERT_TRUE(d.is_object()) << d.dump();
  EXPECT_EQ(d["strategy"], "canary");
  EXPECT_EQ(d["fromRevision"], 1);
  EXPECT_EQ(d["toRevision"], 2);
  EXPECT_THAT(d["phase"].get<std::string>(), ::testing::AnyOf("pending", "progressing"));
  for (const char* key : {"id", "step", "weight"}) EXPECT_TRUE(d.contains(key)) << key;
  json page = GetJson("/ui/api/services/web");
  ASSERT_FALSE(page["deployments"].empty());
  EXPECT_EQ(page["deployments"][0]["strategy"], "canary");
  EXPECT_EQ(page["deployments"][0]["config"]["canarySteps"], json::array({25, 100}));

  // Promote to the last step, then abort: both right after the controller started the
  // deployment, while it writes it.
  test::HttpClientResponse r =
      Do("POST", "/ui/api/services/web/promote", {{"X-Warren-Dashboard", "1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["deployment"]["step"], 1);
  r = Do("POST", "/ui/api/services/web/abort", {{"X-Warren-Dashboard", "1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json aborted = json::parse(r.body)["deployment"];
  EXPECT_EQ(aborted["id"], d["id"]);
  EXPECT_THAT(aborted["phase"].get<std::string>(),
              ::testing::AnyOf("DEPLOYMENT_PHASE_ROLLING_BACK", "DEPLOYMENT_PHASE_ROLLED_BACK"));
}

// The manager samples a service's traffic while it has a deployment, so the charts show what
// happened before the page was opened.
TEST_F(DashboardTest, HistoryHoldsSamplesOfAServiceWithADeployment) {
  Start();
  CreateWeb();
  json h = GetJson("/ui/api/services/web/history");
  EXPECT_EQ(h["intervalSeconds"], 2);
  ASSERT_TRUE(h["samples"].is_array());
  Scale(3);  // no deployment: nothing sampled
  v1::UpdateServiceRequest update;
  ASSERT_NO_FATAL_FAILURE(WebSpecWithV2(&update));
  update.mutable_spec()->mutable_update_config()->set_strategy("canary");
  update.mutable_spec()->mutable_update_config()->add_canary_steps(25);
  update.mutable_spec()->mutable_update_config()->add_canary_steps(100);
  grpc::ClientContext ctx;
  v1::Service updated;
  grpc::Status st = stub_->UpdateService(&ctx, update, &updated);
  ASSERT_TRUE(st.ok()) << st.error_message();
  json samples;
  for (int i = 0; i < 200 && samples.empty(); ++i) {
    samples = GetJson("/ui/api/services/web/history")["samples"];
    if (samples.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(samples.empty()) << "no sample within 10 s";
  const json& s = samples.back();
  EXPECT_GT(s["t"].get<int64_t>(), 1'700'000'000'000);
  for (const char* key : {"weights", "errors", "p99"}) EXPECT_TRUE(s[key].is_object()) << key;
  EXPECT_EQ(GetJson("/ui/api/services/nope/history", 404)["error"], "service \"nope\" not found");
}

TEST_F(DashboardTest, UnknownServiceIsNotFoundWithItsName) {
  Start();
  json j = GetJson("/ui/api/services/nope", 404);
  EXPECT_THAT(j.value("error", ""), HasSubstr("nope"));
}

TEST_F(DashboardTest, NodesAndEvents) {
  Start();
  CreateWeb();
  EXPECT_TRUE(GetJson("/ui/api/nodes")["nodes"].is_array());
  json ev = GetJson("/ui/api/events");
  ASSERT_FALSE(ev["events"].empty());
  const json& created = ev["events"][0];
  EXPECT_EQ(created["kind"], "service");
  EXPECT_EQ(created["objectName"], "web");
  EXPECT_EQ(created["action"], "created");
  EXPECT_EQ(ev["lastId"], std::stoull(ev["events"].back()["id"].get<std::string>()));
  // Only what came after `since` (the controller may add events meanwhile).
  uint64_t last = ev["lastId"];
  json after = GetJson(absl::StrCat("/ui/api/events?since=", last));
  for (const json& e : after["events"]) EXPECT_GT(std::stoull(e["id"].get<std::string>()), last);
  EXPECT_GE(after["lastId"].get<uint64_t>(), last);
  EXPECT_THAT(GetJson("/ui/api/events?since=abc", 400).value("error", ""), HasSubstr("since"));
}

TEST(SseBodyTest, FramesEachEventWithItsIdAndOneDataLine) {
  v1::Event a;
  a.set_id(7);
  a.set_kind("service");
  a.set_message("two\nlines");
  v1::Event b;
  b.set_id(8);
  b.set_kind("task");
  std::string body = ui::SseBody({a, b}, 10);
  EXPECT_EQ(body.substr(0, 12), "retry: 250\n\n");
  EXPECT_THAT(body, HasSubstr("id: 7\nevent: warren\ndata: {"));
  EXPECT_THAT(body, HasSubstr("id: 8\nevent: warren\ndata: {"));
  // A newline inside a value stays escaped: one data line per event.
  EXPECT_THAT(body, HasSubstr(R"("message":"two\nlines")"));
  EXPECT_EQ(body.substr(body.size() - 2), "\n\n");
  size_t data_lines = 0;
  for (size_t p = body.find("\ndata: "); p != std::string::npos; p = body.find("\ndata: ", p + 1)) {
    ++data_lines;
  }
  EXPECT_EQ(data_lines, 2u);
}

TEST(SseBodyTest, KeepsTheNewestEventsAndSaysWhenThereIsNone) {
  std::vector<v1::Event> events(5);
  for (int i = 0; i < 5; ++i) events[i].set_id(i + 1);
  std::string body = ui::SseBody(events, 2);
  EXPECT_THAT(body, Not(HasSubstr("id: 3\n")));
  EXPECT_THAT(body, HasSubstr("id: 4\n"));
  EXPECT_THAT(body, HasSubstr("id: 5\n"));
  EXPECT_EQ(ui::SseBody({}, 2), "retry: 250\n\n: no new events\n\n");
}

TEST(SseBodyTest, BytesThatAreNotUtf8DoNotBreakTheFrame) {
  v1::Event e;
  e.set_id(3);
  e.set_message("exit \xff\xfe");
  std::string body = ui::SseBody({e}, 10);
  size_t data = body.find("data: ");
  ASSERT_NE(data, std::string::npos) << body;
  std::string line = body.substr(data + 6, body.find('\n', data) - data - 6);
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << line;
  EXPECT_EQ(j["id"], "3");
  EXPECT_THAT(j["message"].get<std::string>(), ::testing::StartsWith("exit "));
}

TEST_F(DashboardTest, StreamSendsEventsAfterLastEventId) {
  Start();
  CreateWeb();
  Scale(3);
  // The backlog after `since`...
  test::HttpClientResponse r = Do("GET", "/ui/api/stream?since=0");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type").value_or(""), "text/event-stream");
  EXPECT_THAT(r.body, HasSubstr("id: 1\nevent: warren\n"));
  EXPECT_THAT(r.body, HasSubstr("id: 2\nevent: warren\n"));
  // ... and Last-Event-ID, which the browser sends when it reconnects, wins over the query.
  r = Do("GET", "/ui/api/stream?since=0", {{"Last-Event-ID", "1"}});
  EXPECT_THAT(r.body, Not(HasSubstr("id: 1\n")));
  EXPECT_THAT(r.body, HasSubstr("id: 2\n"));
  r = Do("GET", "/ui/api/stream", {{"Last-Event-ID", "x1"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("Last-Event-ID"));
}

TEST_F(DashboardTest, StreamWaitsForTheNextEvent) {
  Start();
  CreateWeb();
  uint64_t last = GetJson("/ui/api/events")["lastId"];
  // Usually after the stream request is waiting (up to 15 s); either order gives the event.
  std::thread scale([&] { Scale(3); });
  test::HttpClientResponse r = Do("GET", absl::StrCat("/ui/api/stream?since=", last));
  scale.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(absl::StrCat("id: ", last + 1, "\n")));
}

TEST_F(DashboardTest, ActionsCallTheApiAndReportItsErrors) {
  Start();
  CreateWeb();
  std::vector<std::pair<std::string, std::string>> ui = {{"X-Warren-Dashboard", "1"}};
  // No rollout to abort: the API's own error (FAILED_PRECONDITION), as the CLI gets it.
  test::HttpClientResponse r = Do("POST", "/ui/api/services/web/abort", ui);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(),
              HasSubstr("\"web\" has no rollout in progress"));
  r = Do("POST", "/ui/api/services/web/explode", ui);
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("allowed: promote, promote-full, pause, resume, abort, rollback"));
  // Rollback with a single revision: refused, nothing changed.
  r = Do("POST", "/ui/api/services/web/rollback", ui);
  EXPECT_GE(r.status, 400) << r.body;
  EXPECT_EQ(GetJson("/ui/api/services/web")["service"]["revision"], "1");
}

TEST_F(DashboardTest, ActionWithoutTheDashboardHeaderIsRefused) {
  Start();
  CreateWeb();
  test::HttpClientResponse r = Do("POST", "/ui/api/services/web/rollback");
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(r.body, HasSubstr("X-Warren-Dashboard: 1"));
}

TEST(DashboardCheckTest, RequestChecks) {
  HttpRequest get;
  get.method = "GET";
  get.headers = {{"Host", "127.0.0.1:9090"}};
  EXPECT_EQ(ui::CheckRequest(get), "");
  get.headers = {{"Host", "localhost:9090"}};
  EXPECT_EQ(ui::CheckRequest(get), "");
  get.headers = {{"Host", "[::1]:9090"}};
  EXPECT_EQ(ui::CheckRequest(get), "");
  // DNS rebinding: another site's name resolved to loopback.
  get.headers = {{"Host", "evil.example:9090"}};
  EXPECT_THAT(ui::CheckRequest(get), HasSubstr("evil.example"));
  get.headers = {};
  EXPECT_THAT(ui::CheckRequest(get), HasSubstr("loopback host"));

  HttpRequest post;
  post.method = "POST";
  post.headers = {{"Host", "127.0.0.1:9090"}, {"X-Warren-Dashboard", "1"}};
  EXPECT_EQ(ui::CheckRequest(post), "");
  post.headers.emplace_back("Origin", "http://127.0.0.1:9090");
  post.headers.emplace_back("Sec-Fetch-Site", "same-origin");
  EXPECT_EQ(ui::CheckRequest(post), "");

  HttpRequest cross = post;
  cross.headers = {
      {"Host", "127.0.0.1:9090"}, {"X-Warren-Dashboard", "1"}, {"Origin", "http://evil.example"}};
  EXPECT_THAT(ui::CheckRequest(cross), HasSubstr("Origin \"http://evil.example\""));
  cross.headers = {
      {"Host", "127.0.0.1:9090"}, {"X-Warren-Dashboard", "1"}, {"Sec-Fetch-Site", "cross-site"}};
  EXPECT_THAT(ui::CheckRequest(cross), HasSubstr("Sec-Fetch-Site"));
  cross.headers = {{"Host", "127.0.0.1:9090"}};
  EXPECT_THAT(ui::CheckRequest(cross), HasSubstr("X-Warren-Dashboard"));
}

TEST_F(DashboardTest, ServesItsFilesWithTypesAndPolicy) {
  Start();
  test::HttpClientResponse r = Do("GET", "/ui/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type").value_or(""), "text/html; charset=utf-8");
  EXPECT_THAT(r.Header("Content-Security-Policy").value_or(""), HasSubstr("default-src 'self'"));
  EXPECT_THAT(r.body, HasSubstr("<script src=\"app.js\""));
  r = Do("GET", "/ui/app.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type").value_or(""), "text/javascript; charset=utf-8");
  EXPECT_EQ(Do("GET", "/ui/style.css").status, 200);
  EXPECT_EQ(Do("GET", "/ui/missing.js").status, 404);
  r = Do("GET", "/ui");
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.Header("Location").value_or(""), "/ui/");
  // The metrics beside it are untouched.
  EXPECT_EQ(Do("GET", "/metrics").status, 200);
}

TEST_F(DashboardTest, PlaintextIsOffWhenTheHttpAddressIsNotLoopback) {
  // --insecure-plaintext on every interface (port 0); the test talks to it over loopback only.
  Start("0.0.0.0:0", /*tls=*/false);
  test::HttpClientResponse r = Do("GET", "/ui/");
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(r.body, HasSubstr("0.0.0.0:0 is not a loopback address"));
  EXPECT_THAT(r.body, HasSubstr("--insecure-plaintext"));
  EXPECT_EQ(Do("GET", "/ui/api/services").status, 403);
  EXPECT_EQ(Do("GET", "/metrics").status, 200);
}

TEST_F(DashboardTest, PlaintextOnLoopbackNeedsNoLogin) {
  Start("127.0.0.1:0", /*tls=*/false);
  CreateWeb();
  json session = GetJson("/ui/api/session");
  EXPECT_EQ(session["login"], false);
  EXPECT_EQ(session["role"], "admin");
  EXPECT_EQ(GetJson("/ui/api/services")["services"].size(), 1u);
  test::HttpClientResponse r = Do("POST", "/ui/api/login", {{"X-Warren-Dashboard", "1"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("no login without TLS"));
}

TEST_F(DashboardTest, UnderTlsAnyAddressServesTheDashboardBehindTheLogin) {
  // Every interface: allowed because a login is required.
  Start("0.0.0.0:0", /*tls=*/true, /*role=*/"");
  test::HttpClientResponse r = Do("GET", "/ui/api/services");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(), HasSubstr("log in first"));
  EXPECT_EQ(json::parse(r.body)["login"], "required");
  // The page's first question is answered without a login: it then shows its form.
  json session = GetJson("/ui/api/session");
  EXPECT_EQ(session["login"], true);
  EXPECT_TRUE(session["role"].is_null());
  EXPECT_THAT(session["error"].get<std::string>(), HasSubstr("log in first"));
  cookie_ = Login(Token("admin"));
  EXPECT_EQ(Do("GET", "/ui/api/services").status, 200);
}

// HTTPS and HTTP share the port: the dashboard is HTTPS only, /metrics and the probes stay
// plain HTTP for Prometheus (and answer over HTTPS too).
TEST_F(DashboardTest, PlainHttpIsRedirectedToHttpsAndMetricsStayPlain) {
  Start();
  const std::string host = absl::StrCat("127.0.0.1:", manager_->metrics_port());
  test::HttpClientResponse r = Plain("GET", "/ui/api/services?x=1");
  EXPECT_EQ(r.status, 308);
  EXPECT_EQ(r.Header("Location").value_or(""),
            absl::StrCat("https://", host, "/ui/api/services?x=1"));
  r = Plain("POST", "/ui/api/services/web/abort", {{"X-Warren-Dashboard", "1"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(r.body, HasSubstr("HTTPS only"));
  EXPECT_EQ(Plain("GET", "/metrics").status, 200);
  EXPECT_EQ(Plain("GET", "/healthz").status, 200);
  EXPECT_EQ(Do("GET", "/metrics").status, 200);
  // The certificate is the manager's (verified by the client for 127.0.0.1 against the CA).
  EXPECT_EQ(Do("GET", "/ui/").status, 200);
}

TEST_F(DashboardTest, LoginSetsAStrictSessionCookieAndTheSessionSaysTheRole) {
  Start("127.0.0.1:0", /*tls=*/true, /*role=*/"");
  test::HttpClientResponse r = Do("POST", "/ui/api/login", {{"X-Warren-Dashboard", "1"}},
                                  json{{"token", Token("read-only", 600)}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string set_cookie = r.Header("Set-Cookie").value_or("");
  EXPECT_THAT(set_cookie, ::testing::StartsWith("__Host-warren-session=wds1."));
  for (const char* flag : {"; Path=/", "; Secure", "; HttpOnly", "; SameSite=Strict"}) {
    EXPECT_THAT(set_cookie, HasSubstr(flag));
  }
  // Max-Age: the token's remaining life (600 s, a little less by now).
  const size_t age = set_cookie.find("Max-Age=");
  ASSERT_NE(age, std::string::npos);
  const int max_age = std::stoi(set_cookie.substr(age + 8));
  EXPECT_LE(max_age, 600);
  EXPECT_GE(max_age, 500);
  cookie_ = set_cookie.substr(0, set_cookie.find(';'));
  json session = GetJson("/ui/api/session");
  EXPECT_EQ(session["login"], true);
  EXPECT_EQ(session["role"], "read-only");
  // Logging out deletes the cookie.
  r = Do("POST", "/ui/api/logout", {{"X-Warren-Dashboard", "1"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.Header("Set-Cookie").value_or(""), HasSubstr("Max-Age=0"));
}

TEST_F(DashboardTest, BadTokensAndSessionsGet401WithTheReason) {
  Start("127.0.0.1:0", /*tls=*/true, /*role=*/"");
  auto login = [&](const std::string& body) {
    return Do("POST", "/ui/api/login", {{"X-Warren-Dashboard", "1"}}, body);
  };
  test::HttpClientResponse r = login(json{{"token", "nonsense"}}.dump());
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(),
              HasSubstr("not a dashboard login token"));
  std::string token = Token("admin");
  token[10] = token[10] == 'A' ? 'B' : 'A';  // inside the payload
  r = login(json{{"token", token}}.dump());
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(), HasSubstr("signature"));
  r = login("{}");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("token"));
  // A login without the dashboard's header is refused like any write.
  r = Do("POST", "/ui/api/login", {}, json{{"token", Token("admin")}}.dump());
  EXPECT_EQ(r.status, 403);
  // A made-up session.
  cookie_ = "__Host-warren-session=wds1.e30.AAAA";
  r = Do("GET", "/ui/api/services");
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(), HasSubstr("signature"));
  // The pages themselves load without a session (they show the login).
  EXPECT_EQ(Do("GET", "/ui/").status, 200);
}

TEST_F(DashboardTest, AReadOnlySessionSeesEverythingButItsActionsAre403) {
  Start("127.0.0.1:0", /*tls=*/true, /*role=*/"read-only");
  CreateWeb();
  EXPECT_EQ(GetJson("/ui/api/services")["services"].size(), 1u);
  EXPECT_EQ(GetJson("/ui/api/services/web")["service"]["spec"]["name"], "web");
  EXPECT_TRUE(GetJson("/ui/api/nodes")["nodes"].is_array());
  for (const char* action : {"abort", "promote", "pause", "resume", "rollback"}) {
    test::HttpClientResponse r =
        Do("POST", absl::StrCat("/ui/api/services/web/", action), {{"X-Warren-Dashboard", "1"}});
    EXPECT_EQ(r.status, 403) << action;
    EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(),
                HasSubstr("role is read-only: actions need the admin role"));
  }
  EXPECT_EQ(GetJson("/ui/api/services/web")["service"]["revision"], "1");
}

// A browser holding a certificate of the cluster (the admin bundle as PKCS#12) needs no token.
TEST_F(DashboardTest, AClientCertificateOfTheClusterLogsIn) {
  Start("127.0.0.1:0", /*tls=*/true, /*role=*/"");
  const security::ClusterAuthority& ca = *manager_->authority();
  auto issue = [&](security::Role role) {
    auto kc = ca.ca().IssueKeyAndCertificate(
        {absl::StrCat("user-", security::RoleName(role)), role, ca.cluster_id()},
        {absl::Hours(1), {}}, absl::Now());
    EXPECT_TRUE(kc.ok()) << kc.status();
    test::HttpsClientOptions o = https_;
    o.client_cert_pem = kc->cert_pem;
    o.client_key_pem = std::string(kc->key_pem.reveal());
    return o;
  };
  auto get = [&](const test::HttpsClientOptions& o, const std::string& method,
                 const std::string& path) {
    auto r =
        test::HttpsDo(manager_->metrics_port(), method, path, "", {{"X-Warren-Dashboard", "1"}}, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : test::HttpClientResponse{};
  };
  const test::HttpsClientOptions admin = issue(security::Role::kAdmin);
  EXPECT_EQ(json::parse(get(admin, "GET", "/ui/api/session").body)["role"], "admin");
  const test::HttpsClientOptions reader = issue(security::Role::kReadOnly);
  EXPECT_EQ(json::parse(get(reader, "GET", "/ui/api/session").body)["role"], "read-only");
  EXPECT_EQ(get(reader, "POST", "/ui/api/services/web/abort").status, 403);
  // A node's certificate is not a user's.
  test::HttpClientResponse r = get(issue(security::Role::kWorker), "GET", "/ui/api/services");
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(r.body, HasSubstr("client certificate is refused"));
}

// Only an admin may create a token (it can carry the admin role).
TEST_F(DashboardTest, OnlyAnAdminCreatesTokensAndBadRequestsNameTheField) {
  Start("127.0.0.1:0", /*tls=*/true, /*role=*/"");
  const security::ClusterAuthority& ca = *manager_->authority();
  auto kc = ca.ca().IssueKeyAndCertificate({"viewer", security::Role::kReadOnly, ca.cluster_id()},
                                           {absl::Hours(1), {}}, absl::Now());
  ASSERT_TRUE(kc.ok()) << kc.status();
  auto creds = security::MakeStaticChannelCredentials(
      ca.ca().cert_pem(), security::KeyAndCertificate{kc->key_pem, kc->cert_pem},
      {ca.cluster_id(), {security::Role::kManager}, "", nullptr});
  ASSERT_TRUE(creds.ok()) << creds.status();
  auto reader = v1::DashboardAccess::NewStub(grpc::CreateChannel(manager_->api_addr(), *creds));
  grpc::ClientContext ctx;
  v1::DashboardToken token;
  EXPECT_EQ(reader->CreateDashboardToken(&ctx, {}, &token).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  auto admin = v1::DashboardAccess::NewStub(channel_);
  v1::CreateDashboardTokenRequest req;
  req.set_role("root");
  grpc::ClientContext c1;
  grpc::Status s = admin->CreateDashboardToken(&c1, req, &token);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("role: expected \"admin\" or \"read-only\""));
  req.set_role("admin");
  req.set_ttl_seconds(7 * 24 * 3600);
  grpc::ClientContext c2;
  s = admin->CreateDashboardToken(&c2, req, &token);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("ttl: must be 1m..24h"));
  // The URL the CLI prints: HTTPS on the HTTP address.
  req.set_ttl_seconds(0);
  grpc::ClientContext c3;
  ASSERT_TRUE(admin->CreateDashboardToken(&c3, req, &token).ok());
  EXPECT_THAT(token.url(), ::testing::StartsWith("https://127.0.0.1:"));
  EXPECT_THAT(token.url(), ::testing::EndsWith("/ui/"));
}

TEST(DashboardAssetsTest, EmbeddedFilesStayUnderTwoMebibytes) {
  size_t total = 0;
  for (const ui::EmbeddedFile& f : ui::EmbeddedFiles()) total += f.size;
  EXPECT_GT(total, 0u);
  EXPECT_LT(total, 2u << 20);
  ASSERT_NE(ui::FindAsset("index.html"), nullptr);
  EXPECT_EQ(ui::FindAsset("../index.html"), nullptr);
}

}  // namespace
}  // namespace warren
