#include "ui/dashboard.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/enum_names.h"
#include "common/time_util.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/server_context.h"
#include "manager/events.h"
#include "security/authz.h"
#include "security/certificates.h"
#include "spdlog/spdlog.h"
#include "ui/assets.h"

namespace warren::ui {

namespace {

// The dashboard's calls are the manager's own: without a ServerContext the services let them
// through (a default-constructed one has no peer certificate and is refused under mutual TLS).
constexpr grpc::ServerContext* kOwnCall = nullptr;

using json = nlohmann::ordered_json;

// Newest events sent at once (the first page load and a stream that fell far behind).
constexpr size_t kMaxEventsPerResponse = 200;
// Deployments listed on a service's page.
constexpr int kMaxDeployments = 10;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Objects are written as the API's own protobuf JSON (lowerCamelCase names, 64-bit integers as
// strings), so the page reads what `warren ... -o json` prints. Zero values are written too:
// a weight of 0 is news on a deployment's page.
json ProtoJson(const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(msg, &out, options).ok()) return json();
  json j = json::parse(out, nullptr, /*allow_exceptions=*/false);
  // Enums as the CLI shows them ("canary", "rolled-back"), not their proto names.
  if (!j.is_discarded()) ApplyEnumDisplayNames(j, msg.GetDescriptor());
  return j;
}

// Strings reach the page from task output and user specs: a byte that is not UTF-8 becomes
// U+FFFD instead of an exception.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.headers.emplace_back("Cache-Control", "no-store");
  r.body = Dump(body);
  r.body.push_back('\n');
  return r;
}

int HttpStatusFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}

HttpResponse ErrorResponse(int status, std::string message) {
  return JsonResponse(status, json{{"error", std::move(message)}});
}

HttpResponse GrpcError(const grpc::Status& s) {
  return ErrorResponse(HttpStatusFor(s.error_code()), s.error_message());
}

// "TASK_STATE_RUNNING" -> "running": the names people read in `warren service ps`.
std::string ShortEnum(std::string_view name, std::string_view prefix) {
  std::string out(absl::StripPrefix(AV(name), AV(prefix)));
  absl::AsciiStrToLower(&out);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

std::string_view HostOf(std::string_view host_port) {
  if (absl::StartsWith(AV(host_port), "[")) {
    size_t close = host_port.find(']');
    return close == std::string_view::npos ? host_port : host_port.substr(1, close - 1);
  }
  size_t colon = host_port.rfind(':');
  return colon == std::string_view::npos ? host_port : host_port.substr(0, colon);
}

}  // namespace

std::string SseBody(const std::vector<v1::Event>& events, size_t max_events) {
  // A short reconnection time: each response ends after its events, and the next one should
  // follow at once.
  std::string out = "retry: 250\n\n";
  if (events.empty()) return out + ": no new events\n\n";
  size_t first = events.size() > max_events ? events.size() - max_events : 0;
  for (size_t i = first; i < events.size(); ++i) {
    // One line of JSON: the newlines inside strings are escaped.
    absl::StrAppend(&out, "id: ", events[i].id(),
                    "\nevent: warren\ndata: ", Dump(ProtoJson(events[i])), "\n\n");
  }
  return out;
}

bool IsLoopbackHost(std::string_view host) {
  if (absl::EqualsIgnoreCase(AV(host), "localhost")) return true;
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(std::string(host), ec);
  return !ec && addr.is_loopback();
}

std::string CheckRequest(const HttpRequest& req, bool tls) {
  std::optional<std::string> host = req.Header("Host");
  if (tls) {
    if (!host || host->empty()) return "a dashboard request must name its host in Host";
  } else if (!host || !IsLoopbackHost(HostOf(*host))) {
    return absl::StrCat("the dashboard answers only requests for a loopback host, got Host \"",
                        host.value_or(""), "\"");
  }
  if (req.method == "GET" || req.method == "HEAD") return "";
  if (req.Header("X-Warren-Dashboard").value_or("") != "1") {
    return "a dashboard action needs the header \"X-Warren-Dashboard: 1\"";
  }
  const std::string own_origin = absl::StrCat(tls ? "https://" : "http://", *host);
  if (std::optional<std::string> origin = req.Header("Origin"); origin && *origin != own_origin) {
    return absl::StrCat("a dashboard action must come from the dashboard's own origin ", own_origin,
                        ", got Origin \"", *origin, "\"");
  }
  if (std::optional<std::string> site = req.Header("Sec-Fetch-Site");
      site && *site != "same-origin") {
    return absl::StrCat(
        "a dashboard action must come from the dashboard's own pages, got "
        "Sec-Fetch-Site \"",
        *site, "\"");
  }
  return "";
}

std::string SessionCookie(std::string_view value, absl::Duration max_age) {
  return absl::StrCat(AV(kSessionCookie), "=", AV(value),
                      "; Path=/; Max-Age=", std::max<int64_t>(0, absl::ToInt64Seconds(max_age)),
                      "; Secure; HttpOnly; SameSite=Strict");
}

namespace {

// The value of cookie `name` in the request's Cookie headers.
std::optional<std::string> CookieValue(const HttpRequest& req, std::string_view name) {
  for (const auto& [key, value] : req.headers) {
    if (!absl::EqualsIgnoreCase(key, "Cookie")) continue;
    for (absl::string_view pair : absl::StrSplit(value, ';')) {
      pair = absl::StripAsciiWhitespace(pair);
      const size_t eq = pair.find('=');
      if (eq != absl::string_view::npos && pair.substr(0, eq) == AV(name)) {
        return std::string(pair.substr(eq + 1));
      }
    }
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<DashboardGrant> AuthenticateRequest(const HttpRequest& req,
                                                   const DashboardAccessConfig& access,
                                                   absl::Time now) {
  absl::Status session_error;
  if (std::optional<std::string> cookie = CookieValue(req, kSessionCookie); cookie) {
    if (!access.keys) return absl::InternalError("the dashboard has no login key");
    auto grant = access.keys->VerifySession(*cookie, now);
    if (grant.ok()) return grant;
    session_error = grant.status();
  }
  if (!req.peer_cert_pem.empty()) {
    auto info = security::VerifyCertificate(access.ca_cert_pem, req.peer_cert_pem, now);
    if (!info.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("the client certificate is refused: ", info.status().message()));
    }
    const security::PeerPolicy policy{
        access.cluster_id, {security::Role::kAdmin, security::Role::kReadOnly}, "", access.revoked};
    if (absl::Status s = security::CheckPeer(*info, policy); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("the client certificate is refused: ", s.message()));
    }
    return DashboardGrant{info->identity.role == security::Role::kAdmin ? DashboardRole::kAdmin
                                                                        : DashboardRole::kReadOnly,
                          info->not_after};
  }
  if (!session_error.ok()) return session_error;
  return absl::UnauthenticatedError(
      "log in first: open the URL `warren dashboard token` prints, or present a client "
      "certificate of the cluster");
}

bool Dashboard::Owns(std::string_view path) {
  return path == "/ui" || absl::StartsWith(AV(path), "/ui/");
}

Dashboard::Dashboard(v1::Control::Service& api, const Store& store, DashboardOptions options)
    : api_(api),
      store_(store),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : real_clock_),
      history_(options_.history) {
  auto split = SplitHostPort(options_.http_addr);
  if (!split.ok()) {
    disabled_reason_ = std::string(split.status().message());
  } else if (options_.tls && !options_.access.keys) {
    disabled_reason_ = "the dashboard is off: it has no login key";
  } else if (!options_.tls && !IsLoopbackHost(split->first)) {
    disabled_reason_ = absl::StrCat(
        "the dashboard is off: the HTTP address ", options_.http_addr,
        " is not a loopback address, and without TLS (--insecure-plaintext) the dashboard has "
        "no login (serve metrics on 127.0.0.1 to use it, docs/dashboard.md)");
  }
  if (!disabled_reason_.empty()) {
    spdlog::warn("{}", disabled_reason_);
    return;
  }
  sampler_ = std::thread([this] { SampleLoop(); });
}

Dashboard::~Dashboard() { Shutdown(); }

void Dashboard::Shutdown() {
  stopping_ = true;
  std::list<StreamThread> streams;
  {
    absl::MutexLock lock(&mu_);
    streams.swap(streams_);
  }
  for (auto& s : streams) {
    if (s.thread.joinable()) s.thread.join();
  }
  if (sampler_.joinable()) sampler_.join();
}

void Dashboard::SampleLoop() {
  const HistoryOptions& ho = history_.options();
  auto endpoints = [this](const std::string& id) -> std::optional<v1::ServiceEndpoints> {
    v1::GetEndpointsRequest req;
    req.set_name_or_id(id);
    v1::ServiceEndpoints ep;
    if (!api_.GetEndpoints(kOwnCall, &req, &ep).ok()) return std::nullopt;
    return ep;
  };
  auto active = [this](const std::string& id) {
    v1::RolloutRequest req;
    req.set_name_or_id(id);
    v1::Deployment d;
    if (!api_.GetRollout(kOwnCall, &req, &d).ok()) return false;
    return d.phase() == v1::DEPLOYMENT_PHASE_PENDING ||
           d.phase() == v1::DEPLOYMENT_PHASE_PROGRESSING ||
           d.phase() == v1::DEPLOYMENT_PHASE_PAUSED;
  };
  // Off the server's threads, so an exception here would end the process.
  try {
    EventReader reader(store_, 0, [](const v1::Event& e) { return e.kind() == "deployment"; });
    absl::Time next = clock_.Now();
    while (!stopping_) {
      // The backlog holds older deployments too: only recent news counts.
      for (const v1::Event& e : reader.Next(std::min(absl::Milliseconds(250), ho.interval))) {
        const absl::Time now = clock_.Now();
        if (FromProtoTime(e.time()) >= now - ho.tail) history_.Watch(e.service_id(), now);
      }
      const absl::Time now = clock_.Now();
      if (now < next) continue;
      history_.Sample(now, endpoints, active);
      next = now + ho.interval;
    }
  } catch (const std::exception& e) {
    spdlog::error("dashboard: the chart history stopped: {}", e.what());
  }
}

HttpResponse Dashboard::History(const std::string& name) {
  v1::GetServiceRequest gr;
  gr.set_name_or_id(name);
  v1::Service svc;
  if (grpc::Status s = api_.GetService(kOwnCall, &gr, &svc); !s.ok()) return GrpcError(s);
  auto series = [](const std::map<int64_t, double>& values) {
    json out = json::object();
    for (const auto& [revision, v] : values) out[std::to_string(revision)] = v;
    return out;
  };
  json samples = json::array();
  for (const TrafficSample& s : history_.Samples(svc.id())) {
    samples.push_back(json{{"t", absl::ToUnixMillis(s.time)},
                           {"weights", series(s.weight)},
                           {"errors", series(s.error_rate)},
                           {"p99", series(s.p99_ms)}});
  }
  return JsonResponse(200,
                      json{{"intervalSeconds", absl::ToDoubleSeconds(history_.options().interval)},
                           {"samples", std::move(samples)}});
}

void Dashboard::ReapStreams() {
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->done.load()) {
      it->thread.join();
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
}

void Dashboard::Handle(const HttpRequest& req, HttpServer::Responder respond) {
  if (!disabled_reason_.empty()) {
    respond(HttpResponse::Text(403, disabled_reason_ + "\n"));
    return;
  }
  if (options_.tls && !req.tls) {
    // The login cookie is Secure: the dashboard works over HTTPS only.
    std::optional<std::string> host = req.Header("Host");
    if ((req.method != "GET" && req.method != "HEAD") || !host || host->empty()) {
      respond(HttpResponse::Text(
          403, absl::StrCat("the dashboard is served over HTTPS only: use https://",
                            host.value_or("HOST:PORT"), req.path, "\n")));
      return;
    }
    HttpResponse r = HttpResponse::Text(
        308, absl::StrCat("the dashboard is served over HTTPS: https://", *host, req.target, "\n"));
    r.headers.emplace_back("Location", absl::StrCat("https://", *host, req.target));
    respond(std::move(r));
    return;
  }
  if (std::string why = CheckRequest(req, options_.tls); !why.empty()) {
    respond(HttpResponse::Text(403, why + "\n"));
    return;
  }
  // Without TLS there is no login: loopback callers act as admin, like the plaintext API.
  std::optional<DashboardGrant> grant;
  const bool public_path = !absl::StartsWith(AV(req.path), "/ui/api/") ||
                           req.path == "/ui/api/login" || req.path == "/ui/api/logout";
  if (options_.tls && req.path == "/ui/api/session" && req.method == "GET") {
    // Answered without a login too: the page asks it first, and shows its login form (a 401
    // would be a console error in the browser on every visit).
    respond(Session(AuthenticateRequest(req, options_.access, clock_.Now())));
    return;
  }
  if (options_.tls && !public_path) {
    absl::StatusOr<DashboardGrant> g = AuthenticateRequest(req, options_.access, clock_.Now());
    if (!g.ok()) {
      const int status = g.status().code() == absl::StatusCode::kPermissionDenied ? 403 : 401;
      respond(JsonResponse(
          status, json{{"error", std::string(g.status().message())}, {"login", "required"}}));
      return;
    }
    grant = *g;
  }
  if (req.path == "/ui/api/stream" && req.method == "GET") {
    Stream(req, std::move(respond));
    return;
  }
  respond(HandleSync(req, grant));
}

HttpResponse Dashboard::Session(const absl::StatusOr<DashboardGrant>& grant) const {
  if (!options_.tls) {
    return JsonResponse(200, json{{"login", false}, {"role", "admin"}, {"expires", nullptr}});
  }
  if (!grant.ok()) {
    return JsonResponse(200, json{{"login", true},
                                  {"role", nullptr},
                                  {"expires", nullptr},
                                  {"error", std::string(grant.status().message())}});
  }
  return JsonResponse(200, json{{"login", true},
                                {"role", std::string(DashboardRoleName(grant->role))},
                                {"expires", absl::ToUnixMillis(grant->expires)}});
}

HttpResponse Dashboard::Login(const HttpRequest& req) {
  if (!options_.tls) {
    return ErrorResponse(404,
                         "the dashboard has no login without TLS (the manager runs with "
                         "--insecure-plaintext)");
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object() || !body.contains("token") ||
      !body["token"].is_string()) {
    return ErrorResponse(400, "login: expected a JSON body {\"token\": \"wdt1...\"}");
  }
  const absl::Time now = clock_.Now();
  absl::StatusOr<DashboardGrant> grant =
      options_.access.keys->VerifyToken(body["token"].get<std::string>(), now);
  if (!grant.ok()) {
    return JsonResponse(
        401, json{{"error", std::string(grant.status().message())}, {"login", "required"}});
  }
  absl::StatusOr<std::string> session =
      options_.access.keys->IssueSession(grant->role, grant->expires);
  if (!session.ok()) return ErrorResponse(500, std::string(session.status().message()));
  spdlog::info("dashboard ({}): {} login until {}", req.remote_addr, DashboardRoleName(grant->role),
               absl::FormatTime(grant->expires));
  HttpResponse r = Session(*grant);
  r.headers.emplace_back("Set-Cookie", SessionCookie(*session, grant->expires - now));
  return r;
}

HttpResponse Dashboard::HandleSync(const HttpRequest& req,
                                   const std::optional<DashboardGrant>& grant) {
  if (req.path == "/ui") {
    HttpResponse r = HttpResponse::Text(301, "");
    r.headers.emplace_back("Location", "/ui/");
    return r;
  }
  std::string_view rest = std::string_view(req.path).substr(4);  // after "/ui/"
  if (absl::StartsWith(AV(rest), "api/")) return Api(req, rest.substr(4), grant);
  if (req.method != "GET" && req.method != "HEAD") {
    return HttpResponse::Text(405, "the dashboard's files are read with GET\n");
  }
  const EmbeddedFile* file = FindAsset(rest.empty() ? "index.html" : rest);
  if (!file)
    return HttpResponse::Text(404, absl::StrCat("no such dashboard file: ", req.path, "\n"));
  HttpResponse r;
  r.content_type = std::string(ContentTypeFor(file->name));
  r.body.assign(reinterpret_cast<const char*>(file->data), file->size);
  // Scripts only from this server, nothing inline, no framing by other sites.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

HttpResponse Dashboard::Api(const HttpRequest& req, std::string_view rest,
                            const std::optional<DashboardGrant>& grant) {
  if (rest == "login" || rest == "logout") {
    if (req.method != "POST") return ErrorResponse(405, "login and logout are POST");
    if (rest == "login") return Login(req);
    HttpResponse r = JsonResponse(200, json{{"login", options_.tls}});
    if (options_.tls) r.headers.emplace_back("Set-Cookie", SessionCookie("", absl::ZeroDuration()));
    return r;
  }
  if (rest == "session" && req.method == "GET") {
    return Session(grant ? absl::StatusOr<DashboardGrant>(*grant)
                         : absl::StatusOr<DashboardGrant>(absl::UnauthenticatedError("")));
  }
  if (req.method == "POST") {
    if (grant && grant->role != DashboardRole::kAdmin) {
      return ErrorResponse(
          403, absl::StrCat("this session's role is ", AV(DashboardRoleName(grant->role)),
                            ": actions need the admin role (log in with a token "
                            "from `warren dashboard token --role admin`)"));
    }
    // services/NAME/ACTION
    std::vector<std::string> parts = absl::StrSplit(AV(rest), '/');
    if (parts.size() != 3 || parts[0] != "services" || parts[1].empty()) {
      return ErrorResponse(404, absl::StrCat("no such dashboard action: ", req.path));
    }
    return Action(req, parts[1], parts[2]);
  }
  if (req.method != "GET") {
    return ErrorResponse(405, "dashboard API: GET to read, POST for actions");
  }
  if (rest == "services") {
    v1::ListServicesRequest list_req;
    v1::ListServicesResponse services;
    if (grpc::Status s = api_.ListServices(kOwnCall, &list_req, &services); !s.ok())
      return GrpcError(s);
    v1::ListTasksResponse tasks;
    v1::ListTasksRequest all_tasks;
    if (grpc::Status s = api_.ListTasks(kOwnCall, &all_tasks, &tasks); !s.ok()) return GrpcError(s);
    json list = json::array();
    for (const v1::Service& svc : services.services()) {
      int running = 0, healthy = 0, desired = 0;
      for (const v1::Task& t : tasks.tasks()) {
        if (t.service_id() != svc.id() || t.desired_state() != v1::TASK_STATE_RUNNING) continue;
        ++desired;
        if (t.status().state() == v1::TASK_STATE_RUNNING) {
          ++running;
          if (t.status().health().state() == v1::HEALTH_STATE_HEALTHY ||
              t.status().health().state() == v1::HEALTH_STATE_NONE ||
              t.status().health().state() == v1::HEALTH_STATE_UNSPECIFIED) {
            ++healthy;
          }
        }
      }
      json ports = json::array();
      for (const v1::Port& p : svc.spec().template_().ports()) ports.push_back(ProtoJson(p));
      json item{{"id", svc.id()},
                {"name", svc.spec().name()},
                {"mode", svc.spec().mode().empty() ? "replicated" : svc.spec().mode()},
                {"replicas", svc.spec().replicas()},
                {"revision", svc.revision()},
                {"image", svc.spec().template_().image()},
                {"command", svc.spec().template_().command()},
                {"ports", ports},
                {"tasks", {{"desired", desired}, {"running", running}, {"healthy", healthy}}},
                {"deployment", nullptr}};
      v1::RolloutRequest rr;
      rr.set_name_or_id(svc.id());
      v1::Deployment d;
      if (api_.GetRollout(kOwnCall, &rr, &d).ok()) {
        item["deployment"] =
            json{{"id", d.id()},
                 {"strategy", DisplayName(d.strategy())},
                 {"phase", ShortEnum(v1::DeploymentPhase_Name(d.phase()), "DEPLOYMENT_PHASE_")},
                 {"fromRevision", d.from_revision()},
                 {"toRevision", d.to_revision()},
                 {"step", d.step()},
                 {"weight", d.weight()}};
      }
      list.push_back(std::move(item));
    }
    return JsonResponse(200, json{{"services", list}});
  }
  if (absl::StartsWith(AV(rest), "services/") && absl::EndsWith(AV(rest), "/history")) {
    std::string_view name = rest.substr(9, rest.size() - 9 - 8);
    if (name.empty() || name.find('/') != std::string_view::npos) {
      return ErrorResponse(404, absl::StrCat("no such dashboard API: ", req.path));
    }
    return History(std::string(name));
  }
  if (absl::StartsWith(AV(rest), "services/")) {
    std::string name(rest.substr(9));
    v1::GetServiceRequest gr;
    gr.set_name_or_id(name);
    v1::Service svc;
    if (grpc::Status s = api_.GetService(kOwnCall, &gr, &svc); !s.ok()) return GrpcError(s);
    json out{{"service", ProtoJson(svc)}};
    v1::ListTasksRequest tr;
    tr.set_service(svc.id());
    v1::ListTasksResponse tasks;
    if (grpc::Status s = api_.ListTasks(kOwnCall, &tr, &tasks); !s.ok()) return GrpcError(s);
    // Node names instead of ids on the page.
    v1::ListNodesRequest nodes_req;
    v1::ListNodesResponse nodes;
    api_.ListNodes(kOwnCall, &nodes_req, &nodes);
    json node_names = json::object();
    for (const v1::Node& n : nodes.nodes()) node_names[n.id()] = n.name();
    out["nodeNames"] = node_names;
    out["tasks"] = json::array();
    for (const v1::Task& t : tasks.tasks()) {
      json task = ProtoJson(t);
      task.erase("spec");  // the revision's template, on the revision already
      out["tasks"].push_back(std::move(task));
    }
    v1::ListRevisionsRequest lr;
    lr.set_name_or_id(svc.id());
    v1::ListRevisionsResponse revisions;
    if (grpc::Status s = api_.ListRevisions(kOwnCall, &lr, &revisions); !s.ok())
      return GrpcError(s);
    out["revisions"] = json::array();
    for (const v1::Revision& r : revisions.revisions()) out["revisions"].push_back(ProtoJson(r));
    v1::RolloutRequest rr;
    rr.set_name_or_id(svc.id());
    v1::ListDeploymentsResponse deployments;
    if (grpc::Status s = api_.ListDeployments(kOwnCall, &rr, &deployments); !s.ok()) {
      return GrpcError(s);
    }
    out["deployments"] = json::array();
    for (int i = 0; i < deployments.deployments_size() && i < kMaxDeployments; ++i) {
      out["deployments"].push_back(ProtoJson(deployments.deployments(i)));
    }
    // Without the traffic pieces (or before the first routing table) there are no endpoints.
    v1::GetEndpointsRequest er;
    er.set_name_or_id(svc.id());
    v1::ServiceEndpoints endpoints;
    out["endpoints"] =
        api_.GetEndpoints(kOwnCall, &er, &endpoints).ok() ? ProtoJson(endpoints) : json(nullptr);
    return JsonResponse(200, out);
  }
  if (rest == "nodes") {
    v1::ListNodesRequest nodes_req;
    v1::ListNodesResponse nodes;
    if (grpc::Status s = api_.ListNodes(kOwnCall, &nodes_req, &nodes); !s.ok()) return GrpcError(s);
    json list = json::array();
    for (const v1::Node& n : nodes.nodes()) list.push_back(ProtoJson(n));
    return JsonResponse(200, json{{"nodes", list}});
  }
  if (rest == "events") {
    uint64_t since = 0;
    if (auto p = req.QueryParam("since"); p && !absl::SimpleAtoi(*p, &since)) {
      return ErrorResponse(
          400, absl::StrCat("since: expected an event id (a number), got \"", *p, "\""));
    }
    EventReader reader(store_, since, [](const v1::Event&) { return true; });
    std::vector<v1::Event> events = reader.Next(absl::ZeroDuration());
    size_t first =
        events.size() > kMaxEventsPerResponse ? events.size() - kMaxEventsPerResponse : 0;
    json list = json::array();
    for (size_t i = first; i < events.size(); ++i) list.push_back(ProtoJson(events[i]));
    uint64_t last = events.empty() ? since : events.back().id();
    return JsonResponse(200, json{{"events", list}, {"lastId", last}});
  }
  return ErrorResponse(404, absl::StrCat("no such dashboard API: ", req.path));
}

HttpResponse Dashboard::Action(const HttpRequest& req, const std::string& service,
                               std::string_view action) {
  v1::RolloutRequest rr;
  rr.set_name_or_id(service);
  v1::Deployment d;
  grpc::Status s;
  if (action == "promote" || action == "promote-full") {
    v1::PromoteRequest pr;
    pr.set_name_or_id(service);
    pr.set_full(action == "promote-full");
    s = api_.PromoteRollout(kOwnCall, &pr, &d);
  } else if (action == "pause") {
    s = api_.PauseRollout(kOwnCall, &rr, &d);
  } else if (action == "resume") {
    s = api_.ResumeRollout(kOwnCall, &rr, &d);
  } else if (action == "abort") {
    s = api_.AbortRollout(kOwnCall, &rr, &d);
  } else if (action == "rollback") {
    v1::RollbackServiceRequest rb;
    rb.set_name_or_id(service);
    rb.set_change_cause("rollback from the dashboard");
    v1::Service svc;
    s = api_.RollbackService(kOwnCall, &rb, &svc);
    if (!s.ok()) return GrpcError(s);
    spdlog::info("dashboard ({}): rollback of {}", req.remote_addr, service);
    return JsonResponse(200, json{{"service", ProtoJson(svc)}});
  } else {
    return ErrorResponse(404, absl::StrCat("unknown action \"", AV(action),
                                           "\"; allowed: promote, promote-full, pause, resume, "
                                           "abort, rollback"));
  }
  if (!s.ok()) return GrpcError(s);
  spdlog::info("dashboard ({}): {} of {}", req.remote_addr, action, service);
  return JsonResponse(200, json{{"deployment", ProtoJson(d)}});
}

void Dashboard::Stream(const HttpRequest& req, HttpServer::Responder respond) {
  uint64_t since = 0;
  // The browser sends the id of the last event it got when it opens the next response.
  std::optional<std::string> from = req.Header("Last-Event-ID");
  if (!from || from->empty()) from = req.QueryParam("since");
  if (from && !from->empty() && !absl::SimpleAtoi(*from, &since)) {
    respond(HttpResponse::Text(400, absl::StrCat("Last-Event-ID/since: expected an event id (a "
                                                 "number), got \"",
                                                 *from, "\"\n")));
    return;
  }
  absl::MutexLock lock(&mu_);
  ReapStreams();
  if (stopping_ || static_cast<int>(streams_.size()) >= options_.max_streams) {
    HttpResponse r = HttpResponse::Text(
        503, absl::StrCat("too many dashboard event streams (", options_.max_streams, ")\n"));
    respond(std::move(r));
    return;
  }
  StreamThread& st = streams_.emplace_back();
  st.thread = std::thread([this, since, respond = std::move(respond), done = &st.done] {
    HttpResponse r;
    // Off the server's threads, so an exception here would end the process.
    try {
      EventReader reader(store_, since, [](const v1::Event&) { return true; });
      absl::Time end = absl::Now() + options_.stream_wait;
      std::vector<v1::Event> events;
      // In slices, so that Shutdown does not wait a whole stream_wait.
      while (events.empty() && !stopping_ && absl::Now() < end) {
        events = reader.Next(std::min(absl::Seconds(1), end - absl::Now()));
      }
      r.content_type = "text/event-stream";
      r.headers.emplace_back("Cache-Control", "no-store");
      r.body = SseBody(events, kMaxEventsPerResponse);
    } catch (const std::exception& e) {
      r = HttpResponse::Text(500, absl::StrCat("event stream: ", e.what(), "\n"));
    }
    respond(std::move(r));
    done->store(true);
  });
}

}  // namespace warren::ui
