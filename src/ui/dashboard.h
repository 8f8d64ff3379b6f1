#ifndef WARREN_UI_DASHBOARD_H_
#define WARREN_UI_DASHBOARD_H_

#include <atomic>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "http/http_server.h"
#include "security/revocation.h"
#include "store/store.h"
#include "ui/history.h"
#include "ui/login.h"
#include "warren/v1/api.grpc.pb.h"

namespace warren::ui {

// How a request proves who it is under TLS (docs/dashboard.md, "Access").
struct DashboardAccessConfig {
  // MACs the login tokens and session cookies.
  std::shared_ptr<const DashboardKeys> keys;
  // A client certificate must chain to this CA, be of this cluster, not be revoked and have
  // the role admin or read-only.
  std::string ca_cert_pem;
  std::string cluster_id;
  std::shared_ptr<const security::RevocationList> revoked;
};

struct DashboardOptions {
  // The address the manager's HTTP server listens on. Without TLS the dashboard has no login,
  // so it is served only when this is a loopback address.
  std::string http_addr;
  // Mutual TLS mode (the manager's default): /ui/ is answered over HTTPS only (a plain HTTP
  // GET is redirected), on any address; every API read needs a login (a session cookie from
  // `warren dashboard token`, or a client certificate of the cluster) and actions the admin
  // role. `access` must then be filled.
  bool tls = false;
  DashboardAccessConfig access;
  // Event streams (/ui/api/stream) open at once; more are answered 503.
  int max_streams = 16;
  // A stream response with no event ends after this long and the browser opens the next one.
  absl::Duration stream_wait = absl::Seconds(15);
  // The charts' history (/ui/api/services/NAME/history): sampled by a thread of the dashboard.
  HistoryOptions history;
  // Null: the real clock. The history's times come from it.
  const Clock* clock = nullptr;
};

// The web dashboard: its static files, the JSON it reads and its actions, all under /ui/ on
// the manager's HTTP server. Reads and actions go through the manager's API handlers
// in-process (the ones the CLI reaches over gRPC), so both see the same state and the same
// validation. Live updates are server-sent events from the stored event stream.
class Dashboard {
 public:
  Dashboard(v1::Control::Service& api, const Store& store, DashboardOptions options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // The request is the dashboard's: /ui or anything under /ui/.
  static bool Owns(std::string_view path);

  // Answers a request Owns() accepted. Streams are answered from a thread of their own.
  void Handle(const HttpRequest& req, HttpServer::Responder respond);

  // Ends the open streams (they answer at once) and waits for their threads.
  void Shutdown();

  // Empty when served; otherwise why not.
  const std::string& disabled_reason() const { return disabled_reason_; }

  // The sampled traffic of services with deployments (read by the charts).
  const TrafficHistory& history() const { return history_; }

 private:
  HttpResponse HandleSync(const HttpRequest& req, const std::optional<DashboardGrant>& grant);
  HttpResponse Api(const HttpRequest& req, std::string_view rest,
                   const std::optional<DashboardGrant>& grant);
  HttpResponse Login(const HttpRequest& req);
  // GET /ui/api/session: who the page is, or why it is not logged in.
  HttpResponse Session(const absl::StatusOr<DashboardGrant>& grant) const;
  HttpResponse Action(const HttpRequest& req, const std::string& service, std::string_view action);
  void Stream(const HttpRequest& req, HttpServer::Responder respond);
  void ReapStreams() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The history's thread: deployment events say which services to watch; every interval, a
  // sample of each through the API's GetEndpoints.
  void SampleLoop();
  HttpResponse History(const std::string& name);

  v1::Control::Service& api_;
  const Store& store_;
  const DashboardOptions options_;
  std::string disabled_reason_;
  RealClock real_clock_;
  const Clock& clock_;
  TrafficHistory history_;

  struct StreamThread {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::list<StreamThread> streams_ ABSL_GUARDED_BY(mu_);
  std::thread sampler_;
};

// The security checks every dashboard request passes, public for the tests. Empty when the
// request may go on, otherwise why it may not.
//  - Without TLS, Host must name a loopback address (a page of another site that resolves its
//    own name to 127.0.0.1, DNS rebinding, then has the wrong Host). Under TLS any Host is
//    accepted: a rebinding page cannot pass the certificate check for its own name, and the
//    session cookie is the dashboard host's only (__Host- prefix), so it would get 401.
//  - Writes (POST) must carry "X-Warren-Dashboard: 1", a header a cross-site form cannot send
//    and a cross-site script cannot send without a CORS preflight, which is never granted; and
//    their Origin, when the browser sends one, must be this server's (https:// under TLS).
std::string CheckRequest(const HttpRequest& req, bool tls = false);

// The session cookie's name: __Host- makes browsers keep it only when it is Secure, for this
// host (no Domain) and Path=/.
inline constexpr std::string_view kSessionCookie = "__Host-warren-session";

// A Set-Cookie value for the session: HttpOnly, Secure, SameSite=Strict, expiring after
// `max_age` (zero: deletes it).
std::string SessionCookie(std::string_view value, absl::Duration max_age);

// Who the request is, under TLS: its session cookie when valid, else its client certificate.
// UNAUTHENTICATED with the reason (no login, an expired or changed session, a certificate of
// another cluster or a revoked one) when neither grants a role; PERMISSION_DENIED for a
// certificate whose role is not a user's (a node's).
absl::StatusOr<DashboardGrant> AuthenticateRequest(const HttpRequest& req,
                                                   const DashboardAccessConfig& access,
                                                   absl::Time now);

// A text/event-stream body: the reconnection time, then the newest `max_events` events, each
// with its id (the browser sends the last one back as Last-Event-ID), or a comment when there
// is none.
std::string SseBody(const std::vector<v1::Event>& events, size_t max_events);

// True for an address of the loopback interface: 127.0.0.0/8, ::1 or "localhost".
bool IsLoopbackHost(std::string_view host);

}  // namespace warren::ui

#endif  // WARREN_UI_DASHBOARD_H_
