#ifndef WARREN_MANAGER_SECRET_SERVICE_H_
#define WARREN_MANAGER_SECRET_SERVICE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "manager/api_shared.h"
#include "manager/events.h"
#include "security/secret_bytes.h"
#include "store/store.h"
#include "warren/v1/api.pb.h"
#include "warren/v1/objects.pb.h"
#include "warren/v1/secrets.grpc.pb.h"

namespace warren {

// Rolls a service onto the secrets' current versions (a new revision, the usual rolling
// update). `cause` is the revision's change cause.
using RollServiceFn =
    std::function<absl::Status(const std::string& service_name, const std::string& cause)>;

// warren.v1.Secrets. Values are sealed (envelope encryption) before they reach the store and
// never leave the manager through this API: every answer is metadata only, and no error, log
// line or event carries a value.
class SecretService final : public v1::Secrets::Service {
 public:
  SecretService(Store& store, const Clock& clock, EventLog& events, ClusterKeyFn cluster_key,
                RollServiceFn roll_service);

  grpc::Status CreateSecret(grpc::ServerContext*, const v1::CreateSecretRequest*,
                            v1::Secret*) override;
  grpc::Status ListSecrets(grpc::ServerContext*, const v1::ListSecretsRequest*,
                           v1::ListSecretsResponse*) override;
  grpc::Status InspectSecret(grpc::ServerContext*, const v1::InspectSecretRequest*,
                             v1::Secret*) override;
  grpc::Status UpdateSecret(grpc::ServerContext*, const v1::UpdateSecretRequest*,
                            v1::Secret*) override;
  grpc::Status RemoveSecret(grpc::ServerContext*, const v1::RemoveSecretRequest*,
                            v1::RemoveSecretResponse*) override;

  // How calls are authorized (plaintext loopback until set). Set before serving.
  void SetAuthorizer(std::shared_ptr<const security::Authorizer> authorizer) {
    authorizer_ = std::move(authorizer);
  }

 private:
  absl::Status Authorize(grpc::ServerContext* ctx, absl::string_view method) const;

  Store& store_;
  const Clock& clock_;
  EventLog& events_;
  ClusterKeyFn cluster_key_;
  RollServiceFn roll_service_;
  std::shared_ptr<const security::Authorizer> authorizer_ =
      security::Authorizer::PlaintextLoopback();
};

// A secret by name or id; NotFound names it.
absl::StatusOr<v1::Secret> FindSecret(const Store& store, const std::string& name_or_id);

// The names of the services whose template uses secret `name`, sorted.
std::vector<std::string> ServicesUsingSecret(const Store& store, const std::string& name);

// Checks that every secret `spec` refers to exists and records its current version in the
// reference (so a new secret version is a template change). INVALID_ARGUMENT naming
// template.secrets[i].name for an unknown secret.
absl::Status ResolveSecretReferences(const Store& store, v1::ServiceSpec* spec);

// Adds to `a` the values of the secrets its tasks use, and no other (need to know: a node's
// assignments hold only its own tasks). A secret that is gone or does not open is left out
// (logged by name); the task that needs it then fails to start, naming it.
void AddSecretValues(const Store& store, const ClusterKeyFn& cluster_key, v1::Assignments* a);

// The value of `secret`, opened with the cluster key (DataLoss when it does not open).
absl::StatusOr<security::SecretBytes> OpenSecret(const security::SecretBytes& cluster_key,
                                                 const v1::Secret& secret);

}  // namespace warren

#endif  // WARREN_MANAGER_SECRET_SERVICE_H_
