#ifndef WARREN_MANAGER_SERVER_H_
#define WARREN_MANAGER_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "grpcpp/grpcpp.h"
#include "ingress/acme_controller.h"
#include "manager/controller.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/manager_metrics.h"
#include "manager/manager_store.h"
#include "manager/node_liveness.h"
#include "manager/traffic.h"
#include "roles.h"
#include "security/cert_renewer.h"
#include "security/cluster_authority.h"
#include "security/secret_bytes.h"
#include "store/store.h"

namespace warren {

class ClusterAdminService;
class EtcdCompactor;
class DashboardAccessService;
class CaService;
class SecretService;
class DataDirLock;
class GrpcAcceptor;
class HealthStatusUpdater;
class HttpServer;
namespace dns {
class ClusterDns;
}
class Registry;
namespace ui {
class Dashboard;
class DashboardKeys;
}  // namespace ui

// A running manager: store, API server, control loop and metrics endpoint.
class ManagerServer {
 public:
  // Opens the store in options.data_dir and starts serving. `clock` must outlive the server.
  static absl::StatusOr<std::unique_ptr<ManagerServer>> Start(const ManagerOptions& options,
                                                              const Clock& clock);
  ~ManagerServer();

  // The API address actually bound (port 0 resolved).
  const std::string& api_addr() const { return api_addr_; }
  int metrics_port() const;
  // The DNS port actually bound, 0 without DNS.
  int dns_port() const;
  Registry& registry() { return *registry_; }
  Store& store() { return *store_; }
  Controller& controller() { return *controller_; }
  // On etcd: this manager's id among the managers, and whether it leads the controllers now
  // (always true on SQLite).
  const std::string& manager_id() const { return manager_id_; }
  bool IsLeader() const;
  // OK while this manager leads; else UNAVAILABLE naming the leader (the Dispatcher's refusal).
  absl::Status LeadsOrNamesLeader() const;
  // The managers, which one leads and this one marked as answering (`node ls`, `cluster
  // status`): on etcd the registry, on SQLite this manager alone, leading. UNAVAILABLE when
  // etcd cannot be read.
  absl::StatusOr<std::vector<v1::ManagerInfo>> Managers() const;
  // The cluster's CA, join tokens and cluster key, loaded (or created) at start. ca() and
  // cluster_key() never change; the join tokens change (rotation) only under the Ca service's
  // lock, so read them through that service.
  const security::ClusterAuthority* authority() const { return authority_.get(); }
  // Mutual TLS mode: gives the hybrid node's worker (data dir in `worker`) a certificate of
  // this cluster in <worker data dir>/tls, keeping the node id of the one it had.
  absl::Status InstallHybridWorkerCertificate(WorkerOptions* worker) const;
  // Where the admin client bundle was written (TLS mode); empty in plaintext mode.
  const std::string& admin_bundle_dir() const { return admin_bundle_dir_; }

  void Shutdown();

 private:
  ManagerServer() = default;
  // The key that wraps secrets' data keys.
  absl::StatusOr<security::SecretBytes> ClusterKey() const;

  // Released after everything else is gone, the store last of all.
  std::unique_ptr<DataDirLock> data_dir_lock_;
  std::unique_ptr<Store> store_;
  // etcd only: the client, the controllers' leadership and their fenced view of store_ (see
  // manager_store.h); its `store` has moved to store_.
  ManagerStore etcd_;
  std::unique_ptr<security::ClusterAuthority> authority_;
  std::shared_ptr<security::RevocationList> revoked_;
  std::unique_ptr<CaService> ca_;
  std::string admin_bundle_dir_;
  // TLS mode: keeps the manager's certificate in <data-dir>/tls fresh.
  std::unique_ptr<security::CertificateRenewer> tls_renewer_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<NodeLiveness> liveness_;
  std::unique_ptr<ManagerApi> api_;
  std::unique_ptr<ClusterAdminService> admin_;
  // etcd only: compacts etcd's history while this manager leads.
  std::unique_ptr<EtcdCompactor> compactor_;
  std::unique_ptr<SecretService> secrets_;
  // TLS mode: the key of the dashboard's login tokens and sessions (from the cluster key).
  std::shared_ptr<const ui::DashboardKeys> dashboard_keys_;
  std::unique_ptr<DashboardAccessService> dashboard_access_;
  std::unique_ptr<Controller> controller_;
  // Orders `tls: acme` certificates beside the controller (--acme-directory); null when off.
  std::unique_ptr<AcmeController> acme_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<GrpcAcceptor> grpc_acceptor_;  // feeds grpc_server_
  // The gRPC health status, kept equal to /readyz; stopped before grpc_server_.
  std::unique_ptr<HealthStatusUpdater> health_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ManagerMetrics> metrics_;
  // Serves /ui/ on metrics_server_ (which is stopped first).
  std::unique_ptr<ui::Dashboard> dashboard_;
  std::unique_ptr<HttpServer> metrics_server_;
  std::unique_ptr<RoutingTableCache> routes_;
  std::unique_ptr<TrafficStats> traffic_;
  std::unique_ptr<dns::ClusterDns> dns_;
  std::thread dns_thread_;
  std::atomic<bool> stopping_{false};
  std::string api_addr_;
  std::string manager_id_;
  // The API address other managers name as this one's (a wildcard host: the host's name).
  std::string advertise_addr_;
  bool shut_down_ = false;
};

// Blocks SIGINT and SIGTERM in the calling thread (call before starting threads) and waits
// for one of them.
void BlockTerminationSignals();
int WaitForTerminationSignal();

}  // namespace warren

#endif  // WARREN_MANAGER_SERVER_H_
