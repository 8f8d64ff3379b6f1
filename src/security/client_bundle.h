#ifndef WARREN_SECURITY_CLIENT_BUNDLE_H_
#define WARREN_SECURITY_CLIENT_BUNDLE_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "security/cluster_authority.h"

// The admin client bundle: the CA certificate, an admin certificate and its key, which the CLI
// presents to the manager under mutual TLS. Each cluster has a directory of its own under a
// root (two clusters on one machine, e.g. parallel tests, do not clash):
//
//   <root>/<cluster-id>/        a CredentialsDirectory (ca.pem, cert.pem, key.pem)
//   <root>/current -> <cluster-id>   the cluster the CLI talks to by default
namespace warren::security {

// $HOME/.warren; without HOME, the user's home directory from passwd; empty when neither is
// known.
std::string DefaultTlsRoot();

// Issues a new admin certificate of `authority`'s cluster into <root>/<cluster-id> and points
// <root>/current at it. Returns that directory.
absl::StatusOr<std::string> WriteAdminBundle(const std::string& root,
                                             const ClusterAuthority& authority,
                                             absl::Duration validity, absl::Time now);

// The bundle directory the CLI uses: `explicit_dir` (--tls-dir / WARREN_TLS_DIR) when set,
// else <DefaultTlsRoot()>/current when it exists, else "" (plaintext).
std::string ChooseBundleDir(const std::string& explicit_dir);

// Where ChooseBundleDir("") looks, for an error that says what was tried.
std::string DescribeBundleSearch();

// Whether a Warren manager serving TLS answers at `addr`: its CA bootstrap call, which needs no
// certificate, succeeds within `timeout`. A plaintext server fails the handshake.
bool ServesTls(const std::string& addr, absl::Duration timeout);

// Credentials presenting the bundle's certificate, accepting only a manager of the bundle's
// cluster. Errors name the directory.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> BundleChannelCredentials(
    const std::string& dir);

}  // namespace warren::security

#endif  // WARREN_SECURITY_CLIENT_BUNDLE_H_
