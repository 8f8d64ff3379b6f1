#include "proxy/proxy.h"

#include "common/spec.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <unordered_set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/published_ports.h"
#include "http/listener.h"
#include "ingress/ingress_match.h"
#include "ingress/ingress_tls.h"
#include "proxy/http_relay.h"
#include "spdlog/spdlog.h"

namespace warren {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;

using relay::kBodyChunk;

// Finer than Prometheus' defaults at the low end: canary analysis compares p99s of a few ms.
std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

int StatusClass(int status) {
  int c = status / 100;
  return c >= 2 && c <= 5 ? c : 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

// One ingress rule's series (warren_ingress_*), shared by the HTTP and HTTPS listeners. The
// registry owns the children; they are never removed (a request may still hold them), so a
// removed rule's series stay until the node restarts.
struct RuleMetrics {
  std::array<Counter*, 6> requests{};  // index = status class 1..5
  Counter* errors = nullptr;
  Histogram* latency = nullptr;
};

struct RevisionMetrics {
  int64_t revision = 0;
  Counter* requests = nullptr;
  std::array<Counter*, 6> responses{};  // index = status class 2..5
  Counter* connect_errors = nullptr;
  Histogram* latency = nullptr;
};

class ServiceProxy::Impl {
 public:
  struct Upstream {
    Upstream(asio::io_context& ioc, size_t max_buffer) : socket(ioc), buffer(max_buffer) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    std::shared_ptr<BalancedEndpoint> endpoint;
    // While idle in the pool: its descriptor (in use, the session's lease covers it).
    DescriptorBudget::Lease pooled;
  };

  struct Session {
    Session(tcp::socket s, DescriptorBudget::Lease l) : client(std::move(s)), fds(std::move(l)) {}
    tcp::socket client;
    tcp::socket* upstream = nullptr;  // while a request uses one
    bool idle = true;                 // waiting for the next request
    std::string peer_ip;
    // Checked by Sweep. While a request head is read it is the head's deadline; while a
    // message is relayed, the wait on the client (see relay::Relay).
    relay::ClientDeadline deadline;
    bool head_started = false;  // bytes of a request head arrived: a timeout answers 408
    bool lingering = false;     // closing: the rest of what the client sends is dropped
    bool reset = false;         // closing: abortively, so the client sees an answer was cut
    bool tls = false;           // on the HTTPS ingress: nothing may be written in the clear
    // The client's descriptor and the one of the upstream connection it uses.
    DescriptorBudget::Lease fds;
  };

  struct Worker {
    explicit Worker(size_t i) : index(i) {}
    const size_t index;
    // Touched only on this worker's thread.
    absl::flat_hash_map<BalancedEndpoint*, std::vector<std::unique_ptr<Upstream>>> idle;
    std::unordered_set<Session*> sessions;
    std::thread thread;
    // Declared last so pending coroutines are destroyed while the members above still exist.
    asio::io_context ioc{1};
  };

  // Where requests go: one service's balancer, the port dialled on its endpoints and its
  // counters. A published port has one; the ingress one per (service, target port) its rules
  // name. Requests hold it while they run, so a route update never pulls it from under them.
  struct Backend {
    Backend(Impl& impl, const v1::ServiceRoute& route, int target)
        : balancer(impl.options_.balancer),
          service_id(route.service_id()),
          service(route.name()),
          target_port(target),
          metrics_cache(std::max(1, impl.options_.threads)) {}
    Balancer balancer;
    const std::string service_id;
    const std::string service;
    const int target_port;
    mutable absl::Mutex metrics_mu;
    absl::flat_hash_map<int64_t, std::unique_ptr<RevisionMetrics>> metrics
        ABSL_GUARDED_BY(metrics_mu);
    // Per io thread (Worker::index), touched only on that thread.
    std::vector<absl::flat_hash_map<int64_t, RevisionMetrics*>> metrics_cache;
  };

  // The ingress listener's rules and the backends they reach, replaced whole by each update.
  struct IngressTable {
    std::vector<v1::IngressRoute> routes;
    // routes[i]'s series.
    std::vector<RuleMetrics> rule_metrics;
    // The ACME rules' pending HTTP-01 challenges: token -> key authorization.
    std::map<std::string, std::string, std::less<>> acme_challenges;
    std::map<std::pair<std::string, int>, std::shared_ptr<Backend>> backends;
  };

  // A published port's proxy: every request goes to `route`'s service.
  Impl(const v1::ServiceRoute& route, ServiceProxyOptions options) : Impl(std::move(options)) {
    single_ = std::make_shared<Backend>(*this, route, options_.target_port);
    listener_ = route.name();
    single_->balancer.Update(route);
    RegisterRevisions(*single_, route);
  }

  explicit Impl(ServiceProxyOptions options)
      : options_(std::move(options)),
        registry_(options_.registry ? *options_.registry : DefaultRegistry()),
        budget_(options_.budget ? *options_.budget : DescriptorBudget::DataPlane()),
        listener_("ingress"),
        requests_(registry_.AddCounter("warren_proxy_requests_total",
                                       "Requests (TCP: connections) proxied, per revision.",
                                       {"service", "revision"})),
        responses_(registry_.AddCounter("warren_proxy_responses_total",
                                        "Responses proxied, per revision and status class.",
                                        {"service", "revision", "class"})),
        connect_errors_(registry_.AddCounter("warren_proxy_connect_errors_total",
                                             "Failed connects to endpoints, per revision.",
                                             {"service", "revision"})),
        latency_(registry_.AddHistogram("warren_proxy_request_duration_seconds",
                                        "Time from request to end of response, per revision.",
                                        {"service", "revision"}, LatencyBuckets())),
        no_endpoint_(registry_.AddCounter("warren_proxy_no_endpoint_total",
                                          "Requests answered 503: the service had no endpoint.",
                                          {"service"})),
        retried_(registry_.AddCounter(
            "warren_proxy_retried_total",
            "Requests answered 5xx by one revision and sent once to another (deployments only).",
            {"service"})),
        refused_(registry_.AddCounter(
            "warren_proxy_connections_refused_total",
            "Client connections refused: the published port's connection limit or the data "
            "plane's descriptor budget was reached.",
            {"service"})),
        timed_out_(registry_.AddCounter("warren_proxy_connections_timed_out_total",
                                        "Client connections closed by the header or idle timeout.",
                                        {"service"})) {}

  ~Impl() { Stop(absl::ZeroDuration()); }

  absl::Status Listen() {
    std::string host = options_.host_ip.empty() ? "0.0.0.0" : options_.host_ip;
    std::string where = absl::StrCat(host, ":", options_.port);
    beast::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat(where, ": bad host ip: ", ec.message()));
    int n = std::max(1, options_.threads);
    for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(i));
    acceptor_.emplace(workers_[0]->ioc);
    tcp::endpoint ep(addr, static_cast<uint16_t>(options_.port));
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(where, ": ", ec.message()));
    }
    port_ = acceptor_->local_endpoint().port();
    absl::Duration shortest = absl::InfiniteDuration();
    for (absl::Duration d : {options_.header_timeout, options_.idle_timeout}) {
      if (d > absl::ZeroDuration()) shortest = std::min(shortest, d);
    }
    // Timeouts fire up to a tenth late (at most a second); tests with short timeouts stay short.
    sweep_tick_ = absl::ToChronoNanoseconds(
        std::clamp(shortest / 10, absl::Milliseconds(5), absl::Seconds(1)));
    asio::co_spawn(workers_[0]->ioc, Accept(), LogEscapedException{"proxy accept loop"});
    if (options_.mode == ProxyMode::kHttp) {
      for (auto& w : workers_) {
        asio::co_spawn(w->ioc, Sweep(*w), LogEscapedException{"proxy timeout sweep"});
      }
    }
    for (auto& w : workers_) {
      Worker* wp = w.get();
      wp->thread = std::thread([wp] {
        auto guard = asio::make_work_guard(wp->ioc);
        // The last line of defence: whatever a handler throws, the other connections of this
        // thread are served on.
        for (;;) {
          try {
            wp->ioc.run();
            return;
          } catch (const std::exception& e) {
            spdlog::error("proxy: unexpected exception in an io handler: {}", e.what());
          }
        }
      });
    }
    return absl::OkStatus();
  }

  int port() const { return port_; }
  ProxyMode mode() const { return options_.mode; }
  // Before Listen: makes this the HTTPS ingress.
  void SetTls(std::shared_ptr<IngressTlsContexts> tls) { tls_ = std::move(tls); }
  void SetRedirectPort(int https_port) { https_port_.store(https_port); }
  // Before Listen: makes this an ingress listener, counting per rule.
  void InitIngressMetrics() {
    ingress_requests_ = &registry_.AddCounter(
        "warren_ingress_requests_total",
        "Requests an ingress rule took, by the status class of the answer the client got.",
        {"ingress", "host", "path", "class"});
    ingress_errors_ = &registry_.AddCounter(
        "warren_ingress_errors_total",
        "Requests of an ingress rule answered 5xx, or whose answer the endpoint cut off.",
        {"ingress", "host", "path"});
    ingress_latency_ = &registry_.AddHistogram(
        "warren_ingress_request_duration_seconds",
        "Time from an ingress rule's request head to the end of its answer.",
        {"ingress", "host", "path"}, LatencyBuckets());
  }

  void Update(const v1::ServiceRoute& route) {
    RegisterRevisions(*single_, route);
    single_->balancer.Update(route);
    DropRemovedIdle();
  }

  // The ingress listener: the rules and the routes of the services they name. Backends of
  // services still named keep their balancer state (in-flight counts, ejections, the weighted
  // round robin's position); the endpoints of dropped ones are drained like removed endpoints.
  // Returns the ids of the services the rules reach.
  std::set<std::string> UpdateIngress(const v1::RoutingTable& table) {
    std::map<std::string, const v1::ServiceRoute*> by_id;
    for (const v1::ServiceRoute& r : table.services()) by_id[r.service_id()] = &r;
    auto next = std::make_shared<IngressTable>();
    next->routes.assign(table.ingresses().begin(), table.ingresses().end());
    for (const v1::IngressRoute& rule : next->routes) {
      for (const v1::AcmeChallenge& c : rule.acme_challenges()) {
        next->acme_challenges[c.token()] = c.key_authorization();
      }
      RuleMetrics& m = next->rule_metrics.emplace_back();
      if (ingress_requests_ == nullptr) continue;
      const LabelValues labels = {rule.name(), rule.host(), rule.path()};
      for (int c = 1; c <= 5; ++c) {
        m.requests[c] = &ingress_requests_->WithLabels(
            {rule.name(), rule.host(), rule.path(), absl::StrCat(c, "xx")});
      }
      m.errors = &ingress_errors_->WithLabels(labels);
      m.latency = &ingress_latency_->WithLabels(labels);
    }
    std::shared_ptr<const IngressTable> old = ingress_table();
    std::set<std::string> reached;
    for (const v1::IngressRoute& rule : next->routes) {
      auto route = by_id.find(rule.service_id());
      if (route == by_id.end()) continue;  // answered 503
      const std::pair<std::string, int> key{rule.service_id(), rule.target_port()};
      if (next->backends.contains(key)) continue;
      std::shared_ptr<Backend> b;
      if (auto it = old->backends.find(key); it != old->backends.end()) b = it->second;
      if (!b) b = std::make_shared<Backend>(*this, *route->second, rule.target_port());
      RegisterRevisions(*b, *route->second);
      b->balancer.Update(*route->second);
      next->backends.emplace(key, std::move(b));
      reached.insert(rule.service_id());
    }
    for (const auto& [key, b] : old->backends) {
      if (next->backends.contains(key)) continue;
      v1::ServiceRoute none;
      none.set_service_id(b->service_id);
      b->balancer.Update(none);  // marks every endpoint removed
    }
    {
      absl::MutexLock lock(&ingress_mu_);
      ingress_table_ = std::move(next);
    }
    DropRemovedIdle();
    return reached;
  }

  std::shared_ptr<const IngressTable> ingress_table() const {
    absl::MutexLock lock(&ingress_mu_);
    return ingress_table_;
  }

  void DropRemovedIdle() {
    // Idle connections to removed endpoints would otherwise linger until the pool reuses them.
    for (auto& w : workers_) {
      Worker* wp = w.get();
      asio::post(wp->ioc, [wp] {
        for (auto it = wp->idle.begin(); it != wp->idle.end();) {
          if (it->first->removed.load(std::memory_order_relaxed)) {
            wp->idle.erase(it++);
          } else {
            ++it;
          }
        }
      });
    }
  }

  bool Stop(absl::Duration timeout) {
    if (stopped_.exchange(true)) return true;
    stopping_.store(true);
    if (workers_.empty()) return true;
    asio::post(workers_[0]->ioc, [this] {
      beast::error_code ec;
      acceptor_->close(ec);
    });
    for (auto& w : workers_) {
      Worker* wp = w.get();
      asio::post(wp->ioc, [wp] {
        for (Session* s : wp->sessions) {
          beast::error_code ec;
          if (s->idle) s->client.close(ec);
        }
        wp->idle.clear();
      });
    }
    bool clean;
    {
      absl::MutexLock lock(&mu_);
      auto none_left = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return live_sessions_ == 0; };
      clean = mu_.AwaitWithTimeout(absl::Condition(&none_left), timeout);
    }
    for (auto& w : workers_) {
      Worker* wp = w.get();
      asio::post(wp->ioc, [wp] {
        for (Session* s : wp->sessions) {
          beast::error_code ec;
          s->client.close(ec);
          if (s->upstream) s->upstream->close(ec);
        }
        wp->idle.clear();
        wp->ioc.stop();
      });
    }
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    workers_.clear();  // destroys pending coroutines while this object is intact
    return clean;
  }

  ProxyStats Snapshot() const { return Snapshot(*single_); }

  // One entry per service the ingress's rules reach.
  std::vector<ProxyStats> IngressSnapshot() const {
    std::vector<ProxyStats> out;
    std::set<std::string> seen;
    for (const auto& [key, b] : ingress_table()->backends) {
      if (seen.insert(b->service_id).second) out.push_back(Snapshot(*b));
    }
    return out;
  }

  ProxyStats Snapshot(const Backend& b) const {
    ProxyStats out;
    out.service_id = b.service_id;
    out.service = b.service;
    absl::MutexLock lock(&b.metrics_mu);
    for (const auto& [rev, m] : b.metrics) {
      RevisionStats s;
      s.revision = rev;
      s.requests = static_cast<uint64_t>(m->requests->Value());
      s.responses_2xx = static_cast<uint64_t>(m->responses[2]->Value());
      s.responses_3xx = static_cast<uint64_t>(m->responses[3]->Value());
      s.responses_4xx = static_cast<uint64_t>(m->responses[4]->Value());
      s.responses_5xx = static_cast<uint64_t>(m->responses[5]->Value());
      s.connect_errors = static_cast<uint64_t>(m->connect_errors->Value());
      Histogram::Snapshot h = m->latency->Get();
      s.latency_count = h.count;
      s.latency_sum_seconds = h.sum;
      uint64_t below = 0;
      for (uint64_t cumulative : h.cumulative) {
        s.latency_buckets.push_back(cumulative - below);
        below = cumulative;
      }
      if (out.latency_bounds.empty()) out.latency_bounds = h.bounds;
      out.revisions.push_back(s);
    }
    return out;
  }

  void RemoveMetrics() {
    const Backend& b = *single_;
    const std::string& service = b.service;
    absl::MutexLock lock(&b.metrics_mu);
    for (const auto& [rev, m] : b.metrics) {
      std::string r = absl::StrCat(rev);
      requests_.Remove({service, r});
      connect_errors_.Remove({service, r});
      latency_.Remove({service, r});
      for (const char* c : {"2xx", "3xx", "4xx", "5xx"}) responses_.Remove({service, r, c});
    }
    no_endpoint_.Remove({service});
    retried_.Remove({service});
    refused_.Remove({service});
    timed_out_.Remove({service});
  }

 private:
  std::unique_ptr<RevisionMetrics> MakeMetrics(const Backend& b, int64_t revision) {
    auto m = std::make_unique<RevisionMetrics>();
    std::string rev = absl::StrCat(revision);
    m->revision = revision;
    m->requests = &requests_.WithLabels({b.service, rev});
    for (int c = 2; c <= 5; ++c) {
      m->responses[c] = &responses_.WithLabels({b.service, rev, absl::StrCat(c, "xx")});
    }
    m->connect_errors = &connect_errors_.WithLabels({b.service, rev});
    m->latency = &latency_.WithLabels({b.service, rev});
    return m;
  }

  void RegisterRevisions(Backend& b, const v1::ServiceRoute& route) {
    absl::MutexLock lock(&b.metrics_mu);
    for (const v1::RevisionRoute& r : route.revisions()) {
      if (b.metrics.contains(r.revision())) continue;
      b.metrics.emplace(r.revision(), MakeMetrics(b, r.revision()));
    }
  }

  // Lock-free after the first request of a revision on this worker.
  RevisionMetrics* MetricsFor(Worker& w, Backend& b, int64_t revision) {
    auto& cache = b.metrics_cache[w.index];
    if (auto it = cache.find(revision); it != cache.end()) return it->second;
    absl::MutexLock lock(&b.metrics_mu);
    auto it = b.metrics.find(revision);
    if (it == b.metrics.end()) {
      // A revision from a route this proxy never saw registered (cannot happen via Update).
      it = b.metrics.emplace(revision, MakeMetrics(b, revision)).first;
    }
    cache[revision] = it->second.get();
    return it->second.get();
  }

  void SessionStarted(Worker& w, Session* s) {
    w.sessions.insert(s);
    absl::MutexLock lock(&mu_);
    ++live_sessions_;
  }
  void SessionEnded(Worker& w, Session* s) {
    w.sessions.erase(s);
    connections_.fetch_sub(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    --live_sessions_;
  }

  awaitable<void> Accept() {
    size_t next = 0;
    AcceptBackoff backoff;
    for (;;) {
      Worker& w = *workers_[next++ % workers_.size()];
      beast::error_code ec;
      tcp::socket sock =
          co_await acceptor_->async_accept(w.ioc, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_->is_open() || stopping_) co_return;
        if (auto pause = backoff.OnError(ec); pause.count() > 0) {
          asio::steady_timer t(co_await asio::this_coro::executor, pause);
          co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        }
        continue;
      }
      backoff.OnSuccess();
      // A connection takes the client's descriptor and one upstream connection's.
      DescriptorBudget::Lease fds;
      if (connections_.load(std::memory_order_relaxed) < options_.max_connections) {
        fds = budget_.TryAcquire(2);
      }
      if (!fds) {
        refused_.WithLabels({listener_}).Inc();
        static constexpr std::string_view k503 =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";
        SendAndClose(sock.release(ec), options_.mode == ProxyMode::kHttp && !tls_ ? k503 : "");
        continue;
      }
      connections_.fetch_add(1, std::memory_order_relaxed);
      sock.set_option(tcp::no_delay(true), ec);
      // Relayed messages are written at once where the socket takes them (relay::WriteNow);
      // asynchronous operations are not affected.
      if (options_.mode == ProxyMode::kHttp && !tls_) sock.non_blocking(true, ec);
      auto s = std::make_shared<Session>(std::move(sock), std::move(fds));
      auto remote = s->client.remote_endpoint(ec);
      if (!ec) s->peer_ip = remote.address().to_string();
      s->tls = tls_ != nullptr;
      if (options_.mode == ProxyMode::kHttp) {
        // The first request head must be complete within the header timeout of the accept.
        s->deadline.ArmFor(absl::ToChronoNanoseconds(options_.header_timeout));
        asio::co_spawn(w.ioc, HttpSession(w, s), LogEscapedException{"proxy http session"});
      } else {
        asio::co_spawn(w.ioc, TcpSession(w, s), LogEscapedException{"proxy tcp session"});
      }
    }
  }

  // Closes the connections whose deadline has passed, every sweep_tick_ (a fraction of the
  // shortest timeout): one timer per io thread instead of one per connection and operation.
  awaitable<void> Sweep(Worker& w) {
    asio::steady_timer timer(w.ioc);
    for (;;) {
      beast::error_code ec;
      timer.expires_after(sweep_tick_);
      co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
      if (ec || stopping_) co_return;
      const auto now = relay::ClientDeadline::Clock::now();
      for (Session* s : w.sessions) {
        if (!s->deadline.Expired(now) || !s->client.is_open()) continue;
        s->deadline.Clear();
        if (!s->lingering) timed_out_.WithLabels({listener_}).Inc();
        // The session's pending operation ends with an error when the socket closes.
        static constexpr std::string_view k408 =
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 27\r\nConnection: close\r\n\r\nrequest head took too long\n";
        SendAndClose(s->client.release(ec), s->idle && s->head_started && !s->tls ? k408 : "");
      }
    }
  }

  static tcp::endpoint Target(const Backend& b, const BalancedEndpoint& ep, beast::error_code& ec) {
    auto addr = asio::ip::make_address(ep.endpoint.address(), ec);
    int port = b.target_port > 0 ? b.target_port : ep.endpoint.port();
    return tcp::endpoint(addr, static_cast<uint16_t>(port));
  }

  awaitable<std::unique_ptr<Upstream>> Connect(Worker& w, const Backend& b,
                                               const Balancer::Lease& lease) {
    beast::error_code ec;
    tcp::endpoint target = Target(b, *lease.state(), ec);
    if (ec) co_return nullptr;
    beast::tcp_stream stream(w.ioc);
    stream.expires_after(absl::ToChronoMilliseconds(options_.connect_timeout));
    co_await stream.async_connect(target, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return nullptr;
    auto up = std::make_unique<Upstream>(w.ioc, options_.max_header_bytes);
    up->buffer.reserve(std::min<size_t>(16 << 10, options_.max_header_bytes));
    up->socket = stream.release_socket();
    up->socket.set_option(tcp::no_delay(true), ec);
    up->socket.non_blocking(true, ec);  // relay::WriteNow
    up->endpoint = lease.state();
    co_return up;
  }

  std::unique_ptr<Upstream> TakeIdle(Worker& w, BalancedEndpoint* ep) {
    auto it = w.idle.find(ep);
    if (it == w.idle.end()) return nullptr;
    auto& v = it->second;
    while (!v.empty()) {
      std::unique_ptr<Upstream> up = std::move(v.back());
      v.pop_back();
      // A peer that closed the idle connection shows as readable EOF: skip it rather than
      // failing the request on it.
      char c;
      ssize_t n = ::recv(up->socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && up->buffer.size() == 0) {
        up->pooled.Reset();  // the session's lease covers it now
        return up;
      }
    }
    return nullptr;
  }

  void PutIdle(Worker& w, std::unique_ptr<Upstream> up) {
    if (stopping_ || up->endpoint->removed.load(std::memory_order_relaxed)) return;
    auto& v = w.idle[up->endpoint.get()];
    if (v.size() >= options_.max_idle_per_endpoint) return;
    // Pooled, it outlives the session that paid for it: it needs a descriptor of its own.
    up->pooled = budget_.TryAcquire(1);
    if (up->pooled) v.push_back(std::move(up));
  }

  // Picks an endpoint and gets a connection to it; a failed connect ejects the endpoint and is
  // retried once on another one. `status` is 503 (no endpoints) or 502 when it fails.
  struct Acquired {
    Balancer::Lease lease;
    std::unique_ptr<Upstream> up;
    bool reused = false;
    int status = 0;
    int64_t failed_revision = -1;
  };
  awaitable<Acquired> Acquire(Worker& w, Backend& b, bool allow_pool) {
    Acquired a = PickPooled(w, b, allow_pool);
    if (a.up || a.status != 0) co_return a;
    co_return co_await ConnectPicked(w, b, allow_pool, std::move(a));
  }

  // Acquire's first step, which does not wait: the pick, and a pooled connection to it if there
  // is one. Acquire is done when `up` or `status` is set; else ConnectPicked goes on.
  Acquired PickPooled(Worker& w, Backend& b, bool allow_pool,
                      absl::Span<const std::string> exclude = {}) {
    Acquired a;
    absl::StatusOr<Balancer::Lease> picked = b.balancer.Pick(exclude);
    if (!picked.ok()) {
      a.status = absl::IsUnavailable(picked.status()) ? 503 : 502;
      return a;
    }
    a.lease = std::move(*picked);
    if (allow_pool) {
      a.up = TakeIdle(w, a.lease.state().get());
      a.reused = a.up != nullptr;
    }
    return a;
  }

  // Connects to the endpoint PickPooled picked; a failed connect ejects it and tries another.
  awaitable<Acquired> ConnectPicked(Worker& w, Backend& b, bool allow_pool, Acquired a) {
    for (int attempt = 0;; ++attempt) {
      a.up = co_await Connect(w, b, a.lease);
      if (a.up) co_return a;
      MetricsFor(w, b, a.lease.revision())->connect_errors->Inc();
      b.balancer.Eject(a.lease.key());
      const std::string failed_key = a.lease.key();
      const int64_t failed_revision = a.lease.revision();
      a.lease.Release();
      if (attempt == 1) {
        a.failed_revision = failed_revision;
        a.status = 502;
        co_return a;
      }
      a = PickPooled(w, b, allow_pool, {&failed_key, 1});
      a.failed_revision = failed_revision;
      if (a.up || a.status != 0) co_return a;
    }
  }

  // Counts one request of an ingress rule into its series when it ends, by the answer's status
  // (0: none was sent, the client went away) and whether the endpoint cut the answer off.
  struct RuleCount {
    RuleCount() = default;
    RuleCount(const RuleCount&) = delete;
    RuleCount& operator=(const RuleCount&) = delete;
    ~RuleCount() {
      if (m == nullptr || m->errors == nullptr) return;
      if (status >= 100 && status < 600) m->requests[status / 100]->Inc();
      if (status >= 500 || cut) m->errors->Inc();
      if (status != 0) {
        m->latency->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    }
    const RuleMetrics* m = nullptr;
    std::chrono::steady_clock::time_point start;
    int status = 0;
    bool cut = false;
  };

  // The key authorization a GET of /.well-known/acme-challenge/TOKEN gets, or null.
  static const std::string* AcmeChallenge(const IngressTable& table,
                                          const http::request<http::buffer_body>& req) {
    static constexpr std::string_view kPrefix = "/.well-known/acme-challenge/";
    if (table.acme_challenges.empty() || req.method() != http::verb::get) {
      return nullptr;
    }
    const beast::string_view target = req.target();
    const std::string_view t(target.data(), target.size());
    if (t.substr(0, kPrefix.size()) != kPrefix) return nullptr;
    const std::string_view token = t.substr(kPrefix.size(), t.find('?') - kPrefix.size());
    auto it = table.acme_challenges.find(token);
    return it == table.acme_challenges.end() ? nullptr : &it->second;
  }

  struct IngressPick {
    const v1::IngressRoute* rule = nullptr;  // null: no rule (404)
    const RuleMetrics* metrics = nullptr;    // the rule's series
    std::shared_ptr<Backend> backend;        // null with a rule: the service has no route (503)
  };
  // The rule for the request's Host and path. A request in absolute form (meant for a proxy)
  // names the host itself; it goes on in origin form, with that host.
  static IngressPick PickIngress(const IngressTable& table, http::request<http::buffer_body>& req) {
    for (beast::string_view scheme : {"http://", "https://"}) {
      const beast::string_view target = req.target();
      if (target.size() < scheme.size() || !beast::iequals(target.substr(0, scheme.size()), scheme))
        continue;
      const beast::string_view rest = target.substr(scheme.size());
      const size_t slash = rest.find('/');
      const std::string authority(rest.substr(0, slash));
      const std::string origin =
          slash == beast::string_view::npos ? std::string("/") : std::string(rest.substr(slash));
      req.set(http::field::host, authority);
      req.target(origin);
      break;
    }
    beast::string_view target = req.target();
    const beast::string_view host = req[http::field::host];
    target = target.substr(0, target.find_first_of("?#"));
    IngressPick out;
    out.rule = MatchIngress(table.routes, NormalizeRequestHost({host.data(), host.size()}),
                            {target.data(), target.size()});
    if (out.rule == nullptr) return out;
    out.metrics = &table.rule_metrics[static_cast<size_t>(out.rule - table.routes.data())];
    auto it = table.backends.find({out.rule->service_id(), out.rule->target_port()});
    if (it != table.backends.end()) out.backend = it->second;
    return out;
  }

  awaitable<void> HttpSession(Worker& w, std::shared_ptr<Session> s) {
    SessionStarted(w, s.get());
    if (tls_) {
      // The connection starts on the base context; SNI picks the rule's (IngressTlsContexts).
      asio::ssl::stream<tcp::socket&> stream(s->client, tls_->base());
      // Asio sets SSL_MODE_RELEASE_BUFFERS: OpenSSL would then free its record buffers whenever
      // they run empty and allocate them again for the next record, i.e. per request on a
      // keep-alive connection. They stay for the connection's life instead (about 34 KiB).
      SSL_clear_mode(stream.native_handle(), SSL_MODE_RELEASE_BUFFERS);
      beast::error_code ec;
      // The header timeout armed at the accept bounds the handshake too.
      co_await stream.async_handshake(asio::ssl::stream_base::server,
                                      asio::redirect_error(use_awaitable, ec));
      if (!ec) co_await ServeAndLinger(w, *s, stream);
    } else {
      co_await ServeAndLinger(w, *s, s->client);
    }
    beast::error_code ec;
    s->client.close(ec);
    SessionEnded(w, s.get());
  }

  template <class Stream>
  awaitable<void> ServeAndLinger(Worker& w, Session& s, Stream& client) {
    try {
      co_await ServeHttp(w, s, client);
    } catch (const std::exception& e) {
      // Whatever went wrong, it ends this connection only.
      spdlog::error("proxy {}: connection from {} dropped: {}", listener_, s.peer_ip, e.what());
    }
    beast::error_code ec;
    if (s.reset) {
      s.client.set_option(tcp::socket::linger(true, 0), ec);
    } else if (!stopping_) {
      // Not while stopping: the sweep that ends a linger has stopped, and a keep-alive client
      // would hold Stop for its whole timeout.
      co_await Linger(s, client);
    }
  }

  // Ends the connection gracefully: our side is shut, and what the client still sends (the
  // rest of a refused request) is read and dropped until it closes, for a second at most.
  // Closing with unread data would reset the connection, and the reset can destroy the error
  // answer before the client has read it.
  awaitable<void> Linger(Session& s, tcp::socket&) {
    beast::error_code ec;
    if (!s.client.is_open()) co_return;
    s.client.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    s.idle = false;
    s.lingering = true;
    s.deadline.ArmFor(std::chrono::seconds(1));
    char sink[4096];
    for (size_t total = 0; total < (1u << 20);) {
      size_t n = co_await s.client.async_read_some(asio::buffer(sink),
                                                   asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      total += n;
    }
    s.deadline.Clear();
  }

  // TLS: close_notify both ways, for a second at most.
  awaitable<void> Linger(Session& s, asio::ssl::stream<tcp::socket&>& client) {
    if (!s.client.is_open()) co_return;
    s.idle = false;
    s.lingering = true;
    s.deadline.ArmFor(std::chrono::seconds(1));
    beast::error_code ec;
    co_await client.async_shutdown(asio::redirect_error(use_awaitable, ec));
    s.deadline.Clear();
  }

  template <class Stream>
  awaitable<void> ServeHttp(Worker& w, Session& s, Stream& client) {
    beast::flat_buffer cbuf(options_.max_header_bytes);
    std::unique_ptr<char[]> body;
    const auto header_timeout = absl::ToChronoNanoseconds(options_.header_timeout);
    s.deadline.idle = absl::ToChronoNanoseconds(options_.idle_timeout);
    for (bool first = true;; first = false) {
      if (stopping_) break;
      s.idle = true;
      // The first head is timed from the accept; a later one gets the idle timeout until its
      // first byte, then the header timeout.
      s.head_started = cbuf.size() > 0;
      if (!first && s.head_started) {
        s.deadline.ArmFor(header_timeout);
      } else if (!first) {
        s.deadline.Arm();
      }
      http::request_parser<http::buffer_body> req_p;
      req_p.body_limit(std::numeric_limits<std::uint64_t>::max());
      req_p.header_limit(static_cast<uint32_t>(options_.max_header_bytes));
      beast::error_code ec;
      auto on_read = [&s, first, header_timeout](size_t) {
        if (s.head_started) return;
        s.head_started = true;
        if (!first) s.deadline.ArmFor(header_timeout);
      };
      co_await SafeAsyncRead(client, cbuf, req_p, ReadUntil::kHeader,
                             asio::redirect_error(use_awaitable, ec), on_read);
      s.idle = false;
      s.deadline.Clear();
      if (ec) {
        // (No temporaries in co_await arguments: GCC 12 may destroy them twice.)
        const int status = relay::StatusForReadError(ec);
        const std::string text = status == 431 ? std::string("request header too large\n")
                                               : absl::StrCat("bad request: ", ec.message(), "\n");
        if (status != 0) co_await relay::SendError(client, status, text, false, 11);
        break;
      }
      if (relay::Refusal r = relay::CheckRequestFraming(req_p.get()); r.status != 0) {
        const std::string text = absl::StrCat(r.reason, "\n");
        co_await relay::SendError(client, r.status, text, false, req_p.get().version());
        break;
      }
      if (!body) {
        body.reset(new char[kBodyChunk]);
        // Beast reads at most the free capacity (512 bytes minimum): size it for bulk transfers.
        cbuf.reserve(std::min<size_t>(16 << 10, options_.max_header_bytes));
      }
      bool keep = co_await Forward(w, s, client, cbuf, req_p, body.get());
      s.upstream = nullptr;
      if (!keep) break;
    }
  }

  // One request: returns whether the client connection can carry another.
  template <class Stream>
  awaitable<bool> Forward(Worker& w, Session& s, Stream& client, beast::flat_buffer& cbuf,
                          http::request_parser<http::buffer_body>& req_p, char* buf) {
    const auto start = std::chrono::steady_clock::now();
    auto& req = req_p.get();
    const unsigned version = req.version();
    bool client_keep = req.keep_alive();
    const bool head = req.method() == http::verb::head;
    const bool bodyless = req_p.is_done();
    const bool expect_continue =
        beast::iequals(req[http::field::expect], "100-continue") && !bodyless;

    std::shared_ptr<Backend> backend = single_;
    // The ingress's table, held while the request runs (its rule's series are in it).
    std::shared_ptr<const IngressTable> table;
    RuleCount counted;
    counted.start = start;
    if (!backend) {
      // The ingress: the rule for the Host and path (before the head is rewritten).
      table = ingress_table();
      if (const std::string* key_authorization = AcmeChallenge(*table, req)) {
        // An ACME server validating a name (HTTP-01), on any host the cluster serves: before the
        // rules, since the name's rule redirects to HTTPS, which has no certificate yet.
        const bool keep = client_keep && bodyless && !stopping_;
        co_await relay::SendAnswer(client, 200, *key_authorization, keep, version, std::string());
        co_return keep;
      }
      const IngressPick pick = PickIngress(*table, req);
      counted.m = pick.metrics;
      if (pick.rule != nullptr && pick.rule->tls() && !tls_) {
        // A TLS host is served over HTTPS only: the same URL there (308 keeps the method).
        const bool keep = client_keep && bodyless && !stopping_;
        const beast::string_view host = req[http::field::host];
        const beast::string_view target = req.target();
        const std::string location =
            IngressHttpsUrl(NormalizeRequestHost({host.data(), host.size()}),
                            {target.data(), target.size()}, https_port_.load());
        counted.status = 308;
        co_await relay::SendRedirect(client, 308, location, keep, version);
        co_return keep;
      }
      if (pick.backend == nullptr) {
        const bool keep = client_keep && bodyless && !stopping_;
        const int status = pick.rule == nullptr ? 404 : 503;
        const std::string text = pick.rule == nullptr
                                     ? std::string("no ingress rule for this host and path\n")
                                     : std::string("no endpoints available\n");
        counted.status = status;
        co_await relay::SendError(client, status, text, keep, version);
        co_return keep;
      }
      backend = pick.backend;
    }
    Backend& b = *backend;

    // The ingress is the edge: it says how the client came (published ports as before).
    relay::PrepareRequestHead(req_p, s.peer_ip, single_ ? "" : (tls_ ? "https" : "http"));

    std::optional<http::response_parser<http::buffer_body>> res_p;
    Acquired a;
    for (int round = 0;; ++round) {
      // A reused connection the peer closed meanwhile fails the first exchange; a request
      // without body is safe to send again on a fresh connection. (A pooled connection is
      // taken without a coroutine of its own: the common case.)
      a = PickPooled(w, b, /*allow_pool=*/round == 0);
      if (!a.up && a.status == 0) a = co_await ConnectPicked(w, b, round == 0, std::move(a));
      if (!a.up) {
        int64_t rev = a.failed_revision;
        if (rev >= 0) {
          RevisionMetrics* m = MetricsFor(w, b, rev);
          m->requests->Inc();
          m->responses[5]->Inc();
        } else if (a.status == 503) {
          no_endpoint_.WithLabels({b.service}).Inc();
        }
        bool keep = client_keep && bodyless && !stopping_;
        counted.status = a.status;
        co_await relay::SendError(client, a.status,
                                  a.status == 503
                                      ? "no endpoints available\n"
                                      : "bad gateway: could not connect to any endpoint\n",
                                  keep, version);
        co_return keep;
      }
      s.upstream = &a.up->socket;
      if (round == 0 && expect_continue) {
        static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        beast::error_code ec;
        co_await asio::async_write(client, asio::buffer(kContinue, sizeof(kContinue) - 1),
                                   asio::redirect_error(use_awaitable, ec));
        if (ec) co_return false;
      }
      relay::RelayResult sent =
          co_await relay::Relay<true>(req_p, client, cbuf, a.up->socket, buf, &s.deadline);
      if (sent.failed == relay::Side::kIn) {
        // The client went away mid-request, or sent a body we cannot read (a bad chunk, a
        // trailer too large): nothing of the response has been sent yet.
        const int status = relay::StatusForReadError(sent.ec);
        const std::string text = absl::StrCat("bad request body: ", sent.ec.message(), "\n");
        counted.status = status;
        if (status != 0) co_await relay::SendError(client, status, text, false, version);
        co_return false;
      }
      const bool sent_ok = sent.failed == relay::Side::kNone;
      beast::error_code ec;
      if (sent_ok) ec = co_await ReadResponseHeader(*a.up, head, res_p);
      if (sent_ok && !ec && res_p->get().result_int() != 101) break;
      if (a.reused && bodyless && round == 0) continue;
      RevisionMetrics* m = MetricsFor(w, b, a.lease.revision());
      m->requests->Inc();
      m->responses[5]->Inc();
      bool keep = client_keep && req_p.is_done() && !stopping_;
      counted.status = 502;
      co_await relay::SendError(client, 502, "bad gateway: the endpoint failed\n", keep, version);
      co_return keep;
    }

    // During a deployment, a 5xx from one revision to a request that can be repeated is sent
    // once to another revision; the first answer still counts against its revision (analysis
    // sees it), the client gets the second.
    Acquired* ap = &a;
    http::response_parser<http::buffer_body>* rp = &*res_p;
    Retry retry;
    if (bodyless && IsRepeatable(req.method()) && IsRetryable(rp->get().result_int())) {
      const int64_t failed_revision = a.lease.revision();
      if (co_await RetryOnOtherRevision(w, b, s, client, cbuf, req_p, buf, failed_revision, head,
                                        retry)) {
        RevisionMetrics* fm = MetricsFor(w, b, failed_revision);
        fm->requests->Inc();
        fm->responses[5]->Inc();
        fm->latency->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        retried_.WithLabels({b.service}).Inc();
        beast::error_code ec;
        a.up->socket.close(ec);  // the first answer's body is not read: the connection goes
        ap = &retry.a;
        rp = &*retry.res;
      } else if (retry.a.up) {
        beast::error_code ec;
        retry.a.up->socket.close(ec);
      }
      s.upstream = &ap->up->socket;
    }

    RevisionMetrics* m = MetricsFor(w, b, ap->lease.revision());
    m->requests->Inc();
    auto& res = rp->get();
    const int status = res.result_int();
    const bool upstream_keep = res.keep_alive();
    relay::PrepareResponseHead(*rp, version, head, client_keep);
    if (stopping_) client_keep = false;
    res.keep_alive(client_keep);
    if (int c = StatusClass(status); c != 0) m->responses[c]->Inc();
    counted.status = status;

    relay::RelayResult relayed =
        co_await relay::Relay<false>(*rp, ap->up->socket, ap->up->buffer, client, buf, &s.deadline);
    m->latency->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (relayed.failed != relay::Side::kNone) {
      // The endpoint's side failed: the client got a cut-off answer.
      counted.cut = relayed.failed == relay::Side::kIn;
      if (relayed.failed == relay::Side::kIn && relay::EndsAtClose(*rp, head)) s.reset = true;
      co_return false;
    }
    s.upstream = nullptr;
    if (upstream_keep && rp->is_done()) PutIdle(w, std::move(ap->up));
    co_return client_keep;
  }

  static bool IsRepeatable(http::verb v) {
    return v == http::verb::get || v == http::verb::head || v == http::verb::options;
  }
  static bool IsRetryable(int status) {
    return status == 500 || status == 502 || status == 503 || status == 504;
  }

  struct Retry {
    Acquired a;
    std::optional<http::response_parser<http::buffer_body>> res;
  };

  // Sends the (bodyless) request to another revision on a fresh connection and reads the
  // answer's header. False when there is no other revision or the attempt failed; the caller
  // then relays the first answer.
  template <class Stream>
  awaitable<bool> RetryOnOtherRevision(Worker& w, Backend& b, Session& s, Stream& client,
                                       beast::flat_buffer& cbuf,
                                       http::request_parser<http::buffer_body>& req_p, char* buf,
                                       int64_t revision, bool head, Retry& out) {
    absl::StatusOr<Balancer::Lease> picked = b.balancer.PickOtherRevision(revision);
    if (!picked.ok()) co_return false;
    out.a.lease = std::move(*picked);
    out.a.up = co_await Connect(w, b, out.a.lease);
    if (!out.a.up) {
      MetricsFor(w, b, out.a.lease.revision())->connect_errors->Inc();
      b.balancer.Eject(out.a.lease.key());
      co_return false;
    }
    s.upstream = &out.a.up->socket;
    relay::RelayResult sent =
        co_await relay::Relay<true>(req_p, client, cbuf, out.a.up->socket, buf, &s.deadline);
    if (sent.failed != relay::Side::kNone) co_return false;
    beast::error_code ec = co_await ReadResponseHeader(*out.a.up, head, out.res);
    co_return !ec && out.res->get().result_int() != 101;
  }

  awaitable<beast::error_code> ReadResponseHeader(
      Upstream& up, bool head, std::optional<http::response_parser<http::buffer_body>>& res) {
    return relay::ReadResponseHeader(up.socket, up.buffer, head,
                                     static_cast<uint32_t>(options_.max_header_bytes), res);
  }

  // Both directions of one TCP connection. Whichever direction finishes last destroys it, which
  // closes both sockets and ends the session.
  struct TcpPair {
    TcpPair(Impl* i, Worker* wk, std::shared_ptr<Session> s, std::unique_ptr<Upstream> u,
            Balancer::Lease l, RevisionMetrics* rm)
        : impl(i), w(wk), session(std::move(s)), up(std::move(u)), lease(std::move(l)), m(rm) {}
    ~TcpPair() {
      m->latency->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      beast::error_code ec;
      session->upstream = nullptr;
      up->socket.close(ec);
      session->client.close(ec);
      impl->SessionEnded(*w, session.get());
    }
    Impl* impl;
    Worker* w;
    std::shared_ptr<Session> session;
    std::unique_ptr<Upstream> up;
    Balancer::Lease lease;
    RevisionMetrics* m;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  };

  static awaitable<void> Pump(std::shared_ptr<TcpPair> pair, tcp::socket& from, tcp::socket& to) {
    std::unique_ptr<char[]> buf(new char[kBodyChunk]);
    beast::error_code ec;
    for (;;) {
      size_t n = co_await from.async_read_some(asio::buffer(buf.get(), kBodyChunk),
                                               asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      co_await asio::async_write(to, asio::buffer(buf.get(), n),
                                 asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    beast::error_code ignored;
    if (ec == asio::error::eof) {
      // Half-close: the other direction may still have data to deliver.
      to.shutdown(tcp::socket::shutdown_send, ignored);
    } else {
      from.close(ignored);
      to.close(ignored);
    }
  }

  awaitable<void> TcpSession(Worker& w, std::shared_ptr<Session> s) {
    SessionStarted(w, s.get());
    s->idle = false;
    Backend& b = *single_;
    Acquired a = co_await Acquire(w, b, /*allow_pool=*/false);
    if (!a.up) {
      if (a.failed_revision >= 0) MetricsFor(w, b, a.failed_revision)->requests->Inc();
      if (a.status == 503) no_endpoint_.WithLabels({b.service}).Inc();
      beast::error_code ec;
      s->client.close(ec);
      SessionEnded(w, s.get());
      co_return;
    }
    RevisionMetrics* m = MetricsFor(w, b, a.lease.revision());
    m->requests->Inc();
    s->upstream = &a.up->socket;
    auto pair = std::make_shared<TcpPair>(this, &w, s, std::move(a.up), std::move(a.lease), m);
    tcp::socket& upstream = pair->up->socket;
    asio::co_spawn(w.ioc, Pump(pair, upstream, s->client), LogEscapedException{"proxy tcp pump"});
    asio::co_spawn(w.ioc, Pump(pair, s->client, upstream), LogEscapedException{"proxy tcp pump"});
  }

  const ServiceProxyOptions options_;
  Registry& registry_;
  DescriptorBudget& budget_;
  // The service name (a published port) or "ingress": the label of the listener's counters.
  std::string listener_;
  Family<Counter>& requests_;
  Family<Counter>& responses_;
  Family<Counter>& connect_errors_;
  Family<Histogram>& latency_;
  Family<Counter>& no_endpoint_;
  Family<Counter>& retried_;
  Family<Counter>& refused_;
  Family<Counter>& timed_out_;
  // The ingress listeners' per-rule series; null on a published port.
  Family<Counter>* ingress_requests_ = nullptr;
  Family<Counter>* ingress_errors_ = nullptr;
  Family<Histogram>* ingress_latency_ = nullptr;

  // The HTTPS ingress: the certificates SNI picks from. Null on every other listener.
  std::shared_ptr<IngressTlsContexts> tls_;
  // The HTTP ingress redirects requests for TLS hosts to this port.
  std::atomic<int> https_port_{443};

  // A published port's one backend; null on the ingress listener.
  std::shared_ptr<Backend> single_;
  mutable absl::Mutex ingress_mu_;
  std::shared_ptr<const IngressTable> ingress_table_ ABSL_GUARDED_BY(ingress_mu_) =
      std::make_shared<IngressTable>();

  absl::Mutex mu_;
  int live_sessions_ ABSL_GUARDED_BY(mu_) = 0;
  // Client connections, for the per-listener limit.
  std::atomic<int> connections_{0};
  std::chrono::nanoseconds sweep_tick_{std::chrono::seconds(1)};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  int port_ = 0;
  std::optional<tcp::acceptor> acceptor_;
  // Last: destroyed (with their pending coroutines) before everything above.
  std::vector<std::unique_ptr<Worker>> workers_;
};

// ---------------------------------------------------------------------------------------------

static absl::Status ValidateProxyOptions(const ServiceProxyOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port: must be 0..65535, got ", options.port));
  }
  if (options.target_port < 0 || options.target_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_port: must be 0..65535, got ", options.target_port));
  }
  if (options.header_timeout < absl::ZeroDuration() ||
      options.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("header_timeout, idle_timeout: must not be negative");
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_connections: must be at least 1, got ", options.max_connections));
  }
  if (options.max_header_bytes < 1024 || options.max_header_bytes > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_header_bytes: must be 1024..1048576, got ", options.max_header_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServiceProxy>> ServiceProxy::Start(const v1::ServiceRoute& route,
                                                                  ServiceProxyOptions options) {
  if (auto s = ValidateProxyOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(route, std::move(options));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<ServiceProxy>(new ServiceProxy(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<IngressProxy>> IngressProxy::Start(
    ServiceProxyOptions options, std::shared_ptr<IngressTlsContexts> tls) {
  options.mode = ProxyMode::kHttp;
  options.target_port = 0;
  if (auto s = ValidateProxyOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<ServiceProxy::Impl>(std::move(options));
  impl->SetTls(std::move(tls));
  impl->InitIngressMetrics();
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<IngressProxy>(new IngressProxy(std::move(impl)));
}

IngressProxy::IngressProxy(std::unique_ptr<ServiceProxy::Impl> impl) : impl_(std::move(impl)) {}
IngressProxy::~IngressProxy() = default;
int IngressProxy::port() const { return impl_->port(); }
std::set<std::string> IngressProxy::Update(const v1::RoutingTable& table) {
  return impl_->UpdateIngress(table);
}
bool IngressProxy::Stop(absl::Duration timeout) { return impl_->Stop(timeout); }
void IngressProxy::SetRedirectPort(int https_port) { impl_->SetRedirectPort(https_port); }
std::vector<ProxyStats> IngressProxy::Snapshot() const { return impl_->IngressSnapshot(); }

ServiceProxy::ServiceProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServiceProxy::~ServiceProxy() = default;
int ServiceProxy::port() const { return impl_->port(); }
ProxyMode ServiceProxy::mode() const { return impl_->mode(); }
void ServiceProxy::Update(const v1::ServiceRoute& route) { impl_->Update(route); }
bool ServiceProxy::Stop(absl::Duration timeout) { return impl_->Stop(timeout); }
ProxyStats ServiceProxy::Snapshot() const { return impl_->Snapshot(); }
void ServiceProxy::RemoveMetrics() { impl_->RemoveMetrics(); }

// ---------------------------------------------------------------------------------------------

ProxyManager::ProxyManager(ProxyManagerOptions options) : options_(std::move(options)) {}
ProxyManager::~ProxyManager() { Stop(); }

absl::Status ProxyManager::Apply(const v1::RoutingTable& table, std::vector<Failure>* failures) {
  struct Want {
    const v1::ServiceRoute* route;
    const v1::Port* port;
    ProxyMode mode;
  };
  std::map<Key, Want> want;
  // published port -> (host address, service name) of the ports taken so far
  std::multimap<int, std::pair<std::string, std::string>> port_owner;
  std::vector<std::string> errors;
  auto fail = [&](const v1::ServiceRoute& route, const v1::Port& port, const std::string& error) {
    errors.push_back(
        absl::StrCat("service ", route.name(), " port ", port.published(), ": ", error));
    if (failures == nullptr) return;
    failures->push_back({route.service_id(), route.name(), port.published(),
                         port.host_ip().empty() ? options_.proxy.host_ip : port.host_ip(), error});
  };
  for (const v1::ServiceRoute& route : table.services()) {
    for (const v1::Port& port : route.ports()) {
      if (port.published() == 0) continue;
      if (port.published() < 0 || port.published() > 65535) {
        fail(route, port, "published port out of range");
        continue;
      }
      ProxyMode mode = options_.default_mode;
      std::string proto = absl::AsciiStrToLower(port.protocol());
      if (proto == "http") {
        mode = ProxyMode::kHttp;
      } else if (!proto.empty() && proto != "tcp") {
        fail(route, port, absl::StrCat("unsupported protocol \"", port.protocol(), "\""));
        continue;
      }
      const std::string host = port.host_ip().empty() ? options_.proxy.host_ip : port.host_ip();
      std::string owner;
      for (auto [it, end] = port_owner.equal_range(port.published()); it != end; ++it) {
        if (HostAddressesOverlap(it->second.first, host)) owner = it->second.second;
      }
      if (!owner.empty()) {
        fail(route, port,
             absl::StrCat("port ", port.published(), " is already published by service ", owner));
        continue;
      }
      port_owner.emplace(port.published(), std::pair{host, route.name()});
      want[{route.service_id(), port.published()}] = Want{&route, &port, mode};
    }
  }

  std::vector<std::unique_ptr<ServiceProxy>> to_stop;
  absl::MutexLock lock(&mu_);
  // Stop first what goes away or changes shape, so its port is free for a new owner.
  for (auto it = proxies_.begin(); it != proxies_.end();) {
    auto w = want.find(it->first);
    bool keep = w != want.end() && w->second.mode == it->second.mode &&
                w->second.port->host_ip() == it->second.host_ip &&
                w->second.port->target() == it->second.target;
    if (!keep) {
      to_stop.push_back(std::move(it->second.proxy));
      it = proxies_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& p : to_stop) p->Stop(options_.stop_timeout);
  for (const auto& [key, w] : want) {
    auto it = proxies_.find(key);
    if (it != proxies_.end()) {
      it->second.proxy->Update(*w.route);
      continue;
    }
    ServiceProxyOptions o = options_.proxy;
    o.mode = w.mode;
    // The blue/green preview port reaches only the preview (green) set.
    o.balancer.preview = w.port->name() == kPreviewPortName;
    o.host_ip = w.port->host_ip().empty() ? options_.proxy.host_ip : w.port->host_ip();
    o.port = w.port->published();
    o.target_port = w.port->target();
    auto proxy = ServiceProxy::Start(*w.route, o);
    if (!proxy.ok()) {
      fail(*w.route, *w.port, std::string(proxy.status().message()));
      continue;
    }
    Entry e;
    e.service_name = w.route->name();
    e.host_ip = w.port->host_ip();
    e.target = w.port->target();
    e.mode = w.mode;
    e.proxy = std::move(*proxy);
    proxies_.emplace(key, std::move(e));
  }
  std::set<std::string> proxied;
  for (const auto& [key, e] : proxies_) proxied.insert(key.first);
  for (IngressProxy* ingress : {ingress_.get(), ingress_tls_.get()}) {
    if (ingress == nullptr) continue;
    std::set<std::string> reached = ingress->Update(table);
    ingress_services_.insert(reached.begin(), reached.end());
  }
  // The ingress counts into the same metric children and may still hold them in a request.
  proxied.insert(ingress_services_.begin(), ingress_services_.end());
  // Metrics are per service: keep them while another port of the service is proxied.
  for (auto& p : to_stop) {
    ProxyStats st = p->Snapshot();
    if (!proxied.contains(st.service_id)) p->RemoveMetrics();
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrJoin(errors, "; "));
}

std::vector<ProxyStats> ProxyManager::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<ProxyStats> out;
  std::set<std::string> seen;
  for (const auto& [key, e] : proxies_) {
    if (!seen.insert(key.first).second) continue;  // ports of one service share counters
    out.push_back(e.proxy->Snapshot());
  }
  for (IngressProxy* ingress : {ingress_.get(), ingress_tls_.get()}) {
    if (ingress == nullptr) continue;
    // Both ingress listeners count into the same metric children: one entry per service.
    for (ProxyStats& st : ingress->Snapshot()) {
      if (seen.insert(st.service_id).second) out.push_back(std::move(st));
    }
  }
  return out;
}

absl::Status ProxyManager::StartIngress(const std::string& host_ip, int port) {
  ServiceProxyOptions o = options_.proxy;
  o.host_ip = host_ip;
  o.port = port;
  auto ingress = IngressProxy::Start(o);
  if (!ingress.ok()) return ingress.status();
  absl::MutexLock lock(&mu_);
  ingress_ = std::move(*ingress);
  if (ingress_tls_) ingress_->SetRedirectPort(ingress_tls_->port());
  return absl::OkStatus();
}

absl::Status ProxyManager::StartIngressTls(const std::string& host_ip, int port) {
  ServiceProxyOptions o = options_.proxy;
  o.host_ip = host_ip;
  o.port = port;
  auto contexts = std::make_shared<IngressTlsContexts>();
  auto ingress = IngressProxy::Start(o, contexts);
  if (!ingress.ok()) return ingress.status();
  absl::MutexLock lock(&mu_);
  ingress_tls_ = std::move(*ingress);
  tls_contexts_ = std::move(contexts);
  if (ingress_) ingress_->SetRedirectPort(ingress_tls_->port());
  return absl::OkStatus();
}

int ProxyManager::IngressTlsPort() const {
  absl::MutexLock lock(&mu_);
  return ingress_tls_ ? ingress_tls_->port() : -1;
}

absl::Status ProxyManager::SetIngressCertificates(std::vector<v1::IngressKeyPair>& pairs) {
  std::shared_ptr<IngressTlsContexts> contexts;
  {
    absl::MutexLock lock(&mu_);
    contexts = tls_contexts_;
  }
  if (!contexts) return absl::FailedPreconditionError("the HTTPS ingress is off");
  return contexts->Update(pairs);
}

std::map<std::string, std::string> ProxyManager::IngressCertificatesGiven() const {
  absl::MutexLock lock(&mu_);
  return tls_contexts_ ? tls_contexts_->Given() : std::map<std::string, std::string>{};
}

int ProxyManager::IngressPort() const {
  absl::MutexLock lock(&mu_);
  return ingress_ ? ingress_->port() : -1;
}

int ProxyManager::BoundPort(const std::string& service_id, int published) const {
  absl::MutexLock lock(&mu_);
  auto it = proxies_.find({service_id, published});
  return it == proxies_.end() ? -1 : it->second.proxy->port();
}

size_t ProxyManager::size() const {
  absl::MutexLock lock(&mu_);
  return proxies_.size();
}

void ProxyManager::Stop() {
  absl::MutexLock lock(&mu_);
  for (auto& [key, e] : proxies_) e.proxy->Stop(options_.stop_timeout);
  proxies_.clear();
  for (auto* ingress : {&ingress_, &ingress_tls_}) {
    if (*ingress) (*ingress)->Stop(options_.stop_timeout);
    ingress->reset();
  }
}

}  // namespace warren
