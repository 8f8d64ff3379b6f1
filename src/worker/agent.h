#ifndef WARREN_WORKER_AGENT_H_
#define WARREN_WORKER_AGENT_H_

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "dns/cluster_dns.h"
#include "grpcpp/grpcpp.h"
#include "http/grpc_acceptor.h"
#include "http/metrics.h"
#include "proxy/proxy.h"
#include "roles.h"
#include "security/cert_renewer.h"
#include "warren/v1/api.grpc.pb.h"
#include "worker/health_prober.h"
#include "worker/node_network.h"
#include "worker/op_runner.h"
#include "worker/port_publisher.h"
#include "worker/runtime_driver.h"
#include "worker/secret_files.h"
#include "worker/task_dirs.h"

namespace warren {

// The node's name: --node-name, else the host name. Also the cri runtime's pod label.
std::string NodeName(const WorkerOptions& options);

// The worker: registers its node, heartbeats, receives its task assignments over a gRPC
// stream, runs them through a RuntimeDriver, probes their health and reports every state
// change to the manager. Stopping the agent leaves tasks running (unless asked otherwise):
// the next agent on the same data dir adopts them.
class WorkerAgent {
 public:
  // `registry` receives the proxy metrics (null: the process-wide default registry).
  WorkerAgent(WorkerOptions options, std::unique_ptr<RuntimeDriver> driver, Clock& clock,
              Registry* registry = nullptr);
  ~WorkerAgent();

  // Starts the agent's own gRPC server and the background loops. Registration with the
  // manager is retried in the background until it succeeds.
  absl::Status Start();
  // Stops the loops; with stop_tasks, stops every task first.
  void Stop(bool stop_tasks = false);

  // Whether the manager refused this node because `node rm` removed it (a worker's node only:
  // a hybrid node is its own manager and ignores it). The loops that talk to the manager end;
  // the caller stops the agent and exits. Waits up to `timeout`.
  bool WaitUntilRemoved(absl::Duration timeout) const;

  std::string node_id() const;
  std::string agent_addr() const { return agent_addr_; }
  // The address the node registers as reachable at (after Start).
  std::string advertise_addr() const { return advertise_addr_; }
  // Number of tasks the agent currently runs (tests, metrics).
  int RunningTasks() const;
  // Version of the routing table the data plane (proxies and DNS) last applied.
  uint64_t routes_version() const { return routes_version_; }
  ProxyManager* proxies() { return proxies_.get(); }
  int dns_port() const;

 private:
  struct Local {
    v1::Task task;  // as last assigned
    v1::TaskStatus status;
    bool assigned = false;  // seen in an assignment (adopted tasks start unassigned)
    bool starting = false;
    bool stopping = false;
    bool exited = false;
    // Healthy at least once, or adopted: it may have served traffic, so it drains before
    // stopping. A task whose health check never passed was never routed to.
    bool may_have_served = false;
  };
  class LogService;

  void ConnectLoop();
  // Routing table stream -> proxies and DNS.
  void RoutesLoop();
  // Proxy counters -> manager, every second.
  void StatsLoop();
  void HeartbeatLoop();
  // The HTTPS ingress's key pairs: the routing table names the certificates of the TLS rules
  // (certificate_sha256); when they differ from those last fetched, SyncIngressCertificates
  // fetches every pair (Dispatcher.GetIngressCertificates) into the proxies, at once and, after
  // a failure, again every second. Keys stay in memory only.
  void WantIngressCertificates(const v1::RoutingTable& table);
  void SyncIngressCertificates();
  // Removes the directories of tasks gone long enough (TaskDirJanitor).
  void SweepTaskDirs();
  void ReportLoop();
  absl::Status Register();
  // The log service on agent_addr: mutual TLS requiring a manager when the node has a
  // certificate, else plaintext.
  absl::Status ServeLogs();
  // Renews the node certificate (tls_cert) through warren.v1.Ca/Renew before it expires.
  void StartCertificateRenewal();
  void Apply(const v1::Assignments& assignments);
  void StartTask(const v1::Task& assigned);
  // The address a process task listens on: the assigned one, or the next free one when
  // another program holds it (PickTaskAddress). Reports the task failed when there is none.
  std::optional<std::string> FreeTaskAddress(const v1::Task& task);
  // With `drain`, a running task keeps running for its drain timeout first (it is already
  // out of the routing table), then gets SIGTERM.
  void StopTask(const std::string& task_id, absl::Duration timeout, bool report, bool drain);
  // Puts the task's secrets on its tmpfs and names the directory in `spec`; an error when a
  // secret it uses was not sent or the tmpfs cannot be made.
  absl::Status WriteSecrets(const v1::Task& task, TaskRunSpec* spec);
  void OnRuntimeChange(const std::string& task_id, const TaskRuntimeState& state);
  void OnHealthChange(const std::string& task_id, const v1::TaskHealth& health);
  // Queues the task's current status for the manager (mu_ held).
  void QueueReport(const std::string& task_id, const v1::TaskStatus& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Spawn(std::function<void()> fn);
  std::map<std::string, std::string> TaskEnv(const v1::Task& task) const;

  const WorkerOptions options_;
  std::unique_ptr<RuntimeDriver> driver_;
  Clock& clock_;
  std::unique_ptr<HealthProber> prober_;
  Registry* registry_;
  std::unique_ptr<ProxyManager> proxies_;
  std::unique_ptr<PortPublisher> publisher_;  // applies routing tables to proxies_
  // Sent with the proxy counters: the manager sees from a new value that they started again.
  const uint64_t counters_instance_;
  std::unique_ptr<dns::ClusterDns> dns_;
  std::unique_ptr<dns::ClusterDns> pod_dns_;  // the pods' DNS (cri)
  std::atomic<uint64_t> routes_version_{0};
  // The managers (--manager a,b,c): one channel each; calls go to managers_[manager_], which
  // moves on (to the leader a refusal names, else the next one) when a call to it fails
  // UNAVAILABLE (common/manager_list.h).
  struct ManagerConn {
    std::string addr;
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::Dispatcher::Stub> stub;
  };
  // A leader a refusal names that is not in the list is added (a hybrid node's worker knows
  // only its own manager).
  std::vector<ManagerConn> managers_ ABSL_GUARDED_BY(mu_);
  size_t manager_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<grpc::ChannelCredentials> manager_creds_;
  grpc::ChannelArguments manager_args_;
  // The manager calls go to now, and its index for ManagerFailed.
  std::pair<size_t, std::shared_ptr<v1::Dispatcher::Stub>> Manager() const;
  ManagerConn ConnectManager(const std::string& addr) const;
  // A call to managers_[used] failed with `s`: maybe move on to another manager.
  void ManagerFailed(size_t used, const grpc::Status& s);
  std::unique_ptr<LogService> log_service_;
  std::unique_ptr<security::CertificateRenewer> renewer_;  // with a certificate only
  std::unique_ptr<TaskDirJanitor> janitor_;                // used by the stats loop only
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcAcceptor> acceptor_;  // feeds server_
  std::string agent_addr_;
  // Where the agent listens: --agent-addr, or the advertise address on a routed network.
  std::string agent_listen_;
  std::string advertise_addr_;
  // A routed network (--network host-gw|vxlan|wireguard): the node's subnet and routes to the other
  // nodes' (null with network local). Used by the registration, then by RoutesLoop only.
  NodeNetworkMode network_mode_ = NodeNetworkMode::kLocal;
  std::unique_ptr<CommandRunner> commands_;
  std::unique_ptr<NodeNetwork> network_;
  // Network changes, one at a time (RoutesLoop, and HeartbeatLoop's retry).
  absl::Mutex net_mu_;
  // The peers of the last routing table (serialized) and whether they are all routed;
  // NetworkLoop tries again while they are not.
  std::string peers_wanted_ ABSL_GUARDED_BY(net_mu_);
  std::vector<v1::NodePeer> peers_ ABSL_GUARDED_BY(net_mu_);
  bool peers_done_ ABSL_GUARDED_BY(net_mu_) = true;
  void RoutePeersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(net_mu_);
  // The peers of the newest routing table, left by ApplyPeers when NetworkLoop held net_mu_.
  absl::Mutex pending_mu_ ABSL_ACQUIRED_AFTER(net_mu_);
  std::string pending_wanted_ ABSL_GUARDED_BY(pending_mu_);
  std::vector<v1::NodePeer> pending_peers_ ABSL_GUARDED_BY(pending_mu_);
  bool pending_fresh_ ABSL_GUARDED_BY(pending_mu_) = false;
  // Routes the pending peers when they are new.
  void TakePendingPeersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(net_mu_);
  // Retries failed routes and compares the kernel with them (routed network only).
  void NetworkLoop();
  // ClaimHostNetwork's socket, held for the agent's life (-1: none).
  int network_claim_ = -1;
  // Starts the worker's DNS on the first address of `range` (--dns-addr auto) or where
  // --dns-addr says.
  absl::Status StartDns(const std::string& range);
  // Starts the pods' DNS where the runtime points them (TaskDnsServer), once; nothing when it
  // points nowhere (yet).
  absl::Status StartPodDns();
  // The worker's DNS waits for the node's subnet (routed network, --dns-addr auto).
  bool dns_after_registration_ = false;
  // StartPodDns ran after a registration (routed networks: the pods' gateway is known then).
  bool pod_dns_started_ = false;
  // Where task addresses come from: --address-range, or on a routed network the node's subnet
  // (known once the node registered).
  std::string task_range_ ABSL_GUARDED_BY(mu_);
  std::string TaskRange() const {
    absl::MutexLock lock(&mu_);
    return task_range_;
  }
  // Routes to the peers of `table` when they changed since the last call (RoutesLoop).
  void ApplyPeers(const v1::RoutingTable& table);

  absl::Mutex certs_mu_;  // one fetch at a time
  std::optional<std::map<std::string, std::string>> certs_wanted_ ABSL_GUARDED_BY(certs_mu_);
  std::map<std::string, std::string> certs_fetched_for_ ABSL_GUARDED_BY(certs_mu_);
  bool certs_fetched_ ABSL_GUARDED_BY(certs_mu_) = false;
  std::string certs_error_ ABSL_GUARDED_BY(certs_mu_);  // the last one logged

  mutable absl::Mutex mu_;
  absl::CondVar report_cv_;
  std::string node_id_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Local> tasks_ ABSL_GUARDED_BY(mu_);
  // The ids of tasks_ whose `assigned` is false (adopted and not assigned yet, or no longer
  // assigned): the only ones Apply may forget, so a change to one task does not walk them all.
  std::set<std::string> unassigned_ ABSL_GUARDED_BY(mu_);
  // The values of the secrets this node's tasks use, by name, as the last assignments sent
  // them (in memory only; on disk only in the tasks' tmpfs directories).
  std::map<std::string, security::SecretBytes> secret_values_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<SecretFiles> secret_files_;
  std::map<std::string, v1::TaskStatus> pending_reports_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* watch_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* routes_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Duration heartbeat_period_ ABSL_GUARDED_BY(mu_) = absl::Seconds(3);

  // Records the manager's node-removed refusal; true when `s` is one (a hybrid node: false).
  bool CheckRemoved(const grpc::Status& s);
  bool removed() const { return removed_.HasBeenNotified(); }

  std::atomic<bool> stop_{false};
  absl::Notification removed_;
  // Set by Stop(stop_tasks=true): no new task starts while the running ones are stopped
  // (the manager replaces each stopped task at once, and a replacement started then would be
  // left running after the agent exits).
  bool stopping_tasks_ = false;  // guarded by mu_
  std::vector<std::thread> loops_;
  // Task starts and stops (Spawn).
  OpRunner ops_;
};

}  // namespace warren

#endif  // WARREN_WORKER_AGENT_H_
