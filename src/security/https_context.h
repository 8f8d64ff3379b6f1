#ifndef WARREN_SECURITY_HTTPS_CONTEXT_H_
#define WARREN_SECURITY_HTTPS_CONTEXT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "security/tls_credentials.h"

namespace boost::asio::ssl {
class context;
}

// TLS server contexts for the manager's HTTP server (the dashboard over HTTPS), from the same
// certificate as its API.
namespace warren::security {

// A server context presenting `material`'s certificate: TLS 1.2 and 1.3 only; asks for a client
// certificate without requiring one and verifies one that is sent against the material's CA.
absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeHttpsServerContext(
    const TlsMaterial& material);

// The context of a CredentialsDirectory's current generation, built again when a renewal
// switched it (checked at every Get, one readlink), so new connections present the renewed
// certificate. Thread-safe.
class HttpsContextSource {
 public:
  explicit HttpsContextSource(CredentialsDirectory dir) : dir_(std::move(dir)) {}
  // Null when the directory cannot be read (the connection is then closed); the previous
  // context is kept when a new generation does not load.
  std::shared_ptr<boost::asio::ssl::context> Get();

 private:
  const CredentialsDirectory dir_;
  absl::Mutex mu_;
  std::string generation_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<boost::asio::ssl::context> context_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::security

#endif  // WARREN_SECURITY_HTTPS_CONTEXT_H_
