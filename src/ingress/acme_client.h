#ifndef WARREN_INGRESS_ACME_CLIENT_H_
#define WARREN_INGRESS_ACME_CLIENT_H_

// An ACME client (RFC 8555) for one thing: a certificate for one DNS name, proven by the HTTP-01
// challenge. Blocking: it runs on a thread of its own (AcmeController), never on a loop that
// must stay responsive.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "security/secret_bytes.h"
#include "warren/v1/ingress.pb.h"

namespace warren {

// base64url without padding (RFC 7515 2).
std::string Base64Url(absl::string_view bytes);
absl::StatusOr<std::string> Base64UrlDecode(absl::string_view text);

// One HTTP exchange with the ACME server.
struct AcmeHttpResponse {
  int status = 0;
  // Lower-case names.
  std::map<std::string, std::string> headers;
  std::string body;
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class AcmeTransport {
 public:
  virtual ~AcmeTransport() = default;
  // `method` GET, HEAD or POST; `content_type` only with a body.
  virtual absl::StatusOr<AcmeHttpResponse> Do(const std::string& method, const std::string& url,
                                              const std::string& content_type,
                                              const std::string& body) = 0;
};

// http:// and https:// over Boost.Beast; https verifies the server against the system's CAs and
// the PEM file `ca_bundle` (pebble's own test CA, a private CA), with the URL's host name.
std::unique_ptr<AcmeTransport> MakeHttpAcmeTransport(std::string ca_bundle, absl::Duration timeout);

// An ECDSA P-256 account key and what RFC 8555 signs with it (JWS with ES256).
class AcmeAccountKey {
 public:
  static absl::StatusOr<AcmeAccountKey> Generate();
  // The public key as a JWK: {"crv":"P-256","kty":"EC","x":...,"y":...} (RFC 7638 order).
  const std::string& jwk() const { return jwk_; }
  // base64url(SHA-256(jwk)): the key's thumbprint (RFC 7638), part of a key authorization.
  std::string Thumbprint() const;
  // Flattened JWS JSON: the protected header {"alg":"ES256","nonce","url", and "kid" or, with
  // `kid` empty, "jwk"}, the payload (empty: POST-as-GET) and the raw r||s signature.
  absl::StatusOr<std::string> Sign(const std::string& url, const std::string& nonce,
                                   const std::string& kid, const std::string& payload) const;

 private:
  std::shared_ptr<void> key_;  // EVP_PKEY
  std::string jwk_;
};

struct AcmeOptions {
  // The directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory.
  std::string directory_url;
  // Contact for the account (mailto:); empty: none.
  std::string email;
  // How long one order's polls (challenge, finalize) may take in all.
  absl::Duration order_timeout = absl::Minutes(2);
  // Between polls of an authorization or order (a Retry-After up to 10 s is honoured).
  absl::Duration poll_interval = absl::Seconds(1);
  // A badNonce answer is retried with the nonce it carries, this many times.
  int bad_nonce_retries = 5;
};

struct AcmeIssued {
  // The chain as the server sent it: the leaf first.
  std::string certificate_pem;
  security::SecretBytes key_pem;
};

// Publishes an order's HTTP-01 challenges so that every node answers them; returns once they
// are served (or an error, which ends the order).
using AcmePublishFn = std::function<absl::Status(const std::vector<v1::AcmeChallenge>&)>;

class AcmeClient {
 public:
  AcmeClient(AcmeOptions options, std::unique_ptr<AcmeTransport> transport);

  // An account (created on first use and kept), an order for `domain`, its HTTP-01 challenges
  // published through `publish` and answered, then the finalization with a CSR for a new P-256
  // key, and the certificate chain. `stop` (may be null) is polled between steps.
  absl::StatusOr<AcmeIssued> Obtain(const std::string& domain, const AcmePublishFn& publish,
                                    const std::function<bool()>& stop = nullptr);

  // The account URL ("kid"), empty before the first order.
  const std::string& account_url() const { return kid_; }

 private:
  struct Directory {
    std::string new_nonce, new_account, new_order;
  };
  absl::Status LoadDirectory();
  absl::Status EnsureAccount();
  // A signed POST (payload empty: POST-as-GET), retried on badNonce; `what` names the step in
  // errors. Non-2xx answers are errors carrying the problem document's type and detail.
  absl::StatusOr<AcmeHttpResponse> Post(const std::string& what, const std::string& url,
                                        const std::string& payload, bool use_jwk = false);
  // POST-as-GET of `url` until its "status" is not one of `waiting`; returns the JSON body.
  absl::StatusOr<std::string> PollStatus(const std::string& what, const std::string& url,
                                         const std::vector<std::string>& waiting,
                                         absl::Time deadline, const std::function<bool()>& stop);
  absl::Status FetchNonce();

  const AcmeOptions options_;
  std::unique_ptr<AcmeTransport> transport_;
  std::optional<AcmeAccountKey> key_;
  std::optional<Directory> directory_;
  std::string kid_;
  std::string nonce_;
};

// A DER certificate signing request for `key_pem` naming `domain` (subject CN and DNS SAN).
absl::StatusOr<std::string> CreateDomainCsrDer(const security::SecretBytes& key_pem,
                                               const std::string& domain);

}  // namespace warren

#endif  // WARREN_INGRESS_ACME_CLIENT_H_
