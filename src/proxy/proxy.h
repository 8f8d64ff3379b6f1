#ifndef WARREN_PROXY_PROXY_H_
#define WARREN_PROXY_PROXY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "http/descriptor_budget.h"
#include "http/metrics.h"
#include "proxy/balancer.h"
#include "warren/v1/objects.pb.h"

namespace warren {

class IngressTlsContexts;

enum class ProxyMode { kHttp, kTcp };

// Per-revision totals since the proxy started (counters only grow; a reader computes rates from
// two snapshots). TCP proxies count connections as requests and have no responses.
struct RevisionStats {
  int64_t revision = 0;
  uint64_t requests = 0;
  uint64_t responses_2xx = 0;
  uint64_t responses_3xx = 0;
  uint64_t responses_4xx = 0;
  uint64_t responses_5xx = 0;
  uint64_t connect_errors = 0;
  uint64_t latency_count = 0;
  double latency_sum_seconds = 0;
  // Latency histogram, per bucket (not cumulative across buckets): [i] counts requests that
  // took at most ProxyStats::latency_bounds[i] seconds; the last one those above every bound.
  // The manager merges nodes and windows by bucket and estimates quantiles from the sum.
  std::vector<uint64_t> latency_buckets;
};

struct ProxyStats {
  std::string service_id;
  std::string service;
  std::vector<RevisionStats> revisions;  // by revision number
  // Upper bounds (seconds) of every revision's latency buckets.
  std::vector<double> latency_bounds;
};

struct ServiceProxyOptions {
  ProxyMode mode = ProxyMode::kHttp;
  // Listening address; empty host means 0.0.0.0, port 0 picks a free port.
  std::string host_ip;
  int port = 0;
  // Port dialled on each endpoint's address; 0 means the endpoint's own port.
  int target_port = 0;
  int threads = 2;
  BalancerOptions balancer;
  // Where the warren_proxy_* metrics go; null means DefaultRegistry().
  Registry* registry = nullptr;
  absl::Duration connect_timeout = absl::Seconds(2);
  // Idle keep-alive connections kept per endpoint per io thread.
  size_t max_idle_per_endpoint = 64;
  // A request or response head, and a chunked body's trailer section, larger than this is
  // refused (431 for a request, 502 for a response before it started); 1 KiB..1 MiB.
  size_t max_header_bytes = 64 << 10;
  // HTTP: the whole request head must arrive within this time (of the accept for the first
  // request, of its first byte for later ones), or the connection is closed (408 if part of
  // a head came). Zero: no limit.
  absl::Duration header_timeout = absl::Seconds(10);
  // HTTP: a keep-alive connection waiting for its next request, or a client that neither sends
  // nor reads while a request is relayed, is closed after this. Zero: no limit. (A backend may
  // take its time: waits on endpoints are not limited.)
  absl::Duration idle_timeout = absl::Seconds(60);
  // Client connections open at once on this port; more are refused (HTTP: 503).
  int max_connections = 10000;
  // The descriptors of this proxy's connections (two per client connection, one per pooled
  // upstream connection) count against it; a connection that does not fit is refused like
  // one over max_connections. Null: DescriptorBudget::DataPlane().
  DescriptorBudget* budget = nullptr;
};

// Listens on one published port of one service and forwards to the service's endpoints: HTTP/1.1
// reverse proxy (streaming, keep-alive both sides, pooled upstream connections) or a raw TCP
// relay. A failed connect is retried once on another endpoint and the endpoint is ejected.
class ServiceProxy {
 public:
  static absl::StatusOr<std::unique_ptr<ServiceProxy>> Start(const v1::ServiceRoute& route,
                                                             ServiceProxyOptions options);
  ~ServiceProxy();
  ServiceProxy(const ServiceProxy&) = delete;
  ServiceProxy& operator=(const ServiceProxy&) = delete;

  // The bound port (the real one when started with port 0).
  int port() const;
  ProxyMode mode() const;

  // Thread-safe, any time. Endpoints no longer present get no new requests at once; requests
  // in flight on them finish; their idle upstream connections are closed.
  void Update(const v1::ServiceRoute& route);

  // Graceful stop: no new connections; idle client connections closed; requests in flight
  // finish (answered with Connection: close) for up to `timeout`, then everything is closed.
  // Returns false when connections had to be cut. Idempotent.
  bool Stop(absl::Duration timeout = absl::Seconds(5));

  // Per-revision totals of this service (shared by all proxies of the same service name,
  // since they count into the same metric children).
  ProxyStats Snapshot() const;

  // Drops this service's metric children from the registry (when the service is gone).
  void RemoveMetrics();

  class Impl;

 private:
  explicit ServiceProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The ingress listener (docs/ingress.md): HTTP/1.1 requests are routed by Host (port and
// trailing dot stripped, case-insensitive) and longest path prefix (MatchIngress) to the rule's
// service, through a balancer of its own per (service, target port) that works as a published
// port's does: revision weights, draining, connect retries, the retry of a 5xx on another
// revision, keep-alive both sides. No rule: 404; a rule whose service has no route: 503.
// With `tls` it is the HTTPS ingress: TLS 1.2/1.3 with the certificate SNI picks, then the
// same HTTP handling. Without, a request for a rule with TLS is redirected (308) to HTTPS.
class IngressProxy {
 public:
  // options.mode and target_port are ignored (HTTP; each rule names its port).
  static absl::StatusOr<std::unique_ptr<IngressProxy>> Start(
      ServiceProxyOptions options, std::shared_ptr<IngressTlsContexts> tls = nullptr);
  ~IngressProxy();
  IngressProxy(const IngressProxy&) = delete;
  IngressProxy& operator=(const IngressProxy&) = delete;

  int port() const;
  // The table's ingresses and the routes of the services they name; thread-safe, any time.
  // Returns the ids of the services the rules reach.
  std::set<std::string> Update(const v1::RoutingTable& table);
  bool Stop(absl::Duration timeout = absl::Seconds(5));
  // The port of the redirects to HTTPS (default 443, left out of the URL).
  void SetRedirectPort(int https_port);
  // One entry per service the rules reach (counted into the same metric children as the
  // service's published ports).
  std::vector<ProxyStats> Snapshot() const;

 private:
  explicit IngressProxy(std::unique_ptr<ServiceProxy::Impl> impl);
  std::unique_ptr<ServiceProxy::Impl> impl_;
};

struct ProxyManagerOptions {
  // Template for every proxy: mode, host_ip, port and target_port are set per published port.
  ServiceProxyOptions proxy;
  // Mode for ports whose protocol is "tcp" (the spec's only protocol today) or empty; a port
  // with protocol "http" is always proxied as HTTP.
  ProxyMode default_mode = ProxyMode::kHttp;
  absl::Duration stop_timeout = absl::Seconds(5);
};

// One ServiceProxy per (service, published port), reconciled from the whole routing table.
class ProxyManager {
 public:
  explicit ProxyManager(ProxyManagerOptions options = {});
  ~ProxyManager();
  ProxyManager(const ProxyManager&) = delete;
  ProxyManager& operator=(const ProxyManager&) = delete;

  // A published port that could not be applied.
  struct Failure {
    std::string service_id;
    std::string service_name;
    int port = 0;
    std::string host_ip;  // the address it was to listen on
    std::string error;
  };

  // Starts proxies for new published ports, updates the routes of existing ones and stops the
  // ones no longer in the table. Everything that can be applied is; the error lists the ports
  // that could not (conflicts and bind failures), naming service and port, and `failures`
  // (optional) gets one entry for each.
  absl::Status Apply(const v1::RoutingTable& table, std::vector<Failure>* failures = nullptr);

  // One entry per proxied service.
  std::vector<ProxyStats> Snapshot() const;

  // The bound port of a service's published port (the same unless it was 0), or -1.
  int BoundPort(const std::string& service_id, int published) const;

  // Listens for the ingress (port 0 picks one); every Apply then routes the table's
  // ingresses. An error (address in use) leaves the ingress off.
  absl::Status StartIngress(const std::string& host_ip, int port);
  // The ingress's bound port, or -1 when it is off.
  int IngressPort() const;
  // Listens for the HTTPS ingress (port 0 picks one): TLS with the certificates given to
  // SetIngressCertificates, then as the HTTP ingress. The HTTP ingress's redirects name its port.
  absl::Status StartIngressTls(const std::string& host_ip, int port);
  // The HTTPS ingress's bound port, or -1 when it is off.
  int IngressTlsPort() const;
  // The key pairs of the TLS rules (all of them, replacing the last set); the key bytes in
  // `pairs` are wiped. A pair that does not load is named in the error, the others apply.
  absl::Status SetIngressCertificates(std::vector<v1::IngressKeyPair>& pairs);
  // name -> certificate_sha256 of the pairs last given (empty when the HTTPS ingress is off).
  std::map<std::string, std::string> IngressCertificatesGiven() const;
  size_t size() const;

  void Stop();

 private:
  // (service id, published port)
  using Key = std::pair<std::string, int>;
  struct Entry {
    std::string service_name;
    std::string host_ip;
    int target = 0;
    ProxyMode mode = ProxyMode::kHttp;
    std::unique_ptr<ServiceProxy> proxy;
  };

  const ProxyManagerOptions options_;
  mutable absl::Mutex mu_;
  std::map<Key, Entry> proxies_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<IngressProxy> ingress_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<IngressProxy> ingress_tls_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<IngressTlsContexts> tls_contexts_ ABSL_GUARDED_BY(mu_);
  // Every service the ingress has reached: their metric children stay (a request on a dropped
  // rule may still count into them).
  std::set<std::string> ingress_services_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren

#endif  // WARREN_PROXY_PROXY_H_
