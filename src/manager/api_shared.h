#ifndef WARREN_MANAGER_API_SHARED_H_
#define WARREN_MANAGER_API_SHARED_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "manager/events.h"
#include "manager/manager_metrics.h"
#include "manager/node_liveness.h"
#include "manager/publish_errors.h"
#include "manager/traffic.h"
#include "security/authz.h"
#include "security/root_ca.h"
#include "security/secret_bytes.h"
#include "store/store.h"
#include "warren/v1/api.pb.h"
#include "warren/v1/objects.pb.h"

namespace warren {

// The cluster key that wraps each secret's data key (security/secrets.h). An error when the
// manager has none: then no secret can be written or read.
using ClusterKeyFn = std::function<absl::StatusOr<security::SecretBytes>()>;

// Credentials for calling one node's log service (WorkerAgent), which must prove it is that node.
using NodeCredentialsFn = std::function<absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>(
    const std::string& node_id)>;

struct ApiOptions {
  absl::Duration node_timeout = absl::Seconds(15);
  // How many revisions of a service are kept.
  int history_limit = 10;
  // How long a rollout action (pause, promote, rollback...) waits for the controller to apply
  // it before returning it as pending.
  absl::Duration intent_wait = absl::Seconds(10);
};

// What the manager's gRPC services (Control, Dispatcher) share: the store and the manager's
// in-memory state both read and write (liveness, published-port errors, traffic).
struct ApiShared {
  // `metrics` may be null (tests).
  ApiShared(Store& store, const Clock& clock, EventLog& events, NodeLiveness& liveness,
            ApiOptions options, ManagerMetrics* metrics)
      : store(store),
        clock(clock),
        events(events),
        liveness(liveness),
        options(options),
        metrics(metrics) {}

  absl::StatusOr<v1::Service> FindService(const std::string& name_or_id) const;
  absl::StatusOr<v1::Node> FindNode(const std::string& name_or_id) const;
  void FillLiveness(v1::Node* node) const;
  // The caller's identity (nullopt: plaintext mode, an open method or an in-process call) when
  // it may call `full_method`; else UNAUTHENTICATED or PERMISSION_DENIED.
  absl::StatusOr<std::optional<security::CertificateIdentity>> Authorize(
      grpc::ServerContext* ctx, absl::string_view full_method) const {
    return authorizer->AuthorizeCall(ctx, full_method);
  }
  // A long-lived stream's check at each wake-up (Authorizer::Reauthorize).
  absl::Status Reauthorize(grpc::ServerContext* ctx, absl::string_view full_method,
                           uint64_t* checked) const {
    return authorizer->Reauthorize(ctx, full_method, checked);
  }

  Store& store;
  const Clock& clock;
  EventLog& events;
  NodeLiveness& liveness;
  const ApiOptions options;
  ManagerMetrics* const metrics;
  // The traffic pieces (owned by the server); without them the traffic RPCs are unavailable.
  RoutingTableCache* routes = nullptr;
  TrafficStats* traffic = nullptr;
  // Ends the long-lived streams (watches, logs) so the server can shut down.
  std::atomic<bool> shutting_down{false};
  // Reported by heartbeats (Dispatcher), shown with services (Control); never stored.
  PublishErrorBoard publish_errors;
  // Decides every RPC of both services; sec-tls switches servers to kMutualTls.
  std::shared_ptr<const security::Authorizer> authorizer =
      security::Authorizer::PlaintextLoopback();
  // `node rm` revokes the node's certificates here (the list the TLS handshakes and Authorize
  // consult) and in the stored list, each entry kept for `revocation_keep` (the certificates'
  // lifetime). Unset: only the stored list (when the store holds a cluster CA).
  std::shared_ptr<security::RevocationList> revoked;
  absl::Duration revocation_keep = security::kDefaultNodeCertValidity;
  // Opens the secrets a node's assignments carry (Dispatcher); unset: no secret is sent.
  ClusterKeyFn secret_key;
  // The managers order certificates for `tls: acme` ingresses (--acme-directory); without it
  // such an ingress is refused.
  bool acme_enabled = false;
  // Unset: plaintext calls to the nodes' log services.
  NodeCredentialsFn node_credentials;
  // Several managers on etcd: OK while this manager leads the controllers, else UNAVAILABLE
  // naming the leader (common/manager_list.h). The Dispatcher serves only while it is OK.
  // Unset: always leads (SQLite).
  std::function<absl::Status()> leads;
  absl::Status CheckLeads() const { return leads ? leads() : absl::OkStatus(); }
  // The managers of the cluster, which one leads and which one answers (ListNodes). Unset:
  // none are listed.
  std::function<absl::StatusOr<std::vector<v1::ManagerInfo>>()> managers;
};

// absl::Status -> grpc::Status, code for code.
grpc::Status ToGrpc(const absl::Status& s);

}  // namespace warren

#endif  // WARREN_MANAGER_API_SHARED_H_
