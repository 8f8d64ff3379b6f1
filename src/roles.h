#ifndef WARREN_ROLES_H_
#define WARREN_ROLES_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/limits.h"

namespace warren {

// Service DNS (see docs/dns.md).
struct DnsOptions {
  // UDP and TCP listen address; empty disables DNS. "auto" (kAutoDnsAddr): the role's own
  // address, and DNS off with a warning when that cannot be had (see common/role_defaults.h).
  std::string addr = "auto";
  std::string domain = "warren";
  absl::Duration ttl = absl::Seconds(5);
  // Resolvers for other names; empty means the nameservers of /etc/resolv.conf.
  std::vector<std::string> upstreams;
  // Answer REFUSED for other names instead of forwarding them.
  bool refuse_external = false;
  // Answer A queries with only the weighted first record.
  bool single_answer = false;
  // Listen even before the address exists on an interface (the pods' DNS on their gateway).
  bool freebind = false;
};

// Where a manager keeps the cluster's state (docs/high-availability.md).
struct StoreOptions {
  // etcd members, "host:port" each; empty: the embedded SQLite store in the data dir.
  std::vector<std::string> etcd_endpoints;
  // TLS to etcd (PEM files): the members' CA, and a client certificate and key if they ask
  // for one. Empty: plain TCP.
  std::string etcd_ca_file;
  std::string etcd_cert_file;
  std::string etcd_key_file;
  // Every key Warren writes to etcd starts with this.
  std::string etcd_prefix = "/warren/";
  // The controllers' leader lease on etcd: how long the controllers of a crashed manager keep
  // their office.
  absl::Duration leader_ttl = absl::Seconds(5);
  // While this manager leads: every interval, etcd's history is compacted to the revision it
  // saw one interval earlier (so at least one interval of history is kept). Zero: never.
  absl::Duration etcd_compaction_interval = absl::Minutes(5);
};

// Descriptors kept for the control plane (gRPC API, store, task processes and logs, health
// checks): the data plane (published ports, DNS) gets RLIMIT_NOFILE minus this, at least half.
inline constexpr int64_t kDefaultReservedFds = 1024;

// The published ports' HTTP proxies (see docs/operations.md).
struct ProxyLimits {
  // The whole request head must arrive within this time; 0: no limit.
  absl::Duration header_timeout = absl::Seconds(10);
  // Keep-alive connections without a request, and clients that stall a relay, are closed after
  // this; 0: no limit.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Client connections at once per published port.
  int max_connections = 10000;
};

struct ManagerOptions {
  std::string data_dir = "./warren-data";
  std::string api_addr = "127.0.0.1:8080";
  // Not 9090: that is Prometheus' own port, and Prometheus often runs beside Warren.
  std::string metrics_addr = "127.0.0.1:9471";
  absl::Duration node_timeout = absl::Seconds(15);
  DnsOptions dns;
  // Prometheus for `analysisQuery` checks, "http://host:port"; empty: none.
  std::string prometheus_url;
  StoreOptions store;
  // Terminal tasks kept per slot for `service ps` (0..100; common/limits.h).
  int task_history = limits::kDefaultTaskHistory;
  int64_t reserved_fds = kDefaultReservedFds;
  // Mutual TLS on the API, the default (issue 12; docs/security.md). false
  // (--insecure-plaintext): every call is unauthenticated, so it is refused on a non-loopback
  // api_addr.
  bool tls = true;
  // Where the admin client bundle goes (<tls_root>/<cluster-id>, <tls_root>/current); empty:
  // $HOME/.warren.
  std::string tls_root;
  // Lifetime of the node certificates the CA issues from this start on (1m..5 years; nodes renew
  // at 50-80 % of it). Zero: the cluster's stored value (90 days when it is created).
  absl::Duration cert_validity = absl::ZeroDuration();
  // ACME for `tls: acme` ingresses (docs/ingress.md): the directory URL (empty: off), the
  // account's contact e-mail, and a PEM file of CAs to trust for the directory's TLS besides the
  // system's (pebble's test CA, a private CA).
  std::string acme_directory;
  std::string acme_email;
  std::string acme_ca_bundle;
  // IPv4 CIDR the nodes' /24 subnets come from (docs/networking.md). Empty: the cluster's
  // stored one (10.99.0.0/16 when it is created); a value that differs from the stored one is
  // refused at start.
  std::string cluster_cidr;
};

// The cri runtime: containerd (or another CRI runtime) and the CNI network of the pods.
struct CriOptions {
  std::string socket = "/run/containerd/containerd.sock";
  // Where the worker writes its CNI network config; the runtime must load CNI configs from it.
  std::string cni_conf_dir = "/etc/cni/net.d";
  // The bridge network's name (also the config file 10-<name>.conflist), bridge and range.
  std::string cni_network = "warren";
  std::string cni_bridge = "warren0";
  std::string cni_subnet = "10.88.0.0/16";
  // Service DNS for the pods: the worker answers on the bridge's gateway address (port 53),
  // and every pod's resolv.conf points there with the cluster domain as search domain.
  bool pod_dns = true;
  // Registry credentials, a Docker client config file ({"auths": {HOST: {...}}}); read at start.
  std::string registry_auth;
  // Each CRI call gives up after this long (an image pull: pull_timeout).
  absl::Duration call_timeout = absl::Seconds(30);
  absl::Duration pull_timeout = absl::Minutes(10);
};

struct WorkerOptions {
  // Manager API address; ignored in hybrid mode (the in-process manager's address is used).
  std::string manager_addr = "127.0.0.1:8080";
  // Defaults to the host name.
  std::string node_name;
  // Defaults to ./warren-data (hybrid) or ./warren-worker-data.
  std::string data_dir;
  // The worker's own gRPC endpoint (logs); port 0 picks a free port.
  std::string agent_addr = "127.0.0.1:0";
  // Loopback range task addresses come from (network "local").
  std::string address_range = "127.1.0.0/16";
  // How task addresses reach other nodes: "local" (address_range, this host only), "host-gw",
  // "vxlan" or "wireguard" (`--encrypt`) (the node's subnet of the cluster CIDR, routed between
  // the nodes; worker/node_network.h).
  std::string network = "local";
  // The address other nodes reach this node at, an IP literal; empty: the source address of
  // the host's default route, else 127.0.0.1 (common/advertise_addr.h).
  std::string advertise_addr;
  std::map<std::string, std::string> labels;
  // 0 = detect from the machine.
  double cpus = 0;
  int64_t memory_bytes = 0;
  // "process", "cri" or "fake".
  std::string runtime = "process";
  CriOptions cri;
  // Mutual TLS towards the manager: this node's certificate (re-read on renewal) and the
  // cluster the manager must belong to. Empty cert: plaintext.
  std::string tls_ca_cert;
  std::string tls_cert;
  std::string tls_key;
  std::string cluster_id;
  // Seeds when in its certificate's life (50-80 %) the node renews it; 0: random.
  uint64_t renewal_seed = 0;
  // The clock the renewal schedule reads (tests run it ahead); null: the agent's.
  const Clock* renewal_clock = nullptr;
  // SWMTKN-1-...: joins the cluster when the data dir holds no certificate yet (worker/join.h).
  std::string join_token;
  // "worker", or "hybrid" when it shares the process with a manager.
  std::string role = "worker";
  // Stop every task when the worker exits (default: leave them for the next worker to adopt).
  bool stop_tasks_on_exit = false;
  // The worker's DNS (hybrid nodes use the manager's).
  DnsOptions dns;
  // Address published ports listen on unless the port names its own host IP.
  std::string publish_ip = "0.0.0.0";
  // HOST:PORT the ingress listens on for HTTP (docs/ingress.md); empty: no ingress.
  std::string ingress_http;
  // HOST:PORT the ingress listens on for HTTPS (TLS termination with SNI); empty: off.
  std::string ingress_https;
  // Worker-only metrics endpoint; empty disables it (hybrid serves metrics from the manager).
  std::string metrics_addr;
  // Task output logs: a file is rotated before it grows past log_max_size bytes, and
  // log_max_files files are kept (the current one included).
  int64_t log_max_size = 10 << 20;
  int log_max_files = 3;
  // Directories of tasks that are gone (logs, exit records) are removed task_dir_retention
  // after the task is gone; at most task_dirs_kept of them are kept meanwhile.
  absl::Duration task_dir_retention = absl::Hours(1);
  int task_dirs_kept = 20;
  // How long the start retries reading the tasks of an earlier worker while the runtime
  // cannot be read (it then fails, leaving every task as it is).
  absl::Duration recover_timeout = absl::Seconds(30);
  ProxyLimits proxy;
  int64_t reserved_fds = kDefaultReservedFds;
};

// Each runs until SIGINT/SIGTERM and returns the process exit code.
int RunManager(const ManagerOptions& options);
int RunWorker(const WorkerOptions& options);
int RunHybrid(const ManagerOptions& manager, const WorkerOptions& worker);

}  // namespace warren

#endif  // WARREN_ROLES_H_
