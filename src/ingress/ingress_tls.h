#ifndef WARREN_INGRESS_INGRESS_TLS_H_
#define WARREN_INGRESS_INGRESS_TLS_H_

#include <openssl/ssl.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "warren/v1/ingress.pb.h"

namespace warren {

// Hex SHA-256 of a certificate chain's PEM (IngressRoute.certificate_sha256).
std::string CertificateSha256(absl::string_view pem);

// Where an HTTP request to a TLS host is redirected: https://HOST[:PORT]TARGET, the port left
// out when it is 443. `host` is the request's normalized host, `target` its origin-form target
// (path and query).
std::string IngressHttpsUrl(absl::string_view host, absl::string_view target, int https_port);

// The certificates of the ingress's TLS rules, chosen by SNI during the handshake (docs/
// ingress.md). The listener's connections start on one base context (TLS 1.2 and 1.3 only, no
// certificate); its servername callback moves each to the context of the rule whose host takes
// the name: an exact host beats a wildcard, a longer wildcard a shorter one. No rule for the
// name (or no name): the handshake fails with the unrecognized_name alert; there is no default
// certificate. Update swaps the per-host contexts at once: handshakes after it use the new
// ones; established connections keep theirs (a context is reference counted).
class IngressTlsContexts {
 public:
  IngressTlsContexts();
  ~IngressTlsContexts();
  IngressTlsContexts(const IngressTlsContexts&) = delete;
  IngressTlsContexts& operator=(const IngressTlsContexts&) = delete;

  // The whole set (by host, path, name: the first rule of a host gives its certificate). A pair
  // that does not load is left out and named in the error; the others are applied. The key
  // bytes of `pairs` are wiped.
  absl::Status Update(std::vector<v1::IngressKeyPair>& pairs);

  // The context for a server name (lower case, no trailing dot), or null.
  std::shared_ptr<SSL_CTX> Select(absl::string_view server_name) const;

  // name -> certificate_sha256 of the pairs last given to Update (loaded or not): what a node
  // compares with its routing table to know when to fetch again.
  std::map<std::string, std::string> Given() const;

  // The context every connection of the listener starts on.
  boost::asio::ssl::context& base() { return base_; }

 private:
  struct Entry {
    std::string host;
    std::shared_ptr<SSL_CTX> ctx;
  };
  static int OnServerName(SSL* ssl, int* alert, void* arg);

  boost::asio::ssl::context base_;
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> given_ ABSL_GUARDED_BY(mu_);
};

// A server context for one certificate chain and key (TLS 1.2 and 1.3 only). `field` names the
// input in errors.
absl::StatusOr<std::shared_ptr<SSL_CTX>> MakeServerContext(absl::string_view cert_pem,
                                                           absl::string_view key_pem,
                                                           absl::string_view field);

}  // namespace warren

#endif  // WARREN_INGRESS_INGRESS_TLS_H_
