#ifndef WARREN_INGRESS_INGRESS_API_H_
#define WARREN_INGRESS_INGRESS_API_H_

#include "absl/synchronization/mutex.h"
#include "manager/api_shared.h"
#include "security/secret_bytes.h"
#include "warren/v1/ingress.grpc.pb.h"

namespace warren {

// The Ingresses gRPC service: create, inspect, list and remove ingress rules. A create is
// validated in full (spec, service, host+path conflicts, certificate and key) before anything
// is stored; the API never returns a private key.
class IngressApi final : public v1::Ingresses::Service {
 public:
  explicit IngressApi(ApiShared& shared) : shared_(shared) {}

  grpc::Status CreateIngress(grpc::ServerContext*, const v1::CreateIngressRequest*,
                             v1::Ingress*) override;
  grpc::Status GetIngress(grpc::ServerContext*, const v1::GetIngressRequest*,
                          v1::Ingress*) override;
  grpc::Status ListIngresses(grpc::ServerContext*, const v1::ListIngressesRequest*,
                             v1::ListIngressesResponse*) override;
  grpc::Status DeleteIngress(grpc::ServerContext*, const v1::DeleteIngressRequest*,
                             v1::DeleteIngressResponse*) override;
  grpc::Status RenewIngress(grpc::ServerContext*, const v1::RenewIngressRequest*,
                            v1::Ingress*) override;

 private:
  absl::StatusOr<v1::Ingress> Find(const std::string& name_or_id) const;

  ApiShared& shared_;
  // Serializes the conflict check and commit of creates.
  absl::Mutex create_mu_;
};

// The ingress as the API returns it: without the private key, plain or sealed.
v1::Ingress RedactIngress(v1::Ingress ingress);

// Moves the ingress's tls.key_pem into tls.sealed_key, sealed under the cluster key and bound
// to the ingress's id and name. FAILED_PRECONDITION (naming tls.key) without a cluster key.
absl::Status SealIngressKey(const ClusterKeyFn& cluster_key, v1::Ingress* ingress);

// The private key of a stored TLS ingress; DataLoss when the envelope does not open.
absl::StatusOr<security::SecretBytes> OpenIngressKey(const security::SecretBytes& cluster_key,
                                                     const v1::Ingress& ingress);

}  // namespace warren

#endif  // WARREN_INGRESS_INGRESS_API_H_
