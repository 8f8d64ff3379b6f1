#ifndef WARREN_MANAGER_MANAGER_API_H_
#define WARREN_MANAGER_MANAGER_API_H_

#include <functional>
#include <utility>

#include "ingress/ingress_api.h"
#include "manager/api_shared.h"
#include "manager/control_service.h"
#include "manager/dispatcher_service.h"

namespace warren {

// The manager's API services over one shared state: Control for users, Dispatcher for nodes.
class ManagerApi {
 public:
  // `metrics` may be null (tests).
  ManagerApi(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
             ApiOptions options, ManagerMetrics* metrics = nullptr)
      : shared_(store, clock, events, liveness, options, metrics),
        control_(shared_),
        dispatcher_(shared_),
        ingress_(shared_) {}

  ControlService& control() { return control_; }
  DispatcherService& dispatcher() { return dispatcher_; }
  IngressApi& ingress() { return ingress_; }

  // Ends the long-lived streams (watches, logs) so the server can shut down.
  void Shutdown() { shared_.shutting_down = true; }

  // The traffic pieces (owned by the server); without them the traffic RPCs are unavailable.
  void SetTraffic(RoutingTableCache* routes, TrafficStats* stats) {
    shared_.routes = routes;
    shared_.traffic = stats;
  }

  // How calls are authorized (plaintext loopback until set). Set before serving.
  void SetAuthorizer(std::shared_ptr<const security::Authorizer> authorizer) {
    shared_.authorizer = std::move(authorizer);
  }

  // The revocation list `node rm` adds to (see ApiShared::revoked). Set before serving.
  void SetRevocation(std::shared_ptr<security::RevocationList> revoked, absl::Duration keep) {
    shared_.revoked = std::move(revoked);
    shared_.revocation_keep = keep;
  }
  // The key secrets are opened with for the workers' assignments. Set once, before serving.
  void SetSecretKey(ClusterKeyFn key) { shared_.secret_key = std::move(key); }
  void SetAcmeEnabled(bool enabled) { shared_.acme_enabled = enabled; }
  void SetNodeCredentials(NodeCredentialsFn creds) { shared_.node_credentials = std::move(creds); }
  // See ApiShared::leads.
  void SetLeadership(std::function<absl::Status()> leads) { shared_.leads = std::move(leads); }
  // See ApiShared::managers.
  void SetManagers(std::function<absl::StatusOr<std::vector<v1::ManagerInfo>>()> managers) {
    shared_.managers = std::move(managers);
  }

  void SetIntentPass(std::function<void()> pass) { control_.SetIntentPass(std::move(pass)); }

 private:
  ApiShared shared_;
  ControlService control_;
  DispatcherService dispatcher_;
  IngressApi ingress_;
};

}  // namespace warren

#endif  // WARREN_MANAGER_MANAGER_API_H_
